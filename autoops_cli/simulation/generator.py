"""The seed's ``TestDataGenerator``: realistic simulation events and agent decisions; a writer.

The same seed always gives the same data (a private ``random.Random``, never the global
one), so generated files can be checked in and compared byte for byte. Values are drawn
around a fixed catalogue of products, so one product keeps its price and cost across events.
``autoops events generate`` and the tests use it; so can the AutoOps application's own tests.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import random
import secrets
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from autoops_cli.output_files import is_special, open_writer
from autoops_cli.simulation.catalog import INVENTORY, PRICING, PROMOTION, SEVERITIES
from autoops_cli.simulation.event_types import EVENT_TYPES
from autoops_cli.simulation.events import format_timestamp
from config.errors import LocalFileError
from config.models import AgentDecision

DEFAULT_START = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
PRODUCT_COUNT = 50
SEVERITY_WEIGHTS = (30, 40, 22, 8)  # low, medium, high, critical, in percent
TRIGGER_SOURCES: dict[str, tuple[str, ...]] = {
    "demand_spike": ("iot_sensor", "pos_system", "forecast_engine"),
    "inventory_low": ("inventory_system", "iot_sensor"),
    "competitor_price_change": ("competitor_monitor",),
    "supply_delay": ("supplier_api",),
    "seasonal_trend": ("forecast_engine",),
    "slow_moving_inventory": ("inventory_system", "pos_system"),
}
# Demand relative to normal that each season brings (low, high).
SEASONS: dict[str, tuple[float, float]] = {
    "holiday": (1.3, 2.2),
    "black_friday": (1.8, 3.0),
    "back_to_school": (1.2, 1.8),
    "summer": (0.8, 1.4),
    "spring": (0.9, 1.3),
    "winter": (0.7, 1.2),
}


@dataclass(frozen=True)
class _Product:
    product_id: str
    price: float
    unit_cost: float
    daily_demand: float


def _catalogue(rng: random.Random) -> list[_Product]:
    products = []
    for number in range(1, PRODUCT_COUNT + 1):
        price = round(rng.randint(4, 149) + rng.choice((0.49, 0.95, 0.99)), 2)
        products.append(
            _Product(
                product_id=f"PROD_{number:03d}",
                price=price,
                unit_cost=round(price * rng.uniform(0.40, 0.75), 2),
                daily_demand=round(rng.uniform(2.0, 25.0), 1),
            )
        )
    return products


def _pricing(product: _Product) -> dict[str, Any]:
    return {"current_price": product.price, "unit_cost": product.unit_cost}


def _demand_spike(rng: random.Random, product: _Product) -> dict[str, Any]:
    stock = rng.randint(20, 400)
    # Most spikes outrun the stock; some are absorbed by it.
    factor = rng.uniform(1.2, 3.0) if rng.random() < 0.85 else rng.uniform(0.6, 1.0)
    return {"current_stock": stock, "forecast_demand": round(stock * factor), **_pricing(product)}


def _inventory_low(rng: random.Random, product: _Product) -> dict[str, Any]:
    reorder_point = rng.randint(15, 80)
    return {
        "current_stock": rng.randint(0, reorder_point),
        "reorder_point": reorder_point,
        "daily_demand": round(product.daily_demand * rng.uniform(0.8, 1.3), 1),
        "lead_time_days": rng.randint(2, 21),
        **_pricing(product),
    }


def _competitor_price_change(rng: random.Random, product: _Product) -> dict[str, Any]:
    return {
        "current_price": product.price,
        "competitor_price": round(product.price * rng.uniform(0.75, 1.25), 2),
        "competitor_id": f"COMP_{rng.randint(1, 8)}",
        "unit_cost": product.unit_cost,
        "current_stock": rng.randint(20, 500),
    }


def _supply_delay(rng: random.Random, product: _Product) -> dict[str, Any]:
    return {
        "current_stock": rng.randint(5, 250),
        "delay_days": rng.randint(1, 21),
        "daily_demand": round(product.daily_demand * rng.uniform(0.8, 1.3), 1),
        "supplier_id": f"SUP_{rng.randint(1, 12)}",
        **_pricing(product),
    }


def _seasonal_trend(rng: random.Random, product: _Product) -> dict[str, Any]:
    season = rng.choice(sorted(SEASONS))
    multiplier = round(rng.uniform(*SEASONS[season]), 2)
    return {
        "season": season,
        "demand_multiplier": multiplier,
        "current_stock": rng.randint(50, 600),
        "forecast_demand": round(product.daily_demand * 7 * multiplier),  # a week's demand
        **_pricing(product),
    }


def _slow_moving_inventory(rng: random.Random, product: _Product) -> dict[str, Any]:
    return {
        "current_stock": rng.randint(150, 1200),
        "days_since_last_sale": rng.randint(14, 120),
        "weekly_sales": round(rng.uniform(0.0, 6.0), 1),
        **_pricing(product),
    }


_DATA_BUILDERS: dict[str, Callable[[random.Random, _Product], dict[str, Any]]] = {
    "demand_spike": _demand_spike,
    "inventory_low": _inventory_low,
    "competitor_price_change": _competitor_price_change,
    "supply_delay": _supply_delay,
    "seasonal_trend": _seasonal_trend,
    "slow_moving_inventory": _slow_moving_inventory,
}


class TestDataGenerator:
    """The seed's test data generator: realistic simulation events and agent decisions.

    Reproducible: one private ``random.Random`` per generator, seeded once, so the same seed
    and the same calls give the same data (``seed=None`` draws a fresh seed). Events are drawn
    around a fixed catalogue of products, so a product keeps its price and cost across events;
    event ids run ``evt-000001``, ``evt-000002`` ... and timestamps grow by 1 to 120 s from
    ``start`` (default 2026-11-20T08:00:00Z).
    """

    __test__ = False  # a library class, not a pytest test class

    def __init__(self, seed: int | None = 42, *, start: datetime | None = None) -> None:
        first = DEFAULT_START if start is None else start
        if first.tzinfo is None or first.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self._rng = random.Random(seed)
        self._products = _catalogue(self._rng)
        self._clock = first
        self._count = 0

    def generate_simulation_event(self, event_type: str) -> dict[str, Any]:
        """One event of ``event_type`` as a JSON-ready dict (``ValueError`` for an unknown type).

        The seed's fields (``event_type``, ``trigger_source``, ``product_id``, ``timestamp``)
        plus ``event_id``, ``severity`` and the type's ``data`` fields (docs/events.md).
        """
        if event_type not in EVENT_TYPES:
            known = ", ".join(sorted(EVENT_TYPES))
            raise ValueError(f"unknown event type {event_type!r}; known: {known}")
        rng = self._rng
        self._count += 1
        product = rng.choice(self._products)
        values = _DATA_BUILDERS[event_type](rng, product)
        event = {
            "event_id": f"evt-{self._count:06d}",
            "timestamp": format_timestamp(self._clock),
            "event_type": event_type,
            "trigger_source": rng.choice(TRIGGER_SOURCES[event_type]),
            "product_id": product.product_id,
            "severity": rng.choices(SEVERITIES, weights=SEVERITY_WEIGHTS)[0],
            # In the documented field order, so files read like the format's table.
            "data": {name: values[name] for name in EVENT_TYPES[event_type].field_names()},
        }
        self._clock += timedelta(seconds=rng.randint(1, 120))
        return event

    def generate_agent_decision(self, agent_id: str) -> AgentDecision:
        """A plausible decision of ``agent_id`` with its inputs, outputs and a confidence.

        The confidence is drawn from 0.5 to 1.0, as the seed does. The three AutoOps agents
        decide in their own terms (restock, price, promotion); any other agent id gets the
        seed's generic ``test_decision``.
        """
        rng = self._rng
        product = rng.choice(self._products)
        confidence = round(rng.uniform(0.5, 1.0), 3)
        decision_type, inputs, outputs, reasoning = _DECISION_BUILDERS.get(
            agent_id, _test_decision
        )(rng, product)
        return AgentDecision(
            agent_id=agent_id,
            decision_type=decision_type,
            inputs=inputs,
            outputs=outputs,
            confidence=confidence,
            reasoning=reasoning,
        )

    def generate_events(
        self, count: int, types: Sequence[str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """``count`` events, each of a type drawn from ``types`` (default: every known type).

        An unknown or empty ``types`` raises ``ValueError`` at once, not on first iteration.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        chosen = list(EVENT_TYPES) if types is None else list(dict.fromkeys(types))
        unknown = [name for name in chosen if name not in EVENT_TYPES]
        if unknown or not chosen:
            known = ", ".join(sorted(EVENT_TYPES))
            raise ValueError(
                f"unknown event type(s) {', '.join(unknown) or '(none given)'}; known: {known}"
            )
        return (self.generate_simulation_event(self._rng.choice(chosen)) for _ in range(count))


def generate_events(
    count: int,
    *,
    seed: int = 42,
    types: Sequence[str] | None = None,
    start: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """``count`` realistic events as JSON-ready dicts, the same for the same arguments.

    A fresh ``TestDataGenerator(seed, start=start)`` drawing from ``types``; ``ValueError``
    at once for an unknown type or a naive ``start``.
    """
    return TestDataGenerator(seed, start=start).generate_events(count, types)


_Decision = tuple[str, dict[str, Any], dict[str, Any], str]


def _restock_decision(rng: random.Random, product: _Product) -> _Decision:
    stock = rng.randint(0, 300)
    demand = round(product.daily_demand * rng.uniform(5, 20))
    quantity = max(0, demand - stock)
    return (
        "restock_recommendation",
        {"product_id": product.product_id, "current_stock": stock, "forecast_demand": demand},
        {"restock": quantity > 0, "reorder_quantity": quantity},
        "forecast demand exceeds stock" if quantity else "stock covers the forecast",
    )


def _price_decision(rng: random.Random, product: _Product) -> _Decision:
    step = round(rng.uniform(-0.10, 0.10), 3)
    new_price = round(max(product.unit_cost * 1.15, product.price * (1 + step)), 2)
    action = (
        "increase"
        if new_price > product.price
        else "decrease"
        if new_price < product.price
        else "hold"
    )
    return (
        "price_adjustment",
        {"product_id": product.product_id, "current_price": product.price},
        {"action": action, "current_price": product.price, "new_price": new_price},
        f"price moved {step:+.1%} within the margin floor",
    )


def _promotion_decision(rng: random.Random, product: _Product) -> _Decision:
    run = rng.random() < 0.5
    discount = rng.choice((5, 10, 15, 20)) if run else 0
    return (
        "promotion_decision",
        {"product_id": product.product_id, "current_price": product.price},
        {"run_promotion": run, "discount_pct": discount},
        "slow sales call for a promotion" if run else "sales on plan, no promotion",
    )


def _test_decision(rng: random.Random, product: _Product) -> _Decision:
    return "test_decision", {"test_input": "value"}, {"test_output": "result"}, ""


_DECISION_BUILDERS: dict[str, Callable[[random.Random, _Product], _Decision]] = {
    INVENTORY: _restock_decision,
    PRICING: _price_decision,
    PROMOTION: _promotion_decision,
}


def write_events(path_or_dash: str | Path, events: Iterable[dict[str, Any]]) -> int:
    """Write events as JSON Lines (gzip for ``.gz``, stdout for ``"-"``); return the count.

    A file is written atomically: to a temporary file beside it, then renamed over it, so a
    reader never sees half a file; a pipe or a device is written in place. ``OSError``
    becomes ``LocalFileError``.
    """
    if path_or_dash == "-":
        try:
            return _write_stdout(events)
        except BrokenPipeError:
            raise  # the reader left (``| head``): the CLI ends quietly, as for every command
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise LocalFileError(f"cannot write events to standard output: {reason}") from exc
    target = Path(path_or_dash)
    if is_special(target):  # a pipe or a device is written where it is, never replaced
        try:
            with os.fdopen(open_writer(target), "wb") as raw:
                return _write_file(raw, target.name, events)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise LocalFileError(f"cannot write events to {target}: {reason}") from exc
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        # os.open applies the umask, unlike tempfile's private 0600 files.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(descriptor, "wb") as raw:
            count = _write_file(raw, target.name, events)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        _remove(temporary)
        reason = exc.strerror or str(exc)
        raise LocalFileError(f"cannot write events to {target}: {reason}") from exc
    except BaseException:
        _remove(temporary)
        raise
    return count


def _remove(temporary: Path) -> None:
    """Remove a temporary file if it was made (on a read-only filesystem removing what does
    not exist fails too, EROFS: that hid the reason of the failure)."""
    with contextlib.suppress(OSError):
        temporary.unlink()


def _write_file(raw: IO[bytes], name: str, events: Iterable[dict[str, Any]]) -> int:
    """The lines into ``raw``, gzip-compressed when ``name`` ends in ``.gz`` (a named pipe
    too: its reader expects what the name says)."""
    if not name.endswith(".gz"):
        return _write_lines(raw, events)
    # A fixed mtime and name keep the .gz byte-for-byte reproducible.
    with gzip.GzipFile(filename=name[:-3], mode="wb", fileobj=raw, mtime=0) as compressed:
        return _write_lines(compressed, events)


def _write_stdout(events: Iterable[dict[str, Any]]) -> int:
    if sys.stdout is None:  # started with stdout closed (``>&-``)
        raise LocalFileError("cannot write events to standard output: it is closed")
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # a text-only stdout (some test runners)
        count = 0
        for event in events:
            sys.stdout.write(_encode(event).decode("utf-8"))
            count += 1
        sys.stdout.flush()
        return count
    count = _write_lines(buffer, events)
    buffer.flush()
    return count


def _write_lines(stream: IO[bytes] | gzip.GzipFile, events: Iterable[dict[str, Any]]) -> int:
    count = 0
    for event in events:
        stream.write(_encode(event))
        count += 1
    return count


def _encode(event: dict[str, Any]) -> bytes:
    return (json.dumps(event, ensure_ascii=False) + "\n").encode("utf-8")
