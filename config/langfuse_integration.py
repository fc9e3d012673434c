"""The seed's Python API of the integration: ``LangfuseIntegrationService`` and friends.

The AutoOps application imports this module (``from config.langfuse_integration import
get_langfuse_integration``). It maps AutoOps work onto Langfuse as ``docs/tracing-schema.md``
says: one simulation event = one trace; the orchestrator workflow a ``chain``; each agent
operation an ``agent`` observation with its tools (``tool``) and its decision (an ``event``
plus a ``decision_confidence`` score); collaborations a ``chain`` holding coordination
messages, conflicts (WARNING) and their resolutions.

The service is the seed's facade over its components: ``LangfuseClient`` (the connection to
the destination, ``config.client``), ``TraceManager`` (trace lifecycle, ``config.trace_manager``)
and ``LangfuseErrorHandler`` (``config.error_handler``). It guards every call: errors inside
tracing go to the error handler, are counted and logged, and are never raised into the
operation being traced. It also measures what tracing costs, for the metrics and adaptive
sampling.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar, cast, overload

from config.models import (
    AgentDecision,
    AgentSpan,
    CollaborationSpan,
    SimulationTrace,
    name_list,
)
from config.redaction import core_logger
from config.tracing.call_inputs import call_input

if TYPE_CHECKING:
    from config.client import LangfuseClient
    from config.error_handler import LangfuseErrorHandler
    from config.sampling_rules import SamplingRules
    from config.settings import DataMaskingConfig, LangfuseConfig
    from config.trace_manager import TraceManager
    from config.tracing.adaptive_sampling import AdaptiveSampling
    from config.tracing.span_records import SpanExporter
    from config.tracing.tracer import Observation, Tracer

F = TypeVar("F", bound=Callable[..., Any])
logger = core_logger("autoops.tracing")
T = TypeVar("T")
P = ParamSpec("P")


class _NoopObservation:
    """Stands in for an observation when tracing is off or failed: every call does nothing."""

    span_id = ""
    trace_id = ""
    recording = False

    def update(self, **_: Any) -> None:
        """Ignored."""

    def end(self, **_: Any) -> None:
        """Ignored."""

    def update_trace_metadata(self, metadata: Any) -> None:
        """Ignored."""

    def event(self, name: str, **_: Any) -> _NoopObservation:
        """Ignored."""
        return self

    def score(self, name: str, value: float | str, **_: Any) -> None:
        """Ignored."""


NOOP = _NoopObservation()


class GuardedObservation:
    """The observation ``trace_operation`` yields to the application: its methods never
    raise into the traced code. A bad argument (a number as ``status_message``, a list as
    ``metadata``) is a tracing error, counted and logged, and the call is skipped, as every
    call is ignored with tracing off. Everything else is the observation's own."""

    __slots__ = ("_observation", "_service")

    def __init__(
        self, service: LangfuseIntegrationService, observation: Observation | _NoopObservation
    ) -> None:
        self._service = service
        self._observation = observation

    def __getattr__(self, name: str) -> Any:
        return getattr(self._observation, name)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._observation, method)(*args, **kwargs)
        except Exception as exc:
            self._service.error_handler.handle_tracing_error(method, exc)
            return None

    def update(self, *args: Any, **kwargs: Any) -> None:
        """``Observation.update``: input, output, metadata, level, status message."""
        self._call("update", *args, **kwargs)

    def end(self, *args: Any, **kwargs: Any) -> None:
        """``Observation.end``."""
        self._call("end", *args, **kwargs)

    def score(self, *args: Any, **kwargs: Any) -> None:
        """``Observation.score``: a score on this observation and its trace."""
        self._call("score", *args, **kwargs)

    def update_trace_metadata(self, *args: Any, **kwargs: Any) -> None:
        """``Observation.update_trace_metadata``: keys added to the trace's metadata."""
        self._call("update_trace_metadata", *args, **kwargs)

    def event(self, *args: Any, **kwargs: Any) -> GuardedObservation:
        """``Observation.event``: a zero-duration event under this one."""
        child = self._call("event", *args, **kwargs)
        return GuardedObservation(self._service, NOOP if child is None else child)


NO_SPAN: AgentSpan | None = None  # what a failed ``end_agent_span`` returns


def _guarded(
    default: T,
) -> Callable[
    [Callable[Concatenate[LangfuseIntegrationService, P], T]],
    Callable[Concatenate[LangfuseIntegrationService, P], T],
]:
    """A service method whose failure is the error handler's (``default`` is returned instead)
    and whose duration counts as tracing overhead: tracing never raises into traced code."""

    def decorator(
        method: Callable[Concatenate[LangfuseIntegrationService, P], T],
    ) -> Callable[Concatenate[LangfuseIntegrationService, P], T]:
        where = method.__name__.strip("_")

        @functools.wraps(method)
        def guarded(service: LangfuseIntegrationService, /, *args: P.args, **kwargs: P.kwargs) -> T:
            started = time.perf_counter_ns()
            try:
                return method(service, *args, **kwargs)
            except Exception as exc:
                service.error_handler.handle_tracing_error(where, exc)
                return default
            finally:
                service._account(started)

        return guarded

    return decorator


class LangfuseIntegrationService:
    """Traces AutoOps simulation events, agent operations and collaborations.

    ``mode`` is ``local`` (the embedded store), ``langfuse`` (OTLP/HTTP to the configured
    host), or ``disabled`` (``LANGFUSE_ENABLED`` / ``LANGFUSE_TRACING_ENABLED`` false).
    ``sampling_rules`` default to the ``[sampling]`` tables of the configuration files, so
    every process configured alike keeps the same traces. ``writer_process`` has local mode
    write the store from another process (the replay; see ``LangfuseClient``).
    """

    def __init__(
        self,
        config: LangfuseConfig | None = None,
        masking: DataMaskingConfig | None = None,
        *,
        exporter: SpanExporter | None = None,
        store_path: Path | None = None,
        sample_rate: float | None = None,
        batch_size: int = 512,
        sampling_rules: SamplingRules | None = None,
        writer_process: bool = False,
    ) -> None:
        from config.client import LangfuseClient
        from config.delivery.exporters import resource_attributes
        from config.error_handler import LangfuseErrorHandler
        from config.settings import DataMaskingConfig, LangfuseConfig
        from config.trace_manager import TraceManager
        from config.tracing.adaptive_sampling import AdaptiveSampling
        from config.tracing.masking import DataMasker
        from config.tracing.sampling import TraceSampler
        from config.tracing.tracer import Tracer

        self.config = config if config is not None else LangfuseConfig()
        if self.config.debug:
            from config.redaction import enable_debug_logging

            enable_debug_logging()
        self.masking = masking if masking is not None else DataMaskingConfig()
        self.tracing_enabled = self.config.enabled and self.config.tracing_enabled
        self.mode = self.config.mode if self.tracing_enabled else "disabled"
        sampling = self.config.enable_sampling or sample_rate is not None
        if sampling_rules is None and sampling and self.tracing_enabled:
            from config.settings_sources import load_sampling_rules

            sampling_rules = load_sampling_rules()  # before the exporter: a bad rule leaks nothing
        rate = sample_rate if sample_rate is not None else self.config.sample_rate
        sampler = TraceSampler(rate, enabled=sampling, rules=sampling_rules)
        self.adaptive: AdaptiveSampling = AdaptiveSampling(
            sampler,
            base_rate=sampler.rate,
            max_latency_ms=self.config.max_latency_ms,
        )
        self.error_handler: LangfuseErrorHandler = LangfuseErrorHandler(
            max_acceptable_latency=self.config.max_latency_ms, sampling=self.adaptive
        )
        self.adaptive.on_over_budget = self.error_handler.handle_performance_degradation
        self.client: LangfuseClient = LangfuseClient(
            self.config,
            mode=self.mode,
            error_handler=self.error_handler,
            exporter=exporter,
            store_path=store_path,
            retention_days=self.masking.retention_days,
            writer_process=writer_process,
        )
        masker = DataMasker(self.masking)
        self.tracer: Tracer = Tracer(
            self.client,
            sampler=sampler,
            mask=masker.mask if masker.enabled else None,
            environment=self.config.environment,
            release=self.config.release,
            batch_size=batch_size,
            flush_interval=self.config.flush_interval,
            resource=resource_attributes(self.config),
        )
        self.trace_manager: TraceManager = TraceManager(self.tracer)
        self.error_handler.attach(connection=self.client, trace_manager=self.trace_manager)
        # Collaborations inside a ``with`` block, by the handle's id() (alive while inside:
        # untraced handles all have the span id ""): the blocks open in any thread or task,
        # and an error one of them raised. The last block to leave ends the collaboration:
        # the first one did, and the messages of another thread still inside were lost.
        self._collaboration_blocks: dict[int, int] = {}
        self._collaboration_errors: dict[int, BaseException] = {}
        self._collaboration_lock = threading.Lock()
        self._closed = False
        logger.debug(
            "integration started: mode %s, destination %s, sample rate %g, masking %s, "
            "environment %s, release %s",
            self.mode, self.destination, sampler.rate, "on" if masker.enabled else "off",
            self.config.environment, self.config.release,
        )  # fmt: skip

    @property
    def destination(self) -> str:
        """Where traces go, in words: ``local store <path>``, the Langfuse host, or ``none``."""
        return self.client.destination

    @property
    def store_path(self) -> Path | None:
        """The store file (traces in local mode, the outbox in langfuse mode); None if none."""
        return self.client.store_path

    # --- safety and accounting ------------------------------------------------------------

    def _account(self, started_ns: int) -> None:
        counters = self.trace_manager.counters
        counters.tracing_calls += 1
        counters.tracing_ns += time.perf_counter_ns() - started_ns

    def _guard(self, where: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run a piece of tracing as ``_guarded`` methods run: failures to the error handler."""
        started = time.perf_counter_ns()
        try:
            function(*args, **kwargs)
        except Exception as exc:
            self.error_handler.handle_tracing_error(where, exc)
        finally:
            self._account(started)

    # --- the seed's API -----------------------------------------------------------------

    def create_simulation_trace(
        self,
        event: Mapping[str, Any],
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        agents: Sequence[str] | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """Open the trace of one simulation event and its orchestrator workflow (made current).

        ``event`` is the event as a mapping (``event_type``, ``event_id``, ``product_id``,
        ``severity``, ``trigger_source``, ``timestamp``, ``data``, other fields). With a
        session id and an event id the trace id is derived from both and the event's
        content, so a replay of the same events with the same run id produces the same ids. ``agents`` are the agents the event is routed to:
        sampling is decided here, before any agent runs, so agent rules need them up front.
        ``tags`` are added to the event's own (type, trigger source, severity). Returns the
        trace id ("" when tracing failed).
        """
        started = time.perf_counter_ns()
        try:
            if (trace_id is None or trace_id == "") and session_id and event.get("event_id"):
                from config.tracing.ids import event_trace_id

                trace_id = event_trace_id(session_id, event)
            if not self.tracing_enabled:
                return trace_id or ""
            return self.trace_manager.create_simulation_trace(
                event, session_id=session_id, trace_id=trace_id, agents=agents, tags=tags
            )
        except Exception as exc:
            self.error_handler.handle_tracing_error("create_simulation_trace", exc)
            return trace_id or ""
        finally:
            self._account(started)

    @_guarded("")
    def start_agent_span(
        self,
        agent_id: str,
        operation: str,
        inputs: Any = None,
        *,
        parent_trace_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        input_data: Any = None,
    ) -> str:
        """Start an agent operation; returns its span id, for ``end_agent_span``.

        ``parent_trace_id`` puts it into that trace even when another one is current (several
        traces may be open at once, e.g. events handled concurrently); without it, it nests
        under the current observation and becomes current. ``input_data`` is the former name
        of ``inputs``. Outside any trace, or for a trace that is not open, nothing is traced
        and ``""`` is returned (with tracing off, no trace is ever open: no tracing error).
        """
        if not self.tracing_enabled:
            return ""
        return self.trace_manager.start_agent_span(
            agent_id,
            operation,
            inputs if inputs is not None else input_data,
            parent_trace_id=parent_trace_id,
            metadata=metadata,
        )

    @_guarded("")
    def _start_agent_span_beside(
        self, agent_id: str, operation: str, inputs: Any, items: list[Any]
    ) -> str:
        """An agent operation that is never current (``agent_operation`` on a generator,
        whose ``items`` are its output)."""
        if not self.tracing_enabled:
            return ""
        return self.trace_manager.start_agent_span(
            agent_id, operation, inputs, may_be_current=False, items=items
        )

    @_guarded(None)
    def log_agent_decision(
        self,
        agent_id: str,
        decision: Mapping[str, Any] | AgentDecision,
        *,
        confidence: float | None = None,
        reasoning: str | None = None,
        tools_used: Sequence[str] | None = None,
    ) -> None:
        """Record an agent's decision on its open operation in the current trace.

        ``decision`` is a mapping as the seed writes it (``decision_type``, ``inputs``,
        ``outputs``, ``confidence``, ``reasoning``) or an ``AgentDecision``: a ``decision``
        event, the decision in the operation's metadata, and its confidence as the
        ``decision_confidence`` score. The span id ``start_agent_span`` returned is accepted
        in place of the agent id (the call style before the seed's).
        """
        if not self.tracing_enabled:  # no operation is ever open: nothing to say
            return
        self.trace_manager.log_agent_decision(
            agent_id, decision, confidence=confidence, reasoning=reasoning, tools_used=tools_used
        )

    @_guarded(NO_SPAN)
    def end_agent_span(
        self, span_id: str, output: Any = None, *, error: str | BaseException | None = None
    ) -> AgentSpan | None:
        """End an agent operation with its outputs; an error marks it ERROR with the message.

        Returns the finished ``AgentSpan`` (None when the span is not open).
        """
        return self.trace_manager.end_agent_span(span_id, output, error=error)

    def finalize_trace(
        self,
        trace_id: str,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: str | BaseException | None = None,
    ) -> SimulationTrace | None:
        """Close a trace with its aggregated outcome (the workflow's output).

        What is still open in it (an operation or collaboration nobody ended) ends with it.
        Returns the finished ``SimulationTrace`` (None for a trace that is not open, or one
        not opened by ``create_simulation_trace``). Should closing it fail, the error handler
        ends what is still open of the trace.
        """
        started = time.perf_counter_ns()
        try:
            finished = self.trace_manager.finalize_trace(trace_id, outcome, error=error)
            if finished is None:
                return None
            cost, simulation = finished
            if cost is not None and self.config.enable_sampling:
                # Adaptive sampling weighs the trace's tracing cost.
                self.adaptive.trace_finished(cost[0], cost[1])
            return simulation
        except Exception as exc:
            self.error_handler.handle_trace_error(trace_id, exc)
            return None
        finally:
            self._account(started)

    @contextmanager
    def trace_operation(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        inputs: Any = None,
        as_type: str = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator[GuardedObservation]:
        """An operation around a block, current inside it; yields its observation (whose
        methods never raise into the block: ``GuardedObservation``).

        With ``agent_id`` it is that agent's operation (``<agent_id>.<name>``, an ``agent``
        observation, on which ``log_agent_decision(agent_id, ...)`` lands). Inside a trace it
        nests under the current observation; outside any trace it opens a trace of its own,
        finalized when the block exits. An exception in the block is recorded (level ERROR)
        and propagates unchanged; a failure of the tracing itself is counted and the block
        runs untraced. ``input`` is the former name of ``inputs``.
        """
        data = inputs if inputs is not None else input
        observation: Observation | _NoopObservation = NOOP
        token = None
        span_id = ""
        own_trace = ""
        started = time.perf_counter_ns()
        try:
            if self.tracing_enabled:
                if self.tracer.current() is None:
                    root = self.trace_manager.open_trace(
                        name,
                        root_name=f"{agent_id}.{name}" if agent_id else name,
                        root_type="agent" if agent_id else as_type,
                        agent_id=agent_id,
                        input=data,
                        metadata={"agent_id": agent_id, "operation": name, **(metadata or {})}
                        if agent_id
                        else metadata,
                    )
                    observation, own_trace = root, root.trace_id
                elif agent_id:
                    span_id = self.trace_manager.start_agent_span(
                        agent_id, name, data, metadata=metadata
                    )
                    observation = self.trace_manager.observation(span_id) or NOOP
                else:
                    observation = self.tracer.start_observation(
                        name, as_type=as_type, input=data, metadata=metadata
                    )
                    token = self.tracer.set_current(observation)
        except Exception as exc:
            self.error_handler.handle_tracing_error("trace_operation", exc)
        self._account(started)
        error: BaseException | None = None
        try:
            yield GuardedObservation(self, observation)
        except GeneratorExit:  # a generator around the block, stopped early: no error
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            if own_trace:
                self.finalize_trace(own_trace, error=error)
            elif span_id:
                self.end_agent_span(span_id, error=error)
            else:
                if token is not None:
                    self.tracer.reset_current(token)
                if error is not None:
                    from config.trace_manager import describe_error

                    self._end_safely(
                        observation, level="ERROR", status_message=describe_error(error)
                    )
                self._end_safely(observation)

    @_guarded(None)
    def _end_safely(
        self, observation: Observation | _NoopObservation | GuardedObservation, /, **kwargs: Any
    ) -> None:
        observation.end(**kwargs)

    def _start_child(
        self, name: str, *, as_type: str, input: Any, metadata: Mapping[str, Any] | None
    ) -> Observation | _NoopObservation:
        """An observation under the current one, not made current (a generator's: between
        its items the caller runs, in its own context)."""
        if not self.tracing_enabled:
            return NOOP
        try:
            return self.tracer.start_observation(
                name, as_type=as_type, input=input, metadata=metadata
            )
        except Exception as exc:
            self.error_handler.handle_tracing_error("observe", exc)
            return NOOP

    def track_collaboration(
        self,
        participating_agents: Sequence[str],
        workflow_id: str,
        workflow_data: Mapping[str, Any] | None = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> CollaborationSpan:
        """Start a collaboration between agents (a ``chain``); returns its handle.

        Pass the handle to ``log_coordination_message`` (it need not be current), or use it
        as a context manager: current inside the block (messages, conflicts and resolutions
        logged there land in it), ended when the last block using it exits (several threads or
        tasks may each enter it). Otherwise it ends with its
        trace, or with ``handle.end()``; outside any trace it opens a trace of its own.
        Given positionally in the guide's keyword order (``workflow_id`` first), the two are
        told apart by type: agents were recorded as the letters of the workflow's name.
        """
        if isinstance(participating_agents, str) and not isinstance(workflow_id, str):
            participating_agents, workflow_id = workflow_id, participating_agents
        agents = name_list(participating_agents)
        started = time.perf_counter_ns()
        try:
            if self.tracing_enabled:
                collaboration, _ = self.trace_manager.start_collaboration(
                    agents, workflow_id, workflow_data, metadata=metadata
                )
                # An instance attribute over the class's None, not a dataclass field.
                collaboration._owner = self  # type: ignore[misc]
                return collaboration
        except Exception as exc:
            self.error_handler.handle_tracing_error("track_collaboration", exc)
        finally:
            self._account(started)
        # Untraced: a handle that keeps what is logged in it, and records nothing.
        untraced = CollaborationSpan("", workflow_id, agents, [], [], None)
        untraced._owner = self  # type: ignore[misc]
        return untraced

    @_guarded(None)
    def enter_collaboration(self, collaboration: CollaborationSpan) -> None:
        """Make a collaboration current (``with`` calls this)."""
        tokens = self.trace_manager.enter_collaboration(collaboration)
        # The tokens stay with this thread or task (its context), which alone can reset them.
        _entered_collaborations.set((*_entered_collaborations.get(), (collaboration, tokens)))
        with self._collaboration_lock:
            key = id(collaboration)
            self._collaboration_blocks[key] = self._collaboration_blocks.get(key, 0) + 1

    def exit_collaboration(
        self, collaboration: CollaborationSpan, error: BaseException | None = None
    ) -> None:
        """Leave a collaboration's ``with`` block; the last block open in any thread or task
        ends it (ERROR when one of them raised)."""
        entered = _entered_collaborations.get()
        for index in range(len(entered) - 1, -1, -1):
            if entered[index][0] is collaboration:
                _entered_collaborations.set(entered[:index] + entered[index + 1 :])
                self._guard(
                    "track_collaboration", self.trace_manager.leave_collaboration, entered[index][1]
                )
                break
        key = id(collaboration)
        with self._collaboration_lock:
            still_open = self._collaboration_blocks.get(key, 0) - 1
            if still_open > 0:
                self._collaboration_blocks[key] = still_open
                if error is not None:
                    self._collaboration_errors.setdefault(key, error)
                return
            self._collaboration_blocks.pop(key, None)
            error = error or self._collaboration_errors.pop(key, None)
        self.end_collaboration(collaboration, error=error)

    @_guarded(None)
    def end_collaboration(
        self,
        collaboration: CollaborationSpan,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: BaseException | None = None,
    ) -> None:
        """End a collaboration; ``outcome`` becomes its ``resolution_outcome``."""
        self.trace_manager.end_collaboration(collaboration, outcome, error=error)

    @overload
    def log_coordination_message(
        self,
        collaboration: CollaborationSpan,
        from_agent: str,
        to_agent: str,
        message_type: str,
        content: Mapping[str, Any] | str,
    ) -> None: ...

    @overload
    def log_coordination_message(
        self, from_agent: str, to_agent: str, message_type: str, content: Mapping[str, Any] | str
    ) -> None: ...

    def log_coordination_message(self, *args: Any, **kwargs: Any) -> None:
        """Record a message passed between agents (a ``coordination.<type>`` event).

        As the seed calls it: ``(collaboration, from_agent, to_agent, message_type, content)``,
        into that collaboration whether current or not. Without the handle (the call style
        before the seed's), into the current collaboration or observation.
        """
        self._guard("log_coordination_message", self._log_coordination_message, *args, **kwargs)

    def _log_coordination_message(self, *args: Any, **kwargs: Any) -> None:
        collaboration = kwargs.pop("collaboration", None)
        if collaboration is None and args and isinstance(args[0], CollaborationSpan):
            collaboration, args = args[0], args[1:]
        names = ("from_agent", "to_agent", "message_type", "content")
        values = dict(zip(names, args, strict=False)) | kwargs
        missing = [name for name in names if name not in values]
        if missing or len(values) != len(names):
            raise TypeError(
                "log_coordination_message(collaboration, from_agent, to_agent, message_type, "
                f"content): missing or unknown arguments ({', '.join(missing) or 'extra'})"
            )
        if collaboration is not None and not collaboration.span_id:
            # An untraced handle (tracing off): the message is still the application's data.
            collaboration.coordination_messages.append({name: values[name] for name in names[:3]})
            return
        self.trace_manager.log_coordination_message(
            values["from_agent"],
            values["to_agent"],
            values["message_type"],
            values["content"],
            collaboration=collaboration,
        )

    @_guarded(None)
    def log_conflict(
        self, conflict_type: str, agents: Sequence[str], details: Mapping[str, Any]
    ) -> None:
        """Record a detected conflict between agents (level WARNING)."""
        self.trace_manager.log_conflict(conflict_type, agents, details)

    @_guarded(None)
    def log_conflict_resolution(
        self,
        conflict_type: str,
        rule: str,
        resolution: Mapping[str, Any],
        *,
        overturned_agent: str | None = None,
    ) -> None:
        """Record how a conflict was resolved, and whose decision was overturned."""
        self.trace_manager.log_conflict_resolution(
            conflict_type, rule, resolution, overturned_agent=overturned_agent
        )

    # --- reporting and lifecycle --------------------------------------------------------

    def get_performance_metrics(self) -> dict[str, Any]:
        """Tracing performance: success rate, latency, throughput, overhead and counts."""
        c = self.trace_manager.counters
        stats = self.tracer.stats
        elapsed = max(time.monotonic() - c.started, 1e-9)
        exporter_stats = self.client.stats
        return {
            "mode": self.mode,
            "success_rate": 1.0
            if not c.traces_finalized
            else 1 - c.traces_failed / c.traces_finalized,
            "avg_latency_ms": (c.operation_ns / c.operations / 1e6) if c.operations else 0.0,
            "throughput": c.traces_finalized / elapsed,
            "tracing_overhead_ms": (c.tracing_ns / c.tracing_calls / 1e6)
            if c.tracing_calls
            else 0.0,
            "operations": c.operations,
            "operations_failed": c.operations_failed,
            "traces_started": stats.traces_started,
            "traces_sampled_out": stats.traces_sampled_out,
            "traces_finalized": c.traces_finalized,
            "observations_recorded": stats.observations_recorded,
            "scores_recorded": stats.scores_recorded,
            "tracing_errors": self.error_handler.tracing_errors,
            "spans_failed": getattr(exporter_stats, "spans_failed", 0),
            "scores_failed": getattr(exporter_stats, "scores_failed", 0),
            "delivery_state": getattr(exporter_stats, "state", "ok"),
            "dead_letters": getattr(exporter_stats, "dead_letters", 0),
            "batches_pending": self.client.pending(),
            "effective_sample_rate": self.tracer.sampler.rate,
            "sampling_changes": list(self.adaptive.changes),
        }

    def health_check(self, timeout: float | None = None) -> dict[str, Any]:
        """The integration's health; ``available`` says whether traces can reach their
        destination now.

        ``available`` comes from a cheap probe: Langfuse's public health route and a read the
        keys must pass in langfuse mode (each at most ``timeout`` s, default
        ``LANGFUSE_TIMEOUT``), the store file in local mode; False when tracing is disabled or
        shut down, or the keys were rejected. The rest is the service's own view: tracing
        errors, delivery state, batches waiting (``degraded`` when some failed or the keys
        were rejected; ``disabled`` after ``shutdown()`` too).
        """
        from config.client import ConnectionCheck

        if self._closed:  # what is traced now is not recorded: nothing reaches anything
            probe = ConnectionCheck(False, self.destination, "tracing was shut down (shutdown())")
        else:
            probe = self.client.check_connection(_seconds(timeout, self.config.timeout))
        metrics = self.get_performance_metrics()
        failed = metrics["spans_failed"] + metrics["scores_failed"]
        # Refused by a batch, or by the probe just now (before any batch was sent).
        rejected = metrics["delivery_state"] == "credentials_rejected" or probe.keys_rejected
        status = (
            "disabled"  # shut down: nothing traced now is recorded
            if self.mode == "disabled" or self._closed
            else ("degraded" if failed or metrics["tracing_errors"] or rejected else "healthy")
        )
        available = probe.available and not rejected
        return {
            "available": available,
            "detail": probe.detail,
            "status": status,
            "mode": self.mode,
            "destination": self.destination,
            "sample_rate": self.tracer.sampler.rate,
            "tracing_errors": metrics["tracing_errors"],
            "delivery_failures": failed,
            "delivery_state": metrics["delivery_state"],
            "batches_pending": metrics["batches_pending"],
        }

    def flush(self, timeout: float = 5.0) -> bool:
        """Export everything batched and wait up to ``timeout`` s for delivery."""
        try:
            return self.tracer.flush(_seconds(timeout, 5.0))
        except Exception as exc:
            self.error_handler.handle_tracing_error("flush", exc)
            return False

    def shutdown(self, timeout: float = 5.0) -> None:
        """End what is still open (so it is recorded, not lost), flush, and close."""
        if self._closed:
            return
        self._closed = True
        try:
            self.trace_manager.end_open_traces()
        except Exception as exc:
            self.error_handler.handle_tracing_error("shutdown", exc)
        try:
            self.tracer.shutdown(_seconds(timeout, 5.0))
        except Exception as exc:
            self.error_handler.handle_tracing_error("shutdown", exc)


def _seconds(timeout: Any, default: float) -> float:
    """A wait given to ``flush``, ``shutdown`` or ``health_check`` in seconds: None (or NaN,
    or what is no number) is the default, a negative one 0, and at most a day. Compared
    as given, None failed inside the sender: ``shutdown(None)`` lost what was batched."""
    from config.limits import MAX_SECONDS

    if timeout is None or isinstance(timeout, bool):
        return default
    try:
        seconds = float(timeout)
    except OverflowError:  # a number past the float range: the longest wait, or none
        return 0.0 if timeout < 0 else float(MAX_SECONDS)
    except (TypeError, ValueError):
        return default
    if math.isnan(seconds):
        return default
    return min(max(seconds, 0.0), float(MAX_SECONDS))


# --- the process-wide service (the seed's accessors) ----------------------------------

_service: LangfuseIntegrationService | None = None
# The collaborations this thread or task is inside (``with``), innermost last, with the
# tokens that restore what was current before each.
_entered_collaborations: ContextVar[tuple[tuple[CollaborationSpan, Any], ...]] = ContextVar(
    "autoops_entered_collaborations", default=()
)
_service_lock = threading.Lock()


def get_langfuse_integration() -> LangfuseIntegrationService:
    """The process-wide service, created from the environment on first use.

    Should it not start (an invalid configuration, a store that cannot be opened), the
    process carries on untraced: a disabled service is returned and the reason logged.
    """
    global _service  # noqa: PLW0603  (the seed API is a process-wide service)
    with _service_lock:
        if _service is None:
            _service = _create_or_fallback(None, None, {})[0]
            atexit.register(_shutdown_at_exit)
            _arm_if_worker()
        return _service


def initialize_langfuse_integration(
    config: LangfuseConfig | None = None,
    masking: DataMaskingConfig | None = None,
    **kwargs: Any,
) -> bool:
    """(Re)create the process-wide service (the old one is shut down); True when it is ready.

    As the seed uses it at application start-up: False means the integration could not
    start as configured (invalid configuration, unusable store: the service then runs
    disabled) or its destination does not answer (langfuse mode: traces wait in the outbox
    until it does). Either way the application carries on; ``get_langfuse_integration()``
    returns the service. Tracing disabled by configuration counts as ready.
    """
    service, started = _create_or_fallback(config, masking, kwargs)
    install_langfuse_integration(service)
    if not started:
        return False
    if service.mode == "disabled":
        return True
    return service.client.check_connection(service.config.timeout).available


def install_langfuse_integration(service: LangfuseIntegrationService) -> LangfuseIntegrationService:
    """Make ``service`` the process-wide one (the previous one is shut down); returns it.

    For callers that build the service themselves and want its errors raised (the CLI).
    The previous service's data is flushed, and from then on the object passes every use on
    to the process-wide service: a reference an application took before it initialised the
    integration (``service = get_langfuse_integration()`` at import) keeps tracing.
    """
    global _service
    if isinstance(service, _ReplacedService):
        raise ValueError("this service was replaced and shut down; create a new one")
    with _service_lock:
        previous, _service = _service, service
        if previous is None:
            atexit.register(_shutdown_at_exit)
            _arm_if_worker()
    if previous is not None and previous is not service:
        previous.shutdown()
        object.__setattr__(previous, "__class__", _ReplacedService)
    return service


class _ReplacedService(LangfuseIntegrationService):
    """What a replaced, shut-down service becomes: every attribute is the process-wide
    service's (see ``install_langfuse_integration``), except ``shutdown``: the holder of an
    old reference shutting it down (an atexit hook, a fixture) must not end the live one."""

    def __getattribute__(self, name: str) -> Any:
        if name == "shutdown" or (name.startswith("__") and name.endswith("__")):
            return object.__getattribute__(self, name)
        return getattr(get_langfuse_integration(), name)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Nothing left to shut down: this service was shut down when it was replaced."""


def _create_or_fallback(
    config: LangfuseConfig | None, masking: DataMaskingConfig | None, options: dict[str, Any]
) -> tuple[LangfuseIntegrationService, bool]:
    """A service as configured, or a disabled one (and why, logged) when it cannot start."""
    try:
        return LangfuseIntegrationService(config, masking, **options), True
    except Exception as exc:
        from config.redaction import redact_secrets
        from config.settings import DataMaskingConfig, LangfuseConfig

        logger.error(
            "Langfuse integration could not start (%s); continuing without tracing",
            redact_secrets(f"{type(exc).__name__}: {exc}"),
        )
        disabled = LangfuseConfig.model_construct(enabled=False)
        return LangfuseIntegrationService(disabled, DataMaskingConfig.model_construct()), False


def _shutdown_at_exit() -> None:
    # Delivers while Langfuse makes progress; AUTOOPS_FLUSH_DEADLINE s without any ends it.
    if _service is not None:
        _service.shutdown(_service.config.flush_deadline)


# A multiprocessing worker (any start method) ends with os._exit: no atexit, and what it
# traced last waited in memory and was lost. Its exit runs multiprocessing's finalizers: one
# hands its traces over there. Armed through register_after_fork, because a worker clears
# the finalizers it inherits (or made while it imported) before it runs those functions.
class _ForkAnchor:
    """What ``multiprocessing.util.register_after_fork`` holds (it keeps objects weakly)."""


_FORK_ANCHOR = _ForkAnchor()
# The process that registered the after-fork arming, and the one whose exit is armed (pids:
# a forked child inherits both, and must do each once for itself).
_registered_in: int | None = None
_armed_in: int | None = None


def _register_for_workers() -> None:
    """Once per process, with multiprocessing loaded: every worker started after this (a
    forked one, or this very process when it is a spawn or forkserver worker importing the
    application before it starts) arms its exit when it starts, after multiprocessing has
    cleared the finalizers it inherited."""
    global _registered_in  # noqa: PLW0603  (once per process)
    mp_util = sys.modules.get("multiprocessing.util")
    if mp_util is None or _registered_in == os.getpid():
        return
    _registered_in = os.getpid()
    mp_util.register_after_fork(_FORK_ANCHOR, _arm_worker_exit)


def _before_fork() -> None:
    _register_for_workers()


def _arm_worker_exit(_anchor: object = None) -> None:
    global _armed_in  # noqa: PLW0603  (once per process)
    if _armed_in == os.getpid():  # armed twice, a worker waited twice for an unreachable host
        return
    _armed_in = os.getpid()
    sys.modules["multiprocessing.util"].Finalize(None, _flush_at_worker_exit, exitpriority=10)


def _arm_if_worker() -> None:
    """A service made in a multiprocessing worker (spawn and forkserver workers start without
    the parent's service, and a forked one may make its own): its exit hands the traces over
    too. Made while the worker imports the application, before it starts, the arming
    waits for its start (``_register_for_workers``)."""
    _register_for_workers()
    mp_process = sys.modules.get("multiprocessing.process")
    if mp_process is not None and mp_process.parent_process() is not None:
        _arm_worker_exit()


def _flush_at_worker_exit() -> None:
    # Hand over and deliver, not shut down: the traces still open here are copies of the
    # parent's, which ends them itself.
    if _service is not None:
        _service.flush(_service.config.flush_deadline)


os.register_at_fork(before=_before_fork)


# --- decorators for agent code ------------------------------------------------------------


def _call_input(
    service: LangfuseIntegrationService,
    function: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """What a decorated call records as input. A failure to read it (an argument whose
    ``as_dict()`` raises) is a tracing error: counted, and never the call's."""
    try:
        return call_input(function, args, kwargs)
    except Exception as exc:
        service.error_handler.handle_tracing_error("call_input", exc)
        return None


class _Recorded:
    """A generator's items recorded as they pass; ``send``, ``throw`` and ``close`` reach it
    unchanged (``yield from`` delegates them here), and its return value comes back."""

    def __init__(self, generator: Any, items: list[Any], running: Any = None) -> None:
        self._generator = generator
        self._items = items
        # A context the body runs in, step by step (an agent operation current in it).
        self._running = running or nullcontext

    def __iter__(self) -> _Recorded:
        return self

    def __next__(self) -> Any:
        with self._running():
            return self._kept(next(self._generator))

    def send(self, value: Any) -> Any:
        with self._running():
            return self._kept(self._generator.send(value))

    def throw(self, *error: Any) -> Any:
        with self._running():
            return self._kept(self._generator.throw(*error))

    def close(self) -> None:
        with self._running():
            self._generator.close()

    def _kept(self, item: Any) -> Any:
        self._items.append(item)
        return item


@overload
def observe(name: F, *, as_type: str = "span", capture_input: bool = True) -> F: ...


@overload
def observe(
    name: str | None = None, *, as_type: str = "span", capture_input: bool = True
) -> Callable[[F], F]: ...


def observe(
    name: str | Callable[..., Any] | None = None,
    *,
    as_type: str = "span",
    capture_input: bool = True,
) -> Any:
    """Trace calls of a function as an observation under the current one.

    ``@observe``, ``@observe()`` and ``@observe("name", as_type="tool")`` all work, on plain
    functions, ``async`` functions, generators (``send``, ``throw`` and the return value pass
    through) and async generators. Outside a trace the function runs untraced. Its return
    value is the output (a generator's: the list of what it yielded, its observation open
    from the first item to the last and never current, since between items the caller
    runs); an exception marks the observation ERROR and propagates.
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        # ``@observe`` without parentheses, as the guide writes it
        return observe(as_type=as_type, capture_input=capture_input)(name)

    def decorator(function: F) -> F:
        if isinstance(function, classmethod | staticmethod):
            # Above @classmethod or @staticmethod (not callable themselves): the function
            # they wrap is traced and wrapped again. A classmethod was taken for the name, and
            # the method then returned the decorator instead of running.
            return cast("F", type(function)(decorator(function.__func__)))
        label = name or function.__name__

        def operation(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Operation | None:
            """The call's observation to open, or None outside any trace."""
            from config.tracing.tracer import Tracer

            current = Tracer.current()
            if current is None:
                return None
            service = get_langfuse_integration()
            arguments = _call_input(service, function, args, kwargs) if capture_input else None
            # Inside an agent operation the name carries the agent (``pricing_agent.competitor_feed``)
            # so metrics can count tool calls per agent by name, without reading metadata.
            agent_id = current.agent_id
            named = label
            metadata = None
            if agent_id:
                named = label if label.startswith(f"{agent_id}.") else f"{agent_id}.{label}"
                metadata = {"agent_id": agent_id}
            return _Operation(service, named, as_type, arguments, metadata)

        if inspect.iscoroutinefunction(function):
            traced = _traced_coroutine(function, operation)
        elif inspect.isgeneratorfunction(function):
            traced = _traced_generator(function, operation)
        elif inspect.isasyncgenfunction(function):
            traced = _traced_async_generator(function, operation)
        else:
            traced = _traced_call(function, operation)
        return cast("F", functools.wraps(function)(traced))

    return decorator


@dataclass
class _Operation:
    """What a decorated call opens: an observation of this name, type, input and metadata."""

    service: LangfuseIntegrationService
    name: str
    as_type: str
    input: Any
    metadata: dict[str, Any] | None
    items: list[Any] = field(default_factory=list)  # a generator's, as they pass

    @contextmanager
    def around(self) -> Iterator[GuardedObservation]:
        """The observation, current inside the block (a call's)."""
        with self.service.trace_operation(
            self.name, as_type=self.as_type, input=self.input, metadata=self.metadata
        ) as observation:
            yield observation

    def alongside(self) -> Observation | _NoopObservation:
        """The observation, never current (a generator's: between items the caller runs)."""
        return self.service._start_child(
            self.name, as_type=self.as_type, input=self.input, metadata=self.metadata
        )

    def running(self) -> None:
        """An observed generator's body runs in its caller's context (its observation is
        never current: between items the caller runs)."""

    def end_items(
        self, observation: Observation | _NoopObservation, items: list[Any], error: Any = None
    ) -> None:
        """End a generator's observation: what it yielded, or the error that ended it (a
        caller stopping early, ``GeneratorExit``, is no error)."""
        from config.trace_manager import describe_error

        if error is None or isinstance(error, GeneratorExit):
            self.service._end_safely(observation, output=items)
        else:
            self.service._end_safely(
                observation, level="ERROR", status_message=describe_error(error)
            )


_OperationOf = Callable[[tuple[Any, ...], dict[str, Any]], "_Operation | None"]


class _EndsItems(Protocol):
    """What traces a generator: an observation beside the caller, ended with the items."""

    items: list[Any]  # what the generator yielded so far

    def alongside(self) -> Any: ...

    def running(self) -> Any:
        """What the generator's body runs in, item by item (None: the caller's context)."""

    def end_items(self, observation: Any, items: list[Any], error: Any = None) -> None: ...


_ItemsOf = Callable[[tuple[Any, ...], dict[str, Any]], "_EndsItems | None"]


def _traced_call(function: Callable[..., Any], operation: _OperationOf) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened = operation(args, kwargs)
        if opened is None:
            return function(*args, **kwargs)
        with opened.around() as observation:
            result = function(*args, **kwargs)
            opened.service._end_safely(observation, output=result)
            return result

    return wrapper


def _traced_coroutine(function: Callable[..., Any], operation: _OperationOf) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened = operation(args, kwargs)
        if opened is None:
            return await function(*args, **kwargs)
        with opened.around() as observation:
            result = await function(*args, **kwargs)
            opened.service._end_safely(observation, output=result)
            return result

    return wrapper


def _traced_generator(function: Callable[..., Any], operation: _ItemsOf) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened = operation(args, kwargs)
        if opened is None:
            return (yield from function(*args, **kwargs))
        observation = opened.alongside()
        items = opened.items
        try:
            # ``yield from`` hands send(), throw() and close() to the generator, and gives
            # back its return value, as the undecorated one would.
            result = yield from _Recorded(function(*args, **kwargs), items, opened.running())
        except BaseException as exc:
            opened.end_items(observation, items, exc)
            raise
        opened.end_items(observation, items)
        return result

    return wrapper


def _traced_async_generator(
    function: Callable[..., Any], operation: _ItemsOf
) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        opened = operation(args, kwargs)
        generator = function(*args, **kwargs)
        observation = opened.alongside() if opened is not None else NOOP
        items: list[Any] = opened.items if opened is not None else []
        try:
            # Async generators have no ``yield from``: asend(), athrow() and aclose() are
            # handed on by hand, so the caller drives it as the undecorated one.
            running = (opened.running() if opened is not None else None) or nullcontext
            step = generator.asend(None)
            while True:
                try:
                    with running():
                        item = await step
                except StopAsyncIteration:
                    break
                if opened is not None:
                    items.append(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    with running():
                        await generator.aclose()
                    raise
                except BaseException as exc:
                    step = generator.athrow(exc)
                else:
                    step = generator.asend(sent)
        except BaseException as exc:
            if opened is not None:
                opened.end_items(observation, items, exc)
            raise
        if opened is not None:
            opened.end_items(observation, items)

    return wrapper


@dataclass
class _AgentItems:
    """The agent operation of a generator method, for ``_traced_generator``: started beside
    the caller, ended by its span id with the items yielded (or the error that ended it)."""

    service: LangfuseIntegrationService
    span_id: str
    # Shared with the trace manager: ended with its trace before the generator closed, the
    # operation still has what was yielded (its output was lost).
    items: list[Any]

    def alongside(self) -> _NoopObservation:
        return NOOP  # the operation is reached by its span id

    def running(self) -> Callable[[], Any]:
        """The operation is current while the generator's body runs (a decision logged
        there is its own, not its caller's or another generator's of the same agent), and
        what the body makes current (a ``with`` block around a ``yield``) stays current for
        it from one item to the next; the caller, between items, sees none of it."""
        service, span_id = self.service, self.span_id
        body: list[Any] = []  # what was current in the body when it last yielded

        @contextmanager
        def current() -> Iterator[None]:
            operation = service.trace_manager.observation(span_id)
            if operation is None:  # ended (its trace ended first)
                yield
                return
            # The operation, then what the body had made current on top of it (which may
            # have ended since: the operation is current again then, not the caller's).
            tokens = [service.tracer.set_current(operation)]
            inside = body[0] if body else None
            if inside is not None and inside is not operation and not inside.ended:
                tokens.append(service.tracer.set_current(inside))
            try:
                yield
            finally:
                body[:] = [service.tracer.made_current()]
                for token in reversed(tokens):
                    service.tracer.reset_current(token)

        return current

    def end_items(self, observation: Any, items: list[Any], error: Any = None) -> None:
        if error is None or isinstance(error, GeneratorExit):  # a caller stopping early
            self.service.end_agent_span(self.span_id, output=items)
        else:
            self.service.end_agent_span(self.span_id, error=error)


def agent_operation(operation: str) -> Callable[[F], F]:
    """Trace an agent method (``self.agent_id``) as an ``agent`` observation; plain and
    ``async`` methods alike.

    When the method returns an ``AgentDecision``, the decision is logged on the span.
    """

    def decorator(function: F) -> F:
        def start(service: LangfuseIntegrationService, agent: Any, args: Any, kwargs: Any) -> str:
            try:
                agent_id = agent.agent_id
            except Exception as exc:  # no agent_id: the method runs as it would untraced
                service.error_handler.handle_tracing_error("agent_operation", exc)
                return ""
            inputs = _call_input(service, function, (agent, *args), kwargs)
            return service.start_agent_span(agent_id, operation, inputs=inputs)

        def end(service: LangfuseIntegrationService, span_id: str, result: Any) -> None:
            if isinstance(result, AgentDecision):
                service.log_agent_decision(span_id, result)
                service.end_agent_span(span_id, output=result.as_dict())
            else:
                service.end_agent_span(span_id, output=result)

        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
            # Its operation runs from the first item to the last, beside the caller (which
            # runs between items: as observe does it); its output, the items. Ended at once,
            # it recorded the generator object as output.
            def operation_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _AgentItems | None:
                from config.tracing.tracer import Tracer

                if Tracer.current() is None:
                    return None
                service = get_langfuse_integration()
                try:
                    agent_id = args[0].agent_id
                except Exception as exc:  # no agent_id: the method runs as it would untraced
                    service.error_handler.handle_tracing_error("agent_operation", exc)
                    return None
                inputs = _call_input(service, function, args, kwargs)
                items: list[Any] = []
                span_id = service._start_agent_span_beside(agent_id, operation, inputs, items)
                return _AgentItems(service, span_id, items) if span_id else None

            traced = (
                _traced_async_generator(function, operation_of)
                if inspect.isasyncgenfunction(function)
                else _traced_generator(function, operation_of)
            )
            return cast("F", functools.wraps(function)(traced))

        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def async_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                from config.tracing.tracer import Tracer

                if Tracer.current() is None:
                    return await function(self, *args, **kwargs)
                service = get_langfuse_integration()
                span_id = start(service, self, args, kwargs)
                try:
                    result = await function(self, *args, **kwargs)
                except BaseException as exc:
                    service.end_agent_span(span_id, error=exc)
                    raise
                end(service, span_id, result)
                return result

            return cast("F", async_wrapper)

        @functools.wraps(function)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            from config.tracing.tracer import Tracer

            if Tracer.current() is None:
                return function(self, *args, **kwargs)
            service = get_langfuse_integration()
            span_id = start(service, self, args, kwargs)
            try:
                result = function(self, *args, **kwargs)
            except BaseException as exc:
                service.end_agent_span(span_id, error=exc)
                raise
            end(service, span_id, result)
            return result

        return cast("F", wrapper)

    return decorator
