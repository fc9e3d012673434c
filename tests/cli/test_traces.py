"""``autoops traces list|show``: local store and Langfuse API give the same answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

from config.store.local_store import LocalStore
from config.tracing import attributes as la
from config.tracing.span_records import SpanRecord
from tests.cli.test_replay import EXAMPLE
from tests.conftest import Cli
from tests.support.paths import GOLDEN
from tests.support.serve_process import ServeHandle

T0 = 1_795_000_000_000_000_000  # a fixed instant, so the output is the same every run


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    kind: str,
    start_ms: int,
    end_ms: int,
    **extra: str,
) -> SpanRecord:
    attributes = {la.OBSERVATION_TYPE: kind, la.TRACE_NAME: "simulation.demand_spike", **extra}
    return SpanRecord(
        trace,
        span_id,
        parent,
        name,
        T0 + start_ms * 1_000_000,
        T0 + end_ms * 1_000_000,
        attributes,
        trusted_json=True,
    )


def fixed_store() -> str:
    trace = "f" * 32
    outcome = json.dumps(
        {"agents": ["pricing_agent"], "decisions": {"pricing_agent": {}}, "conflicts_detected": 1}
    )
    spans = [
        span(trace, "1" * 16, "0" * 16, "pricing_agent.optimize_price", "agent", 1, 9,
             **{la.OBSERVATION_METADATA_PREFIX + "confidence": "0.82"}),
        span(trace, "2" * 16, "1" * 16, "competitor_feed", "tool", 2, 4),
        span(trace, "3" * 16, "0" * 16, "conflict.price_vs_discount", "event", 10, 10,
             **{la.OBSERVATION_LEVEL: "WARNING"}),
        span(trace, "0" * 16, None, "orchestrator.process_event", "chain", 0, 12,
             **{la.OBSERVATION_OUTPUT: outcome, la.TRACE_METADATA_PREFIX + "event_type": '"demand_spike"',
                la.TRACE_METADATA_PREFIX + "product_id": '"PROD_007"', la.TRACE_METADATA_PREFIX + "severity": '"high"'}),
    ]  # fmt: skip
    store = LocalStore(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    store.write(spans)
    store.close()
    return trace


def test_golden_list_and_tree(cli: Cli) -> None:
    trace_id = fixed_store()
    listed = cli("traces", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == (GOLDEN / "traces_list.txt").read_text(encoding="utf-8")
    shown = cli("traces", "show", trace_id)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == (GOLDEN / "traces_show.txt").read_text(encoding="utf-8")
    tree = json.loads(cli("traces", "show", trace_id, "--json").stdout)
    (root,) = tree["observations"]
    assert root["name"] == "orchestrator.process_event" and root["duration_ms"] == 12.0
    agent, conflict = root["children"]
    assert (agent["type"], agent["confidence"], agent["children"][0]["name"]) == (
        "AGENT",
        0.82,
        "competitor_feed",
    )
    assert conflict["level"] == "WARNING"


def test_list_filters_and_json(cli: Cli) -> None:
    assert cli("replay", str(EXAMPLE), "--run-id", "listing", "--json").exit_code == 0
    events = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    everything = json.loads(
        cli("traces", "list", "--all", "--session", "listing", "--json").stdout
    )["traces"]
    assert len(everything) == len(events)
    assert [t["timestamp"] for t in everything] == sorted(
        (t["timestamp"] for t in everything), reverse=True
    )
    spikes = json.loads(
        cli("traces", "list", "--event-type", "demand_spike", "--all", "--json").stdout
    )["traces"]
    assert len(spikes) == sum(1 for e in events if e["event_type"] == "demand_spike")
    assert {t["event_type"] for t in spikes} == {"demand_spike"}
    critical = json.loads(cli("traces", "list", "--tag", "critical", "--all", "--json").stdout)[
        "traces"
    ]
    assert len(critical) == sum(1 for e in events if e["severity"] == "critical")
    assert len(json.loads(cli("traces", "list", "--limit", "7", "--json").stdout)["traces"]) == 7
    assert cli("traces", "list", "--since", "yesterday-ish").exit_code == 2
    assert cli("traces", "show", "0" * 32).exit_code == 1


def test_same_answers_from_serve_and_the_local_store(cli: Cli, served: ServeHandle) -> None:
    assert (
        cli(
            "replay",
            str(EXAMPLE),
            "--limit",
            "30",
            "--run-id",
            "both",
            # Everything delivered before the exit, however busy the machine (default: 2 s).
            env={**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"},
        ).exit_code
        == 0
    )
    remote = json.loads(cli("traces", "list", "--all", "--json", env=served.client_env()).stdout)[
        "traces"
    ]
    env = {"AUTOOPS_HOME": str(served.store.parent)}
    local = json.loads(cli("traces", "list", "--all", "--json", "--local", env=env).stdout)[
        "traces"
    ]
    assert remote == local and len(remote) == 30
    trace_id = remote[0]["id"]
    shown_remote = json.loads(
        cli("traces", "show", trace_id, "--json", env=served.client_env()).stdout
    )
    shown_local = json.loads(cli("traces", "show", trace_id, "--json", "--local", env=env).stdout)
    assert shown_remote == shown_local


def test_pages_and_next(cli: Cli) -> None:
    """Pages keep one size; ``next`` says where the traces not shown start."""
    store = LocalStore(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    store.write(
        [span(f"{i:032x}", f"{i:016x}", None, "orchestrator.process_event", "chain", i, i + 1)
         for i in range(1, 8)]
    )  # fmt: skip
    store.close()

    def listed(*args: str) -> tuple[list[str], object]:
        result = cli("traces", "list", "--json", *args)
        assert result.exit_code == 0, result.stderr
        body = json.loads(result.stdout)
        return [t["id"][-1] for t in body["traces"]], body["next"]

    assert listed("--limit", "3") == (["7", "6", "5"], {"page": 2, "limit": 3})
    assert listed("--limit", "3", "--page", "2") == (["4", "3", "2"], {"page": 3, "limit": 3})
    assert listed("--limit", "3", "--page", "3") == (["1"], None)
    assert listed("--all") == (["7", "6", "5", "4", "3", "2", "1"], None)
    assert listed("--all", "--max-items", "5") == (
        ["7", "6", "5", "4", "3"],
        {"page": 2, "limit": 5},
    )
    table = cli("traces", "list", "--limit", "3")
    assert "more traces: --page 2 --limit 3" in table.stderr
