"""Delivery to Langfuse with nothing lost: outbox first, then a background sender.

``export()`` only queues the batch in memory; a background thread encodes it (OTLP protobuf,
gzip; scores as a JSON list), writes it to the outbox, and sends the outbox in order over one
reused HTTP connection. A batch leaves the outbox only when Langfuse answered 2xx.

- 408, 429, 5xx and transport errors are retried with exponential backoff and jitter,
  honouring ``Retry-After``; after ``max_retries`` failed attempts in a row the sender reports
  Langfuse unreachable (``on_unreachable``: in the integration, its error handler), and falls
  back: it stops trying for a cool-down (``pause_sending``) while batches keep going to the
  outbox.
- 401/403: the keys were rejected. Sending stops for this process (one log line); the
  batches stay in the outbox for after the keys are fixed.
- Any other 4xx: the batch itself is bad; it moves to the dead letters with the server's
  message instead of blocking the ones behind it.
- ``flush(timeout)`` and ``shutdown(timeout)`` wait at most ``timeout`` seconds; whatever is
  not delivered by then stays in the outbox for the next run or ``autoops buffer flush``.
"""

from __future__ import annotations

import gzip
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.delivery.outbox import SCORES, SPANS, Outbox, OutboxEntry
from config.errors import NetworkError
from config.http_answers import retry_after_seconds, server_message
from config.tracing.span_records import ScoreRecord, SpanRecord

if TYPE_CHECKING:
    import httpx

    from config.settings import LangfuseConfig

logger = logging.getLogger("autoops.delivery")

OTLP_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FALLBACK_COOLDOWN_S = 30.0
BASE_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0


@dataclass
class DeliveryStats:
    """What the sender delivered, and the state it is in."""

    spans_exported: int = 0
    scores_exported: int = 0
    batches_delivered: int = 0
    attempts_failed: int = 0
    dead_letters: int = 0
    state: str = "ok"  # ok | retrying | fallback | credentials_rejected
    last_error: str | None = None
    rejected_scores: list[str] = field(default_factory=list)

    @property
    def spans_failed(self) -> int:
        """Kept for the replay summary: nothing is dropped, so nothing failed for good."""
        return 0

    @property
    def scores_failed(self) -> int:
        """Scores the server rejected one by one (207)."""
        return len(self.rejected_scores)


class SendOutcome:
    """What one POST came to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    REJECTED_KEYS = "rejected_keys"


class OutboxExporter:
    """The langfuse-mode exporter: outbox on disk, background sender, bounded waits."""

    def __init__(
        self,
        config: LangfuseConfig,
        outbox: Outbox,
        *,
        resource: dict[str, Any],
        on_unreachable: Callable[[Exception], None] | None = None,
    ) -> None:
        import httpx

        from config.delivery.exporters import langfuse_headers, sdk_version

        self._config = config
        self._outbox = outbox
        self._host = config.host
        self._resource = resource
        self._scope_version = sdk_version()
        self._client = httpx.Client(
            base_url=config.host,
            headers=langfuse_headers(config, self._scope_version),
            timeout=config.timeout,
        )
        self._queue: queue.Queue[tuple[list[SpanRecord], list[ScoreRecord]]] = queue.Queue()
        self._changed = threading.Condition()
        self._stop = False
        self._urgent = False  # a flush is waiting: skip the fallback cool-down
        self._failures_in_a_row = 0
        self._next_attempt = 0.0
        self._unsaved = 0  # batches taken by export() and not yet written to the outbox
        self.stats = DeliveryStats()
        # Who hears "unreachable after max_retries": the integration's error handler, which
        # puts the service in fallback mode (through pause_sending); used alone, as by
        # `autoops buffer flush`, the sender logs it and falls back by itself.
        self._on_unreachable = on_unreachable or self._fall_back
        self._worker = threading.Thread(target=self._run, name="autoops-delivery", daemon=True)
        self._worker.start()

    # --- the exporter protocol ----------------------------------------------------------

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Queue a batch (never blocks on disk or network)."""
        with self._changed:
            self._unsaved += 1
            self._queue.put((spans, scores))
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until everything queued is delivered; True when it was."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._urgent = True
            self._changed.notify_all()
            try:
                while not self._settled():
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._changed.wait(min(remaining, 0.1))
            finally:
                self._urgent = False
        return self._unsaved == 0 and self._outbox.count(self._host) == 0

    def shutdown(self, timeout: float) -> None:
        """Flush for at most ``timeout`` s, then stop; the rest stays in the outbox."""
        self.flush(timeout)
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        # Short: a request stuck on a slow server must not hold up the exit; its batch is
        # still in the outbox (rows go only after a 2xx) and the daemon thread ends with us.
        self._worker.join(timeout=0.2)
        # Batches queued behind that stuck request were never written to the outbox: write
        # them here, or they would die with the daemon thread (the outbox is thread-safe).
        try:
            self._store_queued()
        except Exception as exc:
            logger.warning("could not keep %d batch(es) in the outbox: %s", self._unsaved, exc)
        self._client.close()

    def pending(self) -> int:
        """Batches not delivered yet (queued in memory or in the outbox)."""
        return self._unsaved + self._outbox.count(self._host)

    def pause_sending(self, seconds: float = FALLBACK_COOLDOWN_S) -> None:
        """Fallback mode: stop sending for ``seconds``; batches keep going to the outbox.

        A flush still tries at once, and the first delivery ends fallback mode.
        """
        with self._changed:
            self.stats.state = "fallback"
            self._next_attempt = time.monotonic() + seconds
            self._changed.notify_all()

    def _fall_back(self, error: Exception) -> None:
        logger.warning("%s", error)
        self.pause_sending()

    def _settled(self) -> bool:
        """Nothing more will happen without a change: delivered, or sending has stopped."""
        if self._unsaved:  # taken by export() but not in the outbox yet
            return False
        if self.stats.state == "credentials_rejected":
            return True
        return self._outbox.count(self._host) == 0

    # --- the background thread ----------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                self._store_queued()
                if self._may_send():
                    self._send_pending()
            except Exception as exc:  # the sender must survive anything (a full disk, a bug)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning(
                    "delivery error (batches stay in the outbox): %s", self.stats.last_error
                )
                self._next_attempt = time.monotonic() + 1.0
            with self._changed:
                self._changed.notify_all()
                if self._stop:
                    return
                if not self._unsaved:
                    wait = (
                        max(0.0, self._next_attempt - time.monotonic())
                        if self._outbox_waiting()
                        else 0.5
                    )
                    self._changed.wait(min(max(wait, 0.01), 0.5))

    def _may_send(self) -> bool:
        """Sending is due: the backoff or cool-down is over, or a flush skips the cool-down.

        A flush does not skip a retry backoff: that would hammer a failing server.
        """
        if self.stats.state == "credentials_rejected":
            return False
        if self._urgent and self.stats.state == "fallback":
            return True
        return time.monotonic() >= self._next_attempt

    def _outbox_waiting(self) -> bool:
        return self.stats.state != "credentials_rejected" and self._outbox.count(self._host) > 0

    def _store_queued(self) -> None:
        while True:
            try:
                spans, scores = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                self._store(spans, scores)
            finally:
                with self._changed:
                    self._unsaved -= 1

    def _store(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Encode one batch into request bodies and keep them in the outbox."""
        from config.delivery.otlp import encode_spans

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
            self._outbox.add(SPANS, self._host, body, len(spans))
        if scores:
            # A list, as the SDK 5 sends scores: one request per batch.
            body = json.dumps([score.as_request() for score in scores]).encode()
            self._outbox.add(SCORES, self._host, body, len(scores))

    def _send_pending(self) -> None:
        while not self._stop:
            entries = self._outbox.pending(self._host)
            if not entries:
                return
            for entry in entries:
                outcome = self._send(entry)
                if outcome in (SendOutcome.RETRY, SendOutcome.REJECTED_KEYS):
                    return  # keep the order: nothing behind this batch goes first
                if self._stop:
                    return

    def _send(self, entry: OutboxEntry) -> str:
        import httpx

        if entry.kind == SPANS:
            path = OTLP_PATH
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        else:
            path, headers = SCORES_PATH, {"Content-Type": "application/json"}
        try:
            response = self._client.post(path, content=entry.body, headers=headers)
        except httpx.HTTPError as exc:
            return self._retry(entry, f"{type(exc).__name__}: {exc}", None)
        status = response.status_code
        if response.is_success:
            self._delivered(entry, response)
            return SendOutcome.DELIVERED
        message = server_message(response, limit=500)
        if status in (401, 403):
            self.stats.state = "credentials_rejected"
            self.stats.last_error = f"HTTP {status}: {message}"
            logger.error(
                "Langfuse rejected the keys (HTTP %d: %s); batches stay in the outbox",
                status,
                message,
            )
            return SendOutcome.REJECTED_KEYS
        if status in RETRYABLE_STATUS:
            return self._retry(
                entry, f"HTTP {status} from {path}: {message}", retry_after_seconds(response)
            )
        self._outbox.dead_letter(entry.seq, status, message)
        self.stats.dead_letters += 1
        self.stats.last_error = f"HTTP {status}: {message}"
        logger.error(
            "Langfuse refused a batch (HTTP %d: %s); it is kept as a dead letter", status, message
        )
        return SendOutcome.DEAD

    def _delivered(self, entry: OutboxEntry, response: httpx.Response) -> None:
        self._outbox.delivered(entry.seq)
        self._failures_in_a_row = 0
        self.stats.state = "ok"
        self.stats.batches_delivered += 1
        if entry.kind == SPANS:
            self.stats.spans_exported += entry.items
            return
        rejected = _rejected_scores(response)
        self.stats.scores_exported += entry.items - len(rejected)
        self.stats.rejected_scores.extend(rejected)

    def _retry(self, entry: OutboxEntry, error: str, retry_after: float | None) -> str:
        self._outbox.failed_attempt(entry.seq, error)
        self.stats.attempts_failed += 1
        self.stats.last_error = error
        self._failures_in_a_row += 1
        in_fallback = self.stats.state == "fallback"
        self.stats.state = "retrying"
        backoff = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** min(self._failures_in_a_row - 1, 8))
        delay = retry_after if retry_after is not None else backoff + random.uniform(0, backoff / 2)
        self._next_attempt = time.monotonic() + delay
        if self._failures_in_a_row > self._config.max_retries and not self._urgent:
            if in_fallback:
                self.pause_sending()  # still unreachable after a cool-down: reported already
            else:
                self._report_unreachable(error)
        return SendOutcome.RETRY

    def _report_unreachable(self, error: str) -> None:
        unreachable = NetworkError(
            f"Langfuse unreachable after {self._failures_in_a_row} attempts ({error}); "
            f"recording to the outbox, retrying in {FALLBACK_COOLDOWN_S:.0f} s"
        )
        try:
            self._on_unreachable(unreachable)
        except Exception as exc:  # a failing listener must not leave the sender retrying flat out
            logger.warning("%s (reporting it failed: %s: %s)", unreachable, type(exc).__name__, exc)
            self.pause_sending()


def _rejected_scores(response: httpx.Response) -> list[str]:
    if response.status_code != 207:
        return []
    try:
        errors = response.json().get("errors", [])
        return [str(error.get("message")) for error in errors]
    except (ValueError, AttributeError, TypeError):
        return []
