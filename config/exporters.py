"""Where finished batches go: the local store, Langfuse over HTTP, or nowhere (dry run).

Every exporter takes whole batches (``export``) and is flushed and shut down by the tracer.
The Langfuse exporter sends on a background thread with one reused HTTP connection, so the
agents never wait on the network.
"""

from __future__ import annotations

import base64
import gzip
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from config.span_records import ScoreRecord, SpanRecord

if TYPE_CHECKING:
    import httpx

    from config.local_store import LocalStore
    from config.settings import LangfuseConfig

logger = logging.getLogger("autoops.export")

OTLP_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class SpanExporter(Protocol):
    """Receives finished batches from the tracer."""

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Take one batch; must not block on the network."""

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything taken is delivered."""

    def shutdown(self, timeout: float) -> None:
        """Flush, then release resources."""


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


def langfuse_headers(config: LangfuseConfig, sdk_version: str) -> dict[str, str]:
    """The headers the Langfuse SDK sends (API-NOTES.md sections 1 and 3)."""
    assert config.public_key is not None and config.secret_key is not None
    token = f"{config.public_key}:{config.secret_key.get_secret_value()}".encode()
    return {
        "Authorization": "Basic " + base64.b64encode(token).decode("ascii"),
        "x-langfuse-sdk-name": "python",
        "x-langfuse-sdk-version": sdk_version,
        "x-langfuse-public-key": config.public_key,
        "x-langfuse-ingestion-version": "4",
    }


class LangfuseHttpExporter:
    """Sends spans over OTLP/HTTP (protobuf, gzip) and scores to ``/api/public/scores``.

    A background thread drains a queue of batches through one ``httpx.Client``. Retryable
    failures (408, 429, 5xx, transport errors) are retried with exponential backoff and
    jitter up to ``max_retries`` times, honouring ``Retry-After``; what still fails is counted
    and logged. (Keeping failed batches for later is the outbox's job.)
    """

    def __init__(self, config: LangfuseConfig) -> None:
        import httpx

        sdk_version = _sdk_version()
        self._config = config
        self._resource = resource_attributes(config)
        self._scope_version = sdk_version
        self._client = httpx.Client(
            base_url=config.host,
            headers=langfuse_headers(config, sdk_version),
            timeout=config.timeout,
        )
        self._queue: queue.Queue[tuple[list[SpanRecord], list[ScoreRecord]] | None] = queue.Queue()
        self._pending = 0
        self._idle = threading.Condition()
        self.stats = ExportStats()
        self._last_rejected, self._last_rejection = 0, ""
        self._worker = threading.Thread(target=self._run, name="autoops-export", daemon=True)
        self._worker.start()

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Queue the batch for the background thread."""
        with self._idle:
            self._pending += 1
        self._queue.put((spans, scores))

    def flush(self, timeout: float) -> bool:
        """Wait until the queue is drained, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> None:
        """Flush, stop the thread and close the connection."""
        self.flush(timeout)
        self._queue.put(None)
        self._worker.join(timeout=1.0)
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            spans, scores = item
            try:
                self._send_batch(spans, scores)
            except Exception as exc:  # never let the worker die
                self._record_failure(spans, scores, f"{type(exc).__name__}: {exc}")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _send_batch(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        from config.otlp import encode_spans

        if spans:
            body = gzip.compress(
                encode_spans(
                    spans,
                    resource=self._resource,
                    scope_version=self._scope_version,
                    scope_attributes={"public_key": self._config.public_key},
                ),
                compresslevel=5,
            )
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
            error = self._post(OTLP_PATH, content=body, headers=headers)
            if error:
                # The host is down or refuses us: the scores would fail the same way.
                self._record_failure(spans, scores, error)
                return
            self.stats.spans_exported += len(spans)
        if scores:
            # One request for the batch's scores, a list as the SDK 5 sends them: 202 when all
            # were accepted, 207 with the rejected ones counted.
            error = self._post(SCORES_PATH, json=[score.as_request() for score in scores])
            if error:
                self._record_failure([], scores, error)
            else:
                self.stats.scores_exported += len(scores) - self._last_rejected
                if self._last_rejected:
                    self._record_failure([], scores[: self._last_rejected], self._last_rejection)

    def _post(self, path: str, **kwargs: Any) -> str | None:
        """POST with retries; the error text of the last attempt, or None on success."""
        import httpx

        attempts = self._config.max_retries + 1
        error = "not sent"
        for attempt in range(attempts):
            retry_after: float | None = None
            try:
                response = self._client.post(path, **kwargs)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    self._note_rejections(response)
                    return None
                error = f"HTTP {response.status_code} from {path}: {response.text[:200]}"
                if response.status_code not in RETRYABLE_STATUS:
                    return error
                retry_after = _retry_after_seconds(response)
            if attempt + 1 < attempts:
                delay = retry_after if retry_after is not None else 0.2 * 2**attempt
                time.sleep(delay + random.uniform(0, delay / 4))
        return error

    def _note_rejections(self, response: httpx.Response) -> None:
        """A 207 answer to a score batch: how many were rejected, and why."""
        self._last_rejected, self._last_rejection = 0, ""
        if response.status_code != 207:
            return
        try:
            body = response.json()
            self._last_rejected = int(body.get("rejected", 0))
            self._last_rejection = "; ".join(str(e.get("message")) for e in body.get("errors", []))
        except (ValueError, AttributeError, TypeError):
            self._last_rejected, self._last_rejection = 0, ""

    def _record_failure(
        self, spans: list[SpanRecord], scores: list[ScoreRecord], error: str
    ) -> None:
        self.stats.batches_failed += 1
        self.stats.spans_failed += len(spans)
        self.stats.scores_failed += len(scores)
        self.stats.last_error = error
        logger.warning(
            "delivery to Langfuse failed (%d spans, %d scores): %s", len(spans), len(scores), error
        )


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


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _sdk_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("langfuse")
    except PackageNotFoundError:  # pragma: no cover - langfuse is a dependency
        return "unknown"
