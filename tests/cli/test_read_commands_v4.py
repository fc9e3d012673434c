"""The read commands on Langfuse v4's API: against ``autoops serve --v4-only`` (what Langfuse
Cloud answers today: no v1 reads) they work and print what they print from the local store;
``traces`` reads v2 observations (root observations for the list) and v3 scores, and falls
back to v1 only on a server without v2, remembered per host.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from config.store.local_store import LocalStore
from config.tracing import attributes as la
from config.tracing.span_records import ScoreRecord
from tests.cli.test_replay import EXAMPLE
from tests.cli.test_traces import T0, span
from tests.conftest import Cli
from tests.support.counting_proxy import CountingProxy, ProxyFaults
from tests.support.serve_process import ServeHandle, start_serve, stop_serve


@pytest.fixture
def v4_only(workdir: Path) -> Iterator[ServeHandle]:
    handle = start_serve(workdir / "v4only" / "traces.db", "--v4-only")
    yield handle
    stop_serve(handle)


def as_json(result: object) -> dict:
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    return json.loads(result.stdout)  # type: ignore[attr-defined]


def test_every_read_command_works_against_a_v4_only_server(cli: Cli, v4_only: ServeHandle) -> None:
    env = {**v4_only.client_env(), "AUTOOPS_FLUSH_DEADLINE": "30"}
    assert cli("replay", str(EXAMPLE), "--limit", "25", "--run-id", "v4", env=env).exit_code == 0
    local = {"AUTOOPS_HOME": str(v4_only.store.parent)}

    remote_list = as_json(cli("traces", "list", "--all", "--json", env=env))
    local_list = as_json(cli("traces", "list", "--all", "--json", "--local", env=local))
    assert remote_list == local_list and len(remote_list["traces"]) == 25
    assert {t["session_id"] for t in remote_list["traces"]} == {"v4"}
    trace_id = remote_list["traces"][0]["id"]
    remote_tree = as_json(cli("traces", "show", trace_id, "--json", env=env))
    assert remote_tree == as_json(cli("traces", "show", trace_id, "--json", "--local", env=local))
    assert remote_tree["observations"][0]["name"] == "orchestrator.process_event"
    table = cli("traces", "list", "--limit", "5", env=env)
    assert table.exit_code == 0 and "event type" in table.stdout
    assert "more traces: --page 2 --limit 5" in table.stderr

    metrics = as_json(cli("metrics", "--json", "--refresh", "--since", "1h", env=env))
    local_metrics = as_json(cli("metrics", "--json", "--since", "1h", "--local", env=local))
    assert metrics["source"]["api"] == "v2"
    same = ("window", "source")
    assert {k: v for k, v in metrics.items() if k not in same} == {
        k: v for k, v in local_metrics.items() if k not in same
    }

    health = as_json(cli("health-check", "--json", env=env))
    checks = {c["name"]: c for c in health["checks"]}
    assert checks["read path"]["value"] == "v2" and checks["endpoint"]["value"] == "4.35.0"

    deployed = as_json(cli("deploy", "--json", "--canary-timeout", "20", env=env))
    assert deployed["ok"] is True and deployed["canary"]["ingestion_delay_s"] >= 0


def test_traces_read_root_observations_and_scores_through_the_v4_api(
    cli: Cli, served: ServeHandle
) -> None:
    deliver_all = {**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"}  # a loaded machine
    assert cli("replay", str(EXAMPLE), "--limit", "12", env=deliver_all).exit_code == 0
    proxy = CountingProxy(served.url)
    try:
        env = {**served.client_env(), "LANGFUSE_HOST": proxy.url}
        listed = as_json(
            cli(
                "traces",
                "list",
                "--json",
                "--event-type",
                "demand_spike",
                "--tag",
                "critical",
                env=env,
            )
        )
        trace_id = as_json(cli("traces", "list", "--json", "--limit", "1", env=env))["traces"][0][
            "id"
        ]
        as_json(cli("traces", "show", trace_id, "--json", env=env))
    finally:
        proxy.close()
    assert set(proxy.seen.paths) == {"/api/public/v2/observations", "/api/public/v3/scores"}
    first = parse_qs(urlsplit(proxy.seen.targets[0]).query)
    assert first["isRootObservation"] == ["true"]
    conditions = json.loads(first["filter"][0])
    assert {(c["column"], json.dumps(c["value"])) for c in conditions} == {
        ("traceName", '"simulation.demand_spike"'),
        ("traceTags", '["critical"]'),
    }
    assert all(t["event_type"] == "demand_spike" for t in listed["traces"])
    shown = parse_qs(urlsplit(proxy.seen.targets[-2]).query)
    assert shown["traceId"] == [trace_id]


def test_a_server_without_v2_is_read_through_v1_and_remembered(
    cli: Cli, served: ServeHandle
) -> None:
    deliver_all = {**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"}  # a loaded machine
    assert cli("replay", str(EXAMPLE), "--limit", "8", env=deliver_all).exit_code == 0
    on_v2 = as_json(cli("traces", "list", "--json", env=served.client_env()))
    proxy = CountingProxy(served.url, ProxyFaults(v2_not_found=True))
    try:
        env = {**served.client_env(), "LANGFUSE_HOST": proxy.url}
        on_v1 = as_json(cli("traces", "list", "--json", env=env))
        assert proxy.seen.paths == ["/api/public/v2/observations", "/api/public/traces"]
        trace_id = on_v1["traces"][0]["id"]
        tree_v1 = as_json(cli("traces", "show", trace_id, "--json", env=env))
        metrics = as_json(cli("metrics", "--json", "--refresh", env=env))
    finally:
        proxy.close()
    # Remembered: after the first 404, no command asked v2 again.
    assert proxy.seen.paths.count("/api/public/v2/observations") == 1
    assert "/api/public/v2/metrics" not in proxy.seen.paths
    assert metrics["source"]["api"] == "v1"
    assert on_v1 == on_v2
    assert tree_v1 == as_json(cli("traces", "show", trace_id, "--json", env=served.client_env()))


def test_only_an_answer_is_remembered_and_an_upgraded_host_is_read_through_v2_again(
    cli: Cli, served: ServeHandle
) -> None:
    """A 404 on v2 pinned the host to v1 for a day even when v1 answered 404 too (a proxy's
    blip before a v4 server, whose v1 is gone); and a v1 host upgraded to v4 stayed on the
    v1 it no longer has."""
    deliver_all = {**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"}  # a loaded machine
    assert cli("replay", str(EXAMPLE), "--limit", "6", env=deliver_all).exit_code == 0
    faults = ProxyFaults(v2_not_found=True, v1_not_found=True)
    proxy = CountingProxy(served.url, faults)
    try:
        env = {**served.client_env(), "LANGFUSE_HOST": proxy.url}
        # Both 404: said as such; nothing remembered.
        blip = cli("traces", "list", "--json", env=env)
        assert blip.exit_code == 5
        assert "/api/public/v2/observations and /api/public/traces answered 404" in blip.stderr
        metrics_blip = cli("metrics", "--json", "--refresh", env=env)
        assert metrics_blip.exit_code == 5
        assert "/api/public/v2/metrics and /api/public/metrics answered 404" in metrics_blip.stderr
        faults.v2_not_found = False  # the v4 server again: v2 read, not the missing v1
        assert len(as_json(cli("traces", "list", "--json", env=env))["traces"]) == 6
        assert as_json(cli("metrics", "--json", "--refresh", env=env))["source"]["api"] == "v2"

        faults.v2_not_found, faults.v1_not_found = True, False  # a v1-only server: remembered
        on_v1 = as_json(cli("traces", "list", "--json", env=env))
        trace_id = on_v1["traces"][0]["id"]
        upgraded_at = len(proxy.seen.paths)
        faults.v2_not_found, faults.v1_not_found = False, True  # upgraded to v4
        upgraded = as_json(cli("traces", "list", "--json", env=env))
        assert proxy.seen.paths[upgraded_at : upgraded_at + 2] == [
            "/api/public/traces",
            "/api/public/v2/observations",
        ]
        shown = as_json(cli("traces", "show", trace_id, "--json", env=env))
        assert as_json(cli("metrics", "--json", "--refresh", env=env))["source"]["api"] == "v2"
        after_upgrade = len(proxy.seen.paths)

        # Remembered v1, then neither answers: the next call starts from v2 again.
        faults.v2_not_found, faults.v1_not_found = True, False
        as_json(cli("traces", "list", "--json", env=env))
        as_json(cli("metrics", "--json", "--refresh", env=env))
        faults.v1_not_found = True
        assert cli("traces", "list", "--json", env=env).exit_code == 5
        assert cli("metrics", "--json", "--refresh", env=env).exit_code == 5
        faults.v2_not_found = False
        asked = len(proxy.seen.paths)
        as_json(cli("traces", "list", "--json", env=env))
        assert proxy.seen.paths[asked] == "/api/public/v2/observations"
        asked = len(proxy.seen.paths)
        as_json(cli("metrics", "--json", "--refresh", env=env))
        assert proxy.seen.paths[asked] == "/api/public/v2/metrics"
    finally:
        proxy.close()
    assert upgraded == on_v1
    assert shown["id"] == trace_id and shown["observations"]
    # Remembered again once v2 answered: the show and the metrics went to v2 straight away.
    assert "/api/public/metrics" not in proxy.seen.paths[upgraded_at + 2 : after_upgrade]


def test_show_takes_a_decision_confidence_from_the_scores(cli: Cli) -> None:
    """An agent observation whose metadata lacks the confidence shows its score's."""
    trace = "e" * 32
    store = LocalStore(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    store.write(
        [
            span(
                trace,
                "0" * 16,
                None,
                "orchestrator.process_event",
                "chain",
                0,
                9,
                **{la.OBSERVATION_OUTPUT: '{"agents": []}'},
            ),
            span(trace, "1" * 16, "0" * 16, "pricing_agent.optimize_price", "agent", 1, 8),
            span(
                trace,
                "2" * 16,
                "0" * 16,
                "inventory_agent.check",
                "agent",
                2,
                7,
                **{la.OBSERVATION_METADATA_PREFIX + "confidence": "0.4"},
            ),
        ],
        [
            ScoreRecord("c1", trace, "1" * 16, "decision_confidence", 0.9, T0),
            ScoreRecord("c2", trace, "2" * 16, "decision_confidence", 0.1, T0),
            # Of that name but no confidence: was shown as one ("confidence": true).
            ScoreRecord(
                "c0", trace, "1" * 16, "decision_confidence", 1.0, T0 + 10**6, data_type="BOOLEAN"
            ),
            ScoreRecord(
                "c3",
                trace,
                "1" * 16,
                "decision_confidence",
                "high",
                T0 + 2 * 10**6,
                data_type="CATEGORICAL",
            ),
        ],
    )
    store.close()
    (root,) = as_json(cli("traces", "show", trace, "--json"))["observations"]
    confidence = {child["name"]: child["confidence"] for child in root["children"]}
    # The score where the metadata says nothing; the metadata where it does.
    assert confidence == {"pricing_agent.optimize_price": 0.9, "inventory_agent.check": 0.4}
    missing = cli("traces", "show", "9" * 32)
    assert missing.exit_code == 1 and f"trace {'9' * 32} not found" in missing.stderr
