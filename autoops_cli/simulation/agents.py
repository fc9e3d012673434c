"""The simulated AutoOps agents: inventory, pricing and promotion.

Deterministic, rule-based decisions: the same event and context always give the same
decision. Agents know nothing about Langfuse; they are instrumented only through the core's
decorators (``agent_operation`` for their operations, ``observe`` for their tools). The rules
are documented in ``docs/agents.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from autoops_cli.simulation.events import SimulationEvent
from config.langfuse_integration import agent_operation, observe
from config.models import AgentDecision

SAFETY_DAYS = 3  # buffer on top of the lead time before stock runs out
COVER_DAYS = 14  # how many days of demand a restock order covers beyond lead time + safety
MARGIN_FLOOR = 1.15  # a price never goes below unit cost x this
MAX_PRICE_STEP = 0.10  # a price moves at most 10 % per decision


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def _cents(value: float) -> float:
    return round(value + 1e-9, 2)


@dataclass(frozen=True)
class AgentContext:
    """What earlier agents of the same workflow decided (passed by the orchestrator)."""

    inventory: AgentDecision | None = None
    pricing: AgentDecision | None = None

    def as_dict(self) -> dict[str, Any]:
        """What a traced agent operation records as this argument: the earlier outputs."""
        found: dict[str, Any] = {}
        if self.inventory is not None:
            found["inventory"] = self.inventory.outputs
        if self.pricing is not None:
            found["pricing"] = self.pricing.outputs
        return found


# --- tools (each a ``tool`` observation when traced) -----------------------------------


@observe("stock_lookup", as_type="tool")
def stock_lookup(product_id: str, current_stock: int) -> dict[str, Any]:
    """Units on hand for a product (the simulation carries them in the event)."""
    return {"product_id": product_id, "current_stock": current_stock}


@observe("forecast_model", as_type="tool")
def forecast_model(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """Daily demand and the demand expected over the next week."""
    if "daily_demand" in data:
        daily = float(data["daily_demand"])
    elif "weekly_sales" in data:
        daily = float(data["weekly_sales"]) / 7
    else:
        daily = float(data.get("forecast_demand", 0)) / 7
    if event_type == "seasonal_trend":
        daily *= float(data.get("demand_multiplier", 1.0))
    return {"daily_demand": round(daily, 3), "weekly_forecast": round(daily * 7, 1)}


@observe("competitor_feed", as_type="tool")
def competitor_feed(product_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The competitor's price, when the event carries one."""
    price = data.get("competitor_price")
    return {
        "product_id": product_id,
        "competitor_price": price,
        "competitor_id": data.get("competitor_id"),
    }


@observe("elasticity_model", as_type="tool")
def elasticity_model(event_type: str, severity: str) -> dict[str, Any]:
    """Price elasticity of demand for this situation (negative: demand falls as price rises)."""
    base = {"demand_spike": -0.8, "seasonal_trend": -1.1, "slow_moving_inventory": -1.8}.get(
        event_type, -1.3
    )
    if severity in ("high", "critical"):
        base *= 0.8  # urgent situations make demand less price-sensitive
    return {"elasticity": round(base, 2)}


@observe("promotion_history", as_type="tool")
def promotion_history(product_id: str) -> dict[str, Any]:
    """How past promotions of similar products lifted sales (a fixed simulated table)."""
    return {"product_id": product_id, "avg_lift_per_10pct": 0.18}


# --- agents ---------------------------------------------------------------------------


class InventoryAgent:
    """Forecasts demand, decides whether to restock and how much to reorder."""

    agent_id = "inventory_agent"

    @agent_operation("assess_inventory")
    def assess(self, event: SimulationEvent) -> AgentDecision:
        """Days of supply against lead time; restock, hold, or reduce stock."""
        data = event.data
        stock = stock_lookup(event.product_id, int(data.get("current_stock", 0)))["current_stock"]
        forecast = forecast_model(event.event_type, data)
        daily = max(forecast["daily_demand"], 0.01)
        lead = int(data.get("lead_time_days", 7)) + int(data.get("delay_days", 0))
        days_of_supply = stock / daily
        reorder_point = int(data.get("reorder_point", math.ceil(daily * (lead + SAFETY_DAYS))))
        if event.event_type == "slow_moving_inventory":
            excess = max(0, stock - math.ceil(daily * (lead + COVER_DAYS)))
            action, quantity = ("reduce_stock" if excess else "hold"), 0
            reasoning = f"{days_of_supply:.0f} days of supply against {lead} days lead time; {excess} units excess"
            confidence = _clamp(0.6 + min(days_of_supply, 120) / 300, 0.0, 0.95)
        elif stock <= reorder_point or days_of_supply < lead + SAFETY_DAYS:
            quantity = max(0, math.ceil(daily * (lead + SAFETY_DAYS + COVER_DAYS) - stock))
            action = "restock"
            reasoning = (
                f"stock {stock} covers {days_of_supply:.1f} days, under lead time {lead} + "
                f"{SAFETY_DAYS} safety days; reorder {quantity} units"
            )
            shortfall = (lead + SAFETY_DAYS - days_of_supply) / (lead + SAFETY_DAYS)
            confidence = _clamp(0.7 + 0.25 * shortfall, 0.5, 0.97)
        else:
            action, quantity = "hold", 0
            reasoning = (
                f"stock {stock} covers {days_of_supply:.1f} days, enough for lead time {lead}"
            )
            confidence = _clamp(0.65 + min(days_of_supply - lead, 30) / 100, 0.5, 0.95)
        return AgentDecision(
            agent_id=self.agent_id,
            decision_type=action,
            outputs={
                "action": action,
                "reorder_quantity": quantity,
                "days_of_supply": round(days_of_supply, 1),
                "daily_demand": forecast["daily_demand"],
                "restock": action == "restock",
            },
            confidence=round(confidence, 3),
            reasoning=reasoning,
            tools_used=("stock_lookup", "forecast_model"),
        )


class PricingAgent:
    """Optimises the price within the margin floor and the competitor's bounds."""

    agent_id = "pricing_agent"

    @agent_operation("optimize_price")
    def optimize(self, event: SimulationEvent, context: AgentContext) -> AgentDecision:
        """Move the price by at most 10 % toward what the situation calls for."""
        data = event.data
        price = float(data.get("current_price", 0.0))
        floor = _cents(float(data.get("unit_cost", 0.0)) * MARGIN_FLOOR)
        competitor_price = competitor_feed(event.product_id, data)["competitor_price"]
        elasticity = elasticity_model(event.event_type, event.severity)["elasticity"]
        short = bool(context.inventory and context.inventory.outputs.get("restock"))
        target, why = price, "no reason to move the price"
        if competitor_price is not None and competitor_price < price * 0.98:
            target, why = (
                float(competitor_price),
                f"competitor at {competitor_price:.2f} undercuts {price:.2f}",
            )
        elif competitor_price is not None and competitor_price > price * 1.05:
            target, why = (
                float(competitor_price) * 0.98,
                f"competitor at {competitor_price:.2f} leaves room",
            )
        elif event.event_type in ("demand_spike", "seasonal_trend", "inventory_low") and short:
            target, why = (
                price * (1 + min(MAX_PRICE_STEP, 0.5 / abs(elasticity) * 0.1)),
                "demand above stock",
            )
        elif event.event_type == "supply_delay" and short:
            target, why = price * 1.03, "supply delayed while stock is short"
        elif event.event_type == "slow_moving_inventory":
            target, why = price * 0.95, "stock not moving"
        target = _clamp(target, price * (1 - MAX_PRICE_STEP), price * (1 + MAX_PRICE_STEP))
        new_price = max(_cents(target), floor)
        change = (new_price - price) / price if price else 0.0
        action = "increase" if change > 0.001 else "decrease" if change < -0.001 else "hold"
        at_floor = new_price == floor and target < floor
        confidence = 0.9 - abs(change) * 1.5 - (0.15 if at_floor else 0.0)
        reasoning = f"{why}; {action} {price:.2f} -> {new_price:.2f} (floor {floor:.2f}, elasticity {elasticity})"
        return AgentDecision(
            agent_id=self.agent_id,
            decision_type=f"price_{action}",
            outputs={
                "action": action,
                "current_price": price,
                "new_price": new_price,
                "change_pct": round(change * 100, 2),
                "price_floor": floor,
            },
            confidence=round(_clamp(confidence, 0.4, 0.95), 3),
            reasoning=reasoning,
            tools_used=("competitor_feed", "elasticity_model"),
        )


class PromotionAgent:
    """Decides whether to run a promotion and how deep the discount goes."""

    agent_id = "promotion_agent"

    @agent_operation("plan_promotion")
    def plan(self, event: SimulationEvent, context: AgentContext) -> AgentDecision:
        """Discount slow stock, answer a cheaper competitor, ride a season; never when short."""
        data = event.data
        lift = promotion_history(event.product_id)["avg_lift_per_10pct"]
        elasticity_model(event.event_type, event.severity)
        short = bool(context.inventory and context.inventory.outputs.get("restock"))
        depth, why = 0, "no promotion needed"
        if event.event_type == "slow_moving_inventory":
            depth = int(_clamp(int(data.get("days_since_last_sale", 0)) // 3, 10, 40))
            why = f"no sale for {data.get('days_since_last_sale')} days: clearance"
        elif event.event_type == "competitor_price_change":
            price, competitor = (
                float(data.get("current_price", 0)),
                float(data.get("competitor_price", 0)),
            )
            gap = (price - competitor) / price if price else 0.0
            if gap > 0.10:
                depth, why = 10, f"competitor {gap:.0%} cheaper"
        elif (
            event.event_type == "seasonal_trend" and float(data.get("demand_multiplier", 1)) >= 1.2
        ):
            depth, why = 15, f"{data.get('season')} season campaign"
        elif event.event_type == "demand_spike" and event.severity == "low":
            depth, why = 5, "small spike: loyalty promotion"
        if depth and short and event.event_type != "slow_moving_inventory":
            why += " (stock short: proposed anyway, the orchestrator arbitrates)"
        run = depth > 0
        confidence = (
            0.8 - depth / 200 + (0.1 if event.event_type == "slow_moving_inventory" else 0.0)
        )
        return AgentDecision(
            agent_id=self.agent_id,
            decision_type="run_promotion" if run else "no_promotion",
            outputs={
                "run_promotion": run,
                "discount_pct": depth,
                "expected_lift_pct": round(depth / 10 * lift * 100, 1),
                "clearance": event.event_type == "slow_moving_inventory" and run,
            },
            confidence=round(_clamp(confidence, 0.4, 0.95), 3),
            reasoning=why,
            tools_used=("promotion_history", "elasticity_model"),
        )
