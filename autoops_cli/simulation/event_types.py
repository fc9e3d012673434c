"""The known simulation event types and the ``data`` fields each one carries.

One table serves the validator (``autoops_cli.simulation.events``), the generator
(``autoops_cli.simulation.generator``) and the format's documentation (``docs/events.md``, which a
test compares with this table), so a field added here is added everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldKind = Literal["int", "float", "str"]

# How each kind is named in reasons and in the documentation.
KIND_NAMES: dict[FieldKind, str] = {"int": "integer", "float": "number", "str": "string"}


@dataclass(frozen=True)
class FieldSpec:
    """One documented field of an event's ``data`` object."""

    name: str
    kind: FieldKind
    default: int | float | str
    description: str


@dataclass(frozen=True)
class EventTypeSpec:
    """One known event type: what it means and the ``data`` fields it carries."""

    name: str
    description: str
    fields: tuple[FieldSpec, ...]

    def field_names(self) -> tuple[str, ...]:
        """The documented ``data`` field names, in table order."""
        return tuple(field.name for field in self.fields)


def _price() -> FieldSpec:
    return FieldSpec("current_price", "float", 29.99, "current selling price")


def _unit_cost() -> FieldSpec:
    return FieldSpec("unit_cost", "float", 18.0, "what one unit costs the retailer")


def _stock(default: int) -> FieldSpec:
    return FieldSpec("current_stock", "int", default, "units on hand")


def _daily_demand(default: float) -> FieldSpec:
    return FieldSpec("daily_demand", "float", default, "units sold per day")


_SPECS = (
    EventTypeSpec(
        "demand_spike",
        "Demand for a product rises well above what was forecast.",
        (
            _stock(100),
            FieldSpec("forecast_demand", "int", 150, "units expected to be demanded"),
            _price(),
            _unit_cost(),
        ),
    ),
    EventTypeSpec(
        "inventory_low",
        "Stock of a product has fallen to or below its reorder point.",
        (
            _stock(10),
            FieldSpec("reorder_point", "int", 25, "stock level at which to reorder"),
            _daily_demand(5.0),
            FieldSpec("lead_time_days", "int", 7, "days a reorder takes to arrive"),
            _price(),
            _unit_cost(),
        ),
    ),
    EventTypeSpec(
        "competitor_price_change",
        "A competitor changed its price for the same product.",
        (
            _price(),
            FieldSpec("competitor_price", "float", 27.99, "the competitor's new price"),
            FieldSpec("competitor_id", "str", "COMP_1", "which competitor"),
            _unit_cost(),
            _stock(100),
        ),
    ),
    EventTypeSpec(
        "supply_delay",
        "A supplier announced that a delivery will arrive late.",
        (
            _stock(60),
            FieldSpec("delay_days", "int", 5, "days the delivery is late"),
            _daily_demand(8.0),
            FieldSpec("supplier_id", "str", "SUP_1", "which supplier"),
            _price(),
            _unit_cost(),
        ),
    ),
    EventTypeSpec(
        "seasonal_trend",
        "A seasonal pattern is expected to change demand.",
        (
            FieldSpec("season", "str", "holiday", "name of the season or occasion"),
            FieldSpec("demand_multiplier", "float", 1.3, "expected demand relative to normal"),
            _stock(100),
            FieldSpec("forecast_demand", "int", 130, "units expected to be demanded"),
            _price(),
            _unit_cost(),
        ),
    ),
    EventTypeSpec(
        "slow_moving_inventory",
        "A product sells so slowly that its stock ties up capital.",
        (
            _stock(300),
            FieldSpec("days_since_last_sale", "int", 45, "days since the last unit sold"),
            FieldSpec("weekly_sales", "float", 3.0, "units sold per week"),
            _price(),
            _unit_cost(),
        ),
    ),
)

EVENT_TYPES: dict[str, EventTypeSpec] = {spec.name: spec for spec in _SPECS}
