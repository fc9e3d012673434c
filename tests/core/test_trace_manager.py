"""TraceManager through its public methods: the open-trace registry, finalizing, cleaning up."""

from __future__ import annotations

import contextvars
import json
import sqlite3
import threading
from pathlib import Path

import pytest

from config.delivery.exporters import LocalStoreExporter
from config.store.local_store import LocalStore
from config.trace_manager import TraceManager
from config.tracing.tracer import Tracer

EVENT = {"event_type": "demand_spike", "event_id": "e1", "product_id": "P1", "severity": "high"}


def manager(store: Path) -> TraceManager:
    return TraceManager(Tracer(LocalStoreExporter(LocalStore(store)), batch_size=1))


def stored(store: Path) -> dict[str, tuple[str, str | None]]:
    """name -> (level, status message) of every observation in the store file."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT name, level, status_message FROM observations").fetchall()
    return {name: (level, message) for name, level, message in rows}


def test_lookups_by_trace_and_by_agent(workdir: Path) -> None:
    traces = manager(workdir / "traces.db")
    trace_id = traces.create_simulation_trace(EVENT, session_id="s")
    root = traces.root(trace_id)
    assert root is not None and root.name == "orchestrator.process_event"
    assert traces.current_trace_id() == trace_id
    outer = traces.start_agent_span("pricing_agent", "optimize_price")
    inner = traces.start_agent_span("pricing_agent", "recheck")
    other = traces.start_agent_span("promotion_agent", "plan")
    latest = traces.agent_operation(trace_id, "pricing_agent")
    assert latest is not None and latest.span_id == inner
    traces.end_agent_span(inner)
    previous = traces.agent_operation(trace_id, "pricing_agent")
    assert previous is not None and previous.span_id == outer
    assert traces.agent_operation(trace_id, "inventory_agent") is None
    assert traces.agent_operation("0" * 32, "pricing_agent") is None
    assert [o.span_id for o in traces.open_observations(trace_id)] == [
        root.span_id,
        outer,
        other,
    ]
    operation = traces.observation(other)
    assert operation is not None and operation.name == "promotion_agent.plan"


def test_a_trace_that_is_not_current_is_found_by_its_id(workdir: Path) -> None:
    """Two traces open in two contexts: each one's root and agents are found from anywhere."""
    traces = manager(workdir / "traces.db")
    first = traces.create_simulation_trace(EVENT, session_id="s")
    traces.start_agent_span("inventory_agent", "forecast")

    def in_another_context() -> str:
        trace_id = traces.create_simulation_trace({**EVENT, "event_id": "e2"}, session_id="s")
        traces.start_agent_span("pricing_agent", "optimize_price")
        return trace_id

    second = contextvars.Context().run(in_another_context)
    assert traces.current_trace_id() == first
    assert traces.agent_operation(second, "pricing_agent") is not None
    assert traces.agent_operation(first, "pricing_agent") is None
    assert traces.agent_operation(first, "inventory_agent") is not None
    second_root = traces.root(second)
    assert second_root is not None and second_root.trace_id == second


def test_finalize_forgets_the_trace_and_reports_its_cost(workdir: Path) -> None:
    traces = manager(workdir / "traces.db")
    trace_id = traces.create_simulation_trace(EVENT, session_id="s")
    traces.end_agent_span(traces.start_agent_span("pricing_agent", "optimize_price"))
    traces.end_agent_span(traces.start_agent_span("promotion_agent", "plan"))
    finished = traces.finalize_trace(trace_id, {"ok": True})
    assert finished is not None
    cost, simulation = finished
    assert cost is not None and cost[1] == 2  # two agent operations since the trace opened
    # The seed's record of the trace, complete.
    assert simulation is not None and simulation.trace_id == trace_id
    assert simulation.participating_agents == ["pricing_agent", "promotion_agent"]
    assert simulation.outcome == {"ok": True} and simulation.end_time is not None
    assert traces.open_observations(trace_id) == []
    assert traces.root(trace_id) is None
    assert traces.current_trace_id() is None
    assert traces.finalize_trace(trace_id, {"ok": True}) is None  # once only
    assert traces.counters.traces_finalized == 1


def test_a_trace_finalized_by_two_threads_at_once_is_closed_once(workdir: Path) -> None:
    """Two threads finalizing one trace (a watchdog and the worker) both got its record back
    and counted it twice: the first to claim it closes it, the other gets None."""
    traces = manager(workdir / "traces.db")
    trace_id = traces.create_simulation_trace(EVENT, session_id="s")
    traces.start_agent_span("pricing_agent", "optimize_price")
    inside, release = threading.Event(), threading.Event()
    describe = traces._describe_trace

    def held_the_first_time(*args: object) -> None:
        if not inside.is_set():
            inside.set()
            release.wait(10)
        describe(*args)  # type: ignore[arg-type]

    traces._describe_trace = held_the_first_time  # type: ignore[method-assign]
    first: list[object] = []
    closing = threading.Thread(target=lambda: first.append(traces.finalize_trace(trace_id)))
    closing.start()
    assert inside.wait(10)  # the first call is half way through
    second = traces.finalize_trace(trace_id, {"ok": True})
    release.set()
    closing.join(10)
    assert second is None and first[0] is not None
    assert traces.counters.traces_finalized == 1


def test_an_operation_left_open_ends_with_its_trace(workdir: Path) -> None:
    """Finalizing ends what nobody ended, so it is recorded; ending it later changes nothing
    and is said (a LookupError: the facade counts it as a tracing error)."""
    store = workdir / "traces.db"
    traces = manager(store)
    trace_id = traces.create_simulation_trace(EVENT, session_id="s")
    span_id = traces.start_agent_span("pricing_agent", "optimize_price")
    traces.finalize_trace(trace_id, {"ok": True})
    assert traces.agent_operation(trace_id, "pricing_agent") is None
    assert traces.open_observations(trace_id) == []
    with pytest.raises(LookupError, match="had ended with its trace"):
        traces.end_agent_span(span_id, {"price": 9.5})
    traces.tracer.flush()
    assert stored(store)["pricing_agent.optimize_price"] == ("DEFAULT", "ended with its trace")


def test_cleanup_ends_everything_open_at_error_and_only_that_trace(workdir: Path) -> None:
    store = workdir / "traces.db"
    traces = manager(store)
    failed = traces.create_simulation_trace(EVENT, session_id="s")
    traces.start_agent_span("inventory_agent", "forecast")
    traces.start_agent_span("inventory_agent", "supplier_quote")

    def healthy_trace() -> str:
        trace_id = traces.create_simulation_trace({**EVENT, "event_id": "e2"}, session_id="s")
        traces.start_agent_span("pricing_agent", "optimize_price")
        return trace_id

    healthy = contextvars.Context().run(healthy_trace)
    assert traces.cleanup_failed_trace(failed, "tracing failed: boom") == 3
    assert traces.cleanup_failed_trace(failed) == 0
    assert traces.open_observations(failed) == []
    assert traces.current_trace_id() is None
    assert len(traces.open_observations(healthy)) == 2  # the other trace is untouched
    assert traces.counters.traces_failed == 1
    assert stored(store) == {
        "orchestrator.process_event": ("ERROR", "tracing failed: boom"),
        "inventory_agent.forecast": ("ERROR", "tracing failed: boom"),
        "inventory_agent.supplier_quote": ("ERROR", "tracing failed: boom"),
    }


def test_an_unknown_field_named_event_timestamp_does_not_replace_the_events_time(
    workdir: Path,
) -> None:
    store = workdir / "traces.db"
    traces = manager(store)
    event = {**EVENT, "timestamp": "2026-11-20T08:15:00Z", "event_timestamp": "FAKE", "lane": 3}
    trace_id = traces.create_simulation_trace(event, session_id="s")
    traces.finalize_trace(trace_id, {"ok": True})
    traces.tracer.shutdown()
    with sqlite3.connect(store) as db:
        (metadata,) = db.execute("SELECT metadata FROM traces").fetchone()
        (workflow_input,) = db.execute(
            "SELECT input FROM observations WHERE parent_observation_id IS NULL"
        ).fetchone()
    assert json.loads(metadata)["event_timestamp"] == "2026-11-20T08:15:00Z"
    assert json.loads(metadata)["lane"] == 3
    assert json.loads(workflow_input)["event_timestamp"] == "FAKE"


def test_ends_out_of_order_or_from_another_thread_leave_no_ended_parent(workdir: Path) -> None:
    """Finalizing an earlier trace while a later one is current kept neither current, and
    finalizing the later one then made the finished earlier one current again; an operation
    ended by another thread stayed the parent of what came next."""
    store = workdir / "traces.db"
    traces = manager(store)
    first = traces.create_simulation_trace(EVENT, session_id="s")
    second = traces.create_simulation_trace({**EVENT, "event_id": "e2"}, session_id="s")
    traces.finalize_trace(first, {"ok": True})
    assert traces.current_trace_id() == second
    operation = traces.start_agent_span("pricing_agent", "optimize_price")
    ended_elsewhere = threading.Thread(target=traces.end_agent_span, args=(operation,))
    ended_elsewhere.start()
    ended_elsewhere.join()
    after = traces.start_agent_span("pricing_agent", "recheck")
    traces.end_agent_span(after)
    traces.finalize_trace(second, {"ok": True})
    assert traces.current_trace_id() is None
    assert traces.start_agent_span("pricing_agent", "late") == ""
    traces.tracer.shutdown()
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT name, trace_id FROM observations").fetchall())
        parents = dict(
            db.execute("SELECT name, parent_observation_id FROM observations").fetchall()
        )
        root_ids = dict(
            db.execute(
                "SELECT trace_id, id FROM observations WHERE parent_observation_id IS NULL"
            ).fetchall()
        )
    assert rows["pricing_agent.recheck"] == second
    assert parents["pricing_agent.recheck"] == root_ids[second]
    assert "pricing_agent.late" not in rows
