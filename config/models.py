"""The seed's data models of the integration: traces, spans, decisions and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


def name_list(names: Any) -> list[str]:
    """Names (agents, tags, tools) as a list of texts, whatever the application passed:
    None is none, one text is one name (not its letters), any other iterable its items as
    texts; what cannot be read is none (a tracing matter, not the call's)."""
    if names is None:
        return []
    if isinstance(names, str):
        return [names]
    try:
        return [name if isinstance(name, str) else str(name) for name in names]
    except Exception:
        return []


@dataclass(frozen=True)
class AgentDecision:
    """What an agent decided: its outputs, how sure it is, why, and with which tools.

    Returned by agent operations; the ``agent_operation`` decorator records it on the agent's
    span (a ``decision`` event and a ``decision_confidence`` score).
    """

    agent_id: str
    decision_type: str
    outputs: dict[str, Any]
    confidence: float
    reasoning: str = ""
    tools_used: tuple[str, ...] = ()
    inputs: dict[str, Any] = field(default_factory=dict)  # what the decision was made from

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        # Built by hand: dataclasses.asdict deep-copies, and this runs for every decision.
        document: dict[str, Any] = {
            "agent_id": self.agent_id,
            "decision_type": self.decision_type,
            "outputs": self.outputs,
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "tools_used": name_list(self.tools_used),
        }
        # An agent operation records its inputs as the span's input already; a decision made
        # elsewhere (a generator, a test) carries them here.
        if self.inputs:
            document["inputs"] = self.inputs
        return document


# The seed's data models, field for field (names, types, order; the seed gives no defaults).
# The service records a trace, its agent operations and its collaborations in them while
# they are open; ``finalize_trace`` and ``end_agent_span`` return the finished record.


@dataclass
class SimulationTrace:
    """One simulation event's trace: what triggered it, who took part, how it ended."""

    trace_id: str
    event_type: str
    trigger_source: str
    start_time: datetime
    end_time: datetime | None
    participating_agents: list[str]
    event_data: dict[str, Any]
    outcome: dict[str, Any] | None


@dataclass
class AgentSpan:
    """One agent operation: its inputs and outputs, the tools it used, its decision's confidence."""

    span_id: str
    agent_id: str
    operation_type: str
    parent_trace_id: str
    start_time: datetime
    end_time: datetime | None
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    tools_used: list[str]
    decision_confidence: float | None


@dataclass
class CollaborationSpan:
    """A collaboration between agents: the messages they passed, conflicts, the resolution.

    ``track_collaboration`` returns one as the handle of the collaboration: pass it to
    ``log_coordination_message`` (as the seed does), or use it as a context manager (the
    collaboration is current inside the block and ends with it). ``resolution_outcome`` is
    the latest resolution; ``resolutions`` keeps every one when several conflicts were settled.
    """

    span_id: str
    workflow_type: str
    participating_agents: list[str]
    coordination_messages: list[dict[str, Any]]
    conflicts_detected: list[dict[str, Any]]
    resolution_outcome: dict[str, Any] | None
    trace_id: str = ""
    resolutions: list[dict[str, Any]] = field(default_factory=list)
    # Set by the service that opened it: what ``with`` and ``end()`` act on. Not a field:
    # the data model stays plain data (``asdict``, ``replace``, copies and pickles of it
    # carry no service, its store or its locks).
    _owner: ClassVar[Any] = None

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_owner"}

    def end(self, outcome: dict[str, Any] | None = None) -> None:
        """End the collaboration (its span; its own trace too, if it opened one)."""
        if self._owner is not None:
            self._owner.end_collaboration(self, outcome)

    def __enter__(self) -> CollaborationSpan:
        if self._owner is not None:
            self._owner.enter_collaboration(self)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        if self._owner is not None:
            self._owner.exit_collaboration(self, error)


@dataclass
class AgentPerformanceMetrics:
    """Per-agent performance, as ``autoops metrics`` reports it (docs/metrics.md).

    ``average_response_time`` in ms; ``decision_accuracy`` the mean decision confidence.
    """

    agent_id: str
    operation_count: int
    average_response_time: float
    success_rate: float
    tool_usage_stats: dict[str, int]
    decision_accuracy: float
    collaboration_score: float


@dataclass
class SystemWorkflowMetrics:
    """System-wide workflow performance, as ``autoops metrics`` reports it (docs/metrics.md).

    ``average_workflow_duration`` in ms; ``system_throughput`` in events per second.
    """

    total_events_processed: int
    average_workflow_duration: float
    agent_coordination_efficiency: float
    conflict_resolution_rate: float
    system_throughput: float
