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
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

from config.models import AgentDecision, CollaborationSpan
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

    def event(self, name: str, **_: Any) -> _NoopObservation:
        """Ignored."""
        return self

    def score(self, name: str, value: float | str, **_: Any) -> None:
        """Ignored."""


NOOP = _NoopObservation()


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
    every process configured alike keeps the same traces.
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
        self._closed = False

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

    # --- the seed's API -----------------------------------------------------------------

    def create_simulation_trace(
        self,
        event: Mapping[str, Any],
        *,
        session_id: str | None = None,
        trace_id: str | None = None,
        agents: Sequence[str] | None = None,
    ) -> str:
        """Open the trace of one simulation event and its orchestrator workflow (made current).

        ``event`` is the event as a mapping (``event_type``, ``event_id``, ``product_id``,
        ``severity``, ``trigger_source``, ``timestamp``, ``data``, other fields). With a
        session id and an event id the trace id is derived from both, so a replay with the
        same run id produces the same ids. ``agents`` are the agents the event is routed to:
        sampling is decided here, before any agent runs, so agent rules need them up front.
        Returns the trace id ("" when tracing failed).
        """
        started = time.perf_counter_ns()
        try:
            event_id = event.get("event_id")
            if trace_id is None and session_id and event_id:
                from config.tracing.ids import trace_id_for

                trace_id = trace_id_for(session_id, str(event_id))
            if not self.tracing_enabled:
                return trace_id or ""
            return self.trace_manager.create_simulation_trace(
                event, session_id=session_id, trace_id=trace_id, agents=agents
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
        input_data: Any = None,
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Start an agent operation under the current observation (made current); its span id."""
        return self.trace_manager.start_agent_span(
            agent_id, operation, input_data, metadata=metadata
        )

    @_guarded(None)
    def log_agent_decision(
        self,
        span_id: str,
        decision: Mapping[str, Any] | AgentDecision,
        *,
        confidence: float | None = None,
        reasoning: str | None = None,
        tools_used: Sequence[str] | None = None,
    ) -> None:
        """Record a decision on an open agent span: a ``decision`` event and its score."""
        self.trace_manager.log_agent_decision(
            span_id, decision, confidence=confidence, reasoning=reasoning, tools_used=tools_used
        )

    @_guarded(None)
    def end_agent_span(
        self, span_id: str, output: Any = None, *, error: str | BaseException | None = None
    ) -> None:
        """End an agent operation; an error marks it ERROR with the message."""
        self.trace_manager.end_agent_span(span_id, output, error=error)

    def finalize_trace(
        self,
        trace_id: str,
        outcome: Mapping[str, Any] | None = None,
        *,
        error: str | BaseException | None = None,
    ) -> None:
        """Close a simulation trace with its aggregated outcome (the workflow's output).

        Should closing it fail, the error handler ends what is still open of the trace.
        """
        started = time.perf_counter_ns()
        try:
            cost = self.trace_manager.finalize_trace(trace_id, outcome, error=error)
            if cost is not None and self.config.enable_sampling:
                # Adaptive sampling weighs the trace's tracing cost.
                self.adaptive.trace_finished(cost[0], cost[1])
        except Exception as exc:
            self.error_handler.handle_trace_error(trace_id, exc)
        finally:
            self._account(started)

    @contextmanager
    def trace_operation(
        self,
        name: str,
        *,
        as_type: str = "span",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Iterator[Observation | _NoopObservation]:
        """An observation around a block, nested under the current one, current inside it.

        An exception in the block marks it ERROR and propagates unchanged; a failure of the
        tracing itself is counted and the block runs untraced.
        """
        observation: Observation | _NoopObservation = NOOP
        token = None
        started = time.perf_counter_ns()
        try:
            if self.tracer.current() is not None:
                observation = self.tracer.start_observation(
                    name, as_type=as_type, input=input, metadata=metadata
                )
                token = self.tracer.set_current(observation)
        except Exception as exc:
            self.error_handler.handle_tracing_error("trace_operation", exc)
        self._account(started)
        try:
            yield observation
        except BaseException as exc:
            self._end_safely(
                observation, level="ERROR", status_message=f"{type(exc).__name__}: {exc}"
            )
            raise
        finally:
            if token is not None:
                self.tracer.reset_current(token)
            self._end_safely(observation)

    @_guarded(None)
    def _end_safely(self, observation: Observation | _NoopObservation, /, **kwargs: Any) -> None:
        observation.end(**kwargs)

    @contextmanager
    def track_collaboration(
        self, agents: Sequence[str], purpose: str, *, metadata: Mapping[str, Any] | None = None
    ) -> Iterator[CollaborationSpan]:
        """A collaboration between agents (a ``chain``); messages and conflicts go inside."""
        with self.trace_operation(
            f"collaboration.{purpose}",
            as_type="chain",
            input={"agents": list(agents), "purpose": purpose},
            metadata={"agents": list(agents), "purpose": purpose, **(metadata or {})},
        ) as observation:
            with self.trace_manager.collaboration(
                observation.span_id, observation.trace_id, agents, purpose
            ) as collaboration:
                yield collaboration
            try:
                observation.update(
                    output={
                        "messages": len(collaboration.messages),
                        "conflicts": len(collaboration.conflicts),
                        "resolutions": collaboration.resolutions,
                    }
                )
            except Exception as exc:
                self.error_handler.handle_tracing_error("track_collaboration", exc)

    @_guarded(None)
    def log_coordination_message(
        self, from_agent: str, to_agent: str, message_type: str, content: Mapping[str, Any] | str
    ) -> None:
        """Record a message passed between agents inside the current collaboration."""
        self.trace_manager.log_coordination_message(from_agent, to_agent, message_type, content)

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

    def health_check(self) -> dict[str, Any]:
        """A local view of the integration's health (no network call)."""
        metrics = self.get_performance_metrics()
        failed = metrics["spans_failed"] + metrics["scores_failed"]
        status = (
            "disabled"
            if self.mode == "disabled"
            else ("degraded" if failed or metrics["tracing_errors"] else "healthy")
        )
        return {
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
            return self.tracer.flush(timeout)
        except Exception as exc:
            self.error_handler.handle_tracing_error("flush", exc)
            return False

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and close; open observations are left as they are."""
        if self._closed:
            return
        self._closed = True
        try:
            self.tracer.shutdown(timeout)
        except Exception as exc:
            self.error_handler.handle_tracing_error("shutdown", exc)


# --- the process-wide service (the seed's accessors) ----------------------------------

_service: LangfuseIntegrationService | None = None
_service_lock = threading.Lock()


def get_langfuse_integration() -> LangfuseIntegrationService:
    """The process-wide service, created from the environment on first use."""
    global _service  # noqa: PLW0603  (the seed API is a process-wide service)
    with _service_lock:
        if _service is None:
            _service = LangfuseIntegrationService()
            atexit.register(_shutdown_at_exit)
        return _service


def initialize_langfuse_integration(
    config: LangfuseConfig | None = None,
    masking: DataMaskingConfig | None = None,
    **kwargs: Any,
) -> LangfuseIntegrationService:
    """(Re)create the process-wide service with explicit settings; the old one is shut down."""
    global _service
    with _service_lock:
        previous, _service = _service, LangfuseIntegrationService(config, masking, **kwargs)
        if previous is None:
            atexit.register(_shutdown_at_exit)
    if previous is not None:
        previous.shutdown()
    return _service


def _shutdown_at_exit() -> None:
    # Delivers while Langfuse makes progress; AUTOOPS_FLUSH_DEADLINE s without any ends it.
    if _service is not None:
        _service.shutdown(_service.config.flush_deadline)


# --- decorators for agent code ------------------------------------------------------------


def observe(
    name: str | None = None, *, as_type: str = "span", capture_input: bool = True
) -> Callable[[F], F]:
    """Trace calls of a function as an observation under the current one.

    Outside a trace the function runs untraced. Its return value is the output; an
    exception marks the observation ERROR and propagates.
    """

    def decorator(function: F) -> F:
        label = name or function.__name__

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from config.tracing.tracer import Tracer

            current = Tracer.current()
            if current is None:
                return function(*args, **kwargs)
            service = get_langfuse_integration()
            arguments = call_input(function, args, kwargs) if capture_input else None
            # Inside an agent operation the name carries the agent (``pricing_agent.competitor_feed``)
            # so metrics can count tool calls per agent by name, without reading metadata.
            agent_id = current.agent_id
            named = label
            metadata = None
            if agent_id:
                named = label if label.startswith(f"{agent_id}.") else f"{agent_id}.{label}"
                metadata = {"agent_id": agent_id}
            with service.trace_operation(
                named, as_type=as_type, input=arguments, metadata=metadata
            ) as observation:
                result = function(*args, **kwargs)
                service._end_safely(observation, output=result)
                return result

        return cast("F", wrapper)

    return decorator


def agent_operation(operation: str) -> Callable[[F], F]:
    """Trace an agent method (``self.agent_id``) as an ``agent`` observation.

    When the method returns an ``AgentDecision``, the decision is logged on the span.
    """

    def decorator(function: F) -> F:
        @functools.wraps(function)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            from config.tracing.tracer import Tracer

            if Tracer.current() is None:
                return function(self, *args, **kwargs)
            service = get_langfuse_integration()
            span_id = service.start_agent_span(
                self.agent_id, operation, input_data=call_input(function, (self, *args), kwargs)
            )
            try:
                result = function(self, *args, **kwargs)
            except Exception as exc:
                service.end_agent_span(span_id, error=exc)
                raise
            if isinstance(result, AgentDecision):
                service.log_agent_decision(span_id, result)
                service.end_agent_span(span_id, output=result.as_dict())
            else:
                service.end_agent_span(span_id, output=result)
            return result

        return cast("F", wrapper)

    return decorator
