"""Collaboration: agents negotiating, a conflict between them, and how it was resolved.

For each of two events the pricing and promotion agents work inside a collaboration span: they
exchange proposals (coordination messages), the orchestrator detects that a price rise and a
discount clash (a conflict, level WARNING) and resolves it by a rule, naming the agent whose
decision it overturned. When the trace ends, the core scores each agent operation caught in
the conflict with ``decision_overturned`` (1 overturned, 0 upheld), which is what
``autoops metrics`` counts per agent. The first trace is then read back as a tree.

    python examples/collaboration_demo.py
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from config.errors import ExitCode
from config.langfuse_integration import (
    LangfuseIntegrationService,
    agent_operation,
    get_langfuse_integration,
)
from config.models import AgentDecision

PRICING, PROMOTION = "pricing_agent", "promotion_agent"


class PricingAgent:
    agent_id = PRICING

    @agent_operation("optimize_price")
    def optimize(self, event: dict[str, Any]) -> AgentDecision:
        """Demand is up: raise the price 8 %."""
        price = event["data"]["current_price"]
        new_price = round(price * 1.08, 2)
        return AgentDecision(
            PRICING, "price_increase", {"new_price": new_price}, 0.8, "demand above forecast"
        )


class PromotionAgent:
    agent_id = PROMOTION

    @agent_operation("plan_promotion")
    def plan(self, event: dict[str, Any]) -> AgentDecision:
        """The season is starting: a 15 % campaign."""
        return AgentDecision(
            PROMOTION, "run_promotion", {"discount_pct": 15}, 0.7, "holiday season campaign"
        )


def seasonal_event(*, current_stock: int, forecast_demand: int) -> dict[str, Any]:
    """A seasonal trend event; stock under the forecast means stock is short."""
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "event_type": "seasonal_trend",
        "trigger_source": "forecast_engine",
        "product_id": "PROD_031",
        "severity": "medium",
        "data": {
            "season": "holiday",
            "current_stock": current_stock,
            "forecast_demand": forecast_demand,
            "current_price": 24.99,
        },
    }


def handle(service: LangfuseIntegrationService, event: dict[str, Any], run_id: str) -> str:
    """One event through the two agents, with their collaboration traced; the trace id."""
    trace_id = service.create_simulation_trace(
        event, session_id=run_id, agents=[PRICING, PROMOTION]
    )
    stock_short = event["data"]["current_stock"] < event["data"]["forecast_demand"]
    # A CHAIN "collaboration.pricing_and_promotion". The handle is the seed's CollaborationSpan;
    # used with `with`, it is current inside the block: the agent operations, messages,
    # conflicts and resolutions there are recorded under it, and it ends with the block.
    collab = service.track_collaboration(
        workflow_id="pricing_and_promotion",
        participating_agents=[PRICING, PROMOTION],
        workflow_data={"trigger": event["event_type"], "coordination_type": "negotiation"},
    )
    with collab:

        def send(sender: str, receiver: str, message_type: str, content: dict[str, Any]) -> None:
            # A coordination message (EVENT "coordination.<type>"), also kept on the handle
            # (``collab.coordination_messages``): the collaboration's output counts them.
            service.log_coordination_message(collab, sender, receiver, message_type, content)

        pricing = PricingAgent().optimize(event)
        send(PRICING, PROMOTION, "price_proposal", pricing.outputs)
        promotion = PromotionAgent().plan(event)
        send(PROMOTION, PRICING, "promotion_proposal", promotion.outputs)

        # A price rise and a discount cannot both stand: a conflict (EVENT, level WARNING).
        details = {**pricing.outputs, **promotion.outputs, "stock_short": stock_short}
        service.log_conflict("price_vs_discount", [PRICING, PROMOTION], details)
        # Availability first: with stock short the price rise stands and the promotion goes;
        # otherwise the promotion runs and the price is held.
        if stock_short:
            rule, winner, overturned = "stock_short_keeps_price", PRICING, PROMOTION
        else:
            rule, winner, overturned = "promotion_over_price_rise", PROMOTION, PRICING
        resolution = {"winner": winner, "overturned": overturned}
        service.log_conflict_resolution(
            "price_vs_discount", rule, resolution, overturned_agent=overturned
        )
        send("orchestrator", overturned, "resolution", resolution)

    print(
        f"  {event['event_id']}: {len(collab.coordination_messages)} messages, conflict price_vs_discount, "
        f"rule {rule}: {overturned} overturned"
    )
    # The overturned agent's action is dropped from what the system does.
    price = pricing.outputs["new_price"] if winner == PRICING else event["data"]["current_price"]
    discount = promotion.outputs["discount_pct"] if winner == PROMOTION else 0
    # Ending the trace scores both agent operations: decision_overturned 1 for the loser.
    service.finalize_trace(
        trace_id,
        {
            "event_id": event["event_id"],
            "mode": "collaborative",
            "decisions": {PRICING: pricing.outputs, PROMOTION: promotion.outputs},
            "conflicts_detected": 1,
            "conflicts_resolved": 1,
            "final_actions": {"price": price, "discount_pct": discount},
        },
    )
    return trace_id


def main() -> int:
    service = get_langfuse_integration()
    run_id = f"collab-{uuid.uuid4().hex[:8]}"
    print(f"mode {service.mode}: traces go to {service.destination}")
    traces = [
        handle(service, seasonal_event(current_stock=40, forecast_demand=130), run_id),
        handle(service, seasonal_event(current_stock=400, forecast_demand=130), run_id),
    ]
    delivered = service.flush(timeout=service.config.flush_deadline)
    service.shutdown(timeout=0)
    if not delivered:
        print(
            f"not delivered to {service.destination} yet: kept in the outbox; "
            "`autoops buffer flush` sends it",
            file=sys.stderr,
        )
        return int(ExitCode.NETWORK)

    # Read the first trace back, as anyone would: `autoops traces show` reads the local store
    # in local mode and the Langfuse API with keys (where ingestion can take a few seconds).
    print(f"autoops traces show {traces[0]}:")
    shown = subprocess.run(
        [sys.executable, "-m", "autoops_cli", "traces", "show", traces[0]],
        capture_output=True,
        text=True,
        check=False,
    )
    print(
        shown.stdout.rstrip() or f"  not readable yet ({shown.stderr.strip()}); try again shortly"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
