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

import math
import numbers
import os
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from config.models import (
    AgentDecision,
    AgentSpan,
    CollaborationSpan,
    SimulationTrace,
    name_list,
)
from config.redaction import core_logger
from config.sampling_rules import SamplingSubject
from config.tracing.ids import random_trace_id, trace_key

if TYPE_CHECKING:
    from config.tracing.tracer import CurrentToken, Observation, Tracer

logger = core_logger("autoops.tracing")

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


# Keys of a decision mapping that describe the decision rather than being its outputs.
DECISION_FIELDS = frozenset(
    {"agent_id", "decision_type", "inputs", "outputs", "confidence", "reasoning", "tools_used"}
)


def _now() -> datetime:
    return datetime.now(UTC)


_ENDED_FOR_OWNER_KEPT = 1024


def _as_dict(value: Any) -> dict[str, Any]:
    """Inputs or outputs as the seed's models hold them: a dict (other values under "value")."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    as_dict = getattr(type(value), "as_dict", None)  # on the type: see call_inputs.plain
    return dict(as_dict(value)) if callable(as_dict) else {"value": value}


def describe_error(error: str | BaseException) -> str:
    """An error as a status message: the text itself, or ``<ExceptionType>: <message>``
    (the type alone when the exception's ``__str__`` fails: the application's error must
    reach its caller unchanged, not replaced by the failure of describing it)."""
    if isinstance(error, str):
        return error
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return f"{type(error).__name__}: (its message could not be read)"


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
    token: CurrentToken | None  # set when it was made current
    started_ns: int
    agent_id: str | None = None  # set on an agent operation
    agent_span: AgentSpan | None = None  # the seed's record of an agent operation
    collaboration: CollaborationSpan | None = None  # the seed's record of a collaboration
    items: list[Any] | None = None  # a generator operation's items so far (its output)
    # The process that opened it: a forked child inherits its parent's open observations,
    # which are the parent's to end (the child's exit must not record them as left open).
    pid: int = field(default_factory=os.getpid)


@dataclass
class TraceRecord:
    """What the manager holds for one trace until it is finalized and nothing of it is open."""

    trace_id: str
    root_span_id: str | None = None
    # The counters when the trace opened; set: a trace whose cost adaptive sampling weighs.
    mark: tuple[int, int] | None = None
    open: dict[str, OpenObservation] = field(default_factory=dict)  # span id -> entry
    # agent id -> its open operations (span id -> observation), the latest last.
    open_by_agent: dict[str, dict[str, Observation]] = field(default_factory=dict)
    # agent id -> its latest operation, ended or not, and whether a conflict overturned it.
    agent_operations: dict[str, Observation] = field(default_factory=dict)
    conflict_outcomes: dict[str, bool] = field(default_factory=dict)
    agents_run: list[str] = field(default_factory=list)  # with an operation in it, in order
    decisions: int = 0  # logged with log_agent_decision
    conflicts: int = 0  # logged with log_conflict
    finalizing: bool = False  # claimed by a finalize_trace call (one closes it)
    finalized: bool = False
    simulation: SimulationTrace | None = None  # the seed's record of the trace


def _participants(record: TraceRecord, root: OpenObservation) -> list[str]:
    """The agents a trace's metadata names (``autoops traces list`` shows them)."""
    if record.simulation is not None:
        # Those whose operations it holds (docs/tracing-schema.md), not the route: an agent
        # routed to that never ran (an earlier one failed) was named.
        return list(record.agents_run)
    if root.agent_span is not None:  # a trace of one agent operation
        return [root.agent_span.agent_id]
    if root.collaboration is not None:  # a collaboration outside any trace
        return list(root.collaboration.participating_agents)
    return []


class TraceManager:
    """Trace lifecycle coordination: open, update and finalize traces, and clean up failed ones.

    Works on the current observation of the calling context (``Tracer.current``): a trace's
    root and each agent operation become current when they start, and the previous one is
    current again when they end.
    """

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.counters = TracingCounters()
        # The counters when the last trace finished (``finalize_trace``'s cost).
        self._cost_mark = (0, 0)
        self._traces: dict[str, TraceRecord] = {}
        self._spans: dict[str, tuple[TraceRecord, OpenObservation]] = {}
        # Operations ended for their owner (with their trace, at shutdown), latest last: an
        # end that comes after is said, not dropped (bounded: ids of a long run).
        self._ended_for_owner: dict[str, str] = {}
        self._lock = threading.Lock()

    # --- the registry -------------------------------------------------------------------

    def _register(
        self,
        observation: Observation,
        *,
        root: bool = False,
        agent_id: str | None = None,
        make_current: bool = True,
    ) -> OpenObservation:
        """Remember an open observation and, unless told otherwise, make it current."""
        token = self.tracer.set_current(observation) if make_current else None
        entry = OpenObservation(observation, token, time.perf_counter_ns(), agent_id)
        span_id = observation.span_id
        with self._lock:
            record = self._traces.get(observation.trace_id)
            if record is None:
                record = self._traces[observation.trace_id] = TraceRecord(observation.trace_id)
            record.open[span_id] = entry
            self._spans[span_id] = (record, entry)
            if root:
                # The same trace id opened again (a replayed event).
                record.finalized = record.finalizing = False
                record.root_span_id = span_id
                record.mark = (self.counters.tracing_ns, self.counters.operations)
            if agent_id is not None:
                record.open_by_agent.setdefault(agent_id, {})[span_id] = observation
                record.agent_operations[agent_id] = observation
                if agent_id not in record.agents_run:
                    record.agents_run.append(agent_id)
                if record.simulation is not None:
                    agents = record.simulation.participating_agents
                    if agent_id not in agents:
                        agents.append(agent_id)
        return entry

    def _claim(self, trace_id: str) -> str:
        """``trace_id`` for a trace about to open, or a random id while a trace of that id is
        open (the same event processed twice at once, a caller's id given twice): opened
        again, the two traces' observations took the same ids and mixed (one's input with
        the other's output). Claimed under the lock, so two threads cannot both open it."""
        key = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(key)
            if record is None:
                self._traces[key] = TraceRecord(key)  # claimed: filled by _register
                return trace_id
            if record.finalized:
                return trace_id  # the same trace again, after it ended (a replayed event)
        fresh = random_trace_id()
        logger.warning(
            "trace %s is open already (the same event processed twice at once?): "
            "this one is recorded as trace %s",
            key,
            fresh,
        )
        return fresh

    def _unclaim(self, trace_id: str) -> None:
        key = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(key)
            if record is not None and record.root_span_id is None and not record.open:
                del self._traces[key]

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
        # Only where it is still current: one ended out of order (another opened after it
        # is current) or by another thread leaves this context as it is. ``Tracer.current``
        # passes over observations that have ended.
        if entry.token is not None and self.tracer.made_current() is entry.observation:
            try:
                self.tracer.reset_current(entry.token)
            except ValueError:  # made current in another context: no parent to restore
                self.tracer.set_current(None)
        return entry

    def observation(self, span_id: str) -> Observation | None:
        """The open observation with this span id."""
        with self._lock:
            found = self._spans.get(span_id)
        return found[1].observation if found is not None else None

    def root(self, trace_id: str) -> Observation | None:
        """The open root (orchestrator workflow) of a trace."""
        trace_id = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(trace_id)
            entry = record.open.get(record.root_span_id or "") if record is not None else None
        return entry.observation if entry is not None else None

    def agent_operation(self, trace_id: str, agent_id: str) -> Observation | None:
        """The agent's latest open operation in the trace."""
        trace_id = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(trace_id)
            operations = record.open_by_agent.get(agent_id) if record is not None else None
            return next(reversed(operations.values())) if operations else None

    def open_observations(self, trace_id: str) -> list[Observation]:
        """The trace's open observations, in the order they started."""
        trace_id = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(trace_id)
            return [e.observation for e in record.open.values()] if record is not None else []

    def open_trace_ids(self) -> list[str]:
        """The traces with something still open, oldest first."""
        with self._lock:
            return [trace_id for trace_id, record in self._traces.items() if record.open]

    def simulation_trace(self, trace_id: str) -> SimulationTrace | None:
        """The seed's record of an open simulation trace."""
        trace_id = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(trace_id)
            return record.simulation if record is not None else None

    def agent_span(self, span_id: str) -> AgentSpan | None:
        """The seed's record of an open agent operation."""
        with self._lock:
            found = self._spans.get(span_id)
        return found[1].agent_span if found is not None else None

    def current_trace_id(self) -> str | None:
        """The trace of the calling context's current observation."""
        current = self.tracer.current()
        return current.trace_id if current is not None else None

    def _parent_in(self, trace_id: str) -> tuple[Observation, bool]:
        """Where an operation of ``trace_id`` goes: under the current observation when the
        calling context is in that trace, else under the trace's root; and whether it may
        become current (not when the caller sits in another trace)."""
        trace_id = trace_key(trace_id)
        current = self.tracer.current()
        if current is not None and current.trace_id == trace_id:
            return current, True
        root = self.root(trace_id)
        if root is None:
            raise LookupError(f"trace {trace_id!r} is not open (finalized, or never created)")
        return root, current is None

    # --- the lifecycle ------------------------------------------------------------------

    def create_simulation_trace(
        self,
        event: Mapping[str, Any],
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        agents: Sequence[str] | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """Open the trace of one simulation event and its orchestrator workflow (current).

        The trace is named ``simulation.<event_type>``, tagged with the event type, trigger
        source and severity (and ``tags``); the event is the workflow's input, its identity
        fields the trace's metadata. Sampling is decided here (``agents``: the route, for
        agent rules).
        """
        event_type = str(event.get("event_type", "unknown"))
        # One name given as a text is that name (its letters were the route and the tags).
        agents = name_list(agents)
        tags = [
            *(str(event[k]) for k in ("event_type", "trigger_source", "severity") if event.get(k)),
            *name_list(tags),
        ]
        metadata = {k: event[k] for k in EVENT_IDENTITY_FIELDS if event.get(k) is not None}
        if "timestamp" in metadata:
            metadata["event_timestamp"] = str(metadata.pop("timestamp"))
        # The event's other top-level fields, except one named like an identity field (an
        # unknown ``event_timestamp`` must not replace the event's time; the whole event is
        # the workflow's input, so it is still recorded there).
        for key, value in event.items():
            if key not in EVENT_IDENTITY_FIELDS and key != "data" and key not in metadata:
                metadata[key] = value
        # "" is no id (a random one, as None); 0 is one (a stable id seeded by it).
        claimed = None if trace_id is None or trace_id == "" else self._claim(trace_id)
        try:
            root = self.tracer.start_trace(
                f"simulation.{event_type}",
                root_name=WORKFLOW_NAME,
                root_type="chain",
                trace_id=claimed,
                session_id=session_id,
                tags=tags,
                metadata=metadata,
                input=dict(event),
                root_metadata={"event_type": event_type, "product_id": event.get("product_id")},
                subject=SamplingSubject(
                    event_type=event_type,
                    severity=str(event["severity"]) if event.get("severity") else None,
                    agents=tuple(agents),
                ),
            )
        except BaseException:
            if claimed is not None:  # the claim of a trace that never opened
                self._unclaim(claimed)
            raise
        self._register(root, root=True)
        data = event.get("data")
        self._traces[root.trace_id].simulation = SimulationTrace(
            trace_id=root.trace_id,
            event_type=event_type,
            trigger_source=str(event.get("trigger_source") or ""),
            start_time=_now(),
            end_time=None,
            participating_agents=agents,
            # The event's own fields: its data, or (an event without ``data``) the rest of it.
            event_data=_as_dict(data) if data is not None else dict(event),
            outcome=None,
        )
        return root.trace_id

    def open_trace(
        self,
        name: str,
        *,
        root_name: str,
        root_type: str,
        agent_id: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Observation:
        """Open a trace of its own around one operation (no simulation event behind it).

        Its root is the operation (an agent operation when ``agent_id`` is given); it is made
        current, and ``finalize_trace`` closes it.
        """
        root = self.tracer.start_trace(
            name,
            root_name=root_name,
            root_type=root_type,
            tags=[agent_id] if agent_id else (),
            input=input,
            root_metadata=metadata,
            subject=SamplingSubject(agents=(agent_id,) if agent_id else ()),
        )
        if agent_id is not None:
            root.agent_id = agent_id
        entry = self._register(root, root=True, agent_id=agent_id)
        if agent_id is not None:
            entry.agent_span = self._new_agent_span(root, agent_id, name, input)
            self.counters.operations += 1
        return root

    def _new_agent_span(
        self, observation: Observation, agent_id: str, operation: str, inputs: Any
    ) -> AgentSpan:
        return AgentSpan(
            span_id=observation.span_id,
            agent_id=agent_id,
            operation_type=operation,
            parent_trace_id=observation.trace_id,
            start_time=_now(),
            end_time=None,
            inputs=_as_dict(inputs),
            outputs={},
            tools_used=[],
            decision_confidence=None,
        )

    def start_agent_span(
        self,
        agent_id: str,
        operation: str,
        inputs: Any = None,
        *,
        parent_trace_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        may_be_current: bool = True,
        items: list[Any] | None = None,
    ) -> str:
        """Start ``<agent_id>.<operation>``; its span id (``""`` outside any trace).

        Without ``parent_trace_id`` it goes under the current observation and becomes
        current. With it, it goes into that trace even when another trace is current (several
        may be open at once): under the current observation if that is in the trace, else
        under the trace's workflow; it becomes current only when the caller is in no other
        trace. ``may_be_current=False``: never current (a generator's, between whose items the
        caller runs); ``items``, what it yielded so far (its output, should its trace end
        it). ``LookupError`` for a trace that is not open.
        """
        if parent_trace_id:
            parent, make_current = self._parent_in(parent_trace_id)
        else:
            current = self.tracer.current()
            if current is None:
                return ""
            parent, make_current = current, True
        observation = self.tracer.start_observation(
            f"{agent_id}.{operation}",
            as_type="agent",
            parent=parent,
            input=inputs,
            metadata={"agent_id": agent_id, "operation": operation, **(metadata or {})},
        )
        observation.agent_id = agent_id
        entry = self._register(
            observation, agent_id=agent_id, make_current=make_current and may_be_current
        )
        entry.agent_span = self._new_agent_span(observation, agent_id, operation, inputs)
        entry.items = items
        self.counters.operations += 1
        return observation.span_id

    def _decision_target(self, target: str) -> tuple[Observation, str]:
        """The agent operation a decision is about: an open span id; or the agent's operation
        the caller is inside; or the agent's latest open operation in the current trace (or,
        outside any trace, its only open operation)."""
        found = self.observation(target)
        if found is not None:
            return found, found.agent_id or found.name.split(".", 1)[0]
        # The agent's operation the caller is inside, if any: with the same agent running
        # concurrently (asyncio tasks, one trace), "the latest open one" is another task's.
        node = self.tracer.current()
        while node is not None:
            if node.agent_id == target and node.as_type == "agent" and not node.ended:
                return node, target
            node = node.parent
        trace_id = self.current_trace_id()
        ended = self.tracer.made_current() if trace_id is None else None
        if ended is not None and ended.span_id in self._ended_for_owner:
            # What this caller was in was ended for it (an orchestrator that gave up on a slow
            # agent finalized its trace): that trace still, never another event's operation
            # of the same agent, where the late decision landed. (A trace the caller ended
            # itself leaves it outside any trace.)
            trace_id = ended.trace_id
        if trace_id is not None:
            operation = self.agent_operation(trace_id, target)
            if operation is None:
                raise LookupError(f"agent {target!r} has no open operation in trace {trace_id}")
            return operation, target
        with self._lock:
            candidates = [
                operation
                for record in self._traces.values()
                for operation in record.open_by_agent.get(target, {}).values()
            ]
        if len(candidates) != 1:
            raise LookupError(
                f"agent {target!r} has {len(candidates) or 'no'} open operations and no trace "
                "is current: pass the span id start_agent_span returned"
            )
        return candidates[0], target

    def log_agent_decision(
        self,
        agent: str,
        decision: Mapping[str, Any] | AgentDecision,
        *,
        confidence: float | None = None,
        reasoning: str | None = None,
        tools_used: Sequence[str] | None = None,
    ) -> None:
        """Record a decision on an agent's open operation: metadata, an event and its score.

        ``agent`` is the agent id (its open operation in the current trace) or the span id
        ``start_agent_span`` returned. The decision is an ``AgentDecision`` or a mapping in
        the seed's shape (``decision_type``, ``inputs``, ``outputs``, ``confidence``,
        ``reasoning``, ``tools_used``); keyword arguments win over what it carries. Without
        any confidence no ``decision_confidence`` score is recorded (none is made up).
        """
        operation, agent_id = self._decision_target(agent)
        if isinstance(decision, AgentDecision):
            given: Mapping[str, Any] = decision.as_dict()
        else:
            given = decision
        if confidence is None:
            confidence = given.get("confidence")
        if confidence is not None:
            # A number in [0, 1] (docs/tracing-schema.md): "0.8" or True were taken for one,
            # and 1.5 went into the averages of `autoops metrics`.
            # A Decimal is a number too (a price-like value from a database), not a Real.
            if isinstance(confidence, bool) or not isinstance(confidence, (numbers.Real, Decimal)):
                raise TypeError(
                    f"decision confidence must be a number, got {type(confidence).__name__}"
                )
            confidence = float(confidence)
            if not (math.isfinite(confidence) and 0.0 <= confidence <= 1.0):
                raise ValueError(f"decision confidence must be from 0 to 1, got {confidence}")
        reasoning = reasoning if reasoning is not None else given.get("reasoning")
        tools = name_list(tools_used if tools_used is not None else given.get("tools_used"))
        decision_type = str(given.get("decision_type") or "decision")
        if "outputs" in given:
            outputs: Any = given["outputs"]
        else:
            outputs = {k: v for k, v in given.items() if k not in DECISION_FIELDS}
        inputs = given.get("inputs")
        details = {
            "decision_type": decision_type,
            "confidence": confidence,
            "reasoning": reasoning or "",
            "tools_used": tools,
        }
        operation.update(metadata=details)
        operation.event(
            f"{agent_id}.decision",
            **({"input": inputs} if inputs else {}),
            output=outputs,
            metadata={"agent_id": agent_id, **details},
        )
        if confidence is not None:
            operation.score(
                DECISION_SCORE,
                confidence,
                comment=reasoning or None,
                metadata={"agent_id": agent_id, "decision_type": decision_type},
            )
        with self._lock:
            found = self._spans.get(operation.span_id)
            if found is not None:
                found[0].decisions += 1
        span = found[1].agent_span if found is not None else None
        if span is not None:
            span.decision_confidence = confidence
            span.tools_used.extend(t for t in tools if t not in span.tools_used)

    def end_agent_span(
        self, span_id: str, output: Any = None, *, error: str | BaseException | None = None
    ) -> AgentSpan | None:
        """End an agent operation; an error marks it ERROR with the message.

        Returns the finished ``AgentSpan`` (None for an unknown or already ended span).
        """
        entry = self._forget(span_id)
        if entry is None:
            reason = self._ended_for_owner.get(span_id)
            if reason is not None:  # a failure ended late was recorded as a success
                raise LookupError(
                    f"operation {span_id} had {reason}: what it ended with now is not recorded"
                )
            return None
        self.counters.operation_ns += time.perf_counter_ns() - entry.started_ns
        # None keeps the output the block set (``trace_operation``'s ``update(output=...)``):
        # ended with None, it was written over.
        given = {"output": output} if output is not None else {}
        if error is not None:
            self.counters.operations_failed += 1
            entry.observation.end(**given, level="ERROR", status_message=describe_error(error))
        else:
            entry.observation.end(**given)
        span = entry.agent_span
        if span is not None:
            span.end_time = _now()
            span.outputs = _as_dict(output)
        return span

    def finalize_trace(
        self,
        trace_id: str,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: str | BaseException | None = None,
    ) -> tuple[tuple[int, int] | None, SimulationTrace | None] | None:
        """Close a trace: end what is still open in it, score its conflicts, end its root.

        Returns the tracing cost, ``(nanoseconds, agent operations)`` since the last trace
        finished (what adaptive sampling weighs: over a window of traces, each nanosecond
        once), with the finished ``SimulationTrace``; None when the
        trace is not open. Should this fail half way, the root is still registered:
        ``cleanup_failed_trace`` can end it.
        """
        trace_id = trace_key(trace_id)
        with self._lock:
            record = self._traces.get(trace_id)
            if record is None or record.finalizing:  # two threads at once: the first closes it
                return None
            entry = record.open.get(record.root_span_id or "")
            if entry is None:
                return None
            record.finalizing = True
            # Operations and collaborations nobody ended: end them with the trace, latest
            # first, so what was started is recorded rather than lost.
            left = [e for e in reversed(record.open.values()) if e is not entry]
        if error is not None:
            level: str | None = "ERROR"
            message: str | None = describe_error(error)
        else:
            unresolved = isinstance(outcome, Mapping) and outcome.get("conflicts_unresolved")
            level = "WARNING" if unresolved else None
            message = None
        for open_entry in left:
            self._end_left_open(open_entry, "ended with its trace")
        with self._lock:
            mark, record.mark = record.mark, None
            operations, record.agent_operations = record.agent_operations, {}
            outcomes, record.conflict_outcomes = record.conflict_outcomes, {}
            record.finalized = True
        cost = None
        if mark is not None:
            # Since the last trace finished, not since this one opened: with traces open at
            # the same time (threads), each counted the others' tracing too, and 8 threads
            # made a cost of 0.05 ms an operation look like 400 (and the rate fell).
            with self._lock:
                now = (self.counters.tracing_ns, self.counters.operations)
                cost = (now[0] - self._cost_mark[0], now[1] - self._cost_mark[1])
                self._cost_mark = now
        self._score_conflict_outcomes(operations, outcomes)
        self._describe_trace(record, entry, outcome)
        given = {"output": outcome} if outcome is not None else {}  # as in end_agent_span
        entry.observation.end(**given, level=level, status_message=message)
        if entry.observation.trace.counted:
            self.counters.traces_finalized += 1
        logger.debug("trace %s finalized (%s)", trace_id, level or "DEFAULT")
        if error is not None:
            self.counters.traces_failed += 1
        self._forget(entry.observation.span_id)
        if entry.agent_span is not None:  # a trace of one agent operation (trace_operation)
            self.counters.operation_ns += time.perf_counter_ns() - entry.started_ns
            if error is not None:
                self.counters.operations_failed += 1
            entry.agent_span.end_time = _now()
            entry.agent_span.outputs = _as_dict(outcome)
        simulation = record.simulation
        if simulation is not None:
            simulation.end_time = _now()
            simulation.outcome = _as_dict(outcome) if outcome is not None else None
        return cost, simulation

    def _describe_trace(
        self, record: TraceRecord, root: OpenObservation, outcome: Mapping[str, Any] | None
    ) -> None:
        """Who took part, how many decisions and conflicts, in the trace's metadata, for
        `autoops traces list`, where the outcome does not say it (the replay's orchestrator
        does; the guide's examples do not, nor does a trace ended at shutdown)."""
        described: dict[str, Any] = {}
        agents = _participants(record, root)
        said = outcome if isinstance(outcome, Mapping) else {}  # a text outcome says neither
        if agents and "agents" not in said:
            described.update(participating_agents=list(agents), decision_count=record.decisions)
        if record.conflicts and "conflicts_detected" not in said:
            described["conflict_count"] = record.conflicts
        if described:
            root.observation.update_trace_metadata(described)

    def _end_left_open(
        self, entry: OpenObservation, reason: str, record: TraceRecord | None = None
    ) -> None:
        """End an observation its owner never ended (a collaboration handle, a lost span);
        ``record``: its trace's, to describe the trace when this is its root."""
        if self._forget(entry.observation.span_id) is None or entry.observation.ended:
            return
        if record is not None and entry.observation.span_id == record.root_span_id:
            with suppress(Exception):  # described or not, the root is ended below
                self._describe_trace(record, entry, None)
        if entry.collaboration is not None:
            entry.observation.update(output=self._collaboration_output(entry.collaboration))
        if entry.items is not None:  # a generator's operation: what it yielded so far
            entry.observation.update(output=list(entry.items))
        if entry.agent_span is not None:
            entry.agent_span.end_time = _now()
        with self._lock:
            if len(self._ended_for_owner) >= _ENDED_FOR_OWNER_KEPT:
                del self._ended_for_owner[next(iter(self._ended_for_owner))]
            self._ended_for_owner[entry.observation.span_id] = reason
        entry.observation.end(status_message=reason)

    def end_open_traces(self, reason: str = "still open at shutdown") -> int:
        """End everything this process opened and is still open, in every trace (at
        shutdown: recorded, not lost).

        In each trace the latest first and the root last; nothing counts as finalized.
        Returns how many observations were ended.
        """
        pid = os.getpid()
        with self._lock:
            records = list(self._traces.values())
            ordered = [
                [e for e in reversed(r.open.values()) if e.observation.span_id != r.root_span_id]
                + [e for e in r.open.values() if e.observation.span_id == r.root_span_id]
                for r in records
            ]
            ordered = [[e for e in entries if e.pid == pid] for entries in ordered]
        ended = 0
        for record, entries in zip(records, ordered, strict=True):
            for entry in entries:
                if entry.observation.ended:
                    continue
                with suppress(Exception):  # on with the others
                    self._end_left_open(entry, reason, record)
                    ended += 1
        return ended

    def cleanup_failed_trace(self, trace_id: str, reason: str = "trace failed") -> int:
        """End everything still open of a trace at level ERROR and forget the trace.

        Latest first, so each observation's parent is current again as it ends, and a failure
        to end one does not stop the others. An open root counts the trace as failed. Returns
        how many observations were ended.
        """
        trace_id = trace_key(trace_id)
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
            ended += 1
            if observation.span_id == record.root_span_id:
                self.counters.traces_finalized += 1
                self.counters.traces_failed += 1
                with suppress(Exception):  # described or not, the root is ended below
                    self._describe_trace(record, entry, None)
            with suppress(Exception):  # nothing more to do for this one: on with the others
                observation.end(level="ERROR", status_message=reason)
        with self._lock:
            if self._traces.get(trace_id) is record:
                del self._traces[trace_id]
        return ended

    # --- collaboration and conflicts ----------------------------------------------------

    def start_collaboration(
        self,
        participating_agents: Sequence[str],
        workflow_type: str,
        workflow_data: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[CollaborationSpan, bool]:
        """Start a collaboration (a ``chain`` named ``collaboration.<workflow_type>``).

        Under the current observation; outside any trace it opens a trace of its own. It is
        not made current (``enter_collaboration`` does that for a ``with`` block). Returns the
        seed's ``CollaborationSpan`` and whether it opened its own trace.
        """
        name = f"collaboration.{workflow_type}"
        agents = list(participating_agents)
        described = {"agents": agents, "purpose": workflow_type, **dict(workflow_data or {})}
        span_metadata = {**described, **dict(metadata or {})}
        current = self.tracer.current()
        if current is None:
            observation = self.tracer.start_trace(
                name,
                root_name=name,
                root_type="chain",
                input=described,
                root_metadata=span_metadata,
                subject=SamplingSubject(agents=tuple(agents)),
            )
            entry = self._register(observation, root=True, make_current=False)
        else:
            observation = self.tracer.start_observation(
                name, as_type="chain", parent=current, input=described, metadata=span_metadata
            )
            entry = self._register(observation, make_current=False)
        collaboration = CollaborationSpan(
            span_id=observation.span_id,
            workflow_type=workflow_type,
            participating_agents=agents,
            coordination_messages=[],
            conflicts_detected=[],
            resolution_outcome=None,
            trace_id=observation.trace_id,
        )
        entry.collaboration = collaboration
        return collaboration, current is None

    def enter_collaboration(
        self, collaboration: CollaborationSpan
    ) -> tuple[CurrentToken | None, Token[CollaborationSpan | None]]:
        """Make the collaboration current (its span, and the one ``log_*`` calls keep on).

        An untraced one (tracing off, or its span gone) still keeps what is logged in it:
        its messages, conflicts and resolutions are the application's data.
        """
        observation = self.observation(collaboration.span_id)
        current = self.tracer.set_current(observation) if observation is not None else None
        return current, _collaboration.set(collaboration)

    def leave_collaboration(
        self, tokens: tuple[CurrentToken | None, Token[CollaborationSpan | None]]
    ) -> None:
        """Undo ``enter_collaboration``."""
        with suppress(ValueError):  # left in another context than entered
            _collaboration.reset(tokens[1])
        if tokens[0] is not None:
            self.tracer.reset_current(tokens[0])

    @staticmethod
    def _collaboration_output(collaboration: CollaborationSpan) -> dict[str, Any]:
        return {
            "messages": len(collaboration.coordination_messages),
            "conflicts": len(collaboration.conflicts_detected),
            "resolutions": collaboration.resolutions,
        }

    def end_collaboration(
        self,
        collaboration: CollaborationSpan,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: BaseException | None = None,
    ) -> bool:
        """End a collaboration's span with its counts; True when it was open.

        ``outcome`` becomes its ``resolution_outcome``. A collaboration that opened its own
        trace closes that trace with it.
        """
        output = self._collaboration_output(collaboration)
        if outcome is not None:
            collaboration.resolution_outcome = _as_dict(outcome)
            output["outcome"] = collaboration.resolution_outcome  # what the caller ended it with
        with self._lock:
            found = self._spans.get(collaboration.span_id)
        if found is None:
            return False
        record, entry = found
        if entry.observation.span_id == record.root_span_id:
            self.finalize_trace(record.trace_id, output, error=error)
            return True
        self._forget(collaboration.span_id)
        if error is not None:
            entry.observation.end(
                output=output, level="ERROR", status_message=describe_error(error)
            )
        else:
            entry.observation.end(output=output)
        return True

    @staticmethod
    def _keep(kind: str, entry: dict[str, Any]) -> None:
        """Add to the current collaboration's messages, conflicts or resolutions (if any)."""
        collaboration = _collaboration.get()
        if collaboration is None:
            return
        if kind == "messages":
            collaboration.coordination_messages.append(entry)
        elif kind == "conflicts":
            collaboration.conflicts_detected.append(entry)
        else:
            collaboration.resolutions.append(entry)
            collaboration.resolution_outcome = entry

    def _event(self, name: str, **kwargs: Any) -> None:
        """An event under the current observation (none outside a trace)."""
        current = self.tracer.current()
        if current is not None:
            current.event(name, **kwargs)

    def log_coordination_message(
        self,
        from_agent: str,
        to_agent: str,
        message_type: str,
        content: Mapping[str, Any] | str,
        *,
        collaboration: CollaborationSpan | None = None,
    ) -> None:
        """Record a message passed between agents: a ``coordination.<type>`` event.

        Inside ``collaboration`` when given (current or not), else under the current
        observation and on the current collaboration.
        """
        about = {"from_agent": from_agent, "to_agent": to_agent, "message_type": message_type}
        name = f"coordination.{message_type}"
        if collaboration is None:
            self._keep("messages", dict(about))
            self._event(name, input=content, metadata=about)
            return
        observation = self.observation(collaboration.span_id)
        if observation is None:
            raise LookupError(f"collaboration {collaboration.workflow_type!r} has ended")
        collaboration.coordination_messages.append(dict(about))
        observation.event(name, input=content, metadata=about)

    def log_conflict(
        self, conflict_type: str, agents: Sequence[str], details: Mapping[str, Any]
    ) -> None:
        """Record a conflict between agents: a ``conflict.<type>`` event at level WARNING."""
        # Read before anything is kept: a call that fails half way counted the conflict
        # on the trace and scored the agents without its event.
        agents = name_list(agents)
        details = dict(details) if isinstance(details, Mapping) else details
        self._keep("conflicts", {"conflict_type": conflict_type, "agents": list(agents)})
        self._note_conflict(agents, detected=True)
        self._event(
            f"conflict.{conflict_type}",
            input=details,
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

    def _note_conflict(
        self, agents: Sequence[str], overturned: str | None = None, *, detected: bool = False
    ) -> None:
        """Remember which agents of the current trace met a conflict, and who lost one;
        ``detected``: a conflict logged (not a resolution), counted for the trace."""
        trace_id = self.current_trace_id()
        if trace_id is None:
            return
        with self._lock:
            record = self._traces.get(trace_id)
            if record is None:
                record = self._traces[trace_id] = TraceRecord(trace_id)
            record.conflicts += detected
            outcomes = record.conflict_outcomes
            for agent in agents:
                outcomes[agent] = outcomes.get(agent, False) or agent == overturned

    @staticmethod
    def _score_conflict_outcomes(
        operations: Mapping[str, Observation], outcomes: Mapping[str, bool]
    ) -> None:
        """Score each agent operation caught in a conflict: 1 overturned, 0 upheld, once
        per decision it scored and dated as that decision (at least once).

        Scored at the end of the trace, so an agent in two conflicts gets one score per
        decision (1 when any overturned it), and ``autoops metrics`` can count overturned
        decisions per agent from the scores, grouped by observation name.
        """
        for agent_id, overturned in outcomes.items():
            operation = operations.get(agent_id)
            if operation is None:
                continue
            # One per decision it scored, dated as that decision (`autoops metrics` counts
            # decisions by their scores, in a window by their time: an operation of two
            # decisions, overturned, was one of two overturned; dated when the trace ended,
            # a window's end split them from their decisions). Without a decision, one,
            # dated when the operation started.
            decided = (operation.scored or {}).get(DECISION_SCORE) or [operation.start_ns]
            for made in list(decided):
                operation.score(
                    OVERTURNED_SCORE,
                    1.0 if overturned else 0.0,
                    metadata={"agent_id": agent_id},
                    timestamp_ns=made,
                )
