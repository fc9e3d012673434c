"""Where finished batches go: the local store, or nowhere (dry run); and what the Langfuse
exporter (``config.delivery.sender.OutboxExporter``) sends with every request.

Every exporter takes whole batches (``export``) and is flushed and shut down by the tracer
(the ``SpanExporter`` protocol of ``config.tracing.span_records``). Each counts the batches
it took (``exported_batches``) and those that are durable (``committed_batches``: that batch
and every earlier one), which is how the replay knows what it may report as processed.
"""

from __future__ import annotations

import base64
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.errors import LocalFileError
from config.redaction import core_logger
from config.store.local_store import write_error
from config.tracing.span_records import ScoreRecord, SpanRecord

logger = core_logger("autoops.delivery")

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

    def count_written(self, spans: int, scores: int) -> None:
        """A batch of ``spans`` and ``scores`` is durable."""
        self.spans_exported += spans
        self.scores_exported += scores

    def count_failed(self, spans: int, scores: int) -> None:
        """A batch of ``spans`` and ``scores`` is lost (counted, never retried)."""
        self.batches_failed += 1
        self.spans_failed += spans
        self.scores_failed += scores


class NullExporter:
    """Discards everything (``--dry-run``)."""

    write_failure: LocalFileError | None = None

    def __init__(self) -> None:
        self.stats = ExportStats()
        self._exported = 0

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Count and drop."""
        self._exported += 1
        self.stats.spans_exported += len(spans)
        self.stats.scores_exported += len(scores)

    def exported_batches(self) -> int:
        """Batches taken."""
        return self._exported

    def committed_batches(self) -> int:
        """Nothing is kept, so nothing is pending: every batch taken counts as done."""
        return self._exported

    def flush(self, timeout: float) -> bool:
        """Nothing to wait for."""
        return True

    def shutdown(self, timeout: float) -> None:
        """Nothing to release."""


class StoreWatermark:
    """What the local store's exporters count: batches taken (``exported_batches``) and
    written with every earlier one (``committed_batches``, what a replay counts at), their
    ``stats``, and the first ``write_failure``."""

    def __init__(self) -> None:
        self.stats = ExportStats()
        self.write_failure: LocalFileError | None = None
        self._exported = 0
        self._committed = 0

    def exported_batches(self) -> int:
        """Batches taken."""
        return self._exported

    def committed_batches(self) -> int:
        """Batches written, with every earlier one."""
        return self._committed


class LocalStoreExporter(StoreWatermark):
    """Writes each batch to the local store in one transaction, before ``export`` returns.

    The watermark (``committed_batches``) is then the batches taken: a replay counts its
    events at it, and a library caller reads its traces at once. (A writer thread was tried
    for the replay, so that SQLite's work, which runs without the GIL, would overlap the
    agents': measured on a quiet machine, the thread's hand-offs cost more than the overlap
    gained, 310-344 events/s against 373-405 written here; mapping holds the GIL either way.
    A replay with a second CPU uses a writer process: ``store_process.StoreProcessExporter``.)

    A write that fails (a full disk, a read-only or broken file) is counted as failed, never
    raised into the traced code; ``write_failure`` keeps it, and from then on nothing more is
    written (counted as failed too) and the committed watermark stays where it was.
    """

    def __init__(self, store: LocalStore) -> None:
        super().__init__()
        self.store = store
        # One write at a time, in the order the batches were taken: the watermark means
        # "this one and all before".
        self._writing = threading.Lock()

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Write the batch (its ticket is ``exported_batches()`` once this returns)."""
        with self._writing:
            self._exported += 1
            failure = self.write_failure
            unexpected: Exception | None = None
            if failure is None:
                try:
                    self.store.write(spans, scores)
                except Exception as exc:  # also a closed connection, a value SQLite cannot bind
                    # Any of them stops the watermark as a full disk does (a replay waiting on
                    # it must end); all but LocalFileError are raised on to the client's error
                    # handler (health degraded).
                    if not isinstance(exc, LocalFileError):
                        unexpected = exc
                    failure = self.write_failure = write_error(self.store.path, exc)
                    logger.error("%s; tracing keeps nothing more of this run", failure)
            # After a failure nothing more is written: the store holds exactly what the
            # watermark says (a later write could succeed past a lost batch).
            if failure is not None:
                self.stats.count_failed(len(spans), len(scores))
                self.stats.last_error = str(failure)
            else:
                self.stats.count_written(len(spans), len(scores))
                self._committed = self._exported
        if unexpected is not None:
            raise unexpected

    def wait_committed(self, ticket: int, timeout: float) -> bool:
        """Whether ``ticket`` is written (nothing to wait for: ``export`` wrote it)."""
        return self._committed >= ticket

    def flush(self, timeout: float) -> bool:
        """Everything taken is written; False after a write failure."""
        return self.write_failure is None

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
