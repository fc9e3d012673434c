"""The integration guide's code, run as written: every usage example records what it describes.

The AutoOps application is written against the guide (reference/seed/), so its code blocks
are the API's contract. The blocks of "Usage Examples", "Performance Monitoring", "Health
Checks" and "Installation" are taken from the guide file itself (never retyped here) and run
in a fresh Python process, with only the helpers the guide leaves undefined supplied
(``calculate_optimal_price`` and its arguments, a ``logger``): in local mode, and against
``autoops serve``. The recorded traces are then read back from the store file and checked
against what the guide's comments say they are.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.serve_process import ServeHandle

GUIDE = REPO_ROOT / "reference" / "seed" / "langfuse-integration-guide.md"

# What the guide uses but does not define (its "your operation code here").
PRELUDE = """
import logging
logging.basicConfig(level=logging.WARNING)
logger = logging.getLogger("autoops.guide_examples")
product_id, current_price = "PROD_123", 29.99


def calculate_optimal_price(product_id, current_price):
    return round(current_price * 1.05, 2)
"""

# After the blocks: what the test reads back, by the names the guide's code gave it.
EPILOGUE = """
import json, sys
json.dump({
    "success": success,
    "trace_id": trace_id,
    "inventory_span": inventory_span,
    "trace_info": {"trace_id": trace_info.trace_id, "span_id": trace_info.span_id},
    "collaboration": {"span_id": collaboration_trace.span_id,
                      "trace_id": collaboration_trace.trace_id,
                      "messages": collaboration_trace.coordination_messages},
    "performance": {k: performance_metrics[k] for k in ("success_rate", "avg_latency_ms", "throughput")},
    "health": {"available": health_status["available"], "mode": health_status["mode"]},
}, sys.stdout)
"""


def guide_blocks() -> dict[str, list[tuple[str, str]]]:
    """Heading -> its code blocks as (language, code), in the guide's order."""
    blocks: dict[str, list[tuple[str, str]]] = {}
    heading, fence, lines = "", None, []
    for line in GUIDE.read_text(encoding="utf-8").splitlines():
        if fence is None and line.startswith("```"):
            fence, lines = line[3:].strip(), []
        elif fence is not None and line.startswith("```"):
            blocks.setdefault(heading, []).append((fence, "\n".join(lines) + "\n"))
            fence = None
        elif fence is not None:
            lines.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return blocks


def python_of(*headings: str) -> str:
    found = guide_blocks()
    return "\n".join(code for h in headings for lang, code in found[h] if lang == "python")


def guide_program() -> str:
    """The blocks in the order an application runs them: start-up, work, monitoring."""
    return "\n".join(
        [
            PRELUDE,
            python_of("Installation"),
            python_of("Basic Integration Service Usage"),
            python_of("Context Manager Usage"),
            python_of("Collaboration Tracking"),
            python_of("Performance Monitoring"),
            python_of("Health Checks"),
            EPILOGUE,
        ]
    )


def run_program(
    workdir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The guide's blocks as one program, run in a fresh Python process."""
    program = workdir / "guide_examples.py"
    program.write_text(guide_program(), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(program)],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def run_guide(workdir: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = run_program(workdir, env)
    assert proc.returncode == 0, proc.stderr
    # The guide's own prints (performance monitoring) come first; the epilogue's JSON last.
    printed, _, document = proc.stdout.rpartition("\n")
    assert "Trace success rate: 1.0" in printed
    assert "Average latency: " in printed and "Traces per second: " in printed
    assert "Traceback" not in proc.stderr
    return dict(json.loads(document or printed))


def recorded(store: Path) -> dict[str, Any]:
    """Traces, observations and scores in a store file, keyed for the assertions."""
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        traces = {r["id"]: dict(r) for r in db.execute("SELECT * FROM traces")}
        observations = [dict(r) for r in db.execute("SELECT * FROM observations")]
        scores = [dict(r) for r in db.execute("SELECT * FROM scores")]
    return {"traces": traces, "observations": observations, "scores": scores}


def only(items: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [i for i in items if all(i.get(k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [(i.get("name"), i.get("trace_id")) for i in items])
    return found[0]


def check_guide_traces(ids: dict[str, Any], data: dict[str, Any]) -> None:
    """What the guide's comments describe, read back from the store."""
    observations = data["observations"]
    # "Create a simulation trace": the event is the root's input, tagged as the guide sets it.
    trace = data["traces"][ids["trace_id"]]
    assert trace["name"] == "simulation.demand_spike"
    # The guide's three tags; merged from the trace's spans, sorted, as Langfuse keeps them.
    assert json.loads(trace["tags"]) == sorted(["demand_spike", "iot_sensor", "high"])
    assert trace["environment"] == "development" and trace["release"] == "1.0.0"
    root = only(observations, trace_id=ids["trace_id"], parent_observation_id=None)
    assert json.loads(root["input"])["product_id"] == "PROD_123"
    # "Finalize the trace": the outcome is the workflow's output.
    assert json.loads(root["output"]) == {
        "status": "completed",
        "agents_involved": 1,
        "total_processing_time_ms": 200,
    }
    # "Start agent operations" in that trace, under its workflow, with the guide's inputs.
    span = only(observations, id=ids["inventory_span"])
    assert span["trace_id"] == ids["trace_id"] and span["parent_observation_id"] == root["id"]
    assert (span["name"], span["type"]) == ("inventory_agent.forecast_demand", "AGENT")
    assert json.loads(span["input"]) == {"product_id": "PROD_123", "forecast_days": 7}
    # "End agent operation" with its outputs.
    assert json.loads(span["output"]) == {
        "status": "success",
        "forecast_result": "high_demand",
        "processing_time_ms": 150,
    }
    # "Log agent decision": on that operation, its outputs, its confidence as a score.
    decision = only(observations, name="inventory_agent.decision")
    assert decision["parent_observation_id"] == span["id"]
    assert json.loads(decision["output"]) == {"recommendation": "restock", "quantity": 100}
    assert json.loads(decision["input"]) == {"current_stock": 50, "forecast_demand": 150}
    metadata = json.loads(span["metadata"])
    assert metadata["reasoning"] == "Demand forecast exceeds current stock"
    assert metadata["decision_type"] == "restock_recommendation"
    assert metadata["confidence"] == 0.85
    score = only(data["scores"], name="decision_confidence")
    assert (score["observation_id"], score["value"]) == (span["id"], 0.85)

    # The context manager: a trace of its own around the pricing agent's operation, closed
    # ("automatically finalized") when the block exited.
    operation = only(observations, id=ids["trace_info"]["span_id"])
    assert operation["trace_id"] == ids["trace_info"]["trace_id"] != ids["trace_id"]
    assert (operation["name"], operation["type"]) == ("pricing_agent.price_optimization", "AGENT")
    assert operation["parent_observation_id"] is None and operation["end_us"] is not None
    assert json.loads(operation["input"]) == {"product_id": "PROD_123", "current_price": 29.99}
    assert data["traces"][operation["trace_id"]]["name"] == "price_optimization"

    # Collaboration tracking: a chain with the participating agents and the workflow data,
    # the coordination message inside it (from, to, type, content).
    collaboration = only(observations, id=ids["collaboration"]["span_id"])
    assert (collaboration["name"], collaboration["type"]) == (
        "collaboration.inventory_pricing_sync",
        "CHAIN",
    )
    described = json.loads(collaboration["input"])
    assert described["agents"] == ["inventory_agent", "pricing_agent"]
    assert described["trigger"] == "demand_spike" and described["coordination_type"] == "sequential"
    message = only(observations, name="coordination.demand_forecast_complete")
    assert message["parent_observation_id"] == collaboration["id"]
    assert json.loads(message["input"]) == {"forecast_demand": 150, "confidence": 0.85}
    about = json.loads(message["metadata"])
    assert (about["from_agent"], about["to_agent"]) == ("inventory_agent", "pricing_agent")
    assert ids["collaboration"]["messages"] == [
        {
            "from_agent": "inventory_agent",
            "to_agent": "pricing_agent",
            "message_type": "demand_forecast_complete",
        }
    ]
    # Nothing else was recorded: three traces, and no observation outside them.
    assert set(data["traces"]) == {
        ids["trace_id"],
        ids["trace_info"]["trace_id"],
        ids["collaboration"]["trace_id"],
    }
    assert {o["trace_id"] for o in observations} == set(data["traces"])


def test_the_guide_is_in_the_repository_with_every_section_the_test_runs() -> None:
    blocks = guide_blocks()
    for heading in (
        "Installation",
        "Basic Integration Service Usage",
        "Context Manager Usage",
        "Collaboration Tracking",
        "Performance Monitoring",
        "Health Checks",
    ):
        assert any(lang == "python" for lang, _ in blocks[heading]), heading


def test_the_installation_requirement_is_met() -> None:
    """The guide's ``pip install langfuse>=3.0.0``: the SDK installed satisfies it."""
    from importlib.metadata import version

    (shell,) = [code for lang, code in guide_blocks()["Installation"] if lang == "bash"]
    requirement = shell.split("pip install", 1)[1].split()[0]
    name, _, minimum = requirement.partition(">=")
    installed = tuple(int(p) for p in version(name).split(".")[:3])
    assert installed >= tuple(int(p) for p in minimum.split("."))


def test_the_guide_runs_as_written_in_local_mode(workdir: Path) -> None:
    ids = run_guide(workdir)
    assert ids["success"] is True
    assert ids["health"] == {"available": True, "mode": "local"}
    assert ids["performance"]["success_rate"] == 1.0
    check_guide_traces(ids, recorded(workdir / ".autoops" / "traces.db"))


@pytest.mark.slow
def test_the_guide_runs_as_written_against_autoops_serve(
    workdir: Path, served: ServeHandle
) -> None:
    ids = run_guide(workdir, served.client_env())
    assert ids["success"] is True
    assert ids["health"] == {"available": True, "mode": "langfuse"}
    # Delivered at exit: the batches left the outbox for the server.
    check_guide_traces(ids, recorded(served.store))


def test_the_guide_reports_an_unreachable_langfuse(workdir: Path) -> None:
    """Installation's ``if not success`` and Health Checks' ``if not available`` fire."""
    env = {
        "LANGFUSE_HOST": "http://127.0.0.1:9",  # discard port: connection refused
        "LANGFUSE_PUBLIC_KEY": "pk-lf-guide-test",
        "LANGFUSE_SECRET_KEY": "sk-lf-guide-test",
        "LANGFUSE_TIMEOUT": "2",
        "AUTOOPS_FLUSH_DEADLINE": "0.5",
    }
    proc = run_program(workdir, env)
    assert proc.returncode == 0, proc.stderr  # the application carries on
    assert "Langfuse integration initialization failed - continuing in fallback mode" in proc.stderr
    assert "Langfuse service unavailable" in proc.stderr
    ids = json.loads(proc.stdout.rpartition("\n")[2])
    assert ids["success"] is False and ids["health"]["available"] is False
    assert "sk-lf-guide-test" not in proc.stdout + proc.stderr


# A long-running application: one trace, then idle. Nothing shuts the service down.
IDLE_APPLICATION = """
import sys, time
from config.langfuse_integration import get_langfuse_integration, initialize_langfuse_integration
initialize_langfuse_integration()
service = get_langfuse_integration()
trace_id = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "P1"})
service.finalize_trace(trace_id, {"status": "done"})
print(trace_id, flush=True)
time.sleep(120)
"""


def test_an_idle_application_hands_its_traces_over_within_the_flush_interval(
    workdir: Path,
) -> None:
    """LANGFUSE_FLUSH_INTERVAL holds while nothing new is recorded: the trace reaches the
    store without another trace or a shutdown, and so survives a kill."""
    from config.store.local_store import LocalStore

    program = workdir / "idle_application.py"
    program.write_text(IDLE_APPLICATION, encoding="utf-8")
    env = {**os.environ, "LANGFUSE_FLUSH_INTERVAL": "0.5", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(program)], stdout=subprocess.PIPE, text=True, cwd=workdir, env=env
    )
    try:
        assert process.stdout is not None
        trace_id = process.stdout.readline().strip()
        store_path = workdir / ".autoops" / "traces.db"
        deadline = time.monotonic() + 30
        found: list[Any] = []
        while not found and time.monotonic() < deadline:
            time.sleep(0.2)
            store = LocalStore.existing(store_path)
            if store is not None:
                found = store.query("SELECT id FROM traces WHERE id = ?", (trace_id,))
                store.close()
        assert process.poll() is None, "the application must still be running"
    finally:
        process.kill()
        process.wait(timeout=30)
    assert found, "the finished trace never reached the store while the application idled"
    store = LocalStore(store_path, read_only=True)
    try:
        assert store.query("SELECT COUNT(*) FROM traces WHERE id = ?", (trace_id,))[0][0] == 1
    finally:
        store.close()


def test_langfuse_debug_gives_the_library_debug_logs(workdir: Path) -> None:
    """LANGFUSE_DEBUG=true printed nothing: the core had no debug records to show."""
    program = workdir / "debug_application.py"
    program.write_text(IDLE_APPLICATION.replace("time.sleep(120)", ""), encoding="utf-8")
    env = {**os.environ, "LANGFUSE_DEBUG": "true", "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, str(program)], capture_output=True, text=True, cwd=workdir, env=env,
        timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "DEBUG autoops.tracing: integration started: mode local" in done.stderr
    assert f"trace {done.stdout.strip()} finalized" in done.stderr
    assert "handing over 1 span(s)" in done.stderr
