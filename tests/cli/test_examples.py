"""The examples run as a user runs them, and record what they say they record.

Each demo is a real subprocess (``python examples/x.py``) in the isolated working directory:
local mode first (no Langfuse variables; the store at ``$AUTOOPS_HOME/traces.db``), then
against a real ``autoops serve``. What they recorded is read back from the SQLite stores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from config.redaction import mask_secret
from tests.support.paths import REPO_ROOT
from tests.support.serve_process import ServeHandle, autoops_executable, start_serve, stop_serve

EXAMPLES = REPO_ROOT / "examples"


def run_example(
    name: str, workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python examples/<name>`` in the working directory, with the fixture's environment."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=workdir,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def client_store(workdir: Path) -> Path:
    return workdir / ".autoops" / "traces.db"  # AUTOOPS_HOME of the workdir fixture


def query(db: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows as dicts; JSON columns (metadata, input, output, tags) decoded."""
    connection = sqlite3.connect(db)
    connection.row_factory = sqlite3.Row
    try:
        found = [dict(row) for row in connection.execute(sql, params)]
    finally:
        connection.close()
    for row in found:
        for column in ("metadata", "input", "output", "tags"):
            if isinstance(row.get(column), str):
                with contextlib.suppress(ValueError):  # a plain string stays one
                    row[column] = json.loads(row[column])
    return found


def observations(db: Path) -> list[dict[str, Any]]:
    return query(db, "SELECT * FROM observations ORDER BY start_us, name")


def children(rows: list[dict[str, Any]], parent: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in rows if row["parent_observation_id"] == parent["id"]]


def one(rows: list[dict[str, Any]], **where: Any) -> dict[str, Any]:
    found = [row for row in rows if all(row[key] == value for key, value in where.items())]
    assert len(found) == 1, (where, found)
    return found[0]


def printed_counts(stdout: str) -> tuple[int, int, int]:
    """``N traces, M observations, K scores`` as the demos print them."""
    match = re.search(r"(\d+) traces, (\d+) observations, (\d+) scores", stdout)
    assert match, stdout
    traces, observations_, scores = (int(group) for group in match.groups())
    return traces, observations_, scores


def assert_decisions_scored(db: Path, agents: list[dict[str, Any]]) -> None:
    """One decision event and one decision_confidence score per agent operation, agreeing."""
    rows = observations(db)
    for agent in agents:
        agent_id = agent["metadata"]["agent_id"]
        one(children(rows, agent), type="EVENT", name=f"{agent_id}.decision")
        score = one(
            query(db, "SELECT * FROM scores WHERE observation_id = ?", agent["id"]),
            name="decision_confidence",
        )
        assert score["value"] == agent["metadata"]["confidence"]
        assert score["trace_id"] == agent["trace_id"]
        assert 0 <= score["value"] <= 1


# --- local mode -------------------------------------------------------------------------


def test_integration_demo_traces_both_styles_into_the_local_store(workdir: Path) -> None:
    done = run_example("langfuse_integration_demo.py", workdir)
    assert done.returncode == 0, done.stderr
    db = client_store(workdir)
    assert "mode local" in done.stdout and str(db) in done.stdout
    traces = query(db, "SELECT * FROM traces")
    assert {t["name"] for t in traces} == {
        "simulation.demand_spike",
        "simulation.competitor_price_change",
    }
    assert len({t["session_id"] for t in traces}) == 1  # one run, one session
    assert set(re.findall(r"trace ([0-9a-f]{32})", done.stdout)) == {t["id"] for t in traces}
    rows = observations(db)
    assert printed_counts(done.stdout) == (
        len(traces),
        len(rows),
        len(query(db, "SELECT id FROM scores")),
    )
    assert {row["level"] for row in rows} == {"DEFAULT"}
    agents = []
    for trace in traces:
        in_trace = [row for row in rows if row["trace_id"] == trace["id"]]
        root = one(in_trace, parent_observation_id=None)
        assert (root["type"], root["name"]) == ("CHAIN", "orchestrator.process_event")
        agent = one(children(in_trace, root), type="AGENT")
        agent_id = agent["metadata"]["agent_id"]
        assert agent["name"] == f"{agent_id}.{agent['metadata']['operation']}"
        # the tool: explicit (trace_operation) in one trace, the observe decorator in the other,
        # named after the agent either way
        tool = one(children(in_trace, agent), type="TOOL")
        assert tool["name"].startswith(f"{agent_id}.") and tool["metadata"]["agent_id"] == agent_id
        assert tool["name"].split(".", 1)[1] in agent["metadata"]["tools_used"]
        assert tool["output"]
        agents.append(agent)
    assert {a["name"] for a in agents} == {
        "inventory_agent.assess_inventory",
        "pricing_agent.optimize_price",
    }
    assert_decisions_scored(db, agents)


def test_foundation_demo_shows_the_configuration_and_masks_personal_data(workdir: Path) -> None:
    done = run_example("langfuse_foundation_demo.py", workdir)
    assert done.returncode == 0, done.stderr
    assert re.search(r"mode\s+local", done.stdout)
    assert "initialize_langfuse_integration(): ready; local mode" in done.stdout
    assert "health_check() after: available True, healthy" in done.stdout
    db = client_store(workdir)
    agent = one(observations(db), type="AGENT")
    assert agent["input"]["note"] == "reported by [EMAIL]"
    assert agent["input"]["customer_id"] == "[CUSTOMER]"
    everything = json.dumps([query(db, f"SELECT * FROM {t}") for t in ("traces", "observations")])
    assert "jane.doe@example.com" not in everything and "CUST-8812" not in everything


def test_foundation_demo_reports_an_invalid_configuration_with_exit_3(workdir: Path) -> None:
    done = run_example("langfuse_foundation_demo.py", workdir, {"LANGFUSE_SAMPLE_RATE": "2"})
    assert done.returncode == 3
    assert "langfuse.sample_rate (environment variable LANGFUSE_SAMPLE_RATE)" in done.stderr
    assert not client_store(workdir).exists()  # nothing was initialised


def test_error_demo_records_the_failure_and_goes_on(workdir: Path) -> None:
    done = run_example("error_handling_integration.py", workdir)
    assert done.returncode == 0, done.stderr
    db = client_store(workdir)
    rows = observations(db)
    roots = [row for row in rows if row["parent_observation_id"] is None]
    failed = [root for root in roots if root["level"] == "ERROR"]
    assert len(failed) == 1
    # the agent observation and the trace carry the exception, as printed by the demo
    agent = one(children(rows, failed[0]), type="AGENT", name="pricing_agent.optimize_price")
    assert agent["level"] == "ERROR"
    assert agent["status_message"] == failed[0]["status_message"]
    assert agent["status_message"].startswith("ValueError: ")
    assert agent["status_message"] in done.stdout
    assert children(rows, agent) == []  # no decision from a failed operation
    # the run went on: a pricing decision was traced after the failure
    later = [
        row
        for row in rows
        if row["name"] == "pricing_agent.optimize_price" and row["start_us"] > agent["start_us"]
    ]
    assert later and all(row["level"] == "DEFAULT" for row in later)
    assert_decisions_scored(
        db, [row for row in rows if row["name"] == agent["name"] and row is not agent]
    )
    # tracing failed once: counted and logged; the operation is recorded without its decision
    promotion = one(rows, name="promotion_agent.plan_promotion")
    assert promotion["level"] == "DEFAULT" and promotion["output"]
    assert children(rows, promotion) == []
    assert query(db, "SELECT id FROM scores WHERE observation_id = ?", promotion["id"]) == []
    assert "tracing_errors 0 -> 1" in done.stdout
    assert "tracing error in log_agent_decision" in done.stderr
    assert "health_check(): degraded" in done.stdout


def test_metrics_demo_reports_what_the_store_holds(workdir: Path) -> None:
    done = run_example("metrics_collection_demo.py", workdir)
    assert done.returncode == 0, done.stderr
    db = client_store(workdir)
    rows = observations(db)
    scores = query(db, "SELECT * FROM scores")
    roots = [row for row in rows if row["name"] == "orchestrator.process_event"]
    # 1. the service's own metrics
    service_line = next(
        line for line in done.stdout.splitlines() if "get_performance_metrics" in line
    )
    assert f"{len(roots)} traces" in service_line
    assert f"{len(rows)} observations" in service_line
    assert f"{len(scores)} scores" in service_line
    agent_ops = [row for row in rows if row["type"] == "AGENT"]
    assert f"{len(agent_ops)} agent operations" in service_line
    # 2. per agent, the table rows against the stored observations and scores
    by_id = {row["id"]: row for row in rows}
    table = {
        line.split()[0]: line.split()
        for line in done.stdout.splitlines()
        if re.match(r"\s+\w+_agent\s+\d+", line)
    }
    agent_ids = {row["name"].split(".")[0] for row in agent_ops}
    assert set(table) == agent_ids and len(agent_ids) == 3
    for agent_id, cells in table.items():
        ops = [row for row in agent_ops if row["name"].startswith(f"{agent_id}.")]
        assert int(cells[1]) == len(ops)
        overturned = sum(
            score["value"]
            for score in scores
            if score["name"] == "decision_overturned"
            and by_id[score["observation_id"]]["name"].startswith(f"{agent_id}.")
        )
        assert int(cells[6]) == overturned
        tools = Counter(
            row["name"].split(".", 1)[1]
            for row in rows
            if row["type"] == "TOOL" and row["name"].startswith(f"{agent_id}.")
        )
        assert dict(cell.split("=") for cell in cells[7:]) == {
            tool: str(n) for tool, n in tools.items()
        }
    conflicts = [row for row in rows if row["name"].startswith("conflict.")]
    system = next(line for line in done.stdout.splitlines() if "SystemWorkflowMetrics" in line)
    assert f"{len(roots)} events" in system
    assert conflicts, "the 40 events hold conflicts"  # else the overturned column proves nothing
    resolved = [row for row in rows if row["name"].startswith("conflict_resolution.")]
    assert f"conflict resolution rate {len(resolved) / len(conflicts):.0%}" in system


def test_collaboration_demo_records_messages_conflicts_and_resolutions(workdir: Path) -> None:
    done = run_example("collaboration_demo.py", workdir)
    assert done.returncode == 0, done.stderr
    db = client_store(workdir)
    rows = observations(db)
    traces = query(db, "SELECT * FROM traces")
    assert len(traces) == 2
    losers = set()
    for trace in traces:
        in_trace = [row for row in rows if row["trace_id"] == trace["id"]]
        root = one(in_trace, parent_observation_id=None)
        collab = one(children(in_trace, root), type="CHAIN")
        assert collab["name"] == "collaboration.pricing_and_promotion"
        inside = children(in_trace, collab)
        agents = [row for row in inside if row["type"] == "AGENT"]
        assert {a["name"] for a in agents} == {
            "pricing_agent.optimize_price",
            "promotion_agent.plan_promotion",
        }
        messages = [row for row in inside if row["name"].startswith("coordination.")]
        assert {m["name"] for m in messages} == {
            "coordination.price_proposal",
            "coordination.promotion_proposal",
            "coordination.resolution",
        }
        assert all(m["type"] == "EVENT" and m["input"] for m in messages)
        conflict = one(inside, name="conflict.price_vs_discount")
        agents_in_conflict = conflict["metadata"]["agents"]
        assert conflict["level"] == "WARNING"
        assert conflict["status_message"] == (
            f"conflict price_vs_discount between {', '.join(agents_in_conflict)}"
        )
        resolution = one(inside, name="conflict_resolution.price_vs_discount")
        loser = resolution["metadata"]["overturned_agent"]
        assert resolution["output"]["overturned"] == loser
        assert one(messages, name="coordination.resolution")["metadata"]["to_agent"] == loser
        losers.add(loser)
        assert collab["output"]["messages"] == len(messages)
        assert collab["output"]["conflicts"] == 1
        # decision_overturned: 1 on the overturned agent's operation, 0 on the other's
        for agent in agents:
            score = one(
                query(db, "SELECT * FROM scores WHERE observation_id = ?", agent["id"]),
                name="decision_overturned",
            )
            assert score["value"] == (1.0 if agent["metadata"]["agent_id"] == loser else 0.0)
        assert_decisions_scored(db, agents)
    assert losers == {"pricing_agent", "promotion_agent"}  # one rule each way
    # read back: the tree of the first trace, conflict flagged
    first = re.search(r"autoops traces show ([0-9a-f]{32}):", done.stdout)
    assert first and first.group(1) in {t["id"] for t in traces}
    assert re.search(r"EVENT conflict\.price_vs_discount .*WARNING", done.stdout)


# --- against autoops serve ---------------------------------------------------------------


@pytest.mark.slow
def test_demos_deliver_to_autoops_serve(workdir: Path, served: ServeHandle) -> None:
    # Everything delivered before the exit, however busy the machine (default: 2 s).
    env = {**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"}
    done = run_example("langfuse_integration_demo.py", workdir, env)
    assert done.returncode == 0, done.stderr
    assert "mode langfuse" in done.stdout and f"delivered to {served.url}" in done.stdout
    printed = set(re.findall(r"trace ([0-9a-f]{32})", done.stdout))
    assert len(printed) == 2
    stored = observations(served.store)
    assert {row["trace_id"] for row in stored} == printed
    _, recorded, scores = printed_counts(done.stdout)
    assert len(stored) == recorded
    assert len(query(served.store, "SELECT id FROM scores")) == scores
    assert_decisions_scored(served.store, [row for row in stored if row["type"] == "AGENT"])
    assert query(client_store(workdir), "SELECT seq FROM outbox") == []

    found = run_example("langfuse_foundation_demo.py", workdir, env)
    assert found.returncode == 0, found.stderr
    assert re.search(r"mode\s+langfuse", found.stdout)
    assert served.secret_key and served.secret_key not in found.stdout + found.stderr
    assert mask_secret(served.secret_key) in found.stdout


@pytest.mark.slow
def test_error_demo_keeps_the_data_while_the_host_is_down_and_flush_delivers_it(
    workdir: Path, served: ServeHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = served.client_env()
    port = urlsplit(served.url).port
    assert port
    served.process.terminate()  # the host goes down: nothing listens on its port
    served.process.wait(timeout=10)

    done = run_example("error_handling_integration.py", workdir, env)
    assert done.returncode == 0, done.stderr
    assert "mode langfuse" in done.stdout
    kept_line = re.search(r"(\d+) batch\(es\) kept in the outbox", done.stdout)
    assert kept_line, done.stdout
    pending = int(kept_line.group(1))
    outbox = query(client_store(workdir), "SELECT kind, host, items FROM outbox")
    assert len(outbox) == pending > 0 and {row["host"] for row in outbox} == {served.url}
    kept: Counter[str] = Counter()
    for row in outbox:
        kept[row["kind"]] += row["items"]
    _, recorded, scores = printed_counts(done.stdout)
    assert (kept["spans"], kept["scores"]) == (recorded, scores)

    # The host comes back (same port, store and keys); `autoops buffer flush` delivers.
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", served.public_key)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", served.secret_key or "")
    back = start_serve(served.store, "--port", str(port))
    try:
        flushed = subprocess.run(
            [autoops_executable(), "buffer", "flush", "--timeout", "60"],
            cwd=workdir,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert flushed.returncode == 0, flushed.stderr
        stored = observations(served.store)
    finally:
        stop_serve(back)
    assert len(stored) == recorded  # every observation arrived, once
    assert len(query(served.store, "SELECT id FROM scores")) == scores
    errors = [row for row in stored if row["level"] == "ERROR"]
    assert {row["name"] for row in errors} == {
        "orchestrator.process_event",
        "pricing_agent.optimize_price",
    }
    assert all(row["status_message"].startswith("ValueError: ") for row in errors)
    assert query(client_store(workdir), "SELECT seq FROM outbox") == []


# --- the guides' code --------------------------------------------------------------------

DOCS = EXAMPLES.parent / "docs"
FILE_MARKER = re.compile(r"# (\w+\.py)\n")


def code_blocks(page: str, language: str) -> list[str]:
    """The ``language`` code blocks of a docs page, dedented (list items indent them)."""
    text = (DOCS / page).read_text(encoding="utf-8")
    pattern = re.compile(rf"^( *)```{language}\n(.*?)^\1```", re.S | re.M)
    return [textwrap.dedent(match.group(2)) for match in pattern.finditer(text)]


def run_guide_snippets(workdir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The developer guide's Python snippets, one script, run in ``workdir`` with ``env``."""
    snippets = [b for b in code_blocks("developer-guide.md", "python") if not FILE_MARKER.match(b)]
    assert len(snippets) >= 5
    script = workdir / "guide_snippets.py"
    script.write_text("\n\n".join(snippets), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )


@pytest.mark.slow
def test_developer_guide_snippets_run_and_record_what_it_says(workdir: Path) -> None:
    done = run_guide_snippets(workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "3", "0", "healthy"]  # delivered, traces, errors
    db = client_store(workdir)
    rows = observations(db)
    names = Counter((row["type"], row["name"]) for row in rows)
    assert names[("AGENT", "replenishment_agent.plan_order")] == 2  # decorator and explicit
    assert names[("TOOL", "replenishment_agent.supplier_quote")] == 2
    assert names[("EVENT", "replenishment_agent.decision")] == 2
    assert names[("CHAIN", "collaboration.pricing_and_promotion")] == 1
    conflict = one(rows, name="conflict.price_vs_discount")
    assert conflict["level"] == "WARNING"
    resolution = one(rows, name="conflict_resolution.price_vs_discount")
    assert resolution["metadata"]["overturned_agent"] == "promotion_agent"
    collaboration = one(rows, name="collaboration.pricing_and_promotion")
    assert collaboration["output"]["messages"] == sum(
        1 for row in children(rows, collaboration) if row["name"].startswith("coordination.")
    )
    assert_decisions_scored(db, [row for row in rows if row["type"] == "AGENT"])


def test_troubleshooting_logging_snippet_runs(workdir: Path) -> None:
    (snippet,) = code_blocks("troubleshooting.md", "python")
    code = (
        snippet + "\nlogging.getLogger('autoops.tracing').warning('key sk-lf-abcdef0123456789')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "sk-lf-****6789" in done.stderr and "abcdef0123456789" not in done.stderr


@pytest.mark.slow
def test_developer_guide_orchestrator_plugs_into_replay(workdir: Path, run_autoops: Any) -> None:
    (module,) = [b for b in code_blocks("developer-guide.md", "python") if FILE_MARKER.match(b)]
    marker = FILE_MARKER.match(module)
    assert marker
    (workdir / marker.group(1)).write_text(module, encoding="utf-8")
    factory = f"{marker.group(1).removesuffix('.py')}:create"
    events = str(EXAMPLES / "events.jsonl")
    done = run_autoops("--json", "replay", events, "--limit", "5", "--orchestrator", factory)
    assert done.exit_code == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events_processed"] == summary["traces_recorded"] == 5
    rows = observations(client_store(workdir))
    agents = [row for row in rows if row["type"] == "AGENT"]
    assert len(agents) == 5 and len({row["trace_id"] for row in agents}) == 5
    (agent_name,) = {row["name"] for row in agents}
    assert set(summary["decisions"]) == {agent_name.split(".")[0]}
    tools = [row for row in rows if row["type"] == "TOOL"]
    assert {tool["parent_observation_id"] for tool in tools} == {row["id"] for row in agents}
    assert_decisions_scored(client_store(workdir), agents)
    # agents_for feeds the agent sampling rules: the guide's rule, at 0, drops every trace
    (rule,) = code_blocks("developer-guide.md", "toml")
    (workdir / "autoops.toml").write_text(re.sub(r"= [\d.]+", "= 0", rule), encoding="utf-8")
    dropped = run_autoops("--json", "replay", events, "--limit", "5", "--orchestrator", factory)
    assert dropped.exit_code == 0, dropped.stderr
    assert json.loads(dropped.stdout)["events_sampled_out"] == 5


@pytest.mark.slow
def test_developer_guide_snippets_run_with_tracing_off(workdir: Path) -> None:
    """With LANGFUSE_ENABLED=false the application runs the same code: the collaboration
    handle kept no messages (the guide's own assert failed), and nothing may raise."""
    done = run_guide_snippets(workdir, LANGFUSE_ENABLED="false")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "tracing error" not in done.stderr
