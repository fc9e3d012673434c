"""The integration core's basic flow: simulation events traced end to end.

With no configuration the traces land in the local store (``$AUTOOPS_HOME/traces.db``, else
``.autoops/traces.db``); with LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST set,
the same code sends them to that Langfuse. Run it from the repository root:

    python examples/langfuse_integration_demo.py
    autoops traces show <a trace id it printed>

Two styles, one trace each:

1. explicit calls, for code that drives its own workflow: ``create_simulation_trace``,
   ``start_agent_span``, ``log_agent_decision``, ``end_agent_span``, ``finalize_trace``;
2. decorators, for agent classes: ``agent_operation`` on the agent's method and ``observe`` on
   its tools. The agent then holds no tracing code at all.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from config.errors import ExitCode
from config.langfuse_integration import (
    LangfuseIntegrationService,
    agent_operation,
    get_langfuse_integration,
    observe,
)
from config.models import AgentDecision


def simulation_event(event_type: str, product_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event as the simulation engine emits it (the format of docs/events.md)."""
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "event_type": event_type,
        "trigger_source": "simulation",
        "product_id": product_id,
        "severity": "high",
        "data": data,
    }


# --- 1. explicit calls ----------------------------------------------------------------


def restock_with_explicit_calls(service: LangfuseIntegrationService, run_id: str) -> str:
    """An inventory decision traced call by call; returns the trace id."""
    event = simulation_event(
        "demand_spike", "PROD_123", {"current_stock": 50, "forecast_demand": 150}
    )
    # One simulation event = one trace, named simulation.<event_type>. Its root is the
    # orchestrator workflow (a CHAIN), which becomes the current observation. The session id
    # groups the traces of one run; `agents` is the route, used by per-agent sampling rules.
    trace_id = service.create_simulation_trace(event, session_id=run_id, agents=["inventory_agent"])

    # An agent operation (AGENT observation "inventory_agent.assess_inventory") in that trace,
    # under its workflow. parent_trace_id names the trace, so this works even when another
    # trace is current (several events handled at once).
    inventory_span = service.start_agent_span(
        agent_id="inventory_agent",
        operation="assess_inventory",
        parent_trace_id=trace_id,
        inputs=event["data"],
    )

    # A tool call as a context manager: a TOOL observation nested under the agent span.
    # (The observe decorator, in part 2, names and tags tools like this by itself.)
    with service.trace_operation(
        "inventory_agent.forecast_model",
        as_type="tool",
        inputs={"forecast_demand": event["data"]["forecast_demand"]},
        metadata={"agent_id": "inventory_agent"},
    ) as tool:
        daily_demand = event["data"]["forecast_demand"] / 7
        tool.update(output={"daily_demand": round(daily_demand, 1)})

    reorder_quantity = round(daily_demand * 14 - event["data"]["current_stock"])
    # The decision, logged by agent id onto its open operation in the current trace: an EVENT
    # "inventory_agent.decision" under the agent span, and its confidence (0 to 1) as the
    # decision_confidence score, with the reasoning as the score's comment.
    service.log_agent_decision(
        "inventory_agent",
        {
            "decision_type": "restock",
            "inputs": event["data"],
            "outputs": {"reorder_quantity": reorder_quantity},
            "confidence": 0.91,
            "reasoning": f"stock covers {event['data']['current_stock'] / daily_demand:.1f} days",
            "tools_used": ["forecast_model"],
        },
    )
    service.end_agent_span(inventory_span, {"reorder_quantity": reorder_quantity})

    # Close the trace with the workflow's aggregated outcome (the trace's output).
    service.finalize_trace(
        trace_id,
        {
            "event_id": event["event_id"],
            "decisions": {"inventory_agent": {"reorder_quantity": reorder_quantity}},
            "final_actions": {"reorder_quantity": reorder_quantity},
        },
    )
    return trace_id


# --- 2. decorators --------------------------------------------------------------------


@observe("competitor_feed", as_type="tool")
def competitor_feed(product_id: str) -> dict[str, Any]:
    """A tool. Called inside an agent operation it is recorded as pricing_agent.competitor_feed,
    with its arguments as input and its return value as output."""
    return {"product_id": product_id, "competitor_price": 27.49}


class PricingAgent:
    """An agent as the AutoOps application writes them: no tracing code inside."""

    agent_id = "pricing_agent"  # agent_operation names the observation after it

    @agent_operation("optimize_price")
    def optimize(self, event: dict[str, Any]) -> AgentDecision:
        """Follow a cheaper competitor, never more than 10 % down."""
        price = event["data"]["current_price"]
        competitor = competitor_feed(event["product_id"])["competitor_price"]
        new_price = round(max(competitor, price * 0.9), 2)
        # Returning an AgentDecision is enough: the decorator logs it (decision event and
        # decision_confidence score) and ends the span with it as output.
        return AgentDecision(
            agent_id=self.agent_id,
            decision_type="price_decrease",
            outputs={"current_price": price, "new_price": new_price},
            confidence=0.82,
            reasoning=f"competitor at {competitor:.2f} undercuts {price:.2f}",
            tools_used=("competitor_feed",),
        )


def reprice_with_decorators(service: LangfuseIntegrationService, run_id: str) -> str:
    """A pricing decision traced by the decorators alone; returns the trace id."""
    event = simulation_event(
        "competitor_price_change", "PROD_007", {"current_price": 29.99, "competitor_price": 27.49}
    )
    trace_id = service.create_simulation_trace(event, session_id=run_id, agents=["pricing_agent"])
    # The decorators find the open trace themselves (outside a trace they do nothing).
    decision = PricingAgent().optimize(event)
    service.finalize_trace(
        trace_id,
        {
            "event_id": event["event_id"],
            "decisions": {"pricing_agent": decision.outputs},
            "final_actions": {"price": decision.outputs["new_price"]},
        },
    )
    return trace_id


def main() -> int:
    # The process-wide service, configured from the environment, .env and autoops.toml. The
    # decorators use this same service, so explicit calls and decorators mix freely.
    service = get_langfuse_integration()
    run_id = f"demo-{uuid.uuid4().hex[:8]}"
    print(f"mode {service.mode}: traces go to {service.destination}")

    traces = [
        restock_with_explicit_calls(service, run_id),
        reprice_with_decorators(service, run_id),
    ]

    # Batches are exported in the background; flush before exiting, bounded by the deadline
    # (AUTOOPS_FLUSH_DEADLINE). In langfuse mode what is not delivered by then stays in the
    # outbox, on disk, for the next run or `autoops buffer flush`.
    delivered = service.flush(timeout=service.config.flush_deadline)
    metrics = service.get_performance_metrics()
    service.shutdown(timeout=0)  # flushed above; shutdown only releases the exporter

    print(
        f"run {run_id}: {metrics['traces_finalized']} traces, "
        f"{metrics['observations_recorded']} observations, "
        f"{metrics['scores_recorded']} scores recorded"
    )
    for trace_id in traces:
        print(f"  trace {trace_id}  (autoops traces show {trace_id})")
    if not delivered:
        print(
            f"not delivered to {service.destination} yet: {metrics['batches_pending']} batch(es) "
            "kept in the outbox; `autoops buffer flush` sends them",
            file=sys.stderr,
        )
        return int(ExitCode.NETWORK)
    print(f"delivered to {service.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
