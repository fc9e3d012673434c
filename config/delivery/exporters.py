"""Where finished batches go: the local store, or nowhere (dry run); and what the Langfuse
exporter (``config.delivery.sender.OutboxExporter``) sends with every request.

Every exporter takes whole batches (``export``) and is flushed and shut down by the tracer
(the ``SpanExporter`` protocol of ``config.tracing.span_records``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.tracing.span_records import ScoreRecord, SpanRecord

if TYPE_CHECKING:
    from config.settings import LangfuseConfig
    from config.store.local_store import LocalStore


@dataclass
class ExportStats:
    """What an exporter delivered and what it could not."""

    spans_exported: int = 0
    scores_exported: int = 0
    batches_failed: int = 0
    spans_failed: int = 0
    scores_failed: int = 0
    last_error: str | None = None


class NullExporter:
    """Discards everything (``--dry-run``)."""

    def __init__(self) -> None:
        self.stats = ExportStats()

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Count and drop."""
        self.stats.spans_exported += len(spans)
        self.stats.scores_exported += len(scores)

    def flush(self, timeout: float) -> bool:
        """Nothing to wait for."""
        return True

    def shutdown(self, timeout: float) -> None:
        """Nothing to release."""


class LocalStoreExporter:
    """Writes each batch to the local store in one transaction, synchronously."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.stats = ExportStats()

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Write the batch."""
        self.store.write(spans, scores)
        self.stats.spans_exported += len(spans)
        self.stats.scores_exported += len(scores)

    def flush(self, timeout: float) -> bool:
        """Writes are synchronous: nothing pending."""
        return True

    def shutdown(self, timeout: float) -> None:
        """Close the store."""
        self.store.close()


def langfuse_headers(config: LangfuseConfig, version: str) -> dict[str, str]:
    """The headers the Langfuse SDK sends (API-NOTES.md sections 1 and 3)."""
    assert config.public_key is not None and config.secret_key is not None
    token = f"{config.public_key}:{config.secret_key.get_secret_value()}".encode()
    return {
        "Authorization": "Basic " + base64.b64encode(token).decode("ascii"),
        "x-langfuse-sdk-name": "python",
        "x-langfuse-sdk-version": version,
        "x-langfuse-public-key": config.public_key,
        "x-langfuse-ingestion-version": "4",
    }


def resource_attributes(config: LangfuseConfig) -> dict[str, Any]:
    """The OTel resource of the core's spans (the SDK puts environment and release there too)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        own_version = version("autoops")
    except PackageNotFoundError:  # running from a source tree
        own_version = "0"
    resource: dict[str, Any] = {
        "service.name": "autoops",
        "service.version": own_version,
        "telemetry.sdk.language": "python",
        "langfuse.environment": config.environment,
    }
    if config.release:
        resource["langfuse.release"] = config.release
    return resource


def sdk_version() -> str:
    """The installed Langfuse SDK's version (sent as x-langfuse-sdk-version)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langfuse")
    except PackageNotFoundError:  # pragma: no cover - langfuse is a dependency
        return "unknown"
