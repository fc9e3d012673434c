"""``autoops metrics``: the same numbers from Langfuse (serve), from the store, and from the events."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from config.store.local_store import LocalStore
from config.tracing import attributes as la
from config.tracing.span_records import ScoreRecord, SpanRecord
from tests.conftest import Cli
from tests.support.counting_proxy import CountingProxy, ProxyFaults
from tests.support.paths import GOLDEN
from tests.support.serve_process import ServeHandle

T0_S = 1_795_000_000  # 2026-11-18T11:06:40Z: a fixed instant, so the output is fixed
WINDOW = ("--since", "2026-11-18T11:00:00Z", "--until", "2026-11-18T13:00:00Z")
AGENT_ROUTES = {  # docs/agents.md, "Routing": written out here, not imported
    "demand_spike": ("inventory_agent", "pricing_agent", "promotion_agent"),
    "inventory_low": ("inventory_agent", "pricing_agent"),
    "competitor_price_change": ("pricing_agent", "promotion_agent"),
    "supply_delay": ("inventory_agent", "pricing_agent"),
    "seasonal_trend": ("inventory_agent", "pricing_agent", "promotion_agent"),
    "slow_moving_inventory": ("inventory_agent", "pricing_agent", "promotion_agent"),
}


class _Spans:
    """Builds simulation traces the way the core records them, at fixed times."""

    def __init__(self) -> None:
        self.spans: list[SpanRecord] = []
        self.scores: list[ScoreRecord] = []
        self._next = 0

    def _id(self, width: int) -> str:
        self._next += 1
        return f"{self._next:0{width}x}"

    def span(self, trace: str, parent: str | None, name: str, kind: str, start_ms: float,
             duration_ms: float, level: str | None = None) -> str:  # fmt: skip
        span_id = self._id(16)
        attributes = {la.OBSERVATION_TYPE: kind, la.TRACE_NAME: "simulation.demand_spike"}
        if level:
            attributes[la.OBSERVATION_LEVEL] = level
        start_ns = T0_S * 1_000_000_000 + int(start_ms * 1_000_000)
        self.spans.append(
            SpanRecord(trace, span_id, parent, name, start_ns,
                       start_ns + int(duration_ms * 1_000_000), attributes, trusted_json=True)
        )  # fmt: skip
        return span_id

    def score(self, trace: str, observation: str, name: str, value: float, at_ms: float) -> None:
        stamp = T0_S * 1_000_000_000 + int(at_ms * 1_000_000)
        self.scores.append(ScoreRecord(self._id(32), trace, observation, name, value, stamp))

    def event(self, start_ms: float, duration_ms: float, *, conflict: bool = False,
              failed: bool = False) -> None:  # fmt: skip
        """One workflow: pricing (and promotion) with a tool each, maybe a conflict."""
        trace = self._id(32)
        level = "ERROR" if failed else None
        root = self.span(
            trace, None, "orchestrator.process_event", "chain", start_ms, duration_ms, level
        )
        pricing = self.span(trace, root, "pricing_agent.optimize_price", "agent", start_ms + 1,
                            duration_ms / 2, level)  # fmt: skip
        self.span(trace, pricing, "pricing_agent.competitor_feed", "tool", start_ms + 2, 5)
        if failed:
            return
        self.score(trace, pricing, "decision_confidence", 0.8, start_ms + 3)
        promotion = self.span(trace, root, "promotion_agent.plan_promotion", "agent",
                              start_ms + 2, duration_ms / 4)  # fmt: skip
        self.score(trace, promotion, "decision_confidence", 0.6, start_ms + 4)
        if conflict:
            self.span(
                trace, root, "conflict.price_vs_discount", "event", start_ms + 5, 0, "WARNING"
            )
            self.span(
                trace, root, "conflict_resolution.price_vs_discount", "event", start_ms + 6, 0
            )
            self.score(trace, pricing, "decision_overturned", 0.0, start_ms + 7)
            self.score(trace, promotion, "decision_overturned", 1.0, start_ms + 7)

    def write(self, path: Path) -> None:
        store = LocalStore(path)
        store.write(self.spans, self.scores)
        store.close()


def fixed_store(path: Path) -> None:
    """10 events in the hour before the window, 8 in it: 1 failed, 2 conflicts, slow ones."""
    b = _Spans()
    for i in range(10):
        b.event(-7_000_000 + i * 1000, 40)  # 2026-11-18T09:10 (previous window)
    durations = (80, 120, 200, 90, 100, 300, 60, 150)
    for i, duration in enumerate(durations):
        b.event(i * 600_000, duration, conflict=i in (2, 5), failed=i == 4)
    b.write(path)


def store_path() -> Path:
    return Path(os.environ["AUTOOPS_HOME"]) / "traces.db"


def metrics_json(cli: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = cli("metrics", "--json", *args, env=env)
    assert result.exit_code == 0, result.both
    return json.loads(result.stdout)


# --- definitions, on a fixed store ----------------------------------------------------------


def test_a_window_ends_before_its_end_and_unmeasured_operations_weigh_nothing(
    cli: Cli,
) -> None:
    """The end was inclusive (as Langfuse's toTimestamp is): a workflow at exactly 12:00
    counted in 11:00-12:00 and in 12:00-13:00, and --by hour then lost the previous
    window's events. And a group of operations without an end time (no latency) was read
    as 0 ms with its count: every mean fell."""
    b = _Spans()
    b.event(-1_000_000, 100)  # 10:50:00, the previous window
    b.event(0, 100)  # 11:06:40
    b.event(1_000_000, 300)  # 11:23:20
    b.event(2_000_000, 100, failed=True)  # 11:40:00, never ended (below)
    b.event(3_200_000, 100)  # 12:00:00 exactly: the next window's
    b.write(store_path())
    with sqlite3.connect(store_path()) as db:
        db.execute("UPDATE observations SET end_us = NULL WHERE level = 'ERROR'")
    hour = ("--since", "2026-11-18T11:00:00Z", "--until", "2026-11-18T12:00:00Z")
    first = metrics_json(cli, *hour)
    second = metrics_json(cli, "--since", "2026-11-18T12:00:00Z", "--until", "2026-11-18T13:00:00Z")
    assert first["system"]["total_events_processed"] == 3
    assert second["system"]["total_events_processed"] == 1
    assert first["system"]["average_workflow_duration"] == 200.0
    assert first["agents"]["pricing_agent"]["average_response_time"] == 100.0
    by_hour = metrics_json(cli, *hour, "--by", "hour")
    assert by_hour["system"]["previous_window_events"] == 1
    assert [b["average_workflow_duration"] for b in by_hour["series"]] == [200.0]
    # Every bucket of the window, empty ones too (the last one was left out).
    quiet = metrics_json(
        cli, "--since", "2026-11-18T13:00:00Z", "--until", "2026-11-18T15:00:00Z", "--by", "hour"
    )
    assert [(b["time"], b["events"]) for b in quiet["series"]] == [
        ("2026-11-18T13:00:00.000Z", 0),
        ("2026-11-18T14:00:00.000Z", 0),
    ]


def test_means_over_levels_weigh_only_the_operations_that_have_a_duration(cli: Cli) -> None:
    """A group's mean was weighed by all its rows, those without an end time too: merged
    with another level's group, the agent's and the workflows' means were off."""
    b = _Spans()
    for i, duration in enumerate((100, 300, 500)):
        b.event(i * 60_000, duration)  # 11:00 and on
    b.event(200_000, 40, failed=True)
    b.write(store_path())
    with sqlite3.connect(store_path()) as db:  # the 500 ms workflow and its pricing never ended
        db.execute("UPDATE observations SET end_us = NULL WHERE end_us - start_us IN "
                   "(500000, 250000)")  # fmt: skip
    report = metrics_json(cli, "--since", "2026-11-18T11:00:00Z", "--until", "2026-11-18T12:00:00Z",
                          "--by", "hour")  # fmt: skip
    assert report["system"]["average_workflow_duration"] == pytest.approx((100 + 300 + 40) / 3)
    assert report["series"][0]["average_workflow_duration"] == pytest.approx((100 + 300 + 40) / 3)
    assert report["agents"]["pricing_agent"]["average_response_time"] == pytest.approx(
        (50 + 150 + 20) / 3
    )


def test_numbers_on_a_fixed_store(cli: Cli) -> None:
    fixed_store(store_path())
    report = metrics_json(cli, *WINDOW)
    assert report["window"] == {
        "from": "2026-11-18T11:00:00.000Z",
        "to": "2026-11-18T13:00:00.000Z",
    }
    pricing = report["agents"]["pricing_agent"]
    assert pricing["operation_count"] == 8 and pricing["errors"] == 1
    assert pricing["success_rate"] == pytest.approx(7 / 8)
    assert pricing["average_response_time"] == pytest.approx(
        sum((80, 120, 200, 90, 100, 300, 60, 150)) / 16
    )
    # p50/p95 over the 7 successful operations (halves of 80, 120, 200, 90, 300, 60, 150).
    assert pricing["p50_response_time"] == pytest.approx(60.0)
    # Sorted 30, 40, 45, 60, 75, 100, 150: rank 6 x 0.95 = 5.7 -> 100 + 0.7 x 50.
    assert pricing["p95_response_time"] == pytest.approx(135.0)
    assert pricing["tool_usage_stats"] == {"competitor_feed": 8}
    assert pricing["decisions"] == 7 and pricing["decision_accuracy"] == pytest.approx(0.8)
    assert pricing["decisions_overturned"] == 0 and pricing["conflicts_involved"] == 2
    assert pricing["collaboration_score"] == pytest.approx(1 - 2 / 7)
    promotion = report["agents"]["promotion_agent"]
    assert promotion["decisions_overturned"] == 2 and promotion["overturn_rate"] == pytest.approx(
        2 / 7
    )
    system = report["system"]
    assert system["total_events_processed"] == 8 and system["failed_events"] == 1
    assert system["previous_window_events"] == 10
    assert system["throughput_change"] == pytest.approx(-0.2)
    assert system["system_throughput"] == pytest.approx(8 / 7200)
    assert system["conflicts_detected"] == 2 and system["conflict_resolution_rate"] == 1.0
    assert system["agent_coordination_efficiency"] == pytest.approx((14 - 2) / 15)
    assert system["average_workflow_duration"] == pytest.approx(1100 / 8)
    fired = {(a["alert"], a["scope"]) for a in report["alerts"]}
    assert fired == {
        ("latency", "system"), ("success_rate", "system"), ("success_rate", "pricing_agent"),
        ("throughput", "system"),
    }  # fmt: skip
    assert report["series"] == [] and report["source"]["api"] == "local"


def test_series_by_hour(cli: Cli) -> None:
    fixed_store(store_path())
    series = metrics_json(cli, *WINDOW, "--by", "hour")["series"]
    assert [p["time"] for p in series] == ["2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z"]
    # Events at 11:06:40 + 10-minute steps: 11:06 .. 11:56 (6), 12:06, 12:16 (2).
    assert [p["events"] for p in series] == [6, 2]
    assert [p["failed_events"] for p in series] == [1, 0]
    assert series[1]["average_workflow_duration"] == pytest.approx((60 + 150) / 2)


def test_golden_table(cli: Cli) -> None:
    fixed_store(store_path())
    result = cli("metrics", *WINDOW, "--by", "hour")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (GOLDEN / "metrics.txt").read_text(encoding="utf-8")
    # On a terminal the agents table drops its least important columns to fit; no header
    # or cell is cut (the piped output above has them all).
    for columns in (60, 80, 120):
        terminal = cli("metrics", *WINDOW, env={"TTY_COMPATIBLE": "1", "COLUMNS": str(columns)})
        text = re.sub(r"\x1b\[[0-9;]*m", "", terminal.stdout)
        assert text == (GOLDEN / f"metrics_{columns}.txt").read_text(encoding="utf-8")
        assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns


def test_one_agent_and_fail_on_alert(cli: Cli) -> None:
    fixed_store(store_path())
    report = metrics_json(cli, *WINDOW, "--agent", "pricing_agent")
    assert list(report["agents"]) == ["pricing_agent"]
    assert report["system"]["total_events_processed"] == 8  # the system stays whole
    assert cli("metrics", *WINDOW, "--fail-on-alert", "-q").exit_code == 1
    quiet = ("--since", "2026-11-18T09:00:00Z", "--until", "2026-11-18T09:30:00Z")
    assert cli("metrics", *quiet, "--fail-on-alert").exit_code == 0
    unknown = cli("metrics", *WINDOW, "--agent", "pricing_agnet")
    assert unknown.exit_code == 2  # a usage error naming the agents there are
    assert "--agent pricing_agnet: no such agent in the window (agents seen: " in unknown.stderr
    assert "pricing_agent" in unknown.stderr and unknown.stdout == ""
    # A built-in agent that did nothing in the window: a row of its own and a note.
    nothing = ("--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z")
    idle = cli("metrics", *nothing, "--agent", "promotion_agent")
    assert idle.exit_code == 0
    assert "no operations of agent 'promotion_agent'" in idle.stderr


def test_an_empty_window_says_so_and_fires_no_alert(cli: Cli) -> None:
    fixed_store(store_path())
    empty = ("--since", "2020-01-01T00:00:00Z", "--until", "2020-01-02T00:00:00Z")
    report = metrics_json(cli, *empty)
    assert report["has_data"] is False and report["alerts"] == []
    assert report["notes"][0].startswith(
        "no simulation traces from 2020-01-01T00:00:00.000Z to 2020-01-02T00:00:00.000Z in the local store "
    )
    table = cli("metrics", *empty)
    assert table.exit_code == 0
    assert "no data in this window: no alert checked" in table.stdout
    assert "100.0%" not in table.stdout  # no success rate of nothing
    assert "no alerts" not in table.stdout
    assert cli("metrics", *empty, "--fail-on-alert").exit_code == 0  # no data is no alert
    assert cli("metrics", *empty, "--fail-on-no-data", "-q").exit_code == 1
    assert cli("metrics", *WINDOW, "--fail-on-no-data", "-q").exit_code == 0


def test_bad_windows_are_usage_errors(cli: Cli) -> None:
    for args, expected in [
        (("--since", "yesterday"), "--since 'yesterday'"),
        (("--since", "1h", "--until", "2h"), "is not before"),
        (("--since", "90d", "--by", "hour"), "--by hour"),
        # Times no trace can have were internal errors (datetime's range overflowed).
        (("--since", "99999999999d"), "not between 1970-01-01"),
        (("--since", "1000-01-01T00:00:00Z"), "not between 1970-01-01"),
        (("--until", "9999-12-31T23:59:59Z"), "--until '9999-12-31T23:59:59Z': not between"),
        (("--timeout", "1e12"), "less than or equal to 86400"),
    ]:
        result = cli("metrics", *args)
        assert result.exit_code == 2, args
        assert expected in result.stderr and "Traceback" not in result.both
    # The widest window there can be: its previous window starts at 1970 (nothing is older).
    widest = cli("--json", "metrics", "--since", "1970-01-02T00:00:00Z", "--until",
                 "9999-12-01T00:00:00Z")  # fmt: skip
    assert widest.exit_code == 0, widest.both
    assert json.loads(widest.stdout)["window"]["from"] == "1970-01-02T00:00:00.000Z"


# --- Langfuse mode against autoops serve, through a counting proxy --------------------------


@pytest.fixture
def proxy(served: ServeHandle) -> Iterator[CountingProxy]:
    proxy = CountingProxy(served.url)
    yield proxy
    proxy.close()


def client_env(served: ServeHandle, proxy: CountingProxy) -> dict[str, str]:
    return {**served.client_env(), "LANGFUSE_HOST": proxy.url}


def _same_numbers(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("window", "source")}


@pytest.mark.slow
def test_replay_into_serve_matches_local_and_the_event_file(
    cli: Cli, workdir: Path, served: ServeHandle, proxy: CountingProxy
) -> None:
    from autoops_cli.simulation.events import SimulationEvent, read_events
    from autoops_cli.simulation.generator import generate_events, write_events
    from autoops_cli.simulation.orchestrator import RetailOrchestrator

    events_file = workdir / "known.jsonl"
    write_events(events_file, generate_events(400, seed=11))
    env = {**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"}  # deliver all before exit
    replayed = cli("replay", str(events_file), "--json", env=env)
    assert replayed.exit_code == 0, replayed.stderr
    remote = metrics_json(cli, "--since", "1h", env=client_env(served, proxy))
    local = metrics_json(
        cli, "--since", "1h", "--local", env={"AUTOOPS_HOME": str(served.store.parent)}
    )
    assert remote["source"]["api"] == "v2" and local["source"]["api"] == "local"
    assert _same_numbers(remote) == _same_numbers(local)

    # Independently from the event file: routing from the docs, decisions from the rules.
    events = [e for e in read_events(events_file) if isinstance(e, SimulationEvent)]
    operations: Counter[str] = Counter()
    for event in events:
        operations.update(AGENT_ROUTES[event.event_type])
    orchestrator = RetailOrchestrator()
    conflicts = overturned = 0
    overturned_by: Counter[str] = Counter()
    for event in events:
        outcome = orchestrator.handle(event)
        conflicts += len(outcome.conflicts)
        losers = {c.overturned for c in outcome.conflicts}
        overturned += len(losers)
        overturned_by.update(losers)
    agents = remote["agents"]
    assert {a: r["operation_count"] for a, r in agents.items()} == dict(operations)
    assert {a: r["decisions"] for a, r in agents.items()} == dict(operations)
    assert {
        a: r["decisions_overturned"] for a, r in agents.items() if r["decisions_overturned"]
    } == dict(overturned_by)
    system = remote["system"]
    assert system["total_events_processed"] == len(events)
    assert system["conflicts_detected"] == system["conflicts_resolved"] == conflicts
    assert system["decisions_overturned"] == overturned
    assert conflicts > 0  # the seed makes some, or this test proves little


@pytest.mark.slow
def test_at_most_three_requests_over_100000_observations(
    cli: Cli, workdir: Path, served: ServeHandle, proxy: CountingProxy
) -> None:
    b = _Spans()
    now_ms = (time.time() - T0_S) * 1000  # spans within the last hour
    for i in range(27_000):  # 4 observations each (3 when failed, 1 in 5)
        b.event(now_ms - 3_000_000 + i * 100, 20, failed=i % 5 == 0)
    assert len(b.spans) >= 100_000
    b.write(served.store)
    env = client_env(served, proxy)
    report = metrics_json(
        cli, "--agent", "pricing_agent", "--since", "2h", "--timeout", "60", env=env
    )
    assert proxy.seen.count() <= 3
    assert report["agents"]["pricing_agent"]["operation_count"] == 27_000
    assert report["source"] == {
        "api": "v2",
        "where": env["LANGFUSE_HOST"],
        "requests": 3,
        "cached": False,
        "truncated": [],
    }
    # Again within the TTL: from the cache, no request; --refresh asks again.
    again = metrics_json(cli, "--agent", "pricing_agent", "--since", "2h", env=env)
    assert proxy.seen.count() == 3 and again["source"]["cached"] is True
    assert _same_numbers(again) == _same_numbers(report)
    metrics_json(cli, "--agent", "pricing_agent", "--since", "2h", "--refresh", env=env)
    assert proxy.seen.count() == 6


def test_v1_only_server_gives_the_same_output(cli: Cli, workdir: Path, served: ServeHandle) -> None:
    fixed_store(served.store)
    direct = CountingProxy(served.url)
    v1_only = CountingProxy(served.url, ProxyFaults(v2_not_found=True))
    try:
        v2 = metrics_json(cli, *WINDOW, "--by", "hour", env=client_env(served, direct))
        v1 = metrics_json(cli, *WINDOW, "--by", "hour", env=client_env(served, v1_only))
        assert v1["source"]["api"] == "v1"
        assert _same_numbers(v1) == _same_numbers(v2)
        assert v1_only.seen.paths[0] == "/api/public/v2/metrics"
        assert v1_only.seen.paths[1:] == ["/api/public/metrics"] * 3
        # The answer is remembered for the host: the next call goes to v1 straight away.
        metrics_json(cli, *WINDOW, "--refresh", env=client_env(served, v1_only))
        assert v1_only.seen.paths[4:] == ["/api/public/metrics"] * 3
    finally:
        direct.close()
        v1_only.close()


def test_429_is_retried_then_reported(cli: Cli, workdir: Path, served: ServeHandle) -> None:
    fixed_store(served.store)
    limited = CountingProxy(served.url, ProxyFaults(rate_limited=1, retry_after="1"))
    try:
        started = time.monotonic()
        report = metrics_json(cli, *WINDOW, env=client_env(served, limited))
        assert time.monotonic() - started >= 1.0
        assert report["system"]["total_events_processed"] == 8
        assert limited.seen.count() == 4  # the refused one, then three answers
        limited.faults.rate_limited = 100
        limited.faults.retry_after = "30"
        refused = cli("metrics", *WINDOW, "--refresh", "--timeout", "2",
                      env=client_env(served, limited))  # fmt: skip
        assert refused.exit_code == 5
        assert "429" in refused.stderr and "Traceback" not in refused.both
    finally:
        limited.close()


def test_numbers_as_strings_are_parsed() -> None:
    from autoops_cli.actions.metrics.queries import Fetched, Window
    from autoops_cli.actions.metrics.report import build_report

    rows = {
        "operations": [
            {"name": "pricing_agent.optimize_price", "type": "AGENT", "level": "DEFAULT",
             "count_count": "3", "avg_latency": "12.5", "p50_latency": "10", "p95_latency": "20"},
            {"name": "orchestrator.process_event", "type": "CHAIN", "level": "DEFAULT",
             "count_count": "3", "avg_latency": "40", "p50_latency": None, "p95_latency": "x"},
        ],
        "scores": [{"name": "decision_confidence", "observationName": "pricing_agent.optimize_price",
                    "count_count": "3", "avg_value": "0.5"}],
        "workflows": [{"level": "DEFAULT", "count_count": "5", "avg_latency": "40"}],
    }  # fmt: skip
    window = Window(
        "2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z", "2026-11-18T10:00:00.000Z"
    )
    report = build_report(Fetched(window, rows, "v2"), by=None, agent=None, max_latency_ms=100)
    pricing = report.agents["pricing_agent"]
    assert pricing.operation_count == 3 and pricing.average_response_time == 12.5
    assert pricing.decision_accuracy == 0.5
    assert report.system.total_events_processed == 3 and report.system.previous_window_events == 2


def test_booleans_and_groups_of_no_operations_measure_nothing() -> None:
    """JSON true is not a number (docs/metrics.md: a non-numeric field counts as 0), and the
    latencies of a group that counted no operation are no agent's response time."""
    from autoops_cli.actions.metrics.queries import Fetched, Window
    from autoops_cli.actions.metrics.report import build_report

    rows = {
        "operations": [
            {"name": "pricing_agent.optimize_price", "type": "AGENT", "level": "DEFAULT",
             "count_count": True, "avg_latency": True, "p50_latency": True, "p95_latency": True},
            {"name": "inventory_agent.assess_inventory", "type": "AGENT", "level": "DEFAULT",
             "count_count": -5, "avg_latency": -5, "p50_latency": -5, "p95_latency": -5},
        ],
        "scores": [],
        "workflows": [],
    }  # fmt: skip
    window = Window(
        "2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z", "2026-11-18T10:00:00.000Z"
    )
    report = build_report(Fetched(window, rows, "v2"), by=None, agent=None, max_latency_ms=100)
    for agent in ("pricing_agent", "inventory_agent"):
        measured = report.agents[agent]
        assert measured.operation_count == 0
        assert measured.average_response_time == 0.0
        assert (measured.p50_response_time, measured.p95_response_time) == (0.0, 0.0)


def test_answers_that_disagree_keep_rates_in_range_and_stray_buckets_out() -> None:
    from autoops_cli.actions.metrics.queries import Fetched, Window
    from autoops_cli.actions.metrics.report import build_report

    def operation(name: str, type_: str, n: int) -> dict[str, Any]:
        return {"name": name, "type": type_, "level": "DEFAULT", "count_count": n,
                "avg_latency": 10, "p50_latency": 10, "p95_latency": 10}  # fmt: skip

    rows = {
        "operations": [
            operation("pricing_agent.optimize_price", "AGENT", 2),
            operation("orchestrator.process_event", "CHAIN", 4),
            operation("conflict.price", "EVENT", 1),
            operation("conflict_resolution.price", "EVENT", 3),
        ],
        "scores": [  # more decisions than operations, more overturned than decided, conf 7
            {"name": "decision_confidence", "observationName": "pricing_agent.optimize_price",
             "count_count": 5, "avg_value": 7},
            {"name": "decision_overturned", "observationName": "pricing_agent.optimize_price",
             "count_count": 9, "avg_value": 1},
        ],
        "workflows": [  # previous window, this window, and two buckets in neither
            {"time_dimension": "2026-11-18T10:00:00.000Z", "level": "DEFAULT", "count_count": 6},
            {"time_dimension": "2026-11-18T11:00:00.000Z", "level": "DEFAULT", "count_count": 4},
            {"time_dimension": "2026-11-18T12:00:00.000Z", "level": "DEFAULT", "count_count": 50},
            {"time_dimension": "2026-11-18T08:00:00.000Z", "level": "DEFAULT", "count_count": 70},
        ],
    }  # fmt: skip
    window = Window(
        "2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z", "2026-11-18T10:00:00.000Z"
    )
    report = build_report(Fetched(window, rows, "v2"), by="hour", agent=None, max_latency_ms=100)
    pricing, system = report.agents["pricing_agent"], report.system
    rates = [pricing.decision_accuracy, pricing.collaboration_score, pricing.overturn_rate,
             system.agent_coordination_efficiency, system.conflict_resolution_rate]  # fmt: skip
    assert all(rate is not None and 0.0 <= rate <= 1.0 for rate in rates), rates
    assert pricing.decision_accuracy == 1.0 and system.conflict_resolution_rate == 1.0
    assert [bucket["time"] for bucket in report.series] == ["2026-11-18T11:00:00.000Z"]
    assert system.previous_window_events == 6


@pytest.mark.parametrize("zone", ["America/Los_Angeles", "Asia/Kolkata"])
def test_bucket_times_without_an_offset_are_utc_whatever_the_machines_zone(
    monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """Langfuse's metrics rows are raw ClickHouse JSON: a bucket time ``2026-11-18
    11:00:00`` has no offset. It was read in the machine's zone: in Los Angeles the series
    was empty (every bucket outside the window), in Kolkata the events sat at 05:30."""
    import time

    from autoops_cli.actions.metrics.queries import Fetched, Window
    from autoops_cli.actions.metrics.report import build_report

    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        this_window = {
            "name": "orchestrator.process_event",
            "type": "CHAIN",
            "level": "DEFAULT",
            "count_count": 4,
            "avg_latency": 10,
            "p50_latency": 10,
            "p95_latency": 10,
        }
        rows: dict[str, list[dict[str, Any]]] = {
            "operations": [this_window],
            "scores": [],
            "workflows": [
                {"time_dimension": "2026-11-18 10:00:00", "level": "DEFAULT", "count_count": 6},
                {"time_dimension": "2026-11-18 11:00:00", "level": "DEFAULT", "count_count": 4},
            ],
        }
        window = Window(
            "2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z", "2026-11-18T10:00:00.000Z"
        )
        report = build_report(Fetched(window, rows, "v2"), by="hour", agent=None, max_latency_ms=1)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert [(b["time"], b["events"]) for b in report.series] == [("2026-11-18T11:00:00.000Z", 4)]
    assert report.system.previous_window_events == 6


def test_wrong_keys_and_unreachable_host(cli: Cli, served: ServeHandle) -> None:
    assert cli("metrics", env=served.client_env()).exit_code == 0  # an answer in the cache
    wrong = {**served.client_env(), "LANGFUSE_SECRET_KEY": "sk-lf-wrong"}
    rejected = cli("metrics", env=wrong)  # not answered from the cache the right keys filled
    assert rejected.exit_code == 3 and "rejected the API keys" in rejected.stderr
    gone = {**served.client_env(), "LANGFUSE_HOST": "http://127.0.0.1:9"}
    unreachable = cli("metrics", "--timeout", "2", env=gone)
    assert unreachable.exit_code == 4 and "Traceback" not in unreachable.both


def test_answers_cached_for_other_queries_are_not_read_as_these(
    cli: Cli, served: ServeHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache key said nothing of the queries asked: after the queries gained
    count_latency, an answer cached by the version before (without it) was read within the
    TTL, and the means came out weighed the old way."""
    from autoops_cli.actions.metrics import queries

    fixed_store(served.store)
    args = ("--since", "2026-11-18T11:00:00Z", "--until", "2026-11-18T13:00:00Z",
            "--cache-ttl", "3600")  # fmt: skip
    assert metrics_json(cli, *args, env=served.client_env())["source"]["cached"] is False
    assert metrics_json(cli, *args, env=served.client_env())["source"]["cached"] is True
    monkeypatch.setattr(queries, "QUERIES_VERSION", "another")
    assert metrics_json(cli, *args, env=served.client_env())["source"]["cached"] is False


def test_a_cache_entry_of_another_shape_is_ignored() -> None:
    from autoops_cli.actions.metrics.queries import _from_cache

    window = {"start": "2026-11-18T11:00:00.000Z", "end": "2026-11-18T12:00:00.000Z",
              "previous_start": "2026-11-18T10:00:00.000Z"}  # fmt: skip
    rows = {"operations": [], "scores": [], "workflows": []}
    good = _from_cache({"window": window, "rows": rows, "api": "v2"})
    assert good is not None and good.cached and good.window.seconds == 3600
    for bad in (None, [], {"window": {"from": "x"}, "rows": rows, "api": "v2"},
                {"window": window, "rows": {"operations": []}, "api": "v2"}):  # fmt: skip
        assert _from_cache(bad) is None


def test_the_deploy_canary_is_tagged_and_left_out(cli: Cli) -> None:
    deployed = cli("deploy", "--json")
    assert deployed.exit_code == 0, deployed.stderr
    trace_id = json.loads(deployed.stdout)["canary"]["trace_id"]
    store = LocalStore(store_path())
    (tags,) = store.query("SELECT tags FROM traces WHERE id = ?", (trace_id,))[0]
    store.close()
    assert "autoops-canary" in json.loads(tags)
    report = metrics_json(cli, "--since", "1h")
    assert report["system"]["total_events_processed"] == 0  # the canary is no workflow event
    assert report["agents"] == {} and report["has_data"] is False


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-12-03T10:00:00Z", "2026-12-03T10:00:00Z"),
        # Under a millisecond apart: the same window at Langfuse's precision (the query's
        # last instant fell before its first, and the engine refused it: exit 5).
        ("2026-12-03T10:00:00Z", "2026-12-03T10:00:00.000001Z"),
    ],
)
def test_a_window_that_holds_no_millisecond_is_a_usage_error(
    cli: Cli, since: str, until: str
) -> None:
    fixed_store(store_path())  # with data: the engine is asked
    result = cli("metrics", "--local", "--since", since, "--until", until)
    assert result.exit_code == 2, result.both
    assert f"--since {since!r} is not before --until {until!r}" in result.stderr


def test_an_answer_at_the_row_limit_is_a_note_on_stderr_with_json_too() -> None:
    """It was a line of the table only (on stdout): with --json, nothing said totals may be
    low but a field inside the document."""
    from autoops_cli.actions.metrics.queries import ROW_LIMIT, Fetched, Window
    from autoops_cli.actions.metrics.report import build_report
    from autoops_cli.actions.metrics.view import render_report

    tools = [
        {"name": f"pricing_agent.tool_{n}", "type": "TOOL", "level": "DEFAULT",
         "count_count": 1, "avg_latency": 1, "p50_latency": 1, "p95_latency": 1}
        for n in range(ROW_LIMIT)
    ]  # fmt: skip
    rows = {"operations": tools, "scores": [], "workflows": []}
    window = Window(
        "2026-11-18T11:00:00.000Z", "2026-11-18T12:00:00.000Z", "2026-11-18T10:00:00.000Z"
    )
    report = build_report(Fetched(window, rows, "v2"), by=None, agent=None, max_latency_ms=100)
    said = "the operations answer hit the row limit; totals may be low"
    assert said in report.notes and said in report.as_dict()["notes"]
    assert not any(said in str(part) for part in render_report(report, width=120))


def test_local_answers_are_of_one_moment_when_the_store_is_written_meanwhile(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each query (each slice) read the store as committed when it began: a replay's commit
    between them gave a report of more decisions than operations, and a coordination
    efficiency computed from two moments. A commit during the answers has them answered
    again, from one moment."""
    from autoops_cli.actions.metrics import queries as metrics_queries
    from autoops_cli.local_api.query import metrics as local_metrics

    fixed_store(store_path())
    real = local_metrics.run_metrics_query
    written = []

    def with_a_commit_after_the_first(*args: Any, **kwargs: Any) -> dict[str, Any]:
        answer = real(*args, **kwargs)
        if not written:  # a replay commits a trace between the first query and the next
            late = _Spans()
            late.event(1_000_000, 50)
            late.write(store_path())
            written.append(True)
        return answer

    monkeypatch.setattr(local_metrics, "run_metrics_query", with_a_commit_after_the_first)
    window = metrics_queries.make_window("2026-11-18T11:00:00Z", "2026-11-18T13:00:00Z")
    fetched = metrics_queries.fetch_local(
        store_path(), window, metrics_queries.build_queries(window, None)
    )
    operations = sum(
        int(row["count_count"]) for row in fetched.rows["operations"]
        if row["name"] == "pricing_agent.optimize_price"
    )  # fmt: skip
    decisions = sum(
        int(row["count_count"]) for row in fetched.rows["scores"]
        if row["name"] == "decision_confidence"
        and row["observationName"] == "pricing_agent.optimize_price"
    )  # fmt: skip
    assert written and (operations, decisions) == (9, 8)  # 8 + the late one; 7 + 1 decisions
