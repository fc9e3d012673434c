"""The event generator: deterministic, realistic, always valid; the JSON Lines writer."""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import types
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoops_cli.simulation.event_types import EVENT_TYPES
from autoops_cli.simulation.events import SimulationEvent, parse_event, read_events
from autoops_cli.simulation.generator import TestDataGenerator, generate_events, write_events
from config.errors import LocalFileError
from config.models import AgentDecision
from tests.conftest import Cli
from tests.support.paths import REPO_ROOT
from tests.support.property_budget import examples


def parsed(count: int, **options: object) -> list[SimulationEvent]:
    return [parse_event(event) for event in generate_events(count, **options)]  # type: ignore[arg-type]


def test_the_example_file_is_reproduced_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "events.jsonl"
    assert write_events(out, generate_events(200, seed=42)) == 200
    assert out.read_bytes() == (REPO_ROOT / "examples" / "events.jsonl").read_bytes()


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert list(generate_events(50, seed=3)) == list(generate_events(50, seed=3))
    assert list(generate_events(50, seed=3)) != list(generate_events(50, seed=4))


def test_generation_does_not_touch_the_global_random() -> None:
    import random

    random.seed(0)
    expected = random.random()
    random.seed(0)
    list(generate_events(20))
    assert random.random() == expected


@pytest.mark.parametrize("seed", [0, 1, 42, 2026, 987654321])
def test_every_generated_event_parses_for_every_type(seed: int) -> None:
    for event_type in EVENT_TYPES:
        events = list(generate_events(60, seed=seed, types=[event_type]))
        for raw in events:
            event = parse_event(raw)
            assert event.event_type == event_type
            # Every documented field is generated, none is left to its default.
            assert list(raw["data"]) == list(EVENT_TYPES[event_type].field_names())
            assert event.data == raw["data"]


@settings(max_examples=examples(30), deadline=None)
@given(st.integers(min_value=0, max_value=2**64), st.integers(min_value=0, max_value=40))
def test_generated_lines_always_parse(seed: int, count: int) -> None:
    events = list(generate_events(count, seed=seed))
    assert len(events) == count
    for raw in events:
        parse_event(json.loads(json.dumps(raw)))


def test_ids_timestamps_and_products() -> None:
    start = datetime(2027, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    events = parsed(300, seed=5, start=start)
    assert [e.event_id for e in events] == [f"evt-{n:06d}" for n in range(1, 301)]
    assert events[0].timestamp == start
    gaps = [(b.timestamp - a.timestamp).total_seconds() for a, b in itertools.pairwise(events)]
    assert min(gaps) >= 1
    assert max(gaps) <= 120
    assert len(set(gaps)) > 20
    assert {e.product_id for e in events} <= {f"PROD_{n:03d}" for n in range(1, 51)}
    assert len({e.product_id for e in events}) > 30


def test_default_start() -> None:
    first = next(generate_events(1))
    assert first["timestamp"] == "2026-11-20T08:00:00Z"


def test_severity_distribution_is_weighted() -> None:
    counts = Counter(e.severity for e in parsed(5000, seed=11))
    shares = {name: count / 5000 for name, count in counts.items()}
    assert shares["low"] == pytest.approx(0.30, abs=0.03)
    assert shares["medium"] == pytest.approx(0.40, abs=0.03)
    assert shares["high"] == pytest.approx(0.22, abs=0.03)
    assert shares["critical"] == pytest.approx(0.08, abs=0.02)


def test_every_type_appears_with_its_trigger_sources() -> None:
    events = parsed(3000, seed=8)
    assert {e.event_type for e in events} == set(EVENT_TYPES)
    sources = {(e.event_type, e.trigger_source) for e in events}
    assert ("competitor_price_change", "competitor_monitor") in sources
    assert ("supply_delay", "supplier_api") in sources
    assert "simulation" not in {source for _, source in sources}


def test_values_are_realistic() -> None:
    events = parsed(3000, seed=9)
    for event in events:
        price, cost = event.data["current_price"], event.data["unit_cost"]
        assert round(price, 2) == price
        assert 0.40 * price - 0.005 <= cost <= 0.75 * price + 0.005
        if event.event_type == "competitor_price_change":
            competitor = event.data["competitor_price"]
            assert round(competitor, 2) == competitor
            assert 0.75 * price - 0.005 <= competitor <= 1.25 * price + 0.005
        if event.event_type == "inventory_low":
            assert event.data["current_stock"] <= event.data["reorder_point"]
    spikes = [e for e in events if e.event_type == "demand_spike"]
    above = sum(e.data["forecast_demand"] > e.data["current_stock"] for e in spikes)
    assert above / len(spikes) > 0.75
    # One product keeps its price across events.
    prices: dict[str, set[float]] = {}
    for event in events:
        prices.setdefault(event.product_id, set()).add(event.data["current_price"])
    assert all(len(seen) == 1 for seen in prices.values())


def test_types_restrict_and_unknown_types_are_refused() -> None:
    events = parsed(100, types=["supply_delay", "seasonal_trend"])
    assert {e.event_type for e in events} == {"supply_delay", "seasonal_trend"}
    with pytest.raises(
        ValueError, match=r"unknown event type.*bogus.*known: competitor_price_change"
    ):
        generate_events(5, types=["bogus"])
    with pytest.raises(ValueError):
        generate_events(5, types=[])
    with pytest.raises(ValueError, match="count"):
        generate_events(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_events(1, start=datetime(2026, 1, 1))
    assert list(generate_events(0)) == []


def test_write_gzip(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl.gz"
    assert write_events(path, generate_events(30)) == 30
    lines = gzip.decompress(path.read_bytes()).splitlines()
    assert [json.loads(raw) for raw in lines] == list(generate_events(30))
    again = tmp_path / "again" / "e.jsonl.gz"
    again.parent.mkdir()
    write_events(again, generate_events(30))
    assert again.read_bytes() == path.read_bytes()
    assert all(isinstance(item, SimulationEvent) for item in read_events(path))


def test_write_to_standard_output(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    monkeypatch.setattr("sys.stdout", types.SimpleNamespace(buffer=buffer))
    assert write_events("-", generate_events(3)) == 3
    assert [json.loads(raw) for raw in buffer.getvalue().splitlines()] == list(generate_events(3))


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text("old\n")

    def failing() -> object:
        yield from generate_events(2)
        raise RuntimeError("producer failed")

    with pytest.raises(RuntimeError):
        write_events(path, failing())  # type: ignore[arg-type]
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["e.jsonl"]
    write_events(path, generate_events(2))
    assert len(path.read_bytes().splitlines()) == 2
    assert os.listdir(tmp_path) == ["e.jsonl"]


def test_write_error_is_a_local_file_error(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "e.jsonl"
    with pytest.raises(LocalFileError, match=r"cannot write events to .*e\.jsonl"):
        write_events(target, generate_events(1))


def test_generated_timestamps_are_utc_z() -> None:
    for raw in generate_events(10):
        assert raw["timestamp"].endswith("Z")
        assert datetime.fromisoformat(raw["timestamp"][:-1] + "+00:00").tzinfo == UTC


# --- the seed's TestDataGenerator ---------------------------------------------------------


def test_seed_generator_makes_one_event_of_the_asked_type_with_the_seed_fields() -> None:
    generator = TestDataGenerator(seed=11)
    for event_type in EVENT_TYPES:
        raw = generator.generate_simulation_event(event_type)
        # The seed's fields, then the format's own (docs/events.md): it parses as an event.
        assert {"event_type", "trigger_source", "product_id", "timestamp"} <= set(raw)
        assert raw["event_type"] == event_type
        assert parse_event(raw).event_type == event_type
    ids = [generator.generate_simulation_event("demand_spike")["event_id"] for _ in range(3)]
    assert ids == ["evt-000007", "evt-000008", "evt-000009"]


def test_seed_generator_is_reproducible_and_refuses_unknown_types() -> None:
    first, second = TestDataGenerator(seed=5), TestDataGenerator(seed=5)
    for event_type in ("supply_delay", "demand_spike", "supply_delay"):
        assert first.generate_simulation_event(event_type) == second.generate_simulation_event(
            event_type
        )
    assert first.generate_agent_decision("pricing_agent") == second.generate_agent_decision(
        "pricing_agent"
    )
    with pytest.raises(ValueError, match="unknown event type 'price_war'"):
        first.generate_simulation_event("price_war")


@pytest.mark.parametrize(
    ("agent_id", "decision_type", "output_key"),
    [
        ("inventory_agent", "restock_recommendation", "reorder_quantity"),
        ("pricing_agent", "price_adjustment", "new_price"),
        ("promotion_agent", "promotion_decision", "discount_pct"),
        ("audit_agent", "test_decision", "test_output"),
    ],
)
def test_seed_generator_makes_agent_decisions(
    agent_id: str, decision_type: str, output_key: str
) -> None:
    generator = TestDataGenerator(seed=3)
    decisions = [generator.generate_agent_decision(agent_id) for _ in range(200)]
    for decision in decisions:
        assert isinstance(decision, AgentDecision)
        assert decision.agent_id == agent_id
        assert decision.decision_type == decision_type
        assert output_key in decision.outputs
        assert decision.inputs  # what the decision was made from
        assert 0.5 <= decision.confidence <= 1.0
    assert len({d.confidence for d in decisions}) > 100  # drawn, not a constant


def test_events_generate_is_the_seed_generator(cli: Cli, workdir: Path) -> None:
    result = cli("events", "generate", "--count", "30", "--seed", "9", "--output", "e.jsonl")
    assert result.exit_code == 0, result.stderr
    lines = (workdir / "e.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(
        TestDataGenerator(seed=9).generate_events(30)
    )
