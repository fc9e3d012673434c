"""The names of the simulated AutoOps system: agents, routes, severities, conflict rules.

A leaf: it imports nothing of the project, so the validator, the generator, the agents, the
orchestrator and the CLI's settings checks share one list of names without importing each
other. The meaning of each name is in docs/agents.md and docs/events.md.
"""

from __future__ import annotations

INVENTORY, PRICING, PROMOTION = "inventory_agent", "pricing_agent", "promotion_agent"
AGENT_IDS: tuple[str, ...] = (INVENTORY, PRICING, PROMOTION)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
DEFAULT_SEVERITY = "medium"

# event type -> (agents in order, mode). "collaborative": pricing and promotion negotiate
# inside a collaboration span after inventory reported; "sequential": one after another.
ROUTES: dict[str, tuple[tuple[str, ...], str]] = {
    "demand_spike": ((INVENTORY, PRICING, PROMOTION), "collaborative"),
    "inventory_low": ((INVENTORY, PRICING), "sequential"),
    "competitor_price_change": ((PRICING, PROMOTION), "collaborative"),
    "supply_delay": ((INVENTORY, PRICING), "sequential"),
    "seasonal_trend": ((INVENTORY, PRICING, PROMOTION), "collaborative"),
    "slow_moving_inventory": ((INVENTORY, PRICING, PROMOTION), "collaborative"),
}

# The orchestrator's conflict rules (docs/agents.md): conflict type -> the rules settling it.
CONFLICT_RULES: dict[str, tuple[str, ...]] = {
    "price_vs_discount": ("stock_short_keeps_price", "promotion_over_price_rise"),
    "restock_vs_clearance": ("availability_first",),
}


def sampling_rule_names() -> dict[str, tuple[str, ...]]:
    """The names a sampling rule can match, per rule kind (event type, severity, agent)."""
    return {"event_type": tuple(ROUTES), "severity": SEVERITIES, "agent": AGENT_IDS}
