"""The local metrics API (``/api/public/metrics`` and ``/api/public/v2/metrics``) on a real store.

The store is written through ``LocalStore.write`` from span and score records carrying
Langfuse's attributes; every expected number is computed here from the records themselves
(the ``Truth`` tables), never read back from the store.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config.tracing.attributes as la
from autoops_cli.local_api.query import metrics as metrics_engine
from autoops_cli.local_api.query.errors import ApiProblem
from autoops_cli.local_api.query.metrics import build_sql, parse_metrics_query, run_metrics_query
from autoops_cli.local_api.query.metrics_sql import build_plan
from config.store.local_store import LocalStore
from config.tracing.span_records import ScoreRecord, SpanRecord
from tests.support.property_budget import examples

T0_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
HOUR_US = 3_600_000_000
WINDOW = {"fromTimestamp": "2026-01-01T00:00:00.000Z", "toTimestamp": "2026-01-02T00:00:00Z"}
AGENTS = ("inventory_agent", "pricing_agent")
PERCENTILES = {"p50": 50, "p75": 75, "p90": 90, "p95": 95, "p99": 99}


@dataclass
class Obs:
    """What the test wrote for one observation (the source of expected numbers)."""

    trace: str
    id: str
    parent: str | None
    name: str
    type: str
    level: str
    start_us: int
    end_us: int
    environment: str
    trace_name: str
    tags: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, float] | None = None
    cost: dict[str, float] | None = None
    model: str | None = None

    @property
    def latency_ms(self) -> float:
        return (self.end_us - self.start_us) / 1000


@dataclass
class Score:
    """What the test wrote for one score."""

    trace: str
    observation: str | None
    name: str
    value: float | str | bool
    data_type: str
    timestamp_us: int
    metadata: dict[str, Any]


@dataclass
class Truth:
    """Everything written to the store."""

    observations: list[Obs] = field(default_factory=list)
    scores: list[Score] = field(default_factory=list)
    traces: dict[str, dict[str, Any]] = field(default_factory=dict)


class _Builder:
    """Makes span records with Langfuse attributes and records the truth alongside."""

    def __init__(self) -> None:
        self.truth = Truth()
        self.spans: list[SpanRecord] = []
        self.score_records: list[ScoreRecord] = []
        self._ids = 0

    def new_id(self, width: int = 16) -> str:
        self._ids += 1
        return f"{self._ids:0{width}x}"

    def trace(self, name: str, tags: list[str], session: str, environment: str) -> str:
        trace_id = self.new_id(32)
        info = {"name": name, "tags": tags, "session": session, "environment": environment}
        self.truth.traces[trace_id] = info
        return trace_id

    def span(self, trace_id: str, parent: str | None, name: str, kind: str, start_us: int,
             duration_us: int, level: str = "DEFAULT", **extra: Any) -> str:  # fmt: skip
        """One observation; ``extra``: metadata, and model with usage and cost."""
        info = self.truth.traces[trace_id]
        attributes: dict[str, Any] = {
            la.TRACE_NAME: info["name"],
            la.TRACE_TAGS: json.dumps(info["tags"]),
            la.TRACE_SESSION_ID: info["session"],
            la.ENVIRONMENT: info["environment"],
            la.OBSERVATION_TYPE: kind.lower(),
            la.OBSERVATION_LEVEL: level,
        }
        metadata = extra.get("metadata") or {}
        attributes.update(la.metadata_attributes(metadata, la.OBSERVATION_METADATA_PREFIX))
        if extra.get("model"):
            attributes[la.OBSERVATION_MODEL] = extra["model"]
            attributes[la.OBSERVATION_USAGE_DETAILS] = json.dumps(extra["usage"])
            attributes[la.OBSERVATION_COST_DETAILS] = json.dumps(extra["cost"])
        span_id, end_us = self.new_id(), start_us + duration_us
        self.spans.append(
            SpanRecord(trace_id, span_id, parent, name, start_us * 1000, end_us * 1000, attributes)
        )
        observation = Obs(trace=trace_id, id=span_id, parent=parent, name=name, type=kind,
                          level=level, start_us=start_us, end_us=end_us,
                          environment=info["environment"], trace_name=info["name"],
                          # Every span carries the tags: merged, as Langfuse does, sorted.
                          tags=sorted(info["tags"]), metadata=metadata, usage=extra.get("usage"),
                          cost=extra.get("cost"), model=extra.get("model"))  # fmt: skip
        self.truth.observations.append(observation)
        return span_id

    def score(self, trace_id: str, observation: str | None, name: str, value: Any,
              data_type: str, timestamp_us: int, metadata: dict[str, Any]) -> None:  # fmt: skip
        record = ScoreRecord(self.new_id(32), trace_id, observation, name, value,
                             timestamp_us * 1000, data_type=data_type, metadata=metadata,
                             environment="default")  # fmt: skip
        self.score_records.append(record)
        self.truth.scores.append(
            Score(trace_id, observation, name, value, data_type, timestamp_us, metadata)
        )


def build_dataset() -> _Builder:
    """30 simulation traces over 3.5 hours, plus one trace of 1,001 tool calls (percentiles)."""
    rnd = random.Random(7)
    b = _Builder()
    events = ("demand_spike", "price_change", "supply_delay")
    for i in range(30):
        event = events[i % 3]
        tags = [event, "iot_sensor", ("high", "low")[i % 2]]
        trace_id = b.trace(
            f"simulation.{event}", tags, f"run-{i % 2}", ("default", "staging")[i % 4 == 0]
        )
        start = T0_US + i * 7 * 60_000_000 + rnd.randrange(1000)
        duration = rnd.randrange(50_000, 900_000)
        root = b.span(trace_id, None, "orchestrator.process_event", "CHAIN", start, duration,
                      metadata={"event_type": event})  # fmt: skip
        for agent in AGENTS:
            metadata = {"agent_id": agent, "confidence": 0.5 + i / 100}
            duration = rnd.randrange(1_000, 400_000)
            op = b.span(
                trace_id, root, f"{agent}.operate", "AGENT", start + 10, duration, metadata=metadata
            )
            level = "ERROR" if i % 5 == 0 and agent == "pricing_agent" else "DEFAULT"
            b.span(
                trace_id, op, "stock_lookup", "TOOL", start + 20, rnd.randrange(100, 90_000), level
            )
            b.span(trace_id, op, f"{agent}.decision", "EVENT", start + 30, rnd.randrange(10, 900),
                   metadata={"agent_id": agent})  # fmt: skip
            metadata = {"agent_id": agent, "decision_type": ("restock", "hold")[i % 2]}
            confidence = round(rnd.random(), 3)
            b.score(
                trace_id, op, "decision_confidence", confidence, "NUMERIC", start + 40, metadata
            )
        if i % 3 == 0:
            b.span(trace_id, root, "conflict.price_vs_discount", "EVENT", start + 50,
                   rnd.randrange(10, 500), "WARNING")  # fmt: skip
        if i % 2 == 0:
            usage = {"input": 100 + i, "output": 10 + i, "input_cached": 5, "total": 115 + 2 * i}
            cost = {"input": 0.001 * i, "output": 0.0005, "total": 0.001 * i + 0.0005}
            b.span(trace_id, root, "llm.call", "GENERATION", start + 60, rnd.randrange(1_000, 50_000),
                   model="gpt-test", usage=usage, cost=cost)  # fmt: skip
        b.score(
            trace_id, None, "risk", ("low", "high", "low")[i % 3], "CATEGORICAL", start + 70, {}
        )
        b.score(trace_id, None, "approved", i % 4 != 1, "BOOLEAN", start + 80, {})
    bulk = b.trace("simulation.bulk", ["bulk"], "run-9", "default")
    bulk_start = T0_US + 5 * HOUR_US
    bulk_root = b.span(bulk, None, "bulk.root", "SPAN", bulk_start, 10_000_000)
    for n in range(1001):
        b.span(
            bulk,
            bulk_root,
            "bulk.step",
            "TOOL",
            bulk_start + n,
            rnd.randrange(1, 2_000_000),
            "DEBUG",
        )
    return b


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStore, Truth]]:
    builder = build_dataset()
    store = LocalStore(tmp_path_factory.mktemp("metrics") / "traces.db")
    store.write(builder.spans[:500], builder.score_records[:40])  # two batches, as a replay writes
    store.write(builder.spans[500:], builder.score_records[40:])
    yield store, builder.truth
    store.close()


@pytest.fixture
def store(dataset: tuple[LocalStore, Truth]) -> LocalStore:
    return dataset[0]


@pytest.fixture
def truth(dataset: tuple[LocalStore, Truth]) -> Truth:
    return dataset[1]


def query(store: LocalStore, version: int = 1, **body: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = run_metrics_query(
        store, json.dumps({**WINDOW, **body}), version=version
    )["data"]
    return data


def metric(measure: str, aggregation: str) -> dict[str, str]:
    return {"measure": measure, "aggregation": aggregation}


def dims(*names: str) -> list[dict[str, str]]:
    return [{"field": n} for n in names]


def rejected(store: LocalStore, raw: str | None, version: int = 1) -> dict[str, Any]:
    with pytest.raises(ApiProblem) as caught:
        run_metrics_query(store, raw, version=version)
    assert caught.value.status == 400
    body: dict[str, Any] = caught.value.body
    return body


def rejected_body(store: LocalStore, version: int = 1, **body: Any) -> dict[str, Any]:
    return rejected(store, json.dumps({**WINDOW, **body}), version)


def quantile(values: list[float], q: int) -> float:
    """Linear interpolation between closest ranks (statistics' "inclusive" method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def by(rows: list[dict[str, Any]], *keys: str) -> dict[Any, dict[str, Any]]:
    return {tuple(r[k] for k in keys) if len(keys) > 1 else r[keys[0]]: r for r in rows}


# --- aggregations -------------------------------------------------------------------------------


def test_count_by_name_matches_what_was_written(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store, view="observations", dimensions=dims("name"), metrics=[metric("count", "count")]
    )
    expected = Counter(o.name for o in truth.observations)
    assert {r["name"]: r["count_count"] for r in rows} == expected
    assert all(type(r["count_count"]) is int for r in rows)
    # Langfuse's default order: the first metric, descending.
    assert [r["count_count"] for r in rows] == sorted(expected.values(), reverse=True)


def test_latency_sum_avg_min_max_per_name(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("latency", a) for a in ("sum", "avg", "min", "max", "count")],
    )
    latencies: dict[str, list[float]] = defaultdict(list)
    for o in truth.observations:
        latencies[o.name].append(o.latency_ms)
    got = by(rows, "name")
    assert set(got) == set(latencies)
    for name, values in latencies.items():
        row = got[name]
        assert row["sum_latency"] == pytest.approx(math.fsum(values), rel=1e-12)
        assert row["avg_latency"] == pytest.approx(math.fsum(values) / len(values), rel=1e-12)
        assert row["min_latency"] == min(values)
        assert row["max_latency"] == max(values)
        assert row["count_latency"] == len(values)


def test_percentiles_interpolate_between_ranks_like_clickhouse(
    store: LocalStore, truth: Truth
) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("latency", p) for p in PERCENTILES],
    )
    got = by(rows, "name")
    groups: dict[str, list[float]] = defaultdict(list)
    for o in truth.observations:
        groups[o.name].append(o.latency_ms)
    assert len(groups["bulk.step"]) == 1001
    for name, values in groups.items():
        for aggregation, q in PERCENTILES.items():
            expected = quantile(values, q) if len(values) > 1 else values[0]
            assert got[name][f"{aggregation}_latency"] == pytest.approx(expected, rel=1e-12), (
                name,
                aggregation,
            )
    # 1,001 values: p50 is exactly the middle one, no interpolation.
    bulk = sorted(groups["bulk.step"])
    assert got["bulk.step"]["p50_latency"] == bulk[500]


def test_histogram_of_extreme_values_is_answered() -> None:
    """Costs of 1.7e308 and -1.7e308 (their difference overflows: NaN bins, a 500), or two
    neighbouring floats (a width of 0: ZeroDivisionError)."""
    from autoops_cli.local_api.query.metrics import histogram

    extreme = histogram([-1.7e308, 0.5, 1.7e308], 3, 1)
    assert [count for _, _, count in extreme] == [1, 1, 1]
    assert extreme[0][0] == -1.7e308 and extreme[-1][1] == 1.7e308
    assert all(math.isfinite(bound) for low, high, _ in extreme for bound in (low, high))
    assert histogram([0.0, 5e-324], 10, 1) == [[0.0, 5e-324, 2]]


def test_histogram_bins_count_every_value_once(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("latency", "histogram"), metric("count", "count")],
        config={"bins": 7},
    )
    groups: dict[str, list[float]] = defaultdict(list)
    for o in truth.observations:
        groups[o.name].append(o.latency_ms)
    got = by(rows, "name")
    for name, values in groups.items():
        bins = got[name]["histogram_latency"]
        assert sum(count for _, _, count in bins) == len(values) == got[name]["count_count"]
        if min(values) == max(values):
            assert bins == [[min(values), max(values), len(values)]]
            continue
        assert len(bins) == 7
        assert bins[0][0] == pytest.approx(min(values)) and bins[-1][1] == pytest.approx(
            max(values)
        )
        for lower, upper, count in bins:  # equal widths; each bin counts the values inside it
            assert upper - lower == pytest.approx((max(values) - min(values)) / 7)
            inside = [
                v for v in values if lower <= v < upper or (upper == bins[-1][1] and v == upper)
            ]
            assert count == len(inside)
    default = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("latency", "histogram")],
    )
    assert max(len(row["histogram_latency"]) for row in default) == 10


def test_grouping_by_two_dimensions_and_trace_name(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("name", "level"),
        metrics=[metric("count", "count")],
    )
    assert {(r["name"], r["level"]): r["count_count"] for r in rows} == Counter(
        (o.name, o.level) for o in truth.observations
    )
    rows = query(
        store,
        view="observations",
        dimensions=dims("traceName", "type"),
        metrics=[metric("count", "count")],
    )
    assert {(r["traceName"], r["type"]): r["count_count"] for r in rows} == Counter(
        (o.trace_name, o.type) for o in truth.observations
    )


def test_tags_and_environment_dimensions(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("tags", "environment"),
        metrics=[metric("count", "count")],
    )
    expected = Counter((tuple(o.tags), o.environment) for o in truth.observations)
    assert {(tuple(r["tags"]), r["environment"]): r["count_count"] for r in rows} == expected


def test_no_dimensions_is_one_row(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store, view="observations", metrics=[metric("count", "count"), metric("latency", "max")]
    )
    assert rows == [
        {
            "count_count": len(truth.observations),
            "max_latency": max(o.latency_ms for o in truth.observations),
        }
    ]


def test_an_empty_window_without_dimensions_still_answers_one_row(store: LocalStore) -> None:
    rows = run_metrics_query(
        store,
        json.dumps(
            {
                "view": "observations",
                "metrics": [metric("count", "count"), metric("latency", "avg")],
                "fromTimestamp": "2030-01-01T00:00:00Z",
                "toTimestamp": "2030-01-02T00:00:00Z",
            }
        ),
        version=2,
    )["data"]
    assert rows == [{"count_count": 0, "avg_latency": None}]


def test_token_and_cost_measures_from_usage_and_cost_details(
    store: LocalStore, truth: Truth
) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("providedModelName"),
        metrics=[
            metric(m, "sum")
            for m in (
                "inputTokens",
                "outputTokens",
                "totalTokens",
                "totalCost",
                "inputCost",
                "outputCost",
            )
        ],
    )
    got = by(rows, "providedModelName")
    generations = [o for o in truth.observations if o.model]
    row = got["gpt-test"]
    # inputTokens sums every usage key containing "input" (input, input_cached), like Langfuse.
    assert row["sum_inputTokens"] == sum(
        o.usage["input"] + o.usage["input_cached"] for o in generations if o.usage
    )
    assert row["sum_outputTokens"] == sum(o.usage["output"] for o in generations if o.usage)
    assert row["sum_totalTokens"] == sum(o.usage["total"] for o in generations if o.usage)
    assert row["sum_totalCost"] == pytest.approx(
        math.fsum(o.cost["total"] for o in generations if o.cost)
    )
    assert row["sum_inputCost"] == pytest.approx(
        math.fsum(o.cost["input"] for o in generations if o.cost)
    )
    assert row["sum_outputCost"] == pytest.approx(
        math.fsum(o.cost["output"] for o in generations if o.cost)
    )
    others = got[None]  # observations without a model: 0, not null
    assert others["sum_totalTokens"] == 0 and others["sum_totalCost"] == 0


def test_count_scores_per_observation_name(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store, view="observations", dimensions=dims("name"), metrics=[metric("countScores", "sum")]
    )
    scored = Counter(s.observation for s in truth.scores if s.observation)
    expected: Counter[str] = Counter()
    for o in truth.observations:
        expected[o.name] += scored[o.id]
    assert {r["name"]: r["sum_countScores"] for r in rows} == expected


def test_uniq_counts_distinct_values(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store, view="scores-numeric", dimensions=dims("name"), metrics=[metric("value", "uniq")]
    )
    confidences = {s.value for s in truth.scores if s.name == "decision_confidence"}
    assert {r["name"]: r["uniq_value"] for r in rows} == {
        "decision_confidence": len(confidences),
        "approved": 2,
    }


# --- scores and traces views ----------------------------------------------------------------------


def test_scores_numeric_filtered_on_metadata_agent_id(store: LocalStore, truth: Truth) -> None:
    pricing_filter = {
        "column": "metadata",
        "operator": "=",
        "key": "agent_id",
        "value": "pricing_agent",
        "type": "stringObject",
    }
    rows = query(
        store,
        2,
        view="scores-numeric",
        dimensions=dims("name"),
        filters=[pricing_filter],
        metrics=[metric("value", a) for a in ("avg", "sum", "min", "max", "p95", "count")]
        + [metric("count", "count")],
    )
    values = [float(s.value) for s in truth.scores if s.metadata.get("agent_id") == "pricing_agent"]
    assert len(values) == 30
    assert rows == [
        {
            "name": "decision_confidence",
            "avg_value": pytest.approx(math.fsum(values) / 30, rel=1e-12),
            "sum_value": pytest.approx(math.fsum(values), rel=1e-12),
            "min_value": min(values),
            "max_value": max(values),
            "p95_value": pytest.approx(quantile(values, 95), rel=1e-12),
            "count_value": 30,
            "count_count": 30,
        }
    ]


def test_scores_numeric_includes_booleans_as_one_and_zero(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        2,
        view="scores-numeric",
        dimensions=dims("name", "dataType"),
        metrics=[metric("value", "avg")],
    )
    approved = [1.0 if s.value else 0.0 for s in truth.scores if s.name == "approved"]
    assert by(rows, "name")["approved"]["avg_value"] == pytest.approx(sum(approved) / len(approved))
    assert by(rows, "name")["approved"]["dataType"] == "BOOLEAN"
    boolean = query(
        store,
        2,
        view="scores-boolean",
        dimensions=dims("booleanValue"),
        metrics=[metric("count", "count")],
    )
    assert {r["booleanValue"]: r["count_count"] for r in boolean} == Counter(
        bool(v) for v in approved
    )


def test_scores_categorical_counts_by_string_value(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="scores-categorical",
        dimensions=dims("name", "stringValue"),
        metrics=[metric("count", "count")],
    )
    expected = Counter(("risk", s.value) for s in truth.scores if s.data_type == "CATEGORICAL")
    assert {(r["name"], r["stringValue"]): r["count_count"] for r in rows} == expected


def test_traces_view_counts_and_latency_v1(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="traces",
        dimensions=dims("name"),
        metrics=[
            metric("count", "count"),
            metric("latency", "max"),
            metric("observationsCount", "sum"),
        ],
    )
    spans: dict[str, list[Obs]] = defaultdict(list)
    for o in truth.observations:
        spans[o.trace].append(o)
    expected: dict[str, dict[str, Any]] = {}
    for trace_id, observations in spans.items():
        name = truth.traces[trace_id]["name"]
        latency = (
            max(o.end_us for o in observations) - min(o.start_us for o in observations)
        ) / 1000
        row = expected.setdefault(
            name, {"count_count": 0, "max_latency": 0.0, "sum_observationsCount": 0}
        )
        row["count_count"] += 1
        row["max_latency"] = max(row["max_latency"], latency)
        row["sum_observationsCount"] += len(observations)
    assert {r.pop("name"): r for r in rows} == expected


# --- filters ----------------------------------------------------------------------------------------


def count_where(
    store: LocalStore, filters: list[dict[str, Any]], version: int = 1, view: str = "observations"
) -> int:
    rows = query(store, version, view=view, metrics=[metric("count", "count")], filters=filters)
    count: int = rows[0]["count_count"]
    return count


def f(column: str, operator: str, value: Any, kind: str, **extra: Any) -> dict[str, Any]:
    return {"column": column, "operator": operator, "value": value, "type": kind, **extra}


STRING_CASES: list[tuple[str, str, Callable[[str], bool]]] = [
    ("=", "stock_lookup", lambda n: n == "stock_lookup"),
    ("contains", "AGENT.", lambda n: "agent." in n),  # ASCII case-insensitive, like ILIKE
    ("does not contain", "agent", lambda n: "agent" not in n),
    ("starts with", "pricing_", lambda n: n.startswith("pricing_")),
    ("ends with", ".decision", lambda n: n.endswith(".decision")),
    ("contains", "%", lambda n: "%" in n),  # LIKE wildcards are matched literally
    ("starts with", "_", lambda n: n.startswith("_")),
]


@pytest.mark.parametrize(("operator", "value", "predicate"), STRING_CASES)
def test_string_filter_operators(
    store: LocalStore, truth: Truth, operator: str, value: str, predicate: Callable[[str], bool]
) -> None:
    expected = sum(predicate(o.name) for o in truth.observations)
    assert count_where(store, [f("name", operator, value, "string")]) == expected


def test_string_options_and_null_filters(store: LocalStore, truth: Truth) -> None:
    assert count_where(store, [f("type", "any of", ["TOOL", "EVENT"], "stringOptions")]) == sum(
        o.type in ("TOOL", "EVENT") for o in truth.observations
    )
    assert count_where(store, [f("type", "none of", ["TOOL", "EVENT"], "stringOptions")]) == sum(
        o.type not in ("TOOL", "EVENT") for o in truth.observations
    )
    with_model = sum(o.model is not None for o in truth.observations)
    assert count_where(store, [f("providedModelName", "is not null", "", "null")]) == with_model
    assert (
        count_where(store, [f("providedModelName", "is null", "", "null")])
        == len(truth.observations) - with_model
    )


@pytest.mark.parametrize(
    ("operator", "values", "predicate"),
    [
        ("any of", ["high", "bulk"], lambda tags: bool({"high", "bulk"} & set(tags))),
        ("none of", ["high", "bulk"], lambda tags: not {"high", "bulk"} & set(tags)),
        ("all of", ["iot_sensor", "low"], lambda tags: {"iot_sensor", "low"} <= set(tags)),
        ("all of", [], lambda tags: True),
    ],
)
def test_array_options_filter_on_tags(
    store: LocalStore,
    truth: Truth,
    operator: str,
    values: list[str],
    predicate: Callable[[list[str]], bool],
) -> None:
    expected = sum(predicate(o.tags) for o in truth.observations)
    assert count_where(store, [f("tags", operator, values, "arrayOptions")]) == expected


@pytest.mark.parametrize(
    ("operator", "check"),
    [
        (">", float.__gt__),
        ("<", float.__lt__),
        (">=", float.__ge__),
        ("<=", float.__le__),
        ("=", float.__eq__),
    ],
)
def test_number_filter_on_score_values(
    store: LocalStore, truth: Truth, operator: str, check: Callable[[float, float], bool]
) -> None:
    numeric = [float(s.value) for s in truth.scores if s.data_type == "NUMERIC"]
    pivot = sorted(numeric)[len(numeric) // 2]
    rows = query(
        store,
        view="scores-numeric",
        metrics=[metric("count", "count")],
        filters=[
            f("value", operator, pivot, "number"),
            f("name", "=", "decision_confidence", "string"),
        ],
    )
    assert rows[0]["count_count"] == sum(check(v, pivot) for v in numeric)


def test_numbers_beyond_64_bits_are_compared_not_crashed_on(store: LocalStore) -> None:
    huge = 10**30
    assert count_where(store, [f("value", "<", huge, "number")], view="scores-numeric") > 0
    assert (
        count_where(
            store,
            [f("value", ">", -huge, "number"), f("value", ">", huge, "number")],
            view="scores-numeric",
        )
        == 0
    )
    body = rejected_body(store, view="observations", metrics=[metric("count", "count")],
                         filters=[f("start_time", ">", huge, "datetime")])  # fmt: skip
    assert body["error"][0]["path"] == ["query", "filters", 0, "value"]


@pytest.mark.parametrize(
    ("column", "operator"),
    [("start_time", ">"), ("startTime", "<"), ("start_time", ">="), ("start_time", "<=")],
)
def test_datetime_filter_on_start_time(
    store: LocalStore, truth: Truth, column: str, operator: str
) -> None:
    pivot = T0_US + 2 * HOUR_US
    checks = {">": int.__gt__, "<": int.__lt__, ">=": int.__ge__, "<=": int.__le__}
    expected = sum(checks[operator](o.start_us, pivot) for o in truth.observations)
    assert count_where(store, [f(column, operator, "2026-01-01T02:00:00Z", "datetime")]) == expected


@pytest.mark.parametrize(
    ("operator", "value", "predicate"),
    [
        ("=", "pricing_agent", lambda v: v == "pricing_agent"),
        ("contains", "AGENT", lambda v: "agent" in v),
        ("does not contain", "pricing", lambda v: "pricing" not in v),  # a missing key counts as ""
        ("starts with", "inv", lambda v: v.startswith("inv")),
        ("ends with", "_agent", lambda v: v.endswith("_agent")),
        ("=", "", lambda v: v == ""),
    ],
)
def test_metadata_string_object_filter(
    store: LocalStore, truth: Truth, operator: str, value: str, predicate: Callable[[str], bool]
) -> None:
    expected = sum(predicate(str(o.metadata.get("agent_id", ""))) for o in truth.observations)
    assert (
        count_where(store, [f("metadata", operator, value, "stringObject", key="agent_id")])
        == expected
    )


def test_metadata_filter_compares_non_string_values_as_text(
    store: LocalStore, truth: Truth
) -> None:
    expected = sum(o.metadata.get("confidence") == 0.5 for o in truth.observations)
    assert expected == 2
    assert (
        count_where(store, [f("metadata", "=", "0.5", "stringObject", key="confidence")])
        == expected
    )


ODD_KEYS = ('a"b', "a\\b", "a.b", "a b", "a[0]", "agent_é", "line\nbreak", "$", "")


def test_metadata_keys_with_quotes_are_matched_exactly(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "traces.db")
    b = _Builder()
    trace_id = b.trace("t", [], "s", "default")
    for key in ODD_KEYS:
        b.span(trace_id, None, key, "SPAN", T0_US + 10, 5, metadata={key: "yes"})
    store.write(b.spans)
    for key in ODD_KEYS:
        assert count_where(store, [f("metadata", "=", "yes", "stringObject", key=key)]) == 1
    store.close()


def test_boolean_filter_is_root_observation_v2(store: LocalStore, truth: Truth) -> None:
    roots = sum(o.parent is None for o in truth.observations)
    assert count_where(store, [f("isRootObservation", "=", True, "boolean")], version=2) == roots
    assert (
        count_where(store, [f("isRootObservation", "<>", True, "boolean")], version=2)
        == len(truth.observations) - roots
    )


def test_filters_combine_with_and(store: LocalStore, truth: Truth) -> None:
    filters = [
        f("level", "=", "ERROR", "string"),
        f("traceName", "starts with", "simulation.", "string"),
        f("environment", "any of", ["staging"], "stringOptions"),
    ]
    expected = sum(o.level == "ERROR" and o.environment == "staging" for o in truth.observations)
    assert expected > 0
    assert count_where(store, filters) == expected


def test_a_name_ending_column_falls_back_to_name_like_langfuse(
    store: LocalStore, truth: Truth
) -> None:
    rows = query(
        store,
        view="scores-numeric",
        metrics=[metric("count", "count")],
        filters=[f("scoreName", "=", "approved", "string")],
    )
    assert rows[0]["count_count"] == sum(s.name == "approved" for s in truth.scores)


# --- time dimension, order, limit -------------------------------------------------------------------


def test_hourly_buckets_are_filled_and_ordered(store: LocalStore, truth: Truth) -> None:
    rows = query(
        store,
        view="observations",
        metrics=[metric("count", "count")],
        timeDimension={"granularity": "hour"},
    )
    expected = Counter((o.start_us - T0_US) // HOUR_US for o in truth.observations)
    assert len(rows) == 24  # WITH FILL: every hour of the window, empty ones with 0
    for hour, row in enumerate(rows):
        assert row["time_dimension"] == f"2026-01-01T{hour:02d}:00:00.000Z"
        assert row["count_count"] == expected.get(hour, 0)


def test_time_dimension_with_a_dimension_and_bucket_boundaries(
    store: LocalStore, truth: Truth
) -> None:
    rows = query(
        store,
        view="observations",
        dimensions=dims("type"),
        metrics=[metric("count", "count")],
        timeDimension={"granularity": "minute"},
        orderBy=[{"field": "time_dimension", "direction": "asc"}],
    )
    expected = Counter(
        (
            f"2026-01-01T{(o.start_us - T0_US) // 3_600_000_000:02d}:{(o.start_us - T0_US) // 60_000_000 % 60:02d}:00.000Z",
            o.type,
        )
        for o in truth.observations
    )
    assert {
        (r["time_dimension"], r["type"]): r["count_count"] for r in rows
    } == expected  # no fill with orderBy
    assert [r["time_dimension"] for r in rows] == sorted(r["time_dimension"] for r in rows)


@pytest.mark.parametrize(
    ("granularity", "start", "end", "buckets"),
    [
        (
            "day",
            "2025-12-30T00:00:00Z",
            "2026-01-03T00:00:00Z",
            ["2025-12-30", "2025-12-31", "2026-01-01", "2026-01-02"],
        ),
        (
            "week",
            "2025-12-20T00:00:00Z",
            "2026-01-10T00:00:00Z",
            ["2025-12-15", "2025-12-22", "2025-12-29"],
        ),
        (
            "month",
            "2025-11-15T00:00:00Z",
            "2026-02-15T00:00:00Z",
            ["2025-11-01", "2025-12-01", "2026-01-01"],
        ),
        (
            "auto",
            "2025-12-30T00:00:00Z",
            "2026-01-06T00:00:00Z",
            [
                "2025-12-30",
                "2025-12-31",
                "2026-01-01",
                "2026-01-02",
                "2026-01-03",
                "2026-01-04",
                "2026-01-05",
            ],
        ),
    ],
)
def test_day_week_month_and_auto_buckets(
    store: LocalStore, truth: Truth, granularity: str, start: str, end: str, buckets: list[str]
) -> None:
    rows = run_metrics_query(
        store,
        json.dumps(
            {
                "view": "observations",
                "metrics": [metric("count", "count")],
                "timeDimension": {"granularity": granularity},
                "fromTimestamp": start,
                "toTimestamp": end,
            }
        ),
        version=1,
    )["data"]
    assert [r["time_dimension"] for r in rows] == [f"{day}T00:00:00.000Z" for day in buckets]
    # Every observation is on 2026-01-01: a Thursday, in the week of Monday 2025-12-29.
    assert sum(r["count_count"] for r in rows) == len(truth.observations)
    assert max(rows, key=lambda r: r["count_count"])["time_dimension"] in (
        "2026-01-01T00:00:00.000Z",
        "2025-12-29T00:00:00.000Z",
    )


def test_order_by_and_row_limit(store: LocalStore, truth: Truth) -> None:
    counts = Counter(o.name for o in truth.observations)
    rows = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("count", "count")],
        orderBy=[
            {"field": "count_count", "direction": "asc"},
            {"field": "name", "direction": "desc"},
        ],
        config={"row_limit": 3},
    )
    by_name_desc = sorted(counts.items(), key=lambda kv: kv[0], reverse=True)
    expected = sorted(by_name_desc, key=lambda kv: kv[1])[:3]
    assert [(r["name"], r["count_count"]) for r in rows] == expected
    rows = query(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("count", "count")],
        orderBy=[{"field": "name", "direction": "asc"}],
    )
    assert [r["name"] for r in rows] == sorted(counts)


def test_v2_applies_the_default_row_limit_of_100(store: LocalStore) -> None:
    body = {
        "view": "observations",
        "metrics": [metric("count", "count")],
        "timeDimension": {"granularity": "minute"},
        "fromTimestamp": "2026-01-01T00:00:00Z",
        "toTimestamp": "2026-01-01T03:00:00Z",
    }
    assert len(run_metrics_query(store, json.dumps(body), version=1)["data"]) == 180
    assert len(run_metrics_query(store, json.dumps(body), version=2)["data"]) == 100


def test_high_cardinality_dimension_allowed_on_v2_as_a_top_n(
    store: LocalStore, truth: Truth
) -> None:
    rows = query(
        store,
        2,
        view="observations",
        dimensions=dims("traceId"),
        metrics=[metric("count", "count")],
        orderBy=[{"field": "count_count", "direction": "desc"}],
        config={"row_limit": 1},
    )
    biggest = Counter(o.trace for o in truth.observations).most_common(1)[0]
    assert rows == [{"traceId": biggest[0], "count_count": biggest[1]}]


# --- slicing and parallel reads give the same answers ---------------------------------------------


SLICED_QUERIES = [
    {
        "view": "observations",
        "dimensions": dims("name", "level"),
        "metrics": [
            metric("count", "count"),
            metric("latency", "avg"),
            metric("latency", "min"),
            metric("latency", "max"),
        ],
    },
    {
        "view": "observations",
        "dimensions": dims("name"),
        "metrics": [metric("latency", p) for p in PERCENTILES] + [metric("latency", "sum")],
    },
    {
        "view": "observations",
        "metrics": [metric("count", "count"), metric("latency", "uniq")],
        "timeDimension": {"granularity": "hour"},
    },
    {
        "view": "traces",
        "dimensions": dims("name"),
        "metrics": [metric("count", "count"), metric("latency", "p90")],
    },
]


@pytest.mark.parametrize("body", SLICED_QUERIES)
def test_sliced_and_parallel_runs_match_one_query(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, body: dict[str, Any]
) -> None:
    raw = json.dumps({**WINDOW, **body})
    whole = metrics_engine.run(store, parse_metrics_query(raw, version=1), workers=1)
    monkeypatch.setattr(metrics_engine, "SLICE_ROWS", 2)
    monkeypatch.setattr(metrics_engine, "PARALLEL_MIN_SLICES", 2)
    parsed = parse_metrics_query(raw, version=1)
    assert len(metrics_engine._slices(store, parsed, build_plan(parsed))) > 10
    for workers in (1, 2, 3):
        sliced = metrics_engine.run(store, parsed, workers=workers)
        assert [list(row) for row in sliced] == [list(row) for row in whole]
        for got, expected in zip(sliced, whole, strict=True):
            for key, value in expected.items():
                if isinstance(value, float):  # sums merged slice by slice: last-bit differences
                    assert got[key] == pytest.approx(value, rel=1e-12), key
                else:
                    assert got[key] == value, key


# --- errors, as Langfuse answers them --------------------------------------------------------------


def zod_messages(body: dict[str, Any]) -> list[str]:
    assert body["message"] == "Invalid request data"
    return [f"{'.'.join(map(str, issue['path']))}: {issue['message']}" for issue in body["error"]]


def test_invalid_json_and_missing_query(store: LocalStore) -> None:
    assert rejected(store, "{not json") == {
        "message": "Invalid JSON in query parameter",
        "error": "InvalidRequestError",
    }
    assert rejected(store, '{"view": NaN}')["message"] == "Invalid JSON in query parameter"
    assert zod_messages(rejected(store, None)) == [
        "query: Invalid input: expected string, received undefined"
    ]
    assert zod_messages(rejected(store, "[1, 2]")) == [
        "query: Invalid input: expected object, received array"
    ]


def test_missing_timestamps_and_reversed_window(store: LocalStore) -> None:
    body = rejected(
        store,
        json.dumps(
            {
                "view": "observations",
                "metrics": [metric("count", "count")],
                "toTimestamp": "2026-01-02T00:00:00Z",
            }
        ),
    )
    assert zod_messages(body) == [
        "query.fromTimestamp: Invalid input: expected string, received undefined"
    ]
    body = rejected(
        store,
        json.dumps(
            {
                "view": "observations",
                "metrics": [metric("count", "count")],
                "fromTimestamp": "2026-01-01",
                "toTimestamp": "2026-01-02T00:00:00Z",
            }
        ),
    )
    assert zod_messages(body) == ["query.fromTimestamp: Invalid ISO datetime"]
    for to in ("2026-01-01T00:00:00Z", "2025-12-31T23:00:00+00:00", "2026-01-01T01:00:00+01:00"):
        body = rejected(
            store,
            json.dumps(
                {
                    "view": "observations",
                    "metrics": [metric("count", "count")],
                    "fromTimestamp": "2026-01-01T00:00:00Z",
                    "toTimestamp": to,
                }
            ),
        )
        assert zod_messages(body) == ["query: fromTimestamp must be before toTimestamp"]


def test_unknown_view_and_traces_on_v2(store: LocalStore) -> None:
    body = rejected_body(store, view="sessions", metrics=[metric("count", "count")])
    assert zod_messages(body) == [
        'query.view: Invalid option: expected one of "traces"|"observations"|"scores-numeric"|"scores-categorical" (received "sessions")'
    ]
    body = rejected_body(store, 2, view="traces", metrics=[metric("count", "count")])
    assert zod_messages(body) == [
        'query.view: Invalid option: expected one of "observations"|"scores-numeric"|"scores-boolean"|"scores-categorical" (received "traces")'
    ]
    assert body["error"][0]["values"] == [
        "observations",
        "scores-numeric",
        "scores-boolean",
        "scores-categorical",
    ]


def test_metrics_are_required_and_aggregations_known(store: LocalStore) -> None:
    assert zod_messages(rejected_body(store, view="observations", metrics=[])) == [
        "query.metrics: Too small: expected array to have >=1 items"
    ]
    assert zod_messages(rejected_body(store, view="observations")) == [
        "query.metrics: Invalid input: expected array, received undefined"
    ]
    messages = zod_messages(
        rejected_body(store, view="observations", metrics=[metric("latency", "median")])
    )
    assert messages == [
        'query.metrics.0.aggregation: Invalid option: expected one of "sum"|"avg"|"count"|"max"|"min"|"p50"|"p75"|"p90"|"p95"|"p99"|"histogram"|"uniq" (received "median")'
    ]


def test_granularity_and_config_ranges(store: LocalStore) -> None:
    body = rejected_body(
        store,
        view="observations",
        metrics=[metric("count", "count")],
        timeDimension={"granularity": "year"},
    )
    assert zod_messages(body) == [
        'query.timeDimension.granularity: Invalid option: expected one of "auto"|"minute"|"hour"|"day"|"week"|"month" (received "year")'
    ]
    cases = {
        0: "query.config.row_limit: Too small: expected number to be >0",
        1001: "query.config.row_limit: Too big: expected number to be <=1000",
        2.5: "query.config.row_limit: Invalid input: expected int, received number",
        "10": "query.config.row_limit: Invalid input: expected number, received string",
    }
    for value, message in cases.items():
        body = rejected_body(
            store,
            view="observations",
            metrics=[metric("count", "count")],
            config={"row_limit": value},
        )
        assert zod_messages(body) == [message]
    body = rejected_body(
        store, view="observations", metrics=[metric("count", "count")], config={"bins": 101}
    )
    assert zod_messages(body) == ["query.config.bins: Too big: expected number to be <=100"]


def test_every_schema_problem_is_reported_at_once(store: LocalStore) -> None:
    body = rejected(
        store, json.dumps({"view": "nope", "metrics": [{"measure": "count"}], "fromTimestamp": 5})
    )
    paths = [issue["path"] for issue in body["error"]]
    assert paths == [
        ["query", "view"],
        ["query", "metrics", 0, "aggregation"],
        ["query", "fromTimestamp"],
        ["query", "toTimestamp"],
    ]


def test_high_cardinality_dimensions_on_v2(store: LocalStore) -> None:
    body = rejected_body(
        store,
        2,
        view="observations",
        dimensions=dims("traceId"),
        metrics=[metric("count", "count")],
    )
    assert body == {
        "message": "High cardinality dimension(s) 'traceId' require both 'config.row_limit' and 'orderBy' with direction 'desc' on a measure field.",
        "error": "InvalidRequestError",
    }
    body = rejected_body(
        store,
        2,
        view="observations",
        dimensions=dims("userId", "name"),
        metrics=[metric("count", "count")],
        timeDimension={"granularity": "hour"},
    )
    assert body["message"].startswith(
        "High cardinality dimension(s) 'userId' cannot be used with timeDimension."
    )
    body = rejected_body(
        store,
        2,
        view="scores-numeric",
        dimensions=dims("observationId"),
        metrics=[metric("count", "count")],
        config={"row_limit": 5},
        orderBy=[{"field": "observationId", "direction": "desc"}],
    )
    assert body["message"].endswith("'observationId' is not a measure in this query.")
    # v1 allows them.
    rows = query(
        store,
        1,
        view="observations",
        dimensions=dims("traceId"),
        metrics=[metric("count", "count")],
    )
    assert len(rows) == 31


def test_unknown_dimension_metric_filter_and_order_by(store: LocalStore) -> None:
    body = rejected_body(
        store,
        view="scores-categorical",
        dimensions=dims("value"),
        metrics=[metric("count", "count")],
    )
    assert body["error"] == "InvalidRequestError"
    assert body["message"].startswith(
        "Invalid dimension value. Must be one of id,environment,name,source,"
    )
    body = rejected_body(store, view="scores-categorical", metrics=[metric("value", "avg")])
    assert body["message"] == "Invalid metric value. Must be one of count"
    body = rejected_body(
        store,
        view="observations",
        metrics=[metric("count", "count")],
        filters=[f("bogus", "=", "x", "string")],
    )
    assert body["message"].startswith("Invalid filter column bogus. Must be one of id,traceId,")
    assert body["message"].endswith(" or start_time")
    body = rejected_body(
        store,
        view="observations",
        dimensions=dims("name"),
        metrics=[metric("count", "count")],
        orderBy=[{"field": "sum_count", "direction": "desc"}],
    )
    assert (
        body["message"]
        == "Invalid orderBy field: sum_count. Must be one of the dimension or metric fields."
    )
    body = rejected_body(
        store,
        view="observations",
        metrics=[metric("count", "count")],
        orderBy=[{"field": "time_dimension", "direction": "asc"}],
    )
    assert body["message"].startswith("Invalid orderBy field: time_dimension.")
    body = rejected_body(
        store,
        1,
        view="observations",
        dimensions=dims("isRootObservation"),
        metrics=[metric("count", "count")],
    )
    assert body["message"].startswith("Invalid dimension isRootObservation.")  # v2 only


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            f("name", "like", "x", "string"),
            'query.filters.0.operator: Invalid option: expected one of "="|"contains"|"does not contain"|"starts with"|"ends with" (received "like")',
        ),
        (
            f("name", "=", "x", "text"),
            'query.filters.0.type: Invalid input: unknown filter type "text"; expected one of "datetime"|"string"|"stringOptions"|"categoryOptions"|"arrayOptions"|"number"|"stringObject"|"numberObject"|"boolean"|"null"',
        ),
        (
            f("name", "=", 5, "string"),
            "query.filters.0.value: Invalid input: expected string, received number",
        ),
        (
            f("name", "any of", [], "stringOptions"),
            "query.filters.0.value: Invalid input: the value array must not be empty",
        ),
        (
            f("metadata", "=", "x", "stringObject"),
            "query.filters.0.key: Invalid input: expected string, received undefined",
        ),
        (
            f("start_time", ">", "yesterday", "datetime"),
            "query.filters.0.value: Invalid input: expected date, received Date",
        ),
    ],
)
def test_filter_shape_errors(store: LocalStore, bad: dict[str, Any], message: str) -> None:
    body = rejected_body(
        store, view="observations", metrics=[metric("count", "count")], filters=[bad]
    )
    assert zod_messages(body) == [message]


@pytest.mark.parametrize(
    ("bad", "start"),
    [
        (
            f("metadata", "=", "x", "string"),
            "Invalid filter for field 'metadata': Metadata filters require type 'stringObject'",
        ),
        (
            f("tags", "=", "x", "string"),
            "Invalid filter for field 'tags': Array fields require type 'arrayOptions', not 'string'.",
        ),
        (
            f("name", ">", 3, "number"),
            "Invalid filter for field 'name': type 'number' does not apply to a string field.",
        ),
        (
            f("start_time", "=", "x", "string"),
            "Invalid filter for field 'start_time': type 'string' does not apply to a datetime field.",
        ),
    ],
)
def test_filter_type_must_fit_the_column(
    store: LocalStore, bad: dict[str, Any], start: str
) -> None:
    body = rejected_body(
        store, view="observations", metrics=[metric("count", "count")], filters=[bad]
    )
    assert body["error"] == "InvalidRequestError"
    assert body["message"].startswith(start)


# --- injection ----------------------------------------------------------------------------------------

ATTACKS = [
    "x' OR '1'='1",
    "'; DROP TABLE observations; --",
    'name" FROM traces; DROP TABLE scores; --',
    "1) UNION SELECT id, id FROM traces --",
    "$.a') OR 1=1 --",
    "%' OR 1=1 --",
]


def _store_intact(store: LocalStore, counts: dict[str, int]) -> None:
    assert store.counts() == counts
    tables = {r[0] for r in store.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"traces", "observations", "scores"} <= tables


@pytest.mark.parametrize("attack", ATTACKS)
def test_injection_through_values_names_and_keys_changes_nothing(
    store: LocalStore, attack: str
) -> None:
    counts = store.counts()
    value_filters = [
        f("name", "=", attack, "string"),
        f("name", "contains", attack, "string"),
        f("type", "any of", [attack, "x"], "stringOptions"),
        f("tags", "all of", [attack], "arrayOptions"),
        f("metadata", "=", attack, "stringObject", key=attack),
        f("metadata", "starts with", "x", "stringObject", key=attack),
        f("start_time", ">", attack, "datetime"),
    ]
    for item in value_filters:
        try:
            rows = query(
                store,
                1,
                view="observations",
                dimensions=dims("name"),
                metrics=[metric("count", "count")],
                filters=[item],
            )
        except ApiProblem as problem:
            assert problem.status == 400
        else:
            assert rows == []
    attempts: list[dict[str, Any]] = [
        {"view": "observations", "dimensions": dims(attack), "metrics": [metric("count", "count")]},
        {"view": "observations", "metrics": [metric(attack, "count")]},
        {
            "view": "observations",
            "metrics": [metric("count", "count")],
            "orderBy": [{"field": attack, "direction": "asc"}],
        },
        {
            "view": "observations",
            "metrics": [metric("count", "count")],
            "filters": [f(attack, "=", "x", "string")],
        },
        {"view": attack, "metrics": [metric("count", "count")]},
    ]
    for body in attempts:
        assert rejected_body(store, **body)["message"]
    _store_intact(store, counts)


def test_values_are_bound_never_formatted_into_the_sql() -> None:
    marker = "zz_marker_'\";--"
    raw = json.dumps(
        {
            **WINDOW,
            "view": "observations",
            "dimensions": dims("name"),
            "metrics": [metric("count", "count")],
            "filters": [
                f("name", "=", marker, "string"),
                f("metadata", "=", marker, "stringObject", key=marker),
                f("tags", "any of", [marker], "arrayOptions"),
            ],
        }
    )
    sql, params = build_sql(parse_metrics_query(raw, version=1))
    assert "zz_marker" not in sql
    assert params[:2] == [T0_US, T0_US + 24 * HOUR_US]
    assert params.count(marker) == 4  # name, metadata key and value, tag


# --- property: untrusted input never escapes as anything but a 400 --------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 2000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = [
    "view",
    "dimensions",
    "metrics",
    "filters",
    "timeDimension",
    "fromTimestamp",
    "toTimestamp",
    "orderBy",
    "config",
]
VALID: dict[str, Any] = {
    **WINDOW,
    "view": "observations",
    "dimensions": dims("name"),
    "metrics": [metric("latency", "p95")],
    "filters": [f("name", "contains", "a", "string")],
    "timeDimension": {"granularity": "hour"},
    "orderBy": [{"field": "name", "direction": "asc"}],
    "config": {"row_limit": 5},
}


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=st.sampled_from(FIELDS), value=json_values, version=st.sampled_from([1, 2]))
def test_a_mangled_query_is_answered_or_rejected_with_400(
    store: LocalStore, key: str, value: Any, version: int
) -> None:
    raw = json.dumps({**VALID, key: value})
    try:
        result = run_metrics_query(store, raw, version=version)
    except ApiProblem as problem:
        assert problem.status == 400
        assert problem.body["message"]
    else:
        assert isinstance(result["data"], list)


filter_parts = {
    "column": st.sampled_from(["name", "metadata", "tags", "start_time", "value", "x"])
    | json_values,
    "operator": st.sampled_from(["=", "any of", "all of", ">", "is null", "contains"])
    | json_values,
    "type": st.sampled_from(
        [
            "string",
            "stringOptions",
            "arrayOptions",
            "number",
            "datetime",
            "null",
            "stringObject",
            "boolean",
        ]
    )
    | json_values,
    "value": json_values,
    "key": st.text(max_size=8) | json_values,
}


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    item=st.fixed_dictionaries({}, optional=filter_parts),
    view=st.sampled_from(["observations", "scores-numeric", "traces"]),
)
def test_a_mangled_filter_is_answered_or_rejected_with_400(
    store: LocalStore, item: dict[str, Any], view: str
) -> None:
    raw = json.dumps(
        {**WINDOW, "view": view, "metrics": [metric("count", "count")], "filters": [item]}
    )
    try:
        result = run_metrics_query(store, raw, version=1)
    except ApiProblem as problem:
        assert problem.status == 400
    else:
        assert isinstance(result["data"], list)


@settings(max_examples=examples(100), deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_is_rejected_cleanly(text: str) -> None:
    try:
        parse_metrics_query(text, version=2)
    except ApiProblem as problem:
        assert problem.status == 400


@pytest.mark.parametrize(
    "completion_start", ["2026-01-01T00:00:00.250900Z", "2025-12-31T19:00:00.2509-05:00"]
)
def test_time_to_first_token_is_exact_to_the_microsecond(
    tmp_path: Path, completion_start: str
) -> None:
    """250 ms to the first token answered 250.101: julianday() is a float of milliseconds,
    while /v2/observations gives the exact value."""
    store = LocalStore(tmp_path / "ttft.db")
    start_us = 1_767_225_600_000_900  # 2026-01-01T00:00:00.000900Z
    attributes = {
        la.TRACE_NAME: "ttft",
        la.OBSERVATION_TYPE: "generation",
        la.OBSERVATION_COMPLETION_START_TIME: json.dumps(completion_start),
    }
    span = SpanRecord("a" * 32, "b" * 16, None, "gen", start_us * 1000,
                      (start_us + 1_000_000) * 1000, attributes)  # fmt: skip
    store.write([span])
    rows = query(
        store,
        version=2,
        view="observations",
        metrics=[metric("timeToFirstToken", "max"), metric("latency", "max")],
    )
    store.close()
    assert rows == [{"max_timeToFirstToken": 250.0, "max_latency": 1000.0}]
