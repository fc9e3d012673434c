"""Where finished batches go: the local store, or nowhere (dry run); and what the Langfuse
exporter (``config.delivery.sender.OutboxExporter``) sends with every request.

Every exporter takes whole batches (``export``) and is flushed and shut down by the tracer
(the ``SpanExporter`` protocol of ``config.tracing.span_records``). Each counts the batches
it took (``exported_batches``) and those that are durable (``committed_batches``: that batch
and every earlier one), which is how the replay knows what it may report as processed.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.errors import LocalFileError
from config.tracing.span_records import ScoreRecord, SpanRecord

logger = logging.getLogger("autoops.delivery")

GROUP_MAX_ITEMS = 4000  # spans and scores the store writer puts in one transaction

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


class LocalStoreExporter:
    """Writes batches to the local store, one transaction per group of batches.

    Synchronous by default (the batch is written when ``export`` returns). With
    ``buffer_size`` (the CLI's and the service's local mode: ``LANGFUSE_BUFFER_SIZE``) a
    writer thread maps and writes them, so SQLite's work, which runs without the GIL,
    overlaps the traced code's: ``export`` queues the batch and waits only while the queue
    holds ``buffer_size`` spans and scores (backpressure, as the outbox's writer); the
    watermark (``committed_batches``) moves when the transaction holding a batch is
    committed, which is when a replay counts its events.

    A write that fails (a full disk, a read-only or broken file) is counted as failed, never
    raised into the traced code; ``write_failure`` keeps it, and from then on nothing more is
    written (counted as failed too) and the committed watermark stays where it was.
    """

    def __init__(self, store: LocalStore, *, buffer_size: int | None = None) -> None:
        self.store = store
        self.stats = ExportStats()
        self.write_failure: LocalFileError | None = None
        self._exported = 0
        self._committed = 0
        self._limit = buffer_size
        # Guards the counters and the queue; batches are written in the order they were
        # taken, so the watermark means "this one and all before".
        self._changed = threading.Condition()
        self._queue: deque[tuple[int, list[SpanRecord], list[ScoreRecord]]] = deque()
        self._queued_items = 0  # taken and not written yet (the group being written too)
        self._writing = threading.Lock()  # one writer at a time: the watermark stays ordered
        self._writer: threading.Thread | None = None
        self._stop = False

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Write the batch, or queue it for the writer thread (waiting while it is full)."""
        items = len(spans) + len(scores)
        with self._changed:
            if self._limit is not None and not self._stop:
                # A batch larger than the whole buffer still goes in alone.
                while (
                    self._queued_items
                    and self._queued_items + items > self._limit
                    and not self._stop
                    and self.write_failure is None
                ):
                    self._changed.wait(0.1)
            self._exported += 1
            self._queue.append((self._exported, spans, scores))
            self._queued_items += items
            background = self._limit is not None and not self._stop
            if background and self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="autoops-store-writer", daemon=True
                )
                self._writer.start()
            self._changed.notify_all()
        if not background:
            self._write_queued()

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._stop:
                    self._changed.wait(0.5)
                if not self._queue:
                    return
            try:
                self._write_queued()
            except BaseException as exc:  # never silently: exports would wait on a dead writer
                failure = LocalFileError(f"the store writer stopped: {type(exc).__name__}: {exc}")
                logger.exception("%s", failure)
                with self._changed:
                    if self.write_failure is None:
                        self.write_failure = failure
                    self._changed.notify_all()
                raise

    def _write_queued(self) -> None:
        """Write what is queued (up to GROUP_MAX_ITEMS) in one transaction."""
        with self._writing:
            with self._changed:
                group: list[tuple[int, list[SpanRecord], list[ScoreRecord]]] = []
                items = 0
                while self._queue and (not group or items < GROUP_MAX_ITEMS):
                    batch = self._queue.popleft()
                    group.append(batch)
                    items += len(batch[1]) + len(batch[2])
            if group:
                self._write_group(group, items)

    def _write_group(
        self, group: list[tuple[int, list[SpanRecord], list[ScoreRecord]]], items: int
    ) -> None:
        spans = [span for _, batch_spans, _ in group for span in batch_spans]
        scores = [score for _, _, batch_scores in group for score in batch_scores]
        failure = self.write_failure
        if failure is None:
            try:
                self.store.write(spans, scores)
            except LocalFileError as exc:
                failure = exc
                logger.error("%s; tracing keeps nothing more of this run", exc)
        # After a failure nothing more is written: the store holds exactly what the
        # watermark says (a later write could succeed past a lost batch).
        with self._changed:
            if failure is not None:
                if self.write_failure is None:
                    self.write_failure = failure
                self.stats.batches_failed += len(group)
                self.stats.spans_failed += len(spans)
                self.stats.scores_failed += len(scores)
                self.stats.last_error = str(failure)
            else:
                self.stats.spans_exported += len(spans)
                self.stats.scores_exported += len(scores)
                self._committed = max(self._committed, group[-1][0])
            self._queued_items -= items
            self._changed.notify_all()

    def exported_batches(self) -> int:
        """Batches taken."""
        return self._exported

    def committed_batches(self) -> int:
        """Batches written, with every earlier one."""
        return self._committed

    def wait_committed(self, ticket: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s until ``ticket`` is written; False on a write failure."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._committed < ticket and self.write_failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
            return self._committed >= ticket

    def flush(self, timeout: float) -> bool:
        """Wait until every batch taken is written, while the writer makes progress
        (``timeout`` s without a write ends the wait). False on a write failure."""
        with self._changed:
            target = self._exported
            last = self._committed
            last_change = time.monotonic()
            while self._committed < target and self.write_failure is None:
                now = time.monotonic()
                if self._committed != last:
                    last, last_change = self._committed, now
                elif now - last_change >= timeout:
                    return False
                self._changed.wait(0.05)
            return self.write_failure is None

    def shutdown(self, timeout: float) -> None:
        """Write what is queued, stop the writer, close the store."""
        self.flush(timeout)
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=max(timeout, 1.0))
        # What a stuck or dead writer left: written here, or it would die with the thread.
        while True:
            with self._changed:
                if not self._queue:
                    break
            self._write_queued()
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
