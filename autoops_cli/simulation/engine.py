"""The replay engine: stream an event file through the orchestrator, one trace per event.

Memory stays flat in the file's size (events are read one at a time). A bad line is reported
and skipped (or, with ``strict``, stops the run); whatever was recorded before stays
recorded, since each finished batch is already in the exporter's hands and the engine always
flushes on the way out.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.simulation.events import RejectedLine, SimulationEvent, read_events
from autoops_cli.simulation.orchestrator import Orchestrator, RetailOrchestrator
from config.errors import UsageError

if TYPE_CHECKING:
    from config.langfuse_integration import LangfuseIntegrationService

MAX_REJECTIONS_KEPT = 100  # rejected lines listed in the summary (all are counted)


@dataclass
class ReplayOptions:
    """What ``autoops replay`` was asked to do."""

    source: str | Path
    run_id: str
    limit: int | None = None
    speed: float | None = None
    strict: bool = False


@dataclass
class ReplaySummary:
    """The outcome of one replay run (the ``--json`` document, minus the tracing metrics)."""

    run_id: str
    destination: str
    events_total: int = 0
    events_processed: int = 0
    events_rejected: int = 0
    events_failed: int = 0
    events_sampled_out: int = 0
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
    sampling_changes: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    tracing: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {key: getattr(self, key) for key in self.__dataclass_fields__}


def load_orchestrator(spec: str | None) -> Orchestrator:
    """The built-in orchestrator, or ``module:factory`` called with no arguments."""
    if not spec:
        return RetailOrchestrator()
    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise UsageError(f"--orchestrator {spec!r}: expected module:factory")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` would: the user's own modules
    try:
        module = importlib.import_module(module_name)
        factory = getattr(module, factory_name)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"--orchestrator {spec!r}: cannot load it ({exc})") from None
    orchestrator = factory()
    if not callable(getattr(orchestrator, "handle", None)):
        raise UsageError(
            f"--orchestrator {spec!r}: the factory's result has no handle(event) method"
        )
    return orchestrator  # type: ignore[no-any-return]


def _outcome_dict(outcome: Any) -> dict[str, Any]:
    if hasattr(outcome, "as_dict"):
        return dict(outcome.as_dict())
    if isinstance(outcome, Mapping):
        return dict(outcome)
    return {"result": outcome}


class ReplayEngine:
    """Runs events through an orchestrator with tracing, and keeps the summary."""

    def __init__(
        self,
        service: LangfuseIntegrationService,
        orchestrator: Orchestrator,
        options: ReplayOptions,
        *,
        on_rejected: Callable[[RejectedLine], None] | None = None,
        on_progress: Callable[[ReplaySummary], None] | None = None,
    ) -> None:
        self.service = service
        self.orchestrator = orchestrator
        self.options = options
        self.on_rejected = on_rejected
        self.on_progress = on_progress
        self.summary = ReplaySummary(run_id=options.run_id, destination=service.destination)
        self._decisions: Counter[str] = Counter()

    def run(self) -> ReplaySummary:
        """Replay the whole file (or up to ``limit`` events); always flushes at the end."""
        started = time.perf_counter()
        first_event_time: float | None = None
        try:
            for item in read_events(self.options.source):
                if isinstance(item, RejectedLine):
                    self._reject(item)
                    if self.options.strict:
                        self.summary.stopped_early = f"line {item.line_number}: {item.reason}"
                        break
                    continue
                if (
                    self.options.limit is not None
                    and self.summary.events_processed >= self.options.limit
                ):
                    break
                if self.options.speed:
                    first_event_time = self._pace(item, started, first_event_time)
                self._process(item)
                if self.on_progress is not None:
                    self.on_progress(self.summary)
        finally:
            self._finish(started)
        return self.summary

    def _reject(self, rejected: RejectedLine) -> None:
        self.summary.events_total += 1
        self.summary.events_rejected += 1
        if len(self.summary.rejected) < MAX_REJECTIONS_KEPT:
            self.summary.rejected.append({"line": rejected.line_number, "reason": rejected.reason})
        if self.on_rejected is not None:
            self.on_rejected(rejected)

    def _pace(self, event: SimulationEvent, started: float, first: float | None) -> float:
        """Sleep so that events follow their recorded spacing, ``speed`` times faster."""
        moment = event.timestamp.timestamp()
        if first is None:
            return moment
        due = started + (moment - first) / (self.options.speed or 1.0)
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        return first

    def _process(self, event: SimulationEvent) -> None:
        self.summary.events_total += 1
        service = self.service
        trace_id = service.create_simulation_trace(
            event.as_dict(), session_id=self.options.run_id, agents=self._routed_agents(event)
        )
        try:
            outcome = self.orchestrator.handle(event)
        except Exception as exc:  # a bug in agent code: recorded on the trace, the run goes on
            self.summary.events_failed += 1
            service.finalize_trace(trace_id, {"event_id": event.event_id}, error=exc)
            return
        result = _outcome_dict(outcome)
        service.finalize_trace(trace_id, result)
        self.summary.events_processed += 1
        for agent in result.get("decisions", {}) or {}:
            self._decisions[agent] += 1
        self.summary.conflicts_detected += int(result.get("conflicts_detected", 0) or 0)
        self.summary.conflicts_resolved += int(result.get("conflicts_resolved", 0) or 0)

    def _routed_agents(self, event: SimulationEvent) -> tuple[str, ...]:
        """The orchestrator's route for the event, for agent sampling rules (none if unknown)."""
        route = getattr(self.orchestrator, "agents_for", None)
        if not callable(route):
            return ()
        try:
            return tuple(str(agent) for agent in route(event))
        except Exception:  # a custom orchestrator's bug surfaces in handle(); sampling goes on
            return ()

    def _finish(self, started: float) -> None:
        summary = self.summary
        last_event = time.perf_counter()
        summary.duration_s = round(last_event - started, 3)
        # Bounded: what is not delivered by the deadline stays in the outbox.
        self.service.flush(timeout=self.service.config.flush_deadline)
        summary.flush_s = round(time.perf_counter() - last_event, 3)
        metrics = self.service.get_performance_metrics()
        handled = summary.events_processed + summary.events_failed
        summary.events_per_s = round(handled / summary.duration_s, 1) if summary.duration_s else 0.0
        summary.events_sampled_out = int(metrics["traces_sampled_out"])
        recording = self.service.mode != "disabled" and summary.destination != "none (dry run)"
        summary.traces_recorded = (
            int(metrics["traces_started"] - metrics["traces_sampled_out"]) if recording else 0
        )
        summary.observations_recorded = int(metrics["observations_recorded"]) if recording else 0
        summary.scores_recorded = int(metrics["scores_recorded"]) if recording else 0
        summary.decisions = dict(sorted(self._decisions.items()))
        summary.tracing = metrics
        summary.sampling_changes = list(metrics.get("sampling_changes", []))
