"""``autoops replay --workers N``: one reader, N worker processes, one summary.

The parent reads the file with ``EventReader`` (so bad lines keep their line numbers, and
``--strict``, ``--limit`` and ``--shard`` work as in one process) and writes each valid
event to the standard input of worker ``worker_of(product_id)``: every event of a product
goes to the same worker, in the file's order. The event is written as the parent read it
(``worker_line``), its event id included: its id (renamed, or the hash of the file's line)
and its validity are the parent's, never judged again. A worker is ``autoops replay -
--worker`` itself: its own orchestrator, agents and tracer, the store or outbox file shared
with the others (SQLite WAL, busy timeout). It reports its durable counts as JSON lines on a
pipe (its ``--progress-file``), and its ``--json`` summary on stdout at the end.

- **Durable before counted.** The parent's progress and summary are sums of what the workers
  reported durable; an event in a pipe, not yet recorded, counts in ``events_total`` only.
- **Backpressure.** The pipes are bounded (1 MB, see ``_widen_pipe``): a slow worker blocks
  the reader; a thread per worker drains its messages, so no one waits on the parent.
- **One sender.** In langfuse mode the workers only write the outbox; the parent's exporter
  streams it to Langfuse while the run goes on and does the final, bounded flush.
- **Signals.** Workers run in their own process group: Ctrl-C reaches the parent, which stops
  reading and passes the signal on; each worker commits and prints its summary; the parent
  delivers (within ``AUTOOPS_FLUSH_DEADLINE``), prints the merged summary, exits 130 or 143.
  A worker holds a stop that comes while it starts (born with both signals blocked) until
  its handlers are in place; a second stop kills the workers that never got there.
- **A parent that dies** (SIGKILL) closes the pipes: a worker stops at its next report (a
  broken pipe) or at the end of its input, whichever comes first, and exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from autoops_cli.simulation.engine import (
    ProgressReports,
    ReplayOptions,
    ReplayProgress,
    ReplaySummary,
    StopReplay,
    bound_delivery_on_stop,
    count_rejected,
    delivery_document,
)
from autoops_cli.simulation.events import (
    MAX_LINE_BYTES,
    EventReader,
    RejectedLine,
    SimulationEvent,
)
from autoops_cli.simulation.partition import placement
from config.errors import STOP_EXIT_CODES, ExitCode, LocalFileError
from config.tracing.ids import event_trace_id

if TYPE_CHECKING:
    from autoops_cli.state import AppState
    from config.delivery.sender import DeliveryProgress
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings_sources import LoadedSettings

# Counts a worker's summary and progress lines carry, summed into the parent's.
DURABLE_COUNTS = (
    "events_processed",
    "events_failed",
    "traces_recorded",
    "observations_recorded",
    "scores_recorded",
)
SUMMED_COUNTS = (
    *DURABLE_COUNTS,
    "events_sampled_out",
    "conflicts_detected",
    "conflicts_resolved",
)
# Tracing metrics that are counts (summed); the averages are weighted, the rest the parent's.
TRACING_COUNTS = (
    "operations",
    "operations_failed",
    "traces_started",
    "traces_sampled_out",
    "traces_finalized",
    "observations_recorded",
    "scores_recorded",
    "tracing_errors",
    "spans_failed",
    "scores_failed",
    "dead_letters",
)
# A worker's exit code passed on as the run's: autoops's own errors (usage to local file).
AUTOOPS_ERROR_CODES = frozenset(range(int(ExitCode.FAILURE), int(ExitCode.LOCAL_FILE) + 1))
WORKER_EXIT_WAIT_S = 0.1  # how often the parent looks up from waiting (signals run between)
PIPE_BYTES = 1 << 20  # a worker's input pipe: about 3,000 events
# The longest line a worker reads: a file's longest re-written by ``worker_line``, whose
# numbers can take up to about four times their bytes (``1e15,`` as ``1000000000000000.0,``).
WORKER_MAX_LINE_BYTES = 5 * MAX_LINE_BYTES


@dataclass
class _Worker:
    """One worker process and what it reported."""

    number: int  # 1-based, as in messages
    process: subprocess.Popen[bytes]
    stdin: IO[bytes]
    latest: dict[str, Any] = field(default_factory=dict)  # its last durable progress line
    final: dict[str, Any] | None = None  # its --json summary
    threads: list[threading.Thread] = field(default_factory=list)
    ready: bool = False  # its stop handlers are in place (its "started" line came)
    given_up: bool = False  # killed by a second stop before it was ready
    sent: int = 0  # events written to its input
    # (sequence, trace id) of the events sent that no durable line of its counted yet, in
    # local mode: bounded by its input pipe and a commit group (``_count_unreported``).
    unreported: deque[tuple[int, str]] = field(default_factory=deque)


class WorkerPool:
    """Runs a replay in ``workers`` processes; ``run()`` returns the merged summary."""

    def __init__(
        self,
        service: LangfuseIntegrationService,
        reader: EventReader,
        options: ReplayOptions,
        *,
        workers: int,
        worker_command: list[str],
        settings: bytes = b"",
        on_rejected: Callable[[RejectedLine], None] | None = None,
    ) -> None:
        self.service = service  # the parent's: in langfuse mode, the run's only sender
        self.reader = reader
        self.options = options
        self.workers = workers
        self.worker_command = worker_command  # `autoops ... replay - --worker`, without the fds
        self.settings = settings  # the parent's settings (``parent_settings``), for each worker
        self.on_rejected = on_rejected
        self.on_progress: Callable[[ReplayProgress], None] | None = None
        self.summary = ReplaySummary(
            run_id=options.run_id,
            destination=service.destination,
            workers=workers,
            shard=f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        )
        self.stop_reason: str | None = None
        self.failure: tuple[int, str] | None = None  # (exit code, message): a worker failed
        self._stop_requests = 0
        self._feeding = False  # in a read or pipe write that may block: a stop raises StopReplay
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()  # one progress report at a time
        self._started = 0.0
        # When the first worker started its replay (its setup done), as one process's
        # ``duration_s`` starts once its own setup is done; None until a worker reports.
        self._replay_started: float | None = None
        self._progress = ProgressReports(service, options.limit)
        # Local mode: the store a worker that dies unseen is recounted from.
        recording = service.mode == "local" and service.destination != "none (dry run)"
        self._store_path = service.store_path if recording else None

    # --- stopping ---------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Stop reading, pass the signal on to the workers (safe from a signal handler).

        As in one process: the first stop bounds the final delivery by the flush deadline,
        a second gives it up.
        """
        self._stop_requests += 1
        if self.stop_reason is None:
            self.stop_reason = reason
        bound_delivery_on_stop(self.service, self._stop_requests)
        signum = getattr(signal.Signals, reason, signal.SIGTERM)
        for worker in self._pool:
            # A worker not ready holds the signal until it is: a second stop does not wait
            # for it (a start-up that hangs, an orchestrator's factory that never returns).
            give_up = self._stop_requests >= 2 and not worker.ready
            worker.given_up = worker.given_up or give_up
            with contextlib.suppress(OSError):  # ended already
                worker.process.send_signal(signal.SIGKILL if give_up else signum)
        if self._feeding:
            self._feeding = False
            raise StopReplay(reason)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> ReplaySummary:
        """Start the workers, feed them the file, wait for their summaries, deliver."""
        self._started = time.perf_counter()
        try:
            self._start_workers()
            try:
                self._feed()
            except StopReplay:
                pass
            except LocalFileError as exc:  # the input broke off: what was read is replayed
                self.summary.read_error = exc.message
                self.summary.stopped_early = exc.message
            finally:
                self._feeding = False
                for worker in self._pool:
                    with contextlib.suppress(OSError):  # a worker that died: its pipe broke
                        worker.stdin.close()
            self._wait_for_workers()
        finally:
            self._end_leftovers()
        self._finish()
        return self.summary

    def _start_workers(self) -> None:
        for number in range(1, self.workers + 1):
            read_end, write_end = os.pipe()
            settings_in, settings_out = os.pipe()
            try:
                process = subprocess.Popen(
                    [
                        *self.worker_command,
                        "--progress-file",
                        f"/dev/fd/{write_end}",
                        "--settings-fd",
                        str(settings_in),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    pass_fds=(write_end, settings_in),
                    # Its own group: Ctrl-C on the terminal reaches the parent only, which
                    # passes it on once it has stopped feeding (see request_stop).
                    process_group=0,
                    # Born with SIGINT and SIGTERM blocked: a stop that comes while it starts
                    # must not kill it before its summary, nor be lost. Its run handles them
                    # (and ignores them after).
                    # (Safe with threads: signal.signal and pthread_sigmask take no lock.)
                    preexec_fn=_hold_stop_signals,  # noqa: PLW1509
                )
            except BaseException:
                os.close(read_end)
                os.close(settings_out)
                raise
            finally:
                os.close(write_end)  # the worker's now: EOF for the parent when it ends
                os.close(settings_in)
            _send_settings(settings_out, self.settings)
            assert process.stdin is not None
            _widen_pipe(process.stdin)
            worker = _Worker(number, process, process.stdin)
            self._pool.append(worker)
            worker.threads = [
                threading.Thread(
                    target=self._drain_progress,
                    args=(worker, read_end),
                    name=f"autoops-worker-{number}-progress",
                    daemon=True,
                ),
                threading.Thread(
                    target=self._read_summary,
                    args=(worker,),
                    name=f"autoops-worker-{number}-summary",
                    daemon=True,
                ),
            ]
            for thread in worker.threads:
                thread.start()

    def _feed(self) -> None:
        """Each valid event's line to its worker, in the file's order; bad lines counted."""
        summary = self.summary
        limit = self.options.limit
        shard, shards = self.options.shard or (1, 1)
        events = iter(self.reader)
        sent = 0
        while self.stop_reason is None and (limit is None or sent < limit):
            if sent and not self.reader.input_waiting():
                # The next line may be long in coming (a live feed on stdin): the workers get
                # what was read now, not when the parent's buffers fill.
                self._flush_pipes()
            self._feeding = self.reader.may_block
            try:
                item = next(events)
            except StopIteration:
                return
            finally:
                self._feeding = False
            if isinstance(item, RejectedLine):
                count_rejected(summary, item)
                if self.on_rejected is not None:
                    self.on_rejected(item)
                if self.options.strict:
                    summary.stopped_early = f"line {item.line_number}: {item.reason}"
                    return
                continue
            its_shard, its_worker = placement(item.product_id, shards, self.workers)
            if its_shard != shard:
                summary.events_other_shards += 1
                continue
            worker = self._pool[its_worker]
            summary.events_total += 1
            self._feeding = True
            try:
                worker.stdin.write(worker_line(item))
            except (BrokenPipeError, ValueError):
                # The worker ended (see _wait_for_workers): this event was read, and counts as
                # read but not recorded. A stop sent to that worker alone stops the run.
                self._feeding = False
                self._take_over_stop(worker, wait=True)
                return
            finally:
                self._feeding = False
            sent += 1
            worker.sent += 1
            if self._store_path is not None:
                trace_id = event_trace_id(self.options.run_id, item.as_dict())
                worker.unreported.append((worker.sent, trace_id))

    def _flush_pipes(self) -> None:
        self._feeding = True  # a stop while a full pipe holds this up ends the feeding
        try:
            for worker in self._pool:
                with contextlib.suppress(BrokenPipeError, ValueError):  # see _wait_for_workers
                    worker.stdin.flush()
        finally:
            self._feeding = False

    def _wait_for_workers(self) -> None:
        for worker in self._pool:
            while True:
                try:
                    worker.process.wait(WORKER_EXIT_WAIT_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
            for thread in worker.threads:
                thread.join()
        for worker in self._pool:
            code = worker.process.returncode
            self._take_over_stop(worker)
            if worker.final is None:
                self._count_unreported(worker)
            if worker.final is None and self.failure is None and not worker.given_up:
                self.failure = (code if code in AUTOOPS_ERROR_CODES else 1, _death(worker))
                # The run ended before the file did: --json says why, as for any early end.
                self.summary.stopped_early = self.summary.stopped_early or self.failure[1]

    def _take_over_stop(self, worker: _Worker, *, wait: bool = False) -> None:
        """A worker stopped by a signal its parent did not get (``kill`` of the worker's
        pid, a service manager signalling every process): the run stops as if the parent
        had been sent it, so it ends with 130 or 143 and says so, never as a clean run with
        the rest of the file unread. ``wait``: the worker closed its input; its summary
        follows as it exits."""
        if wait:
            while worker.process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    worker.process.wait(WORKER_EXIT_WAIT_S)
            for thread in worker.threads:
                thread.join()
        stopped = (worker.final or {}).get("stopped_early")
        if self.stop_reason is None and stopped in STOP_EXIT_CODES:
            self.request_stop(str(stopped))

    def _count_unreported(self, worker: _Worker) -> None:
        """A worker that died between a commit and its line about it (SIGKILL, the OOM
        killer) left traces on disk that none of its counts had: the store says which of
        the events it was sent since its last line are recorded, and they count."""
        if self._store_path is None or not worker.unreported:
            return
        trace_ids = [trace_id for _, trace_id in worker.unreported]
        recorded = recorded_traces(self._store_path, trace_ids)
        latest = dict(worker.latest)
        for key, count in recorded.items():
            latest[key] = int(latest.get(key, 0)) + count
        worker.latest = latest

    def _end_leftovers(self) -> None:
        """After an unexpected error in the parent: no worker outlives it."""
        for worker in self._pool:
            if worker.process.poll() is None:
                worker.process.kill()
                worker.process.wait()

    # --- the workers' messages (one thread each) -----------------------------------------------

    def _drain_progress(self, worker: _Worker, fd: int) -> None:
        with os.fdopen(fd, "rb") as lines:
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("phase") == "started":
                    worker.ready = True
                if message.get("phase") != "replaying":
                    continue
                # Its replay began elapsed_s before this line was written (an instant ago).
                elapsed = message.get("elapsed_s")
                began = time.perf_counter() - (elapsed if isinstance(elapsed, float | int) else 0)
                with self._lock:
                    if self._replay_started is None or began < self._replay_started:
                        self._replay_started = began
                worker.latest = message
                rows = message.get("outbox_rows_up_to")
                if isinstance(rows, int):  # its batches: this run delivers and counts them
                    self.service.client.answer_up_to(rows)
                handled = int(message.get("events_processed", 0)) + int(
                    message.get("events_failed", 0)
                )
                while worker.unreported and worker.unreported[0][0] <= handled:
                    worker.unreported.popleft()
                self._report("replaying")

    def _read_summary(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        with worker.process.stdout as stdout:
            text = stdout.read()
        with contextlib.suppress(ValueError):
            document = json.loads(text)
            if isinstance(document, dict):
                worker.final = document

    def _report(self, phase: str, delivery: DeliveryProgress | None = None) -> None:
        with self._lock:
            summary = self.summary
            for key in DURABLE_COUNTS:
                setattr(summary, key, sum(int(w.latest.get(key, 0)) for w in self._pool))
            if self.on_progress is None:
                return
            elapsed = time.perf_counter() - self._started
            self.on_progress(
                self._progress.progress(phase, summary, elapsed, self.reader, delivery)
            )

    # --- the end ----------------------------------------------------------------------------

    def _finish(self) -> None:
        summary = self.summary
        reader = self.reader
        finals = [w.final if w.final is not None else w.latest for w in self._pool]
        with self._lock:  # the progress sums what each worker reported last: its summary now
            for worker, final in zip(self._pool, finals, strict=True):
                worker.latest = final
        merge_worker_summaries(summary, finals)
        for worker, final in zip(self._pool, finals, strict=True):
            # Never expected (a worker reads what its parent wrote from events it had read),
            # but an event lost between the two must not pass for a clean run.
            unread = int(final.get("events_rejected") or 0)
            if unread and self.failure is None:
                self.failure = (
                    int(ExitCode.FAILURE),
                    f"replay worker {worker.number} could not read {unread} event(s) "
                    "its parent had read (its error is above)",
                )
        summary.lines_read = reader.lines_read
        summary.lines_not_read = None if summary.read_error else reader.count_lines_left()
        if summary.write_error:
            summary.stopped_early = summary.stopped_early or "a local file could not be written"
        last_event = time.perf_counter()
        # Like one process's: from the start of the replay, the interpreters' start-up aside.
        started = self._replay_started if self._replay_started is not None else self._started
        summary.duration_s = round(last_event - started, 3)
        handled = summary.events_handled
        summary.events_per_s = round(handled / summary.duration_s, 1) if summary.duration_s else 0.0
        client = self.service.client
        client.finishing()
        if self._stop_requests < 2:
            client.flush(
                self.service.config.flush_deadline,
                on_progress=lambda progress: self._report("delivering", progress),
            )
        client.stop_delivering()  # what is counted below stays true: no late answer moves it
        summary.flush_s = round(time.perf_counter() - last_event, 3)
        # After the delivery: a stop while it ran cut it short (and the run stops with 143 or
        # 130); only once it is over are the signals ignored.
        if self.stop_reason and not summary.stopped_early:
            summary.stopped_early = self.stop_reason
        summary.tracing = merge_tracing(
            [dict(f.get("tracing") or {}) for f in finals], self.service.get_performance_metrics()
        )
        progress = client.delivery_progress()
        if progress is not None:
            summary.delivery = delivery_document(progress)
        self._report("done", progress)


def _death(worker: _Worker) -> str:
    """How a worker ended without its summary: a signal (the OOM killer, a kill) prints
    nothing of its own; an exit code comes after the worker's error line."""
    code = worker.process.returncode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"replay worker {worker.number} was killed by {name} before its summary"
    return (
        f"replay worker {worker.number} ended with exit code {code} before its summary "
        "(its error is above)"
    )


def _widen_pipe(pipe: IO[bytes]) -> None:
    """A worker's input pipe holds up to ``PIPE_BYTES`` (where the system allows it).

    The parent writes events in the file's order: when the next event's worker has a full
    pipe, the parent waits, and the other workers live on what their pipes hold. The kernel's
    64 KB (about 200 events) ran dry while a busy machine held one worker back; 1 MB rides
    that out. A stop or a parent that dies does not wait for it: workers stop reading.
    """
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is None:
        return
    with contextlib.suppress(OSError):  # over /proc/sys/fs/pipe-max-size: the default stays
        fcntl.fcntl(pipe.fileno(), set_size, PIPE_BYTES)


def worker_line(event: SimulationEvent) -> bytes:
    """The line a worker is handed for ``event``: the event as read, with its event id.

    Compact JSON, so the line grows past the file's only where numbers are re-written
    (``1e15`` as ``1000000000000000.0``); a worker reads lines up to
    ``WORKER_MAX_LINE_BYTES``.
    """
    text = json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8") + b"\n"


def merge_worker_summaries(summary: ReplaySummary, parts: list[dict[str, Any]]) -> None:
    """The workers' counts, decisions, sampling changes and write errors, into ``summary``."""
    for key in SUMMED_COUNTS:
        setattr(summary, key, sum(int(part.get(key) or 0) for part in parts))
    decisions: Counter[str] = Counter()
    for part in parts:
        decisions.update({str(k): int(v) for k, v in (part.get("decisions") or {}).items()})
    summary.decisions = dict(sorted(decisions.items()))
    summary.sampling_changes = [
        {**change, "worker": number}
        for number, part in enumerate(parts, start=1)
        for change in part.get("sampling_changes") or []
    ]
    summary.write_error = next((p["write_error"] for p in parts if p.get("write_error")), None)


def merge_tracing(parts: list[dict[str, Any]], parent: dict[str, Any]) -> dict[str, Any]:
    """One ``tracing`` document from the workers' and the parent's (which holds the sender's
    figures): counts summed, averages weighted by what they average over, the rate the
    lowest any worker ended with, the sampling changes each with its worker."""
    merged = dict(parent)
    for key in TRACING_COUNTS:
        merged[key] = sum(int(part.get(key) or 0) for part in [*parts, parent])
    operations = merged["operations"]
    finalized = merged["traces_finalized"]
    merged["avg_latency_ms"] = _weighted(parts, "avg_latency_ms", "operations", operations)
    merged["tracing_overhead_ms"] = _weighted(
        parts, "tracing_overhead_ms", "traces_finalized", finalized
    )
    merged["throughput"] = sum(float(part.get("throughput") or 0.0) for part in parts)
    failed = sum(
        (1 - float(part.get("success_rate", 1.0))) * int(part.get("traces_finalized") or 0)
        for part in parts
    )
    merged["success_rate"] = 1.0 if not finalized else 1 - failed / finalized
    rates = [
        float(part["effective_sample_rate"]) for part in parts if "effective_sample_rate" in part
    ]
    if rates:
        merged["effective_sample_rate"] = min(rates)
    merged["sampling_changes"] = [
        {**change, "worker": number}
        for number, part in enumerate(parts, start=1)
        for change in part.get("sampling_changes") or []
    ]
    return merged


def _weighted(parts: list[dict[str, Any]], key: str, weight: str, total: int) -> float:
    if not total:
        return 0.0
    return sum(float(p.get(key) or 0.0) * int(p.get(weight) or 0) for p in parts) / total


def parent_settings(loaded: LoadedSettings) -> bytes:
    """The parent's settings as its workers read them (``--settings-fd``): through a pipe, so
    the secret key never lands in a file. A worker reading the sources itself applied what
    they said when it started: a sampling rate set in between, tracing turned off."""
    return pickle.dumps(loaded)


def read_parent_settings(fd: int) -> LoadedSettings:
    """A worker's settings, as its parent sent them to ``fd``."""
    with os.fdopen(fd, "rb") as pipe:
        loaded: LoadedSettings = pickle.loads(pipe.read())  # our own parent's
    return loaded


def _send_settings(fd: int, settings: bytes) -> None:
    """Write the settings for a worker and close the pipe: a thread's work when they pass
    the pipe's buffer (the worker reads them first thing, as it starts)."""

    def send() -> None:
        with contextlib.suppress(OSError), os.fdopen(fd, "wb") as pipe:  # a worker that died
            pipe.write(settings)

    if len(settings) < 16384:
        send()
    else:
        threading.Thread(target=send, name="autoops-worker-settings", daemon=True).start()


def worker_command(
    state: AppState,
    run_id: str,
    sample_rate: float | None,
    orchestrator_spec: str | None,
    *,
    dry_run: bool,
) -> list[str]:
    """``python -m autoops_cli ... replay - --worker``: a worker, configured as its parent
    (its settings sent through ``--settings-fd``, the environment and the working directory
    inherited)."""
    command = [sys.executable, "-m", "autoops_cli", "--quiet", "--json"]
    if state.output.verbose:
        command.append("--verbose")
    command += ["replay", "-", "--worker", "--run-id", run_id]
    if sample_rate is not None:  # turns sampling on, as in the parent
        command += ["--sample-rate", repr(sample_rate)]
    if orchestrator_spec:
        command += ["--orchestrator", orchestrator_spec]
    if dry_run:
        command.append("--dry-run")
    return command


def _hold_stop_signals() -> None:
    """In the child before exec: SIGINT and SIGTERM blocked (the mask is inherited), with
    their default dispositions. A stop that comes while the worker starts is held, not lost:
    its run unblocks them once its handlers are in place (``replay._stop_on_signals``) and
    stops before its first event. (Ignored instead, the signal would be dropped, and the
    worker would replay every event already in its pipe.)"""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))


def recorded_traces(store_path: Path, trace_ids: list[str]) -> dict[str, int]:
    """What the store holds of these traces, as a worker's durable counts would say it: the
    events recorded (processed, or failed: an ERROR root), their observations and scores."""
    from config.store.local_store import LocalStore

    counts = dict.fromkeys(DURABLE_COUNTS, 0)
    store = LocalStore(store_path, read_only=True)
    try:
        for start in range(0, len(trace_ids), 500):  # well under SQLite's bound on parameters
            chunk = trace_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            traces = store.query(f"SELECT COUNT(*) FROM traces WHERE id IN ({marks})", chunk)
            failed = store.query(
                "SELECT COUNT(DISTINCT trace_id) FROM observations WHERE trace_id IN "
                f"({marks}) AND parent_observation_id IS NULL AND level = 'ERROR'",
                chunk,
            )
            observations = store.query(
                f"SELECT COUNT(*) FROM observations WHERE trace_id IN ({marks})", chunk
            )
            scores = store.query(f"SELECT COUNT(*) FROM scores WHERE trace_id IN ({marks})", chunk)
            counts["traces_recorded"] += int(traces[0][0])
            counts["events_failed"] += int(failed[0][0])
            counts["events_processed"] += int(traces[0][0]) - int(failed[0][0])
            counts["observations_recorded"] += int(observations[0][0])
            counts["scores_recorded"] += int(scores[0][0])
    finally:
        store.close()
    return counts
