"""Delivery to Langfuse with nothing lost: durable first, streamed while running, honest at exit.

Three stages, each bounded, each waiting for the next only while that one makes progress:

- ``export()`` (the agents' thread) queues a finished batch in memory. The queue holds at
  most ``LANGFUSE_BUFFER_SIZE`` spans and scores; when it is full the caller waits for the
  writer (backpressure) instead of memory growing.
- The writer thread encodes queued batches (OTLP protobuf, gzip; scores as a JSON list) and
  appends them to the outbox file, several per transaction (a group commit). Each ``export``
  has a ticket (its number); ``committed_batches()`` is the highest ticket whose batch and
  every earlier one are on disk. The replay counts an event as processed only once its
  ticket is committed, so a kill loses nothing that was reported.
- The sender thread posts the outbox oldest first over one reused connection, rows of one
  kind merged into requests of up to ``REQUEST_MAX_ITEMS``, and deletes a row only when
  Langfuse acknowledged it: a 2xx whose body is what Langfuse answers for that route (JSON;
  for OTLP also protobuf). While Langfuse keeps accepting batches, the outbox
  for this host holds at most ``LANGFUSE_BUFFER_SIZE`` spans and scores waiting to be sent
  (besides the request in flight), beyond which the writer waits, so the agents slow to
  Langfuse's pace; when Langfuse makes no progress
  for ``AUTOOPS_FLUSH_DEADLINE`` seconds (down, refusing, hanging) the outbox takes
  everything instead.

What an answer does:

- 408, 429, 5xx and transport errors are retried with exponential backoff and jitter,
  honouring ``Retry-After``; after ``max_retries`` failed attempts in a row the sender reports
  Langfuse unreachable (``on_unreachable``: in the integration, its error handler), and falls
  back: it stops trying for a cool-down (``pause_sending``) while batches keep going to the
  outbox.
- 401/403: the keys were rejected. Sending stops for this process (one log line); the
  batches stay in the outbox for after the keys are fixed.
- A 2xx that is not Langfuse's answer (an HTML login page, an empty body where JSON is due),
  a redirect, or a 404/405 or other error without a JSON body: the host is not Langfuse's
  API (a proxy, a captive portal, a wrong URL). Sending stops, every batch stays.
- Any other 4xx: the batch itself is bad; it moves to the dead letters with the server's
  message instead of blocking the ones behind it.

``flush(timeout)`` waits while progress is made (batches written or delivered) and gives up
after ``timeout`` seconds without any; whatever is not delivered stays in the outbox for the
next run or ``autoops buffer flush``. Several processes may share one outbox file (SQLite WAL,
busy timeout); a batch sent twice is stored once (Langfuse and ``autoops serve`` are
idempotent on span and score ids). ``replay --workers`` has one sender for the run: its
workers' exporters only write (``sending=False``), and their stream bound is the file's
backlog, which the parent's sender drains.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.delivery.outbox import SCORES, SPANS, NewBatch, Outbox, OutboxEntry
from config.errors import LocalFileError, NetworkError
from config.http_answers import (
    SHORT_ANSWER_BYTES,
    AnswerTooLarge,
    request_bounded,
    retry_after_seconds,
    server_message,
)
from config.redaction import core_logger, redact_secrets
from config.tracing.span_records import ScoreRecord, SpanRecord

if TYPE_CHECKING:
    import httpx

    from config.delivery.otlp import AttributeEncoder
    from config.settings import LangfuseConfig

logger = core_logger("autoops.delivery")

OTLP_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
# Any server error is retried (a 507, a CDN's 522 page: the batches are not at fault).
RETRYABLE_STATUS = frozenset({408, 429, *range(500, 600)})
FALLBACK_COOLDOWN_S = 30.0
BASE_BACKOFF_S = 0.2
MAX_BACKOFF_S = 10.0
# A Retry-After asking for longer (a year, 1e400, a date far ahead) is waited this long: a
# peer's bad header stopped delivery for the life of the process.
MAX_RETRY_AFTER_S = 60.0
ROW_MAX_ITEMS = 1000  # spans per outbox row
# gzip level 1: half the CPU of level 5 for bodies about a quarter larger (113 against 88
# bytes a span); the CPU is the scarce part, shared with the agents and, on one machine,
# with the server.
GZIP_LEVEL = 1
GROUP_MAX_ITEMS = 4000  # spans and scores written in one transaction
SEND_AHEAD = 32  # rows read from the outbox per pass
# Rows of one kind are merged into one request up to this many spans or scores: when the
# outbox holds a backlog, a server far away gets a few large requests, not many small ones.
REQUEST_MAX_ITEMS = 4000

# Sender states (DeliveryStats.state).
OK = "ok"
RETRYING = "retrying"
FALLBACK = "fallback"
CREDENTIALS_REJECTED = "credentials_rejected"
HOST_MISCONFIGURED = "host_misconfigured"
STOPPED_STATES = frozenset({CREDENTIALS_REJECTED, HOST_MISCONFIGURED})


@dataclass
class DeliveryStats:
    """What the sender delivered, and the state it is in."""

    spans_exported: int = 0
    scores_exported: int = 0
    batches_delivered: int = 0
    attempts_failed: int = 0
    dead_letters: int = 0
    state: str = OK  # ok | retrying | fallback | credentials_rejected | host_misconfigured
    last_error: str | None = None
    rejected_scores: list[str] = field(default_factory=list)
    # Refused by a 2xx that took the rest (OTLP partial success); kept as dead letters.
    spans_refused: int = 0
    # Recorded but never written: the outbox file failed (a full disk). Counted, never hidden.
    spans_lost: int = 0
    scores_lost: int = 0
    # Wall-clock time (epoch seconds) of the first failed attempt of the current streak.
    unreachable_since: float | None = None

    @property
    def spans_failed(self) -> int:
        """Spans refused by an OTLP partial success (kept as dead letters), and those the
        outbox file could not take: as ``scores_failed`` counts scores."""
        return self.spans_refused + self.spans_lost

    @property
    def scores_failed(self) -> int:
        """Scores a 207 refused (kept as dead letters), and those the outbox could not take."""
        return len(self.rejected_scores) + self.scores_lost


@dataclass(frozen=True)
class DeliveryProgress:
    """Where delivery stands, for a progress line: batches delivered and still waiting."""

    host: str
    # Batches delivered since the exporter started: it never goes down (the final flush's
    # progress lines went back to 0 and counted only its own).
    delivered: int
    waiting: int  # batches in the outbox for this host, and batches not written yet
    state: str
    unreachable_since: float | None
    last_error: str | None


class SendOutcome:
    """What one POST came to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"
    REJECTED_KEYS = "rejected_keys"
    MISCONFIGURED = "misconfigured"
    SPLIT = "split"  # a merged request was refused as bad: its rows go one by one


class OutboxExporter:
    """The langfuse-mode exporter: bounded queue, outbox on disk, streaming sender."""

    reports_progress = True  # flush() takes on_progress (LangfuseClient passes it on)

    def __init__(
        self,
        config: LangfuseConfig,
        outbox: Outbox,
        *,
        resource: dict[str, Any],
        on_unreachable: Callable[[Exception], None] | None = None,
        sending: bool = True,
    ) -> None:
        import httpx

        from config.delivery.exporters import langfuse_headers, sdk_version

        self._config = config
        self._outbox = outbox
        self._host = config.host
        # Batches kept under another spelling of the host are this sender's (in a file that
        # cannot be written they wait there, named).
        with contextlib.suppress(LocalFileError):
            outbox.adopt_spellings(config.host)
        # The rows this sender answers for: the backlog when it started and the rows it
        # adds. Another process sharing the file (a shard, a second replay) may add rows
        # while this one flushes: they are that process's to deliver and to report, and
        # counting them here made a run that delivered everything exit 4.
        # The rows of this project (keys): another project's, on the same host, wait for a
        # sender with its own keys (``Outbox.pending``).
        self._project = config.public_key
        self._answers_up_to = outbox.last_seq(config.host, self._project)
        self._resource = resource
        self._scope_version = sdk_version()
        self._client = httpx.Client(
            base_url=config.host,
            headers=langfuse_headers(config, self._scope_version),
            timeout=config.timeout,
        )
        self._limit = config.buffer_size  # spans and scores, in memory and in the stream
        self._stall_s = config.flush_deadline  # no progress for this long: stop waiting
        # Another process's sending, as this writer last saw it (``_wait_for_other_sender``):
        # the file's backlog and when it last shrank, kept from one write group to the next.
        self._other_backlog: int | None = None
        self._other_progress_at = time.monotonic()
        self._changed = threading.Condition()
        self._queue: deque[tuple[int, list[SpanRecord], list[ScoreRecord]]] = deque()
        self._queued_items = 0  # taken by export() and not written yet (being written too)
        self._exported = 0  # tickets handed out
        self._committed = 0  # every ticket up to this one is in the outbox
        self._write_failure: LocalFileError | None = None
        backlog = outbox.backlog(self._host, self._project)
        self._backlog_items = backlog.items  # in the outbox for this host (approximate)
        self._in_flight_items = 0  # of those, in the request being sent
        self._in_flight_since: float | None = None  # when that request was sent
        self._stop = False
        self._frozen = False  # after shutdown: a late answer no longer deletes its row
        # Held while a delivered row is deleted and while shutdown freezes the outbox (not the
        # condition: an agent in export() must never wait for SQLite).
        self._freeze_lock = threading.Lock()
        self._finishing = False  # the producer is done: the stream bound no longer applies
        self._interrupted = False  # a waiting flush gives up at once
        self._give_up_at: float | None = None  # a stop asked: flushes end by then (monotonic)
        self._urgent = 0  # flushes waiting: skip the fallback cool-down
        self._failures_in_a_row = 0
        self._next_attempt = 0.0
        # The sender's last sign of progress (a request started, or a delivery): the stream
        # bound holds while it is recent; a request hanging longer is no progress.
        self._activity = time.monotonic()
        self._undeletable: set[int] = set()  # delivered, but the row could not be deleted
        self._delete_failure: LocalFileError | None = None  # why (the first time)
        self._split_until = 0  # rows up to this sequence number are sent one per request
        # Spans or scores a request delivers per second (a running average): merged requests
        # are sized to take about half the stall bound, so a slow but steady server is never
        # mistaken for one that makes no progress.
        self._items_per_s: float | None = None
        self.stats = DeliveryStats()
        # Who hears "unreachable after max_retries": the integration's error handler, which
        # puts the service in fallback mode (through pause_sending); used alone, as by
        # `autoops buffer flush`, the sender logs it and falls back by itself.
        self._on_unreachable = on_unreachable or self._fall_back
        self._writer: threading.Thread | None = None
        # Without a sender (a replay worker) another process delivers what this one writes.
        self._sending = sending
        self._sender: threading.Thread | None = None
        if sending:
            self._sender = threading.Thread(
                target=self._send_loop, name="autoops-sender", daemon=True
            )
            self._sender.start()

    @property
    def host(self) -> str:
        """Where the batches go."""
        return self._host

    # --- the exporter protocol ----------------------------------------------------------

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Queue a batch for the writer; waits while the queue is full (backpressure)."""
        items = len(spans) + len(scores)
        with self._changed:
            # A batch larger than the whole buffer still goes in alone, never waits forever.
            while (
                self._queued_items
                and self._queued_items + items > self._limit
                and not self._stop
                and self._write_failure is None
            ):
                self._changed.wait(0.1)
            self._exported += 1
            ticket = self._exported
            if self._stop:  # after shutdown: no writer any more, write it here
                self._queued_items += items
                batch = [(ticket, spans, scores)]
            else:
                self._queue.append((ticket, spans, scores))
                self._queued_items += items
                batch = []
                if self._writer is None:
                    self._writer = threading.Thread(
                        target=self._write_loop, name="autoops-writer", daemon=True
                    )
                    self._writer.start()
                self._changed.notify_all()
        if batch:
            self._write_group(batch, self._new_encoder())

    def exported_batches(self) -> int:
        """Tickets handed out: the number of batches ``export`` took."""
        return self._exported

    def committed_batches(self) -> int:
        """The highest ticket whose batch, and every earlier one, is in the outbox."""
        return self._committed

    @property
    def write_failure(self) -> LocalFileError | None:
        """The first failure to write the outbox file, if any (its batch was not kept)."""
        return self._write_failure

    @property
    def request_in_flight(self) -> bool:
        """Whether a request is waiting for its answer now."""
        return self._in_flight_items > 0

    @property
    def undeletable(self) -> tuple[int, LocalFileError | None]:
        """Batches delivered whose rows could not be removed from the outbox (a full disk),
        and the first failure to remove one; a later flush may send them again."""
        return len(self._undeletable), self._delete_failure

    def wait_committed(self, ticket: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s until ``ticket`` is in the outbox; False on a write failure."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._committed < ticket and self._write_failure is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.1))
            return self._committed >= ticket

    def finishing(self) -> None:
        """The producer is done (a stop was asked): write everything without waiting on the stream.

        Safe from a signal handler: it only sets a flag the waits look at.
        """
        self._finishing = True

    def rows_up_to(self) -> int:
        """The newest outbox row this sender answers for (see ``answer_up_to``)."""
        return self._answers_up_to

    def answer_up_to(self, seq: int) -> None:
        """The rows up to ``seq`` are this sender's to deliver and report too: what a
        replay's workers wrote (they only write the outbox; their parent sends)."""
        self._answers_up_to = max(self._answers_up_to, seq)

    def limit_flush(self, seconds: float) -> None:
        """From now on a flush gives up after ``seconds`` at the latest, progress or not.

        For a stop (SIGTERM): the process should end soon. Signal-safe (sets a value).
        """
        if self._give_up_at is None:
            self._give_up_at = time.monotonic() + seconds

    def interrupt(self) -> None:
        """A waiting ``flush`` gives up now; the rest stays in the outbox (signal-safe)."""
        self._finishing = True
        self._interrupted = True

    def flush(
        self, timeout: float, on_progress: Callable[[DeliveryProgress], None] | None = None
    ) -> bool:
        """Deliver everything taken so far; wait while progress is made.

        Gives up after ``timeout`` seconds in which no batch was written or delivered (and at
        once when sending has stopped: keys rejected, host misconfigured; or when
        interrupted). True when everything was delivered. ``on_progress`` hears the state
        about ten times a second, from this thread. Without a sender it waits only until
        everything is written (True unless the file failed).
        """
        with self._changed:
            target = self._exported
            self._urgent += 1
            self._changed.notify_all()
        last_marker: tuple[int, ...] = (-1, -1, -1, -1)
        last_change = time.monotonic()
        try:
            while True:
                with self._changed:
                    written = self._committed >= target or self._write_failure is not None
                    marker: tuple[int, ...] = (
                        self._committed,
                        self.stats.batches_delivered,
                        self.stats.dead_letters,
                    )
                    state = self.stats.state
                    unsaved = len(self._queue)
                # Rows delivered but not removable are not waiting for anything.
                undeletable = len(self._undeletable)
                waiting = (
                    max(
                        0,
                        self._outbox.count(self._host, self._answers_up_to, self._project)
                        - undeletable,
                    )
                    + unsaved
                )
                if on_progress is not None:
                    on_progress(self._progress(waiting))
                if written and (waiting == 0 or not self._sending):
                    return self._write_failure is None
                if written and state in STOPPED_STATES:
                    return False
                now = time.monotonic()
                # Fewer rows waiting is progress too: another process sharing the outbox may
                # be the one delivering them (this one then removes none).
                marker = (*marker, waiting)
                if marker != last_marker:
                    last_marker, last_change = marker, now
                if (
                    now - last_change >= timeout
                    or self._interrupted
                    or (self._give_up_at is not None and now >= self._give_up_at)
                ):
                    self._note_unanswered(now)
                    return False
                with self._changed:
                    self._changed.wait(min(0.1, max(0.01, timeout - (now - last_change))))
        finally:
            with self._changed:
                self._urgent -= 1

    def _note_unanswered(self, now: float) -> None:
        """A flush that gives up while a request still waits for its answer: the last error
        says so (a host that takes connections and never answers has failed nothing yet)."""
        with self._changed:
            since = self._in_flight_since
            if self._in_flight_items and since is not None and self.stats.last_error is None:
                self.stats.last_error = f"no answer from {self._host} after {now - since:.1f} s"

    def freeze(self) -> None:
        """From now on this sender changes the outbox and its counts no more: an answer that
        comes after (a delivery, a refusal) leaves its row where it is, to be sent again
        (stored once). A replay freezes it before it counts what was delivered, refused and
        left waiting: a refusal landing in between was in none of its counts."""
        with self._freeze_lock, self._changed:
            self._frozen = True
            self._changed.notify_all()

    def shutdown(self, timeout: float) -> None:
        """Flush while progress is made (``timeout`` s without any ends it), then stop.

        Afterwards this sender changes the outbox no more: a request still in flight cannot
        delete its row, so ``pending()`` is exactly what it left (what ``autoops buffer
        status`` shows, unless another process sharing the file adds rows of its own).
        """
        self._finishing = True
        if timeout > 0:
            self.flush(timeout)
        self.freeze()
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        if self._writer is not None:
            self._writer.join(timeout=max(timeout, 1.0))
        # Short: a request stuck on a slow server must not hold up the exit; its batch is
        # still in the outbox (rows go only after an acknowledgement) and the daemon thread
        # ends with us.
        if self._sender is not None:
            self._sender.join(timeout=0.2)
        # Batches the writer did not get to (it failed, or is stuck): write them here, or they
        # would die with the daemon thread.
        with self._changed:
            rest = list(self._queue)
            self._queue.clear()
        if rest:
            self._write_group(rest, self._new_encoder())
        self._client.close()

    def pending(self) -> int:
        """Batches not delivered yet: in the outbox for this host (the backlog this sender
        started with, and its own), or not written yet."""
        return len(self._queue) + self._outbox.count(self._host, self._answers_up_to, self._project)

    def delivery_progress(self) -> DeliveryProgress:
        """Where delivery stands (counts the outbox: not for every trace)."""
        return self._progress(self.pending())

    def _progress(self, waiting: int) -> DeliveryProgress:
        stats = self.stats
        return DeliveryProgress(
            host=self._host,
            delivered=stats.batches_delivered,
            waiting=waiting,
            state=stats.state,
            unreachable_since=stats.unreachable_since,
            last_error=stats.last_error,
        )

    def pause_sending(self, seconds: float = FALLBACK_COOLDOWN_S) -> None:
        """Fallback mode: stop sending for ``seconds``; batches keep going to the outbox.

        A flush still tries at once, and the first delivery ends fallback mode.
        """
        with self._changed:
            if self.stats.state not in STOPPED_STATES:
                self.stats.state = FALLBACK
            self._next_attempt = time.monotonic() + seconds
            self._changed.notify_all()

    def _fall_back(self, error: Exception) -> None:
        logger.warning("%s", error)
        self.pause_sending()

    # --- the writer thread --------------------------------------------------------------

    def _new_encoder(self) -> AttributeEncoder:
        from config.delivery.otlp import AttributeEncoder

        return AttributeEncoder()

    def _write_loop(self) -> None:
        try:
            self._write_batches()
        except BaseException as exc:  # never silently: every export would wait on a dead writer
            failure = LocalFileError(f"the outbox writer stopped: {type(exc).__name__}: {exc}")
            logger.exception("%s", failure)
            with self._changed:
                if self._write_failure is None:
                    self._write_failure = failure
                self._changed.notify_all()
            raise

    def _write_batches(self) -> None:
        encoder = self._new_encoder()  # this thread's own: it caches repeated attributes
        while True:
            with self._changed:
                while not self._queue and not self._stop:
                    self._changed.wait(0.5)
                if not self._queue:
                    return
            self._wait_for_stream()
            with self._changed:
                group = []
                items = 0
                while self._queue and items < GROUP_MAX_ITEMS:
                    ticket, spans, scores = self._queue.popleft()
                    group.append((ticket, spans, scores))
                    items += len(spans) + len(scores)
            if group:
                self._write_group(group, encoder)

    def _stream_full(self) -> bool:
        """The outbox holds more than the buffer while the sender is making progress."""
        waiting = self._backlog_items - self._in_flight_items  # the request in flight aside
        if self._finishing or self._stop or self._urgent or waiting <= self._limit:
            return False
        if self.stats.state != OK:  # retrying, in fallback, or stopped: no progress to wait for
            return False
        return time.monotonic() - self._activity < self._stall_s

    def _wait_for_stream(self) -> None:
        """Backpressure from the sender: wait while it delivers and the outbox is over the bound."""
        if not self._sending:
            self._wait_for_other_sender()
            return
        with self._changed:
            if not self._stream_full():
                return
        # Confirm with the file (another process may have sent rows of ours).
        try:
            items = self._outbox.backlog(self._host, self._project).items
        except LocalFileError:
            return
        with self._changed:
            self._backlog_items = items
            while self._stream_full():
                self._changed.wait(0.05)

    def _wait_for_other_sender(self) -> None:
        """The stream bound when another process sends: wait while the file's backlog is over
        the bound and shrinking (that sender makes progress); not once it has not shrunk for
        the flush deadline, nor once the producer is done.

        The stall is remembered from one write group to the next: a sender that Langfuse
        refuses, or cannot reach, must cost the writers one deadline, not one per group
        (replay workers against a failing server ran ten times slower than one process).
        Once the backlog shrinks again, waiting resumes."""
        while not (self._finishing or self._stop):
            try:
                items = self._outbox.backlog(self._host, self._project).items
            except LocalFileError:
                return
            now = time.monotonic()
            if items <= self._limit:
                self._other_backlog = None  # keeping up: a later wait starts afresh
                return
            if self._other_backlog is None or items < self._other_backlog:
                self._other_progress_at = now
            self._other_backlog = items
            if now - self._other_progress_at >= self._stall_s:
                return
            with self._changed:
                self._changed.wait(0.05)

    def _write_group(
        self,
        group: list[tuple[int, list[SpanRecord], list[ScoreRecord]]],
        encoder: AttributeEncoder,
    ) -> None:
        """Encode a group of batches and append it to the outbox in one transaction."""
        spans = [span for _, batch_spans, _ in group for span in batch_spans]
        scores = [score for _, _, batch_scores in group for score in batch_scores]
        items = len(spans) + len(scores)
        if self._write_failure is not None:
            # After a failure nothing more is written, so what the file holds is exactly
            # what the watermark says (a later write could succeed past a lost batch).
            with self._changed:
                self.stats.spans_lost += len(spans)
                self.stats.scores_lost += len(scores)
                self._queued_items -= items
                self._changed.notify_all()
            return
        try:
            rows = self._encode(spans, scores, encoder)
            added = self._outbox.add_many(rows)
            if added:
                self._answers_up_to = max(self._answers_up_to, added[-1])
        except LocalFileError as exc:
            with self._changed:
                if self._write_failure is None:
                    self._write_failure = exc
                    logger.error("%s; tracing keeps nothing more of this run", exc)
                self.stats.spans_lost += len(spans)
                self.stats.scores_lost += len(scores)
                self._queued_items -= items
                self._changed.notify_all()
            return
        except Exception as exc:  # a bug in encoding: count the loss loudly, keep the thread
            logger.exception("could not encode a batch (%s); it is lost", exc)
            with self._changed:
                self.stats.spans_lost += len(spans)
                self.stats.scores_lost += len(scores)
                self._queued_items -= items
                if self._write_failure is None:
                    self._write_failure = LocalFileError(f"could not encode a batch: {exc}")
                self._changed.notify_all()
            return
        with self._changed:
            if self._write_failure is None:  # after a failure the watermark never moves
                self._committed = max(self._committed, group[-1][0])
            self._queued_items -= items
            self._backlog_items += items
            self._changed.notify_all()

    def _encode(
        self, spans: list[SpanRecord], scores: list[ScoreRecord], encoder: AttributeEncoder
    ) -> list[NewBatch]:
        """The request bodies of a group: spans in rows of ROW_MAX_ITEMS, then the scores."""
        from config.delivery.otlp import encode_spans

        rows = []
        for start in range(0, len(spans), ROW_MAX_ITEMS):
            part = spans[start : start + ROW_MAX_ITEMS]
            body = gzip.compress(
                encode_spans(
                    part,
                    resource=self._resource,
                    scope_version=self._scope_version,
                    scope_attributes={"public_key": self._config.public_key},
                    encoder=encoder,
                ),
                compresslevel=GZIP_LEVEL,
            )
            rows.append(NewBatch(SPANS, self._host, body, len(part), self._project))
        if scores:
            # A list, as the SDK 5 sends scores: one request per group.
            body = json.dumps([score.as_request() for score in scores]).encode()
            rows.append(NewBatch(SCORES, self._host, body, len(scores), self._project))
        return rows

    # --- the sender thread --------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._changed:
                if self._stop or self._frozen:  # frozen: nothing it sends could count
                    return
                if not self._may_send():
                    self._changed.wait(self._wait_s())
                    continue
            try:
                entries = self._outbox.pending(
                    self._host, SEND_AHEAD + len(self._undeletable), public_key=self._project
                )
            except LocalFileError as exc:
                self._note_local_error(exc)
                continue
            entries = [e for e in entries if e.seq not in self._undeletable][:SEND_AHEAD]
            if not entries:
                with self._changed:
                    if self._stop or self._frozen:
                        return
                    # Woken by the writer's next commit; the poll finds rows of other processes.
                    self._changed.wait(0.25)
                continue
            request = self._next_request(entries)
            try:
                self._send(request)
            except Exception as exc:
                # An answer nothing here foresaw: the rows stay and are tried again later; a
                # dead sender thread left them unsent and the run's counts untrue.
                error = f"unexpected answer handling ({type(exc).__name__}: {exc})"
                logger.error("sending failed: %s; the batches stay in the outbox", error)
                self._retry(request, error, None)

    def _next_request(self, entries: list[OutboxEntry]) -> list[OutboxEntry]:
        """The rows the next request carries: the oldest row and the rows of its kind after
        it, up to REQUEST_MAX_ITEMS (one row alone while a refused request is being split)."""
        first = entries[0]
        if first.seq <= self._split_until:
            return [first]
        if self._items_per_s is None:
            return [first]  # the server's pace is not known yet: one row
        most = max(1, min(REQUEST_MAX_ITEMS, int(self._items_per_s * self._stall_s / 2)))
        chosen, items = [first], first.items
        for entry in entries[1:]:
            if entry.kind != first.kind:
                continue  # spans and scores go to different routes; their order is free
            if items + entry.items > most:
                break
            chosen.append(entry)
            items += entry.items
        return chosen

    def _wait_s(self) -> float:
        if self.stats.state in STOPPED_STATES:
            return 0.5
        return min(max(self._next_attempt - time.monotonic(), 0.01), 0.5)

    def _may_send(self) -> bool:
        """Sending is due: the backoff or cool-down is over, or a flush skips the cool-down.

        A flush does not skip a retry backoff: that would hammer a failing server.
        """
        if self.stats.state in STOPPED_STATES:
            return False
        if self._urgent and self.stats.state == FALLBACK:
            return True
        return time.monotonic() >= self._next_attempt

    def _note_local_error(self, exc: LocalFileError) -> None:
        self.stats.last_error = str(exc)
        logger.warning("%s (the batches stay in the outbox)", exc)
        with self._changed:
            self._next_attempt = time.monotonic() + 1.0
            self._changed.wait(1.0)

    def _send(self, entries: list[OutboxEntry]) -> str:
        """POST the rows as one request (rows of one kind merged) and act on the answer."""
        import httpx

        kind = entries[0].kind
        if kind == SPANS:
            path = OTLP_PATH
            headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
        else:
            path, headers = SCORES_PATH, {"Content-Type": "application/json"}
        try:
            body = _merged_body(entries)
        except (OSError, EOFError, zlib.error):
            # A row that is no whole gzip body (a damaged file): one by one, each is sent as
            # stored and only that one is refused (a dead letter), not the rows beside it.
            self._split_until = entries[-1].seq
            return SendOutcome.SPLIT
        self._activity = self._in_flight_since = started = time.monotonic()
        self._in_flight_items = sum(entry.items for entry in entries)
        try:
            response = request_bounded(
                self._client,
                "POST",
                path,
                limit=SHORT_ANSWER_BYTES,
                content=body,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            return self._retry(entries, f"{type(exc).__name__}: {exc}", None)
        except AnswerTooLarge as exc:  # not Langfuse's answer (a proxy, a hostile peer)
            return self._retry(entries, f"{exc} from {path}", None)
        finally:
            self._in_flight_items = 0
        status = response.status_code
        content_type = response.headers.get("content-type", "")
        logger.debug(
            "POST %s: %d batch(es), %d %s, answered %d in %.0f ms",
            path, len(entries), sum(entry.items for entry in entries), kind, status,
            (time.monotonic() - started) * 1000,
        )  # fmt: skip
        if response.is_success:
            if not _acknowledged(kind, response):
                return self._misconfigured(path, status, content_type)
            items = sum(entry.items for entry in entries)
            refused = _refusal(kind, response, items)
            if refused is not None:
                return self._refused_in_part(entries, status, items, *refused)
            self._delivered(entries, response)
            rate = items / max(time.monotonic() - started, 1e-3)
            self._items_per_s = (
                rate if self._items_per_s is None else (0.7 * self._items_per_s + 0.3 * rate)
            )
            return SendOutcome.DELIVERED
        if status in (401, 403):
            message = server_message(response, limit=500)
            self.stats.state = CREDENTIALS_REJECTED
            self.stats.last_error = f"HTTP {status}: {message}"
            logger.error(
                "Langfuse rejected the keys (HTTP %d: %s); batches stay in the outbox",
                status,
                message,
            )
            return SendOutcome.REJECTED_KEYS
        if status in RETRYABLE_STATUS:
            return self._retry(
                entries,
                f"HTTP {status} from {path}: {server_message(response, limit=500)}",
                retry_after_seconds(response),
            )
        if 300 <= status < 400 or status in (404, 405) or not _is_json(response):
            return self._misconfigured(path, status, content_type)
        if len(entries) > 1:
            # One of the merged batches is bad: send them one by one to find it.
            self._split_until = entries[-1].seq
            return SendOutcome.SPLIT
        return self._dead_letters(entries, status, server_message(response, limit=500))

    def _dead_letters(
        self,
        entries: list[OutboxEntry],
        status: int,
        message: str,
        partial: tuple[int, int, str] | None = None,
    ) -> str:
        """Move the rows to the dead letters and count them, one step a freeze cannot
        split (the store and the counts agree whenever a run reads them). ``partial``:
        ``(items, refused, server message)`` of a request Langfuse took in part."""
        failure: LocalFileError | None = None
        with self._freeze_lock:
            if self._frozen:  # stopped: the rows stay as they were (refused again next time)
                return SendOutcome.RETRY
            moved: list[OutboxEntry] = []
            for entry in entries:
                try:
                    if not self._outbox.dead_letter(entry.seq, status, message):
                        continue  # delivered by another sender meanwhile: no dead letter
                except LocalFileError as exc:
                    failure = exc
                    break
                moved.append(entry)
            with self._changed:
                stats = self.stats
                stats.dead_letters += len(moved)
                self._backlog_items = max(0, self._backlog_items - sum(e.items for e in moved))
                if moved:
                    stats.last_error = f"HTTP {status}: {message}"
                if partial is not None and failure is None:
                    items, refused, said = partial
                    self._answered()
                    if entries[0].kind == SPANS:
                        stats.spans_exported += items - refused
                        stats.spans_refused += refused
                    else:
                        stats.scores_exported += items - refused
                        stats.rejected_scores.extend([said] * refused)
                self._changed.notify_all()
        if failure is not None:  # the rows not moved stay in the outbox
            self._note_local_error(failure)
            return SendOutcome.RETRY
        for _ in moved:
            logger.error(
                "Langfuse refused a batch (HTTP %d: %s); it is kept as a dead letter",
                status, message,
            )  # fmt: skip
        return SendOutcome.DEAD

    def _misconfigured(self, path: str, status: int, content_type: str) -> str:
        what = content_type.split(";", maxsplit=1)[0].strip() or "no content type"
        with self._changed:
            self.stats.state = HOST_MISCONFIGURED
            self.stats.last_error = (
                f"{self._host}{path} answered {status} {what}, not Langfuse's API answer"
            )
            self._changed.notify_all()
        logger.error("%s; sending stopped, the batches stay in the outbox", self.stats.last_error)
        return SendOutcome.MISCONFIGURED

    def _answered(self) -> None:
        """Langfuse took the request (all of it or part): it is reachable. Under the lock."""
        self._failures_in_a_row = 0
        self._next_attempt = 0.0  # an answer ends a backoff or a fallback cool-down
        self._activity = time.monotonic()
        self.stats.state = OK
        self.stats.unreachable_since = None

    def _refused_in_part(
        self, entries: list[OutboxEntry], status: int, items: int, refused: int, message: str
    ) -> str:
        """A 2xx that took part of the request: an OTLP partial success with rejected spans,
        a 207 with errors for some scores. Which items were refused is not always said, so
        every row of the request is kept as a dead letter (``buffer flush --dead-letters``
        re-sends them; the ids make the accepted ones stored once), and the refused are
        counted, not reported delivered."""
        return self._dead_letters(
            entries, status, f"{refused} of {items} refused: {message}", (items, refused, message)
        )

    def _delivered(self, entries: list[OutboxEntry], response: httpx.Response) -> None:
        with self._freeze_lock:
            if self._frozen:
                return  # shut down: the rows stay (sent again later, stored once)
            try:
                # Counted by the rows removed: another process sharing the outbox may have
                # delivered (and removed) some of them already; both counted each batch.
                removed = self._outbox.delivered_many([entry.seq for entry in entries])
            except LocalFileError as exc:
                # Delivered, but the rows cannot go (a full disk): never send them again here.
                self._undeletable.update(entry.seq for entry in entries)
                self._delete_failure = self._delete_failure or exc
                logger.warning("%s; the batches were delivered and may be sent again later", exc)
                removed = {entry.seq for entry in entries}
            items = sum(entry.items for entry in entries if entry.seq in removed)
            # Counted under the freeze lock: a run that froze the sender reads counts that
            # agree with the outbox.
            with self._changed:
                self._answered()
                self._backlog_items = max(0, self._backlog_items - items)
                stats = self.stats
                stats.batches_delivered += len(removed)
                if entries[0].kind == SPANS:
                    stats.spans_exported += items
                else:
                    stats.scores_exported += items
                self._changed.notify_all()

    def _retry(self, entries: list[OutboxEntry], error: str, retry_after: float | None) -> str:
        if self._frozen:  # an answer after the freeze: the run's counts stand as they are
            return SendOutcome.RETRY
        try:
            self._outbox.failed_attempt([entry.seq for entry in entries], error)
        except LocalFileError as exc:
            logger.debug("could not count a failed attempt: %s", exc)
        with self._changed:
            stats = self.stats
            stats.attempts_failed += 1
            stats.last_error = error
            if stats.unreachable_since is None:
                stats.unreachable_since = time.time()
            self._failures_in_a_row += 1
            in_fallback = stats.state == FALLBACK
            stats.state = RETRYING
            backoff = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** min(self._failures_in_a_row - 1, 8))
            delay = (
                min(retry_after, MAX_RETRY_AFTER_S)
                if retry_after is not None
                else backoff + random.uniform(0, backoff / 2)
            )
            self._next_attempt = time.monotonic() + delay
            self._changed.notify_all()
            report = self._failures_in_a_row > self._config.max_retries and not self._urgent
        if report:
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


def rekey_body(kind: str, body: bytes, public_key: str) -> bytes:
    """A span batch's body with ``public_key`` as the public key of its Langfuse scope.

    Batches moved to another host (``autoops buffer flush --from``) may go to another
    project: the scope names the key they were recorded with, and Langfuse keeps spans of
    its SDK's scope only for the project of that key. Score bodies carry no key.
    """
    if kind != SPANS:
        return body
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from config.delivery.otlp import scope_key_attributes

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(gzip.decompress(body))
    except (OSError, EOFError, zlib.error, DecodeError):
        # A damaged row: moved as it is (its sender sends it alone and keeps it as a dead
        # letter); it failed the whole move as an internal error.
        return body
    changed = False
    for attribute in scope_key_attributes(request):
        if attribute.value.string_value != public_key:
            attribute.value.string_value = public_key
            changed = True
    if not changed:
        return body
    return gzip.compress(request.SerializeToString(), compresslevel=GZIP_LEVEL)


def _merged_body(entries: list[OutboxEntry]) -> bytes:
    """One request body for rows of one kind.

    Serialized protobuf messages concatenate into one message whose repeated fields hold
    both (so two ``ExportTraceServiceRequest`` bodies are one with all their resource spans);
    score bodies are JSON lists written by the writer, joined into one list.
    """
    if len(entries) == 1:
        return entries[0].body
    if entries[0].kind == SPANS:
        raw = b"".join(gzip.decompress(entry.body) for entry in entries)
        return gzip.compress(raw, compresslevel=GZIP_LEVEL)
    return b"[" + b",".join(entry.body.strip()[1:-1] for entry in entries) + b"]"


def _media_type(response: httpx.Response) -> str:
    return str(response.headers.get("content-type", "")).split(";")[0].strip().lower()


def _is_json(response: httpx.Response) -> bool:
    """The answer is a JSON document (by Content-Type, and it parses)."""
    if _media_type(response) != "application/json":
        return False
    try:
        json.loads(response.content)
    except (ValueError, RecursionError):
        return False
    return True


def _acknowledged(kind: str, response: httpx.Response) -> bool:
    """A 2xx is Langfuse's acknowledgement only with the body Langfuse sends for the route.

    Scores: a JSON object. OTLP: a JSON object, or an OTLP protobuf response (which may be
    empty). Anything else (HTML from a proxy or a captive portal, an empty body where JSON is
    due) acknowledges nothing.
    """
    media = _media_type(response)
    if kind == SPANS and media == "application/x-protobuf":
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        try:
            ExportTraceServiceResponse().ParseFromString(response.content)
        except Exception:  # protobuf raises DecodeError, or others on garbage
            return False
        return True
    if media != "application/json":
        return False
    try:
        body = json.loads(response.content)
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict)


def _count(value: Any) -> int:
    """A JSON count, where an int64 may come as a string; one past any count (1e400 parses as
    infinity) is all of them. ValueError/TypeError/OverflowError for what is not a count."""
    number = value if isinstance(value, int) else float(value)
    return _ALL if number == float("inf") else int(number)


# More than any request carries: ``_refusal`` bounds a count by the items sent.
_ALL = 2**63 - 1


def _refusal(kind: str, response: httpx.Response, items: int) -> tuple[int, str] | None:
    """(how many of the request's ``items`` a 2xx refused, the server's message), or None.

    OTLP: ``partialSuccess.rejectedSpans`` (JSON, where an int64 may come as a string) or
    ``partial_success.rejected_spans`` (protobuf). Scores: a 207's ``errors``. The count is
    bounded by the items sent: errors naming other ids do not make more refused.
    """
    refused, message = 0, ""
    try:
        if kind == SPANS and _media_type(response) == "application/x-protobuf":
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
                ExportTraceServiceResponse,
            )

            answer = ExportTraceServiceResponse()
            answer.ParseFromString(response.content)
            refused = int(answer.partial_success.rejected_spans)
            message = answer.partial_success.error_message
        elif kind == SPANS:
            partial = response.json().get("partialSuccess") or {}
            refused = _count(partial.get("rejectedSpans") or 0)
            message = str(partial.get("errorMessage") or "")
        elif response.status_code == 207:
            errors = [e for e in response.json().get("errors") or [] if isinstance(e, dict)]
            refused = len(errors)
            message = "; ".join(
                str(e.get("message") or e.get("error") or e.get("status")) for e in errors[:3]
            )
    except (ValueError, AttributeError, TypeError, RecursionError, OverflowError):
        return None  # acknowledged already: an odd body part is no refusal
    if refused <= 0:
        return None
    return min(refused, items), redact_secrets(" ".join(message.split()))[:500] or "no reason given"
