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


def test_traces_without_agent_operations_never_lower_the_rate() -> None:
    """A window with no agent operation took its whole tracing time for the cost of one
    operation: traces of collaborations alone (more so in 8 threads, each counting the
    others' tracing) fell to a quarter of their rate, a trace dropped in three."""
    sampler = TraceSampler(1.0)
    adaptive = AdaptiveSampling(sampler, base_rate=1.0, max_latency_ms=1.0)
    for _ in range(WINDOW_TRACES * 3):
        adaptive.trace_finished(tracing_ns=50_000_000, operations=0)
    assert sampler.rate == 1.0 and adaptive.changes == []


def test_threads_tracing_at_once_keep_the_rate(workdir: Path) -> None:
    """Eight threads tracing collaborations (no agent operation): each trace's cost was the
    counters' change since it opened (the tracing of the traces open beside it too), taken
    as the cost of one operation: "tracing adds 402 ms per agent operation", a quarter of
    the traces kept."""
    from concurrent.futures import ThreadPoolExecutor

    from config.delivery.exporters import NullExporter
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    service = LangfuseIntegrationService(
        LangfuseConfig(max_latency_ms=5.0), DataMaskingConfig(), exporter=NullExporter()
    )

    def handle(number: int) -> None:
        trace_id = service.create_simulation_trace(
            {"event_type": "demand_spike", "product_id": f"P{number}", "event_id": str(number)}
        )
        with service.track_collaboration("sync", ["a", "b"]):
            for step in range(3):
                service.log_coordination_message("a", "b", "m", {"step": step})
        service.finalize_trace(trace_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(handle, range(400)))
    metrics = service.get_performance_metrics()
    assert (metrics["effective_sample_rate"], metrics["traces_sampled_out"]) == (1.0, 0)
