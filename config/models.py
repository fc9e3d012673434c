"""The seed's data models of the integration: traces, spans, decisions and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
            "tools_used": list(self.tools_used),
        }
        # An agent operation records its inputs as the span's input already; a decision made
        # elsewhere (a generator, a test) carries them here.
        if self.inputs:
            document["inputs"] = self.inputs
        return document


@dataclass
class SimulationTrace:
    """One simulation event's trace, as the service tracks it while it is open."""

    trace_id: str
    event_type: str
    event_id: str | None
    product_id: str | None
    session_id: str | None
    sampled: bool
    started_ns: int
    agent_spans: list[str] = field(default_factory=list)
    status: str = "running"


@dataclass
class AgentSpan:
    """One agent operation while it is open."""

    span_id: str
    trace_id: str
    agent_id: str
    operation: str
    started_ns: int
    decision: AgentDecision | None = None
    status: str = "running"


@dataclass
class CollaborationSpan:
    """A collaboration between agents: its messages and conflicts."""

    span_id: str
    trace_id: str
    agents: tuple[str, ...]
    purpose: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    resolutions: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AgentPerformanceMetrics:
    """Per-agent performance (the seed's names; computed by ``autoops metrics``)."""

    agent_id: str
    operation_count: int = 0
    average_response_time: float = 0.0  # ms
    p50_response_time: float = 0.0
    p95_response_time: float = 0.0
    success_rate: float = 1.0
    tool_usage_stats: dict[str, int] = field(default_factory=dict)
    decision_accuracy: float = 0.0  # mean decision confidence
    decisions_overturned: int = 0
    collaboration_score: float = 0.0


@dataclass
class SystemWorkflowMetrics:
    """System-wide workflow performance (the seed's names)."""

    total_events_processed: int = 0
    average_workflow_duration: float = 0.0  # ms
    agent_coordination_efficiency: float = 0.0
    conflict_resolution_rate: float = 1.0
    system_throughput: float = 0.0  # events per second
