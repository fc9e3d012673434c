"""The orchestrator: routes each event to its agents, lets them collaborate, settles conflicts.

Routing, the collaboration protocol and the conflict rules are documented in
``docs/agents.md``. Tracing goes only through the core's API (collaborations, coordination
messages, conflicts and their resolutions); the workflow's own trace is opened and closed by
the replay engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from autoops_cli.simulation.agents import AgentContext, InventoryAgent, PricingAgent, PromotionAgent
from autoops_cli.simulation.catalog import INVENTORY, PRICING, PROMOTION, ROUTES
from autoops_cli.simulation.events import SimulationEvent
from config.langfuse_integration import get_langfuse_integration
from config.models import AgentDecision


@dataclass(frozen=True)
class Conflict:
    """Two agents' decisions that cannot both stand, and how it was settled."""

    conflict_type: str
    agents: tuple[str, str]
    rule: str
    winner: str
    overturned: str
    details: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "conflict_type": self.conflict_type,
            "agents": list(self.agents),
            "rule": self.rule,
            "winner": self.winner,
            "overturned": self.overturned,
            "details": self.details,
        }


@dataclass
class WorkflowOutcome:
    """What the system decided for one event."""

    event_id: str
    event_type: str
    mode: str
    agents: tuple[str, ...]
    decisions: dict[str, AgentDecision] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    messages: int = 0
    final_actions: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The trace's output: the aggregated outcome."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "mode": self.mode,
            "agents": list(self.agents),
            "decisions": {agent: d.outputs for agent, d in self.decisions.items()},
            "confidence": {agent: d.confidence for agent, d in self.decisions.items()},
            "conflicts_detected": len(self.conflicts),
            "conflicts_resolved": len(self.conflicts),
            "conflicts": [c.as_dict() for c in self.conflicts],
            "coordination_messages": self.messages,
            "final_actions": self.final_actions,
        }


class Orchestrator(Protocol):
    """What ``autoops replay --orchestrator module:factory`` expects the factory to return.

    It may also have ``agents_for(event) -> Sequence[str]``, the agents the event will be
    routed to: the replay passes them to the core when it opens the trace, so that sampling
    rules per agent (``[sampling.agent]``) apply. Without it, agent rules match nothing.
    """

    def handle(self, event: SimulationEvent) -> Any:
        """Process one event; return a ``WorkflowOutcome`` or a mapping like its ``as_dict()``."""


class RetailOrchestrator:
    """The AutoOps orchestrator of the inventory, pricing and promotion agents."""

    def __init__(self) -> None:
        self.inventory = InventoryAgent()
        self.pricing = PricingAgent()
        self.promotion = PromotionAgent()

    @staticmethod
    def agents_for(event: SimulationEvent) -> tuple[str, ...]:
        """The agents ``handle`` will route this event to (known before they run)."""
        return ROUTES[event.event_type][0]

    def handle(self, event: SimulationEvent) -> WorkflowOutcome:
        """Route the event, run the agents, settle conflicts, aggregate the outcome."""
        agents, mode = ROUTES[event.event_type]
        outcome = WorkflowOutcome(event.event_id, event.event_type, mode, agents)
        service = get_langfuse_integration()
        inventory = self.inventory.assess(event) if INVENTORY in agents else None
        if inventory is not None:
            outcome.decisions[INVENTORY] = inventory
        if mode == "sequential":
            context = AgentContext(inventory=inventory)
            outcome.decisions[PRICING] = self.pricing.optimize(event, context)
        else:
            with service.track_collaboration(
                [a for a in agents if a != INVENTORY], "pricing_and_promotion"
            ):
                self._collaborate(event, inventory, outcome, service)
        outcome.final_actions = _final_actions(outcome)
        return outcome

    def _collaborate(
        self,
        event: SimulationEvent,
        inventory: AgentDecision | None,
        outcome: WorkflowOutcome,
        service: Any,
    ) -> None:
        if inventory is not None:
            for agent in (PRICING, PROMOTION):
                service.log_coordination_message(
                    INVENTORY, agent, "stock_status", inventory.outputs
                )
                outcome.messages += 1
        pricing = self.pricing.optimize(event, AgentContext(inventory=inventory))
        service.log_coordination_message(PRICING, PROMOTION, "price_proposal", pricing.outputs)
        promotion = self.promotion.plan(event, AgentContext(inventory=inventory, pricing=pricing))
        service.log_coordination_message(
            PROMOTION, PRICING, "promotion_proposal", promotion.outputs
        )
        outcome.messages += 2
        outcome.decisions[PRICING] = pricing
        outcome.decisions[PROMOTION] = promotion
        for conflict in detect_conflicts(inventory, pricing, promotion):
            service.log_conflict(conflict.conflict_type, conflict.agents, conflict.details)
            service.log_conflict_resolution(
                conflict.conflict_type,
                conflict.rule,
                {"winner": conflict.winner, "overturned": conflict.overturned},
                overturned_agent=conflict.overturned,
            )
            service.log_coordination_message(
                "orchestrator",
                conflict.overturned,
                "resolution",
                {"conflict": conflict.conflict_type, "winner": conflict.winner},
            )
            outcome.messages += 1
            outcome.conflicts.append(conflict)


def detect_conflicts(
    inventory: AgentDecision | None, pricing: AgentDecision, promotion: AgentDecision
) -> list[Conflict]:
    """The documented conflict rules (docs/agents.md)."""
    conflicts: list[Conflict] = []
    restock = bool(inventory and inventory.outputs.get("restock"))
    discount = promotion.outputs.get("run_promotion", False)
    if pricing.outputs.get("action") == "increase" and discount:
        # Availability first: with stock short the price rise stands and the discount goes;
        # otherwise the promotion runs and the price is held.
        winner, loser = (PRICING, PROMOTION) if restock else (PROMOTION, PRICING)
        conflicts.append(
            Conflict(
                "price_vs_discount",
                (PRICING, PROMOTION),
                "stock_short_keeps_price" if restock else "promotion_over_price_rise",
                winner,
                loser,
                {
                    "new_price": pricing.outputs.get("new_price"),
                    "discount_pct": promotion.outputs.get("discount_pct"),
                    "restock": restock,
                },
            )
        )
    if restock and discount and inventory is not None:
        # Discounting stock that is being reordered because it runs short: availability first,
        # the restock stands and the discount is cancelled.
        conflicts.append(
            Conflict(
                "restock_vs_clearance",
                (INVENTORY, PROMOTION),
                "availability_first",
                INVENTORY,
                PROMOTION,
                {
                    "reorder_quantity": inventory.outputs.get("reorder_quantity"),
                    "discount_pct": promotion.outputs.get("discount_pct"),
                    "days_of_supply": inventory.outputs.get("days_of_supply"),
                },
            )
        )
    return conflicts


def _final_actions(outcome: WorkflowOutcome) -> dict[str, Any]:
    overturned = {c.overturned for c in outcome.conflicts}
    actions: dict[str, Any] = {}
    inventory = outcome.decisions.get(INVENTORY)
    if inventory is not None:
        restock = inventory.outputs.get("restock") and INVENTORY not in overturned
        actions["reorder_quantity"] = inventory.outputs.get("reorder_quantity", 0) if restock else 0
    pricing = outcome.decisions.get(PRICING)
    if pricing is not None:
        keep = PRICING not in overturned
        actions["price"] = (
            pricing.outputs["new_price"] if keep else pricing.outputs["current_price"]
        )
    promotion = outcome.decisions.get(PROMOTION)
    if promotion is not None:
        run = promotion.outputs.get("run_promotion") and PROMOTION not in overturned
        actions["discount_pct"] = promotion.outputs.get("discount_pct", 0) if run else 0
    return actions
