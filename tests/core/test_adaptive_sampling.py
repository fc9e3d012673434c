"""Adaptive sampling: the rate goes down while tracing is too costly, and back up after."""

from __future__ import annotations

import json
from pathlib import Path

from config.tracing.adaptive_sampling import MIN_RATE, WINDOW_TRACES, AdaptiveSampling
from config.tracing.sampling import TraceSampler
from tests.cli.test_replay import EXAMPLE, EXPECTED_ROUTES, query
from tests.conftest import Cli


def test_costly_tracing_lowers_then_restores_step_by_step() -> None:
    sampler = TraceSampler(0.8)
    adaptive = AdaptiveSampling(sampler, base_rate=0.8, max_latency_ms=1.0)
    rates = []
    for cost_ns in (5_000_000, 5_000_000, 5_000_000, 10_000, 10_000, 10_000, 10_000):
        for _ in range(WINDOW_TRACES):
            adaptive.trace_finished(tracing_ns=cost_ns, operations=1)
        rates.append(sampler.rate)
    assert rates == [0.4, 0.2, 0.1, 0.2, 0.4, 0.8, 0.8]
    assert [c["to"] for c in adaptive.changes] == [0.4, 0.2, 0.1, 0.2, 0.4, 0.8]
    assert "tracing adds 5.000 ms" in adaptive.changes[0]["reason"]


def test_latency_over_budget_lowers_to_the_floor_and_no_further() -> None:
    sampler = TraceSampler(1.0)
    adaptive = AdaptiveSampling(sampler, base_rate=1.0, max_latency_ms=0.5)
    for _ in range(20):
        adaptive.evaluate(overhead_ms=5.0)
    assert sampler.rate == MIN_RATE
    assert "budget 0.5 ms" in adaptive.changes[0]["reason"]
    adaptive.evaluate(overhead_ms=0.4)  # between half and the budget: hold
    assert sampler.rate == MIN_RATE


def test_latency_over_budget_is_the_listeners_call() -> None:
    """With a listener (the service's error handler) the over-budget latency goes to it."""
    sampler = TraceSampler(1.0)
    heard: list[float] = []
    adaptive = AdaptiveSampling(
        sampler, base_rate=1.0, max_latency_ms=0.5, on_over_budget=heard.append
    )
    adaptive.evaluate(overhead_ms=5.0)
    adaptive.evaluate(overhead_ms=0.1)  # under budget: not reported
    assert heard == [5.0]
    assert sampler.rate == 1.0  # lowering is the listener's decision


def test_lowering_leaves_a_switched_off_sampler_alone() -> None:
    sampler = TraceSampler(0.5, enabled=False)
    adaptive = AdaptiveSampling(sampler, base_rate=1.0, max_latency_ms=0.5)
    assert adaptive.lower("too slow") == 1.0
    assert adaptive.changes == []
    assert sampler.keep("f" * 32)


def test_replay_shows_the_changes_and_keeps_traces_whole(cli: Cli, workdir: Path) -> None:
    env = {"LANGFUSE_MAX_LATENCY_MS": "0.000001"}
    result = cli("replay", str(EXAMPLE), "--json", env=env)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    changes = summary["sampling_changes"]
    assert changes and changes[0]["from"] == 1.0 and changes[0]["to"] == 0.5
    assert summary["traces_recorded"] < summary["events_processed"]
    rows = query(
        workdir,
        "SELECT json_extract(t.metadata, '$.event_type'), COUNT(o.id) FROM traces t "
        "JOIN observations o ON o.trace_id = t.id AND o.type = 'AGENT' GROUP BY t.id",
    )
    assert len(rows) == summary["traces_recorded"]
    assert all(agents == EXPECTED_ROUTES[event_type][0] for event_type, agents in rows)
    table = cli("replay", str(EXAMPLE), "--limit", "60", env=env).stdout
    assert "sample rate 1 -> 0.5" in table
