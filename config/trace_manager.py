"""The seed's ``TraceManager``: trace lifecycle coordination.

It opens a simulation event's trace (and its orchestrator workflow), starts, updates and ends
the agent operations inside it, keeps what a trace accumulates until it is finalized (the
agents' operations, the conflicts they met, the trace's share of the tracing cost), and, when
a trace fails, ends and forgets everything still open of it (``cleanup_failed_trace``).

The registry of open observations is keyed by span id (ending one is O(1)) and grouped per
trace, with each trace's open agent operations per agent, so "this agent's open operation in
that trace" and "that trace's root" are O(1) lookups too. It raises like any code: the facade
(``LangfuseIntegrationService``) guards every call and hands failures to the error handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.models import AgentDecision, CollaborationSpan
from config.sampling_rules import SamplingSubject

if TYPE_CHECKING:
    from config.tracing.tracer import Observation, Tracer

# Trace schema names (docs/tracing-schema.md).
WORKFLOW_NAME = "orchestrator.process_event"
DECISION_SCORE = "decision_confidence"
OVERTURNED_SCORE = "decision_overturned"  # 1 or 0 on each agent operation caught in a conflict
EVENT_IDENTITY_FIELDS = (
    "event_id",
    "event_type",
    "product_id",
    "severity",
    "trigger_source",
    "timestamp",
)

# The collaboration the current code runs in: messages, conflicts and resolutions logged
# inside ``track_collaboration`` are kept on it, so its output counts them.
_collaboration: ContextVar[CollaborationSpan | None] = ContextVar(
    "autoops_collaboration", default=None
)


def describe_error(error: str | BaseException) -> str:
    """An error as a status message: the text itself, or ``<ExceptionType>: <message>``."""
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


@dataclass
class TracingCounters:
    """What ``get_performance_metrics`` reports about traces, operations and tracing cost."""

    started: float = field(default_factory=time.monotonic)
    operations: int = 0
    operations_failed: int = 0
    operation_ns: int = 0
    traces_finalized: int = 0
    traces_failed: int = 0
    tracing_calls: int = 0  # calls of the service's tracing API (the facade counts them)
    tracing_ns: int = 0


@dataclass(slots=True)
class OpenObservation:
    """An observation started and not ended yet."""

    observation: Observation
    token: Token[Observation | None] | None  # set when it was made current
    started_ns: int
    agent_id: str | None = None  # set on an agent operation


@dataclass
class TraceRecord:
    """What the manager holds for one trace until it is finalized and nothing of it is open."""

    trace_id: str
    root_span_id: str | None = None
    # The counters when the trace opened: its share of the tracing cost, for adaptive sampling.
    mark: tuple[int, int] | None = None
    open: dict[str, OpenObservation] = field(default_factory=dict)  # span id -> entry
    # agent id -> its open operations (span id -> observation), the latest last.
    open_by_agent: dict[str, dict[str, Observation]] = field(default_factory=dict)
    # agent id -> its latest operation, ended or not, and whether a conflict overturned it.
    agent_operations: dict[str, Observation] = field(default_factory=dict)
    conflict_outcomes: dict[str, bool] = field(default_factory=dict)
    finalized: bool = False


class TraceManager:
    """Trace lifecycle coordination: open, update and finalize traces, and clean up failed ones.

    Works on the current observation of the calling context (``Tracer.current``): a trace's
    root and each agent operation become current when they start, and the previous one is
    current again when they end.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.counters = TracingCounters()
        self._traces: dict[str, TraceRecord] = {}
        self._spans: dict[str, tuple[TraceRecord, OpenObservation]] = {}
        self._lock = threading.Lock()

    # --- the registry -------------------------------------------------------------------

    def _register(
        self, observation: Observation, *, root: bool = False, agent_id: str | None = None
    ) -> None:
        """Remember an open observation and make it current."""
        token = self.tracer.set_current(observation)
        entry = OpenObservation(observation, token, time.perf_counter_ns(), agent_id)
        span_id = observation.span_id
        with self._lock:
            record = self._traces.get(observation.trace_id)
            if record is None:
                record = self._traces[observation.trace_id] = TraceRecord(observation.trace_id)
            record.open[span_id] = entry
            self._spans[span_id] = (record, entry)
            if root:
                record.finalized = False  # the same trace id opened again (a replayed event)
                record.root_span_id = span_id
                record.mark = (self.counters.tracing_ns, self.counters.operations)
            if agent_id is not None:
                record.open_by_agent.setdefault(agent_id, {})[span_id] = observation
                record.agent_operations[agent_id] = observation

    def _forget(self, span_id: str) -> OpenObservation | None:
        """Drop an open observation and make its parent current again; None when unknown."""
        with self._lock:
            found = self._spans.pop(span_id, None)
            if found is None:
                return None
            record, entry = found
            record.open.pop(span_id, None)
            if entry.agent_id is not None:
                operations = record.open_by_agent.get(entry.agent_id, {})
                operations.pop(span_id, None)
                if not operations:
                    record.open_by_agent.pop(entry.agent_id, None)
            if record.finalized and not record.open and self._traces.get(record.trace_id) is record:
                del self._traces[record.trace_id]
        if entry.token is not None:
            try:
                self.tracer.reset_current(entry.token)
            except ValueError:  # ended in another context than it started: restore the parent
                self.tracer.set_current(None)
        return entry

    def observation(self, span_id: str) -> Observation | None:
        """The open observation with this span id."""
        with self._lock:
            found = self._spans.get(span_id)
        return found[1].observation if found is not None else None

    def root(self, trace_id: str) -> Observation | None:
        """The open root (orchestrator workflow) of a trace."""
        with self._lock:
            record = self._traces.get(trace_id)
            entry = record.open.get(record.root_span_id or "") if record is not None else None
        return entry.observation if entry is not None else None

    def agent_operation(self, trace_id: str, agent_id: str) -> Observation | None:
        """The agent's latest open operation in the trace."""
        with self._lock:
            record = self._traces.get(trace_id)
            operations = record.open_by_agent.get(agent_id) if record is not None else None
            return next(reversed(operations.values())) if operations else None

    def open_observations(self, trace_id: str) -> list[Observation]:
        """The trace's open observations, in the order they started."""
        with self._lock:
            record = self._traces.get(trace_id)
            return [e.observation for e in record.open.values()] if record is not None else []

    def current_trace_id(self) -> str | None:
        """The trace of the calling context's current observation."""
        current = self.tracer.current()
        return current.trace_id if current is not None else None

    # --- the lifecycle ------------------------------------------------------------------

    def create_simulation_trace(
        self,
        event: Mapping[str, Any],
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        agents: Sequence[str] | None = None,
    ) -> str:
        """Open the trace of one simulation event and its orchestrator workflow (current).

        The trace is named ``simulation.<event_type>``, tagged with the event type, trigger
        source and severity; the event is the workflow's input, its identity fields the
        trace's metadata. Sampling is decided here (``agents``: the route, for agent rules).
        """
        event_type = str(event.get("event_type", "unknown"))
        tags = [str(event[k]) for k in ("event_type", "trigger_source", "severity") if event.get(k)]
        metadata = {k: event[k] for k in EVENT_IDENTITY_FIELDS if event.get(k) is not None}
        if "timestamp" in metadata:
            metadata["event_timestamp"] = str(metadata.pop("timestamp"))
        metadata.update(
            {k: v for k, v in event.items() if k not in EVENT_IDENTITY_FIELDS and k != "data"}
        )
        root = self.tracer.start_trace(
            f"simulation.{event_type}",
            root_name=WORKFLOW_NAME,
            root_type="chain",
            trace_id=trace_id,
            session_id=session_id,
            tags=tags,
            metadata=metadata,
            input=dict(event),
            root_metadata={"event_type": event_type, "product_id": event.get("product_id")},
            subject=SamplingSubject(
                event_type=event_type,
                severity=str(event["severity"]) if event.get("severity") else None,
                agents=tuple(agents or ()),
            ),
        )
        self._register(root, root=True)
        return root.trace_id

    def start_agent_span(
        self,
        agent_id: str,
        operation: str,
        input_data: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Start ``<agent_id>.<operation>`` under the current observation (made current).

        Its span id; ``""`` outside a trace.
        """
        if self.tracer.current() is None:
            return ""
        observation = self.tracer.start_observation(
            f"{agent_id}.{operation}",
            as_type="agent",
            input=input_data,
            metadata={"agent_id": agent_id, "operation": operation, **(metadata or {})},
        )
        observation.agent_id = agent_id
        self._register(observation, agent_id=agent_id)
        self.counters.operations += 1
        return observation.span_id

    def log_agent_decision(
        self,
        span_id: str,
        decision: Mapping[str, Any] | AgentDecision,
        *,
        confidence: float | None = None,
        reasoning: str | None = None,
        tools_used: Sequence[str] | None = None,
    ) -> None:
        """Record a decision on an open agent operation: metadata, an event and its score."""
        agent = self.observation(span_id)
        if agent is None:
            return
        if isinstance(decision, AgentDecision):
            confidence = decision.confidence if confidence is None else confidence
            reasoning = decision.reasoning if reasoning is None else reasoning
            tools_used = decision.tools_used if tools_used is None else tools_used
            outputs: Any = decision.outputs
            decision_type = decision.decision_type
        else:
            outputs, decision_type = dict(decision), str(decision.get("decision_type", "decision"))
        confidence = float(confidence if confidence is not None else 0.0)
        agent_id = agent.name.split(".", 1)[0]
        details = {
            "decision_type": decision_type,
            "confidence": confidence,
            "reasoning": reasoning or "",
            "tools_used": list(tools_used or ()),
        }
        agent.update(metadata=details)
        agent.event(
            f"{agent_id}.decision", output=outputs, metadata={"agent_id": agent_id, **details}
        )
        agent.score(
            DECISION_SCORE,
            confidence,
            comment=reasoning or None,
            metadata={"agent_id": agent_id, "decision_type": decision_type},
        )

    def end_agent_span(
        self, span_id: str, output: Any = None, *, error: str | BaseException | None = None
    ) -> None:
        """End an agent operation; an error marks it ERROR with the message."""
        entry = self._forget(span_id)
        if entry is None:
            return
        self.counters.operation_ns += time.perf_counter_ns() - entry.started_ns
        if error is not None:
            self.counters.operations_failed += 1
            entry.observation.end(
                output=output, level="ERROR", status_message=describe_error(error)
            )
        else:
            entry.observation.end(output=output)

    def finalize_trace(
        self,
        trace_id: str,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: str | BaseException | None = None,
    ) -> tuple[int, int] | None:
        """Close a trace: score its conflicts, end its root with the outcome.

        Returns the trace's tracing cost, ``(nanoseconds, agent operations)`` since it opened
        (what adaptive sampling weighs), or None when the trace is not open. Should this fail
        half way, the root is still registered: ``cleanup_failed_trace`` can end it.
        """
        with self._lock:
            record = self._traces.get(trace_id)
            entry = record.open.get(record.root_span_id or "") if record is not None else None
        if record is None or entry is None:
            return None
        if error is not None:
            level: str | None = "ERROR"
            message: str | None = describe_error(error)
        else:
            level = "WARNING" if outcome and outcome.get("conflicts_unresolved") else None
            message = None
        with self._lock:
            mark, record.mark = record.mark, None
            operations, record.agent_operations = record.agent_operations, {}
            outcomes, record.conflict_outcomes = record.conflict_outcomes, {}
            record.finalized = True
        cost = None
        if mark is not None:
            cost = (self.counters.tracing_ns - mark[0], self.counters.operations - mark[1])
        self._score_conflict_outcomes(operations, outcomes)
        entry.observation.end(output=outcome, level=level, status_message=message)
        self.counters.traces_finalized += 1
        if error is not None:
            self.counters.traces_failed += 1
        self._forget(entry.observation.span_id)
        return cost

    def cleanup_failed_trace(self, trace_id: str, reason: str = "trace failed") -> int:
        """End everything still open of a trace at level ERROR and forget the trace.

        Latest first, so each observation's parent is current again as it ends, and a failure
        to end one does not stop the others. An open root counts the trace as failed. Returns
        how many observations were ended.
        """
        with self._lock:
            record = self._traces.get(trace_id)
            if record is None:
                return 0
            record.finalized = True
            record.mark = None
            record.agent_operations.clear()
            record.conflict_outcomes.clear()
            entries = list(reversed(record.open.values()))
        ended = 0
        for entry in entries:
            observation = entry.observation
            if self._forget(observation.span_id) is None or observation.ended:
                continue  # ended meanwhile by its owner
            if observation.span_id == record.root_span_id:
                self.counters.traces_finalized += 1
                self.counters.traces_failed += 1
            ended += 1
            with suppress(Exception):  # nothing more to do for this one: on with the others
                observation.end(level="ERROR", status_message=reason)
        with self._lock:
            if self._traces.get(trace_id) is record:
                del self._traces[trace_id]
        return ended

    # --- collaboration and conflicts ----------------------------------------------------

    @contextmanager
    def collaboration(
        self, span_id: str, trace_id: str, agents: Sequence[str], purpose: str
    ) -> Iterator[CollaborationSpan]:
        """Keep the ``log_*`` calls made inside the block on a ``CollaborationSpan``."""
        collaboration = CollaborationSpan(
            span_id=span_id, trace_id=trace_id, agents=tuple(agents), purpose=purpose
        )
        token = _collaboration.set(collaboration)
        try:
            yield collaboration
        finally:
            _collaboration.reset(token)

    @staticmethod
    def _keep(kind: str, entry: dict[str, Any]) -> None:
        """Add to the current collaboration's messages, conflicts or resolutions (if any)."""
        collaboration = _collaboration.get()
        if collaboration is not None:
            getattr(collaboration, kind).append(entry)

    def _event(self, name: str, **kwargs: Any) -> None:
        """An event under the current observation (none outside a trace)."""
        current = self.tracer.current()
        if current is not None:
            current.event(name, **kwargs)

    def log_coordination_message(
        self, from_agent: str, to_agent: str, message_type: str, content: Mapping[str, Any] | str
    ) -> None:
        """Record a message passed between agents: a ``coordination.<type>`` event."""
        about = {"from_agent": from_agent, "to_agent": to_agent, "message_type": message_type}
        self._keep("messages", dict(about))
        self._event(f"coordination.{message_type}", input=content, metadata=about)

    def log_conflict(
        self, conflict_type: str, agents: Sequence[str], details: Mapping[str, Any]
    ) -> None:
        """Record a conflict between agents: a ``conflict.<type>`` event at level WARNING."""
        self._keep("conflicts", {"conflict_type": conflict_type, "agents": list(agents)})
        self._note_conflict(agents)
        self._event(
            f"conflict.{conflict_type}",
            input=dict(details),
            metadata={"conflict_type": conflict_type, "agents": list(agents)},
            level="WARNING",
            status_message=f"conflict {conflict_type} between {', '.join(agents)}",
        )

    def log_conflict_resolution(
        self,
        conflict_type: str,
        rule: str,
        resolution: Mapping[str, Any],
        *,
        overturned_agent: str | None = None,
    ) -> None:
        """Record how a conflict was resolved, and whose decision was overturned."""
        self._keep(
            "resolutions",
            {"conflict_type": conflict_type, "rule": rule, **dict(resolution),
             "overturned_agent": overturned_agent},
        )  # fmt: skip
        if overturned_agent:
            self._note_conflict([overturned_agent], overturned_agent)
        self._event(
            f"conflict_resolution.{conflict_type}",
            output=dict(resolution),
            metadata={
                "conflict_type": conflict_type,
                "rule": rule,
                "overturned_agent": overturned_agent,
            },
        )

    def _note_conflict(self, agents: Sequence[str], overturned: str | None = None) -> None:
        """Remember which agents of the current trace met a conflict, and who lost one."""
        trace_id = self.current_trace_id()
        if trace_id is None:
            return
        with self._lock:
            record = self._traces.get(trace_id)
            if record is None:
                record = self._traces[trace_id] = TraceRecord(trace_id)
            outcomes = record.conflict_outcomes
            for agent in agents:
                outcomes[agent] = outcomes.get(agent, False) or agent == overturned

    @staticmethod
    def _score_conflict_outcomes(
        operations: Mapping[str, Observation], outcomes: Mapping[str, bool]
    ) -> None:
        """Score each agent operation caught in a conflict: 1 overturned, 0 upheld.

        Scored once at the end of the trace, so an agent in two conflicts gets one score
        (1 when any overturned it), and ``autoops metrics`` can count overturned decisions
        per agent from the scores, grouped by observation name.
        """
        for agent_id, overturned in outcomes.items():
            operation = operations.get(agent_id)
            if operation is not None:
                operation.score(
                    OVERTURNED_SCORE, 1.0 if overturned else 0.0, metadata={"agent_id": agent_id}
                )
