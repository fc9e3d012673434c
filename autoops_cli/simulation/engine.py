"""The replay engine: stream an event file through the orchestrator, one trace per event.

Memory stays flat in the file's size (events are read one at a time). A bad line is reported
and skipped (or, with ``strict``, stops the run).

**Durable before counted.** An event counts as processed (``events_processed``, the traces,
observations and scores recorded, the progress) only once its trace is written to the local
store or the outbox file. The engine makes a commit point every ``commit_every`` traces or
``commit_interval_s`` seconds (a group commit: the tracer hands its batch over and gets a
ticket), and publishes the counts of a commit point when the destination's watermark reaches
its ticket. A process killed at any moment has therefore lost nothing it reported; only the
work after the last commit, which it never reported.

**Stops.** ``request_stop`` (a signal handler calls it) ends the run after the event in hand:
what was recorded is committed, delivery is tried within the flush deadline, and the summary
says how the run ended. A second ``request_stop`` gives up delivering at once (the outbox
keeps everything). A local file that cannot be written (a full disk) stops the run too; the
summary then counts what is on disk and ``write_error`` says what failed.
"""

from __future__ import annotations

import importlib
import operator
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from autoops_cli.simulation.events import EventReader, RejectedLine, SimulationEvent
from autoops_cli.simulation.orchestrator import Orchestrator, RetailOrchestrator
from autoops_cli.simulation.partition import shard_of
from config.errors import LocalFileError, StopNow, UsageError

if TYPE_CHECKING:
    from config.delivery.sender import DeliveryProgress
    from config.langfuse_integration import LangfuseIntegrationService

MAX_REJECTIONS_KEPT = 100  # rejected lines listed in the summary (all are counted)
COMMIT_EVERY_TRACES = 50
COMMIT_INTERVAL_S = 0.2
# Before it waits for more input (a quiet live feed), how long a replay waits for what it
# replayed to be durable and reported (a slower disk's rest is reported with the next event).
SETTLE_WAIT_S = 5.0
DELIVERY_POLL_S = 0.5  # how often the progress asks the outbox how much waits
LONG_WAIT_S = 60.0  # a --speed wait longer than this is announced


class StopReplay(Exception):
    """Raised by a signal handler to end a read that is waiting for input."""


@dataclass
class ReplayOptions:
    """What ``autoops replay`` was asked to do."""

    source: str | Path
    run_id: str
    limit: int | None = None
    speed: float | None = None
    strict: bool = False
    shard: tuple[int, int] | None = None  # (K, N): only the products of shard K of N
    commit_every: int = COMMIT_EVERY_TRACES
    commit_interval_s: float = COMMIT_INTERVAL_S


@dataclass
class ReplaySummary:
    """The outcome of one replay run (the ``--json`` document, minus the tracing metrics)."""

    run_id: str
    destination: str
    workers: int = 1  # processes that ran the agents (--workers)
    shard: str | None = None  # "K/N" with --shard: this run replayed shard K of N
    lines_read: int = 0  # lines of the input read, blank ones included
    lines_not_read: int | None = 0  # after an early stop; None when unknown (stdin)
    events_total: int = 0  # events read: processed, failed, rejected or not yet recorded
    events_processed: int = 0
    events_rejected: int = 0
    events_failed: int = 0
    events_sampled_out: int = 0
    events_other_shards: int = 0  # valid events of products in other shards (--shard), skipped
    traces_recorded: int = 0
    observations_recorded: int = 0
    scores_recorded: int = 0
    decisions: dict[str, int] = field(default_factory=dict)
    conflicts_detected: int = 0
    conflicts_resolved: int = 0
    duration_s: float = 0.0  # processing the events, up to the last one
    events_per_s: float = 0.0
    flush_s: float = 0.0  # delivering what was left at the end (bounded by the flush deadline)
    stopped_early: str | None = None
    read_error: str | None = None  # the input failed part-way (a truncated gzip, an I/O error)
    write_error: str | None = None  # the local file that failed; the counts are what it holds
    progress_file_error: str | None = None  # --progress-file could not be written (exit 6)
    delivery: dict[str, Any] = field(default_factory=dict)
    sampling_changes: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    tracing: dict[str, Any] = field(default_factory=dict)

    @property
    def events_handled(self) -> int:
        """Events the agents ran on: processed, or failed in an agent."""
        return self.events_processed + self.events_failed

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


# What agent code may raise and the run survives, as that event's failure: anything. A stop
# signal never raises in the agents (the replay's handlers only ask the run to stop, and
# StopReplay comes only while reading): a SystemExit, KeyboardInterrupt, CancelledError or
# GeneratorExit from an orchestrator is its own (a sys.exit() in a plugin, a task it
# cancelled), and ended the process with no summary, or a worker before its report.
AGENT_FAILURES = (BaseException,)


def load_orchestrator(spec: str | None) -> Orchestrator:
    """The built-in orchestrator, or ``module:factory`` called with no arguments."""
    if not spec:
        return RetailOrchestrator()
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise UsageError(f"--orchestrator {spec!r}: expected module:factory")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the user's own modules
    # Whatever the plugin raises (a sys.exit() ended the replay, exit 0, nothing said; a
    # CancelledError printed a traceback), but a second stop signal (StopNow): that one ends it.
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, factory_name)
    except StopNow:
        raise
    except BaseException as exc:
        raise UsageError(
            f"--orchestrator {spec!r}: cannot load it ({type(exc).__name__}: {exc})"
        ) from None
    if not callable(factory) or isinstance(factory, ModuleType):
        raise UsageError(
            f"--orchestrator {spec!r}: {factory_name} is {_kind(factory)}, not a factory "
            "(expected module:factory, a class or function called with no arguments that "
            "returns an object with a handle(event) method)"
        )
    try:
        orchestrator = factory()
    except StopNow:
        raise
    except BaseException as exc:  # the user's factory's failure, said in one line
        raise UsageError(
            f"--orchestrator {spec!r}: calling {factory_name}() failed: {type(exc).__name__}: {exc}"
        ) from None
    if not callable(getattr(orchestrator, "handle", None)):
        raise UsageError(
            f"--orchestrator {spec!r}: the factory's result has no handle(event) method"
        )
    return orchestrator  # type: ignore[no-any-return]


def bound_delivery_on_stop(service: LangfuseIntegrationService, requests: int) -> None:
    """What a stop does to delivery: the first commits what was recorded and bounds the
    final delivery by the flush deadline; a second gives delivering up (the outbox keeps it)."""
    client = service.client
    if requests == 1:
        client.finishing()
        client.limit_flush(service.config.flush_deadline)
    else:
        client.interrupt()


def _kind(value: Any) -> str:
    if isinstance(value, ModuleType):
        return "a module"
    return f"a {type(value).__name__} value"


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    if hasattr(outcome, "as_dict"):
        return dict(outcome.as_dict())
    if isinstance(outcome, Mapping):
        return dict(outcome)
    if is_dataclass(outcome) and not isinstance(outcome, type):
        # Its fields as they are, as a mapping's items are (asdict deep-copies: a lock or a
        # connection in a field failed the event).
        return {item.name: getattr(outcome, item.name) for item in fields(outcome)}
    return {"result": outcome}


def _outcome_counts(result: Mapping[str, Any]) -> tuple[list[str], int, int]:
    """The agents that decided, and the conflicts detected and resolved, of an outcome;
    ValueError saying what is not a count (or not a mapping of agent to decision)."""
    decisions = result.get("decisions") or {}
    if not isinstance(decisions, Mapping):
        raise ValueError(
            f"the orchestrator's outcome: its decisions are {_kind(decisions)}, not a mapping "
            "of agent to decision"
        )
    return (
        [str(agent) for agent in decisions],
        _outcome_count(result, "conflicts_detected"),
        _outcome_count(result, "conflicts_resolved"),
    )


def _outcome_count(result: Mapping[str, Any], key: str) -> int:
    """A count as any number type gives it (int, numpy, Decimal, a whole float), exactly: not
    negative; ValueError otherwise (text, bytes and bools are no counts)."""
    value = result.get(key) or 0
    count: int | None = None
    if not isinstance(value, str | bytes | bytearray | memoryview | bool):
        try:
            count = operator.index(value)  # int, numpy integers: exact however large
        except TypeError:
            try:
                whole = int(value)  # Decimal, Fraction, float: NaN and infinity raise
                count = whole if whole == value else None
            except (TypeError, ValueError, OverflowError):
                count = None
    if count is None or count < 0:
        raise ValueError(f"the orchestrator's outcome: its {key} is {value!r:.60}, not a count")
    return count


@dataclass
class RunCounts:
    """What the run has done so far, durable or not (published once committed)."""

    events_processed: int = 0
    events_failed: int = 0
    conflicts_detected: int = 0
    conflicts_resolved: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    traces_started: int = 0
    traces_sampled_out: int = 0
    observations_recorded: int = 0
    scores_recorded: int = 0

    @property
    def events_handled(self) -> int:
        """Events the agents ran on: processed, or failed in an agent."""
        return self.events_processed + self.events_failed

    def copy(self) -> RunCounts:
        """A snapshot (the decisions copied)."""
        return replace(self, decisions=Counter(self.decisions))


@dataclass(frozen=True)
class ReplayProgress:
    """What a progress display shows: the phase, the durable counts, and delivery."""

    phase: str  # replaying | delivering | done
    summary: ReplaySummary
    delivery: DeliveryProgress | None
    elapsed_s: float
    bytes_read: int | None = None  # of the input file as on disk (compressed or not)
    bytes_total: int | None = None  # None: unknown (standard input, a pipe)
    limit: int | None = None  # --limit: the run ends there if the file does not end first


class ProgressReports:
    """Makes the ``ReplayProgress`` a display is handed, for the engine and the worker pool:
    the delivery state given, or asked of the client at most every ``DELIVERY_POLL_S``
    while replaying (the outbox's count is a query)."""

    def __init__(self, service: LangfuseIntegrationService, limit: int | None = None) -> None:
        self.service = service
        self.limit = limit
        self.delivery: DeliveryProgress | None = None
        self._polled = 0.0

    def progress(
        self,
        phase: str,
        summary: ReplaySummary,
        elapsed_s: float,
        reader: EventReader | None,
        delivery: DeliveryProgress | None = None,
    ) -> ReplayProgress:
        """The progress of ``phase``; ``delivery`` when the caller knows it already."""
        if delivery is not None:
            self.delivery = delivery
        elif phase == "replaying":
            now = time.perf_counter()
            if now - self._polled >= DELIVERY_POLL_S:
                self._polled = now
                self.delivery = self.service.client.delivery_progress()
        return ReplayProgress(
            phase,
            summary,
            self.delivery,
            elapsed_s,
            bytes_read=reader.bytes_read if reader is not None else None,
            bytes_total=reader.size if reader is not None else None,
            limit=self.limit,
        )


class ReplayEngine:
    """Runs events through an orchestrator with tracing, and keeps the summary."""

    def __init__(
        self,
        service: LangfuseIntegrationService,
        orchestrator: Orchestrator,
        options: ReplayOptions,
        *,
        on_rejected: Callable[[RejectedLine], None] | None = None,
        on_progress: Callable[[ReplayProgress], None] | None = None,
        reader: EventReader | None = None,
        on_long_wait: Callable[[int, float], None] | None = None,
    ) -> None:
        self.service = service
        self.reader = reader  # opened by the caller to refuse a bad file before recording
        self.orchestrator = orchestrator
        self.options = options
        self.on_rejected = on_rejected
        self.on_progress = on_progress
        # Told (line, seconds) before a --speed wait of over LONG_WAIT_S: an event dated far
        # after the one before (a mistyped year) otherwise looked like a hang.
        self.on_long_wait = on_long_wait
        self.summary = ReplaySummary(
            run_id=options.run_id,
            destination=service.destination,
            shard=f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        )
        self.stop_reason: str | None = None
        self._stop_requests = 0
        self._reading = False  # blocked reading events: a stop may raise StopReplay there
        self._counts = RunCounts()
        self._uncommitted: list[tuple[int, RunCounts]] = []  # (ticket, counts), oldest first
        self._since_commit = 0
        self._last_commit = 0.0
        self._started = 0.0
        self._progress = ProgressReports(service, options.limit)
        stats = service.tracer.stats
        # The tracer may have traced before this run: count from here.
        self._baseline = (
            stats.traces_started,
            stats.traces_sampled_out,
            stats.observations_recorded,
            stats.scores_recorded,
        )

    # --- stopping ---------------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """End the run after the event in hand (safe to call from a signal handler).

        Delivery is then tried for at most the flush deadline; a second request gives it up
        at once. While the engine waits for the next event from standard input or a pipe, the
        read is abandoned (``StopReplay``).
        """
        self._stop_requests += 1
        if self.stop_reason is None:
            self.stop_reason = reason
        bound_delivery_on_stop(self.service, self._stop_requests)
        if self._reading and (self.reader is None or self.reader.may_block):
            self._reading = False
            raise StopReplay(reason)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> ReplaySummary:
        """Replay the whole file (or up to ``limit`` events), commit, then deliver."""
        self._started = self._last_commit = time.perf_counter()
        if self.reader is None:
            self.reader = EventReader(self.options.source)
        reader = self.reader
        try:
            self._replay(iter(reader))
        except StopReplay:  # a stop in the instant after a read returned
            pass
        except LocalFileError as exc:  # the input broke off: what was read before is kept
            self.summary.read_error = exc.message
            self.summary.stopped_early = exc.message
        finally:
            self._reading = False
            self._finish(reader)
            reader.close()
        return self.summary

    def _replay(self, events: Iterator[SimulationEvent | RejectedLine]) -> None:
        first_event_time: float | None = None
        for item in self._read(events):
            if isinstance(item, RejectedLine):
                self._reject(item)
                if self.options.strict:
                    self.summary.stopped_early = f"line {item.line_number}: {item.reason}"
                    break
                continue
            shard = self.options.shard
            if shard is not None and shard_of(item.product_id, shard[1]) != shard[0]:
                self.summary.events_other_shards += 1
                continue
            if self.options.speed:
                first_event_time = self._pace(item, first_event_time)
                if self.stop_reason is not None:  # stopped while waiting for its time:
                    self.summary.events_total += 1  # read, not recorded (it was in no count)
                    break
            self._process(item)
            self._after_event()
            if self.stop_reason is not None or self.service.client.write_failure:
                break

    def _read(self, events: Iterator[SimulationEvent | RejectedLine]) -> Iterator[Any]:
        """The events, one at a time, up to the limit; a stop while waiting for one ends the
        reading."""
        limit = self.options.limit
        while self.stop_reason is None and (limit is None or self._counts.events_handled < limit):
            unsettled = self._since_commit or self._uncommitted
            if unsettled and self.reader is not None and not self.reader.input_waiting():
                self._settle()
            self._reading = True
            try:
                item = next(events)
            except (StopIteration, StopReplay):
                return
            finally:
                self._reading = False
            yield item

    def _reject(self, rejected: RejectedLine) -> None:
        count_rejected(self.summary, rejected)
        if self.on_rejected is not None:
            self.on_rejected(rejected)

    def _pace(self, event: SimulationEvent, first: float | None) -> float:
        """Sleep so that events follow their recorded spacing, ``speed`` times faster."""
        moment = event.timestamp.timestamp()
        if first is None:
            return moment
        due = self._started + (moment - first) / (self.options.speed or 1.0)
        wait = due - time.perf_counter()
        if wait > LONG_WAIT_S and self.on_long_wait is not None:
            self.on_long_wait(event.line_number, wait)
        while self.stop_reason is None:
            delay = due - time.perf_counter()
            if delay <= 0:
                break
            time.sleep(min(delay, 0.1))  # short steps: a stop is not kept waiting
            self._advance()
        return first

    def _process(self, event: SimulationEvent) -> None:
        self.summary.events_total += 1
        service = self.service
        counts = self._counts
        trace_id = service.create_simulation_trace(
            event.as_dict(), session_id=self.options.run_id, agents=self._routed_agents(event)
        )
        try:
            outcome = self.orchestrator.handle(event)
            # An outcome the run cannot count (an as_dict() that raises, "two" conflicts, a
            # decision per letter of a string) is the event's failure too: it ended the run.
            result = _outcome_dict(outcome)
            agents, detected, resolved = _outcome_counts(result)
        except AGENT_FAILURES as exc:  # agent code's bug: recorded on the trace, the run goes on
            counts.events_failed += 1
            service.finalize_trace(trace_id, {"event_id": event.event_id}, error=exc)
            return
        service.finalize_trace(trace_id, result)
        counts.events_processed += 1
        for agent in agents:
            counts.decisions[agent] += 1
        counts.conflicts_detected += detected
        counts.conflicts_resolved += resolved

    def _routed_agents(self, event: SimulationEvent) -> tuple[str, ...]:
        """The orchestrator's route for the event, for agent sampling rules (none if unknown)."""
        route = getattr(self.orchestrator, "agents_for", None)
        if not callable(route):
            return ()
        try:
            routed = route(event)
            if isinstance(routed, str):  # one agent: not its letters, one agent each
                return (routed,)
            return tuple(str(agent) for agent in routed)
        except AGENT_FAILURES:  # a custom orchestrator's bug surfaces in handle(); sampling goes on
            return ()

    # --- commit points ----------------------------------------------------------------------

    def _after_event(self) -> None:
        self._since_commit += 1
        now = time.perf_counter()
        if (
            self._since_commit >= self.options.commit_every
            or now - self._last_commit >= self.options.commit_interval_s
        ):
            self._commit(now)
        else:
            self._advance()

    def _settle(self) -> None:
        """Before waiting for input (a live feed that went quiet): what was replayed becomes
        durable and reported now, not when the next event comes."""
        if self._since_commit:
            self._commit(time.perf_counter())
        ticket = self._uncommitted[-1][0] if self._uncommitted else 0
        client = self.service.client
        deadline = time.monotonic() + SETTLE_WAIT_S
        while (
            not client.wait_committed(ticket, 0.05)
            and client.write_failure is None
            and self.stop_reason is None
            and time.monotonic() < deadline
        ):
            pass
        self._advance()

    def _commit(self, now: float) -> int:
        """A commit point: hand the tracer's batch over; its counts wait for the watermark."""
        self._since_commit = 0
        self._last_commit = now
        ticket = self.service.tracer.commit()
        counts = self._counts
        stats = self.service.tracer.stats
        base = self._baseline
        counts.traces_started = stats.traces_started - base[0]
        counts.traces_sampled_out = stats.traces_sampled_out - base[1]
        counts.observations_recorded = stats.observations_recorded - base[2]
        counts.scores_recorded = stats.scores_recorded - base[3]
        self._uncommitted.append((ticket, counts.copy()))
        self._advance()
        return ticket

    def _advance(self) -> None:
        """Publish the counts of every commit point the destination has made durable."""
        committed = self.service.tracer.committed()
        published = None
        while self._uncommitted and self._uncommitted[0][0] <= committed:
            published = self._uncommitted.pop(0)[1]
        if published is not None:
            self._publish(published)
            self._report("replaying")

    def _publish(self, counts: RunCounts) -> None:
        summary = self.summary
        recording = self.service.mode != "disabled" and summary.destination != "none (dry run)"
        summary.events_processed = counts.events_processed
        summary.events_failed = counts.events_failed
        summary.events_sampled_out = counts.traces_sampled_out
        summary.traces_recorded = (
            counts.traces_started - counts.traces_sampled_out if recording else 0
        )
        summary.observations_recorded = counts.observations_recorded if recording else 0
        summary.scores_recorded = counts.scores_recorded if recording else 0
        summary.decisions = dict(sorted(counts.decisions.items()))
        summary.conflicts_detected = counts.conflicts_detected
        summary.conflicts_resolved = counts.conflicts_resolved

    def _report(self, phase: str, delivery: DeliveryProgress | None = None) -> None:
        if self.on_progress is None:
            return
        elapsed = time.perf_counter() - self._started
        self.on_progress(
            self._progress.progress(phase, self.summary, elapsed, self.reader, delivery)
        )

    # --- the end ----------------------------------------------------------------------------

    def _finish(self, reader: EventReader) -> None:
        summary = self.summary
        summary.lines_read = reader.lines_read
        client = self.service.client
        client.finishing()
        ticket = self._commit(time.perf_counter())
        # The disk either takes the rest or fails; a write failure ends the wait.
        while not client.wait_committed(ticket, 0.2) and client.write_failure is None:
            pass
        self._advance()
        failure = client.write_failure
        if failure is not None:
            summary.write_error = failure.message
            summary.stopped_early = summary.stopped_early or "a local file could not be written"
        # What was not read, counted from the file (a broken input cannot say).
        summary.lines_not_read = None if summary.read_error else reader.count_lines_left()
        last_event = time.perf_counter()
        summary.duration_s = round(last_event - self._started, 3)
        handled = summary.events_handled
        summary.events_per_s = round(handled / summary.duration_s, 1) if summary.duration_s else 0.0
        if self._stop_requests < 2:
            # Delivered while the server makes progress; AUTOOPS_FLUSH_DEADLINE s without any
            # ends it (what is left stays in the outbox).
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
        metrics = self.service.get_performance_metrics()
        summary.tracing = metrics
        summary.sampling_changes = list(metrics.get("sampling_changes", []))
        progress = client.delivery_progress()
        if progress is not None:
            summary.delivery = delivery_document(progress)
        self._report("done", progress)


def count_rejected(summary: ReplaySummary, rejected: RejectedLine) -> None:
    """Count a bad line in the summary (the first ``MAX_REJECTIONS_KEPT`` listed)."""
    summary.events_total += 1
    summary.events_rejected += 1
    if len(summary.rejected) < MAX_REJECTIONS_KEPT:
        summary.rejected.append({"line": rejected.line_number, "reason": rejected.reason})


def delivery_document(progress: DeliveryProgress) -> dict[str, Any]:
    """The ``delivery`` part of the summary: where batches went and what waits."""
    return {
        "host": progress.host,
        "state": progress.state,
        "batches_delivered": progress.delivered,
        "batches_waiting": progress.waiting,
        "unreachable_since": progress.unreachable_since,
        "last_error": progress.last_error,
    }
