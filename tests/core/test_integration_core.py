"""The core as a library: the seed API, decorators, error safety, sampling, SDK attributes."""

from __future__ import annotations

import asyncio
import inspect
import json
import random
from collections.abc import AsyncIterator, Generator, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from config import langfuse_integration as li
from config.delivery.exporters import NullExporter
from config.langfuse_integration import (
    LangfuseIntegrationService,
    agent_operation,
    get_langfuse_integration,
    install_langfuse_integration,
    observe,
)
from config.models import AgentDecision
from config.settings import DataMaskingConfig, LangfuseConfig
from config.tracing.sampling import TraceSampler
from config.tracing.span_records import ScoreRecord, SpanRecord
from config.tracing.tracer import Tracer

EVENT = {"event_id": "e1", "event_type": "demand_spike", "product_id": "P1", "severity": "high",
         "trigger_source": "iot", "timestamp": "2026-11-20T08:15:00Z", "data": {"current_stock": 5}}  # fmt: skip


class Capture:
    """An exporter that keeps every batch (or fails, when asked to)."""

    def __init__(self, fail: bool = False) -> None:
        self.spans: list[SpanRecord] = []
        self.scores: list[ScoreRecord] = []
        self.fail = fail

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.spans.extend(spans)
        self.scores.extend(scores)

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float) -> None:
        pass


def service_with(exporter: Any, **config: Any) -> LangfuseIntegrationService:
    return LangfuseIntegrationService(
        LangfuseConfig(**config), DataMaskingConfig(), exporter=exporter, batch_size=1
    )


class Agent:
    agent_id = "pricing_agent"

    @agent_operation("optimize_price")
    def decide(self, price: float) -> AgentDecision:
        lookup("P1")
        return AgentDecision(
            self.agent_id, "price_increase", {"new_price": price * 1.1}, 0.8, "why", ("lookup",)
        )

    @agent_operation("fail")
    def broken(self) -> None:
        raise ValueError("agent bug")


@observe("lookup", as_type="tool")
def lookup(product_id: str) -> dict[str, Any]:
    return {"product_id": product_id, "stock": 3}


def test_seed_flow_records_the_schema(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-1")
    assert len(trace_id) == 32
    decision = Agent().decide(10.0)
    assert decision.outputs["new_price"] == pytest.approx(11.0)
    span_id = service.start_agent_span("inventory_agent", "assess", {"stock": 5})
    service.log_agent_decision(
        span_id, {"decision_type": "restock", "qty": 3}, confidence=0.9, reasoning="low"
    )
    service.end_agent_span(span_id, {"qty": 3})
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    names = {s.name: s for s in capture.spans}
    assert set(names) == {
        "orchestrator.process_event", "pricing_agent.optimize_price", "pricing_agent.lookup",
        "pricing_agent.decision",
        "inventory_agent.assess", "inventory_agent.decision",
    }  # fmt: skip
    root = names["orchestrator.process_event"]
    assert root.parent_span_id is None
    assert root.attributes["langfuse.trace.name"] == "simulation.demand_spike"
    assert root.attributes["session.id"] == "run-1"
    assert names["pricing_agent.optimize_price"].attributes["langfuse.observation.type"] == "agent"
    # A tool called inside an agent operation is named after the agent, and says so.
    tool = names["pricing_agent.lookup"]
    assert tool.attributes["langfuse.observation.type"] == "tool"
    assert tool.attributes["langfuse.observation.metadata.agent_id"] == '"pricing_agent"'
    assert tool.parent_span_id == names["pricing_agent.optimize_price"].span_id
    assert {s.name for s in capture.scores} == {"decision_confidence"}
    assert sorted(s.value for s in capture.scores) == [0.8, 0.9]
    assert service.get_performance_metrics()["operations"] == 2
    assert get_langfuse_integration() is service


def test_a_tool_outside_any_agent_keeps_its_own_name(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-4")
    lookup("P2")
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    assert "lookup" in {s.name for s in capture.spans}


def test_conflicts_score_each_agent_operation_once(workdir: Path) -> None:
    """An agent in two conflicts gets one ``decision_overturned`` score: 1 if any overturned it."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-5")
    spans = {}
    for agent in ("inventory_agent", "pricing_agent", "promotion_agent"):
        spans[agent] = service.start_agent_span(agent, "work")
        service.end_agent_span(spans[agent])
    service.log_conflict("price_vs_discount", ["pricing_agent", "promotion_agent"], {})
    service.log_conflict_resolution(
        "price_vs_discount", "r1", {}, overturned_agent="promotion_agent"
    )
    service.log_conflict("restock_vs_clearance", ["inventory_agent", "promotion_agent"], {})
    service.log_conflict_resolution(
        "restock_vs_clearance", "r2", {}, overturned_agent="inventory_agent"
    )
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    overturned = {
        s.observation_id: s.value for s in capture.scores if s.name == "decision_overturned"
    }
    assert overturned == {
        spans["pricing_agent"]: 0.0,
        spans["promotion_agent"]: 1.0,
        spans["inventory_agent"]: 1.0,
    }


def test_tracing_errors_never_reach_the_agent(workdir: Path) -> None:
    service = install_langfuse_integration(
        LangfuseIntegrationService(
            LangfuseConfig(), DataMaskingConfig(), exporter=Capture(fail=True), batch_size=1
        )
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-2")
    decision = Agent().decide(5.0)  # every span end tries to export and fails
    service.finalize_trace(trace_id, {"ok": True})
    assert decision.confidence == 0.8
    assert service.get_performance_metrics()["tracing_errors"] > 0


def test_agent_exceptions_propagate_and_mark_the_span(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-3")
    with pytest.raises(ValueError, match="agent bug"):
        Agent().broken()
    service.finalize_trace(trace_id, error="agent bug")
    service.flush()
    failed = next(s for s in capture.spans if s.name == "pricing_agent.fail")
    assert failed.attributes["langfuse.observation.level"] == "ERROR"
    assert failed.attributes["langfuse.observation.status_message"] == "ValueError: agent bug"
    assert service.get_performance_metrics()["success_rate"] == 0.0


def test_an_error_quoting_a_secret_key_is_recorded_masked(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-9")
    span_id = service.start_agent_span("pricing_agent", "call")
    service.end_agent_span(span_id, error=RuntimeError("auth failed for sk-lf-1234567890abcdef"))
    service.finalize_trace(trace_id, error="gave up with sk-lf-1234567890abcdef")
    service.flush()
    messages = [s.attributes.get("langfuse.observation.status_message", "") for s in capture.spans]
    assert "RuntimeError: auth failed for sk-lf-****cdef" in messages
    assert not any("1234567890" in message for message in messages)


def test_decorators_outside_a_trace_run_untraced(workdir: Path) -> None:
    capture = Capture()
    install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    assert Agent().decide(1.0).confidence == 0.8
    assert lookup("P9") == {"product_id": "P9", "stock": 3}
    assert capture.spans == []


@observe
def bare_tool(quantity: int) -> int:
    return quantity + 1


@observe("async_lookup", as_type="tool")
async def async_lookup(product_id: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"product_id": product_id}


@observe(as_type="tool")
def stock_levels(count: int) -> Iterator[int]:
    for level in range(count):
        assert Tracer.current() is not None  # the caller's observation, not the generator's
        yield level


@observe(as_type="tool")
def accumulate() -> Generator[int, int, str]:
    total = 0
    while total < 10:
        try:
            total += yield total
        except ValueError:
            total = 100  # the caller's throw() reached it
    return f"done at {total}"


@observe
async def async_levels(count: int) -> AsyncIterator[int]:
    for level in range(count):
        await asyncio.sleep(0)
        yield level


def drive_accumulate() -> tuple[list[int], str]:
    """send() values in, the return value out: the same traced and untraced."""
    generator = accumulate()
    seen = [next(generator), generator.send(5)]
    try:
        generator.send(7)
    except StopIteration as stop:
        return seen, stop.value
    raise AssertionError("accumulate did not stop")


async def collect_async_levels() -> list[int]:
    return [level async for level in async_levels(3)]


class AsyncAgent:
    agent_id = "promotion_agent"

    @agent_operation("plan")
    async def plan(self, budget: float) -> AgentDecision:
        await async_lookup("P7")
        return AgentDecision(self.agent_id, "discount", {"pct": 5}, 0.7, "why", ())

    @agent_operation("fail")
    async def broken(self) -> None:
        await asyncio.sleep(0)
        raise KeyError("async bug")


class NotReady:
    def as_dict(self) -> dict[str, Any]:
        raise ValueError("not ready")


def test_decorators_on_bare_async_and_generator_functions(workdir: Path) -> None:
    """``@observe`` as the guide writes it (no parentheses), and async functions and
    generators traced with their real output and errors, the function's result unchanged."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    assert bare_tool(1) == 2  # outside a trace too
    assert drive_accumulate() == ([0, 5], "done at 12")
    assert asyncio.run(collect_async_levels()) == [0, 1, 2]
    assert inspect.iscoroutinefunction(AsyncAgent.plan)
    trace_id = service.create_simulation_trace(EVENT, session_id="run-6")
    assert bare_tool(2) == 3
    decision = asyncio.run(AsyncAgent().plan(10.0))
    assert decision.confidence == 0.7
    with pytest.raises(KeyError, match="async bug"):
        asyncio.run(AsyncAgent().broken())
    assert list(stock_levels(3)) == [0, 1, 2]
    partial = stock_levels(5)
    assert next(partial) == 0
    partial.close()
    assert drive_accumulate() == ([0, 5], "done at 12")
    thrown = accumulate()
    next(thrown)
    with pytest.raises(StopIteration) as stopped:
        thrown.throw(ValueError("to the generator"))
    assert stopped.value.value == "done at 100"
    assert asyncio.run(collect_async_levels()) == [0, 1, 2]
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    spans = {s.name: s for s in capture.spans}
    assert json.loads(spans["bare_tool"].attributes["langfuse.observation.output"]) == 3
    plan = spans["promotion_agent.plan"]
    assert json.loads(plan.attributes["langfuse.observation.output"])["decision_type"] == "discount"
    assert spans["promotion_agent.async_lookup"].parent_span_id == plan.span_id
    assert "promotion_agent.decision" in spans
    assert any(s.name == "decision_confidence" and s.value == 0.7 for s in capture.scores)
    failed = spans["promotion_agent.fail"]
    assert failed.attributes["langfuse.observation.level"] == "ERROR"
    outputs = sorted(
        json.loads(s.attributes["langfuse.observation.output"])
        for s in capture.spans
        if s.name == "stock_levels"
    )
    assert outputs == [[0], [0, 1, 2]]
    accumulated = sorted(
        json.loads(s.attributes["langfuse.observation.output"])
        for s in capture.spans
        if s.name == "accumulate"
    )
    assert accumulated == [[0], [0, 5]]
    assert json.loads(spans["async_levels"].attributes["langfuse.observation.output"]) == [0, 1, 2]


def test_an_argument_that_cannot_be_read_is_a_tracing_error_not_the_calls(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    @observe(as_type="tool")
    def takes(value: Any) -> str:
        return "ran"

    trace_id = service.create_simulation_trace(EVENT, session_id="run-7")
    assert takes(NotReady()) == "ran"
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    assert "takes" in {s.name for s in capture.spans}
    assert service.get_performance_metrics()["tracing_errors"] == 1


def test_a_service_taken_before_start_up_keeps_tracing_into_the_new_one(workdir: Path) -> None:
    """``service = get_langfuse_integration()`` at import, ``initialize_langfuse_integration()``
    at start-up: the early reference recorded into a shut-down service, silently."""
    early = Capture()
    install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=early)
    )
    service = get_langfuse_integration()
    later = Capture()
    current = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=later)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-8")
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    assert [s.name for s in later.spans] == ["orchestrator.process_event"]
    assert early.spans == []
    assert service.get_performance_metrics()["traces_started"] == 1
    assert current.get_performance_metrics()["traces_started"] == 1
    with pytest.raises(ValueError, match="replaced"):
        install_langfuse_integration(service)
    open_trace = current.create_simulation_trace(EVENT, session_id="run-8b")
    finalized = current.get_performance_metrics()["traces_finalized"]
    service.shutdown()  # the old reference's holder cleaning up: the live service goes on
    assert current.get_performance_metrics()["traces_finalized"] == finalized  # still open
    current.finalize_trace(open_trace, {"ok": True})
    assert current.get_performance_metrics()["traces_finalized"] == finalized + 1


def test_disabled_tracing_records_nothing(workdir: Path) -> None:
    service = LangfuseIntegrationService(LangfuseConfig(enabled=False), DataMaskingConfig())
    assert service.mode == "disabled"
    trace_id = service.create_simulation_trace(EVENT, session_id="run")
    service.finalize_trace(trace_id, {})
    assert service.tracer.stats.observations_recorded == 0
    assert isinstance(service.client.exporter, NullExporter)


def test_attributes_match_what_the_sdk_would_send(workdir: Path) -> None:
    """Input, output, metadata and type attributes equal the SDK's own encoding."""
    from langfuse._client.attributes import create_span_attributes

    capture = Capture()
    service = service_with(capture)
    trace_id = service.create_simulation_trace(EVENT, session_id="s")
    payload_in = {"price": 29.99, "name": "widget", "tags": ["a", "b"], "nested": {"x": 1}}
    payload_out = {"new_price": 31.5, "ok": True}
    metadata = {"agent_id": "pricing_agent", "count": 3, "ratio": 0.5, "flag": False, "text": "é"}
    with service.trace_operation("op", as_type="agent", input=payload_in, metadata=metadata) as op:
        op.update(output=payload_out)
    service.finalize_trace(trace_id, {})
    service.flush()
    recorded = next(s for s in capture.spans if s.name == "op").attributes
    expected = create_span_attributes(
        input=payload_in, output=payload_out, metadata=metadata, observation_type="agent"
    )
    for key, value in expected.items():
        assert recorded[key] == value, key


def test_sampling_agrees_with_opentelemetry() -> None:
    from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

    rng = random.Random(4)
    for rate in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        ours = TraceSampler(rate)
        theirs = TraceIdRatioBased(rate)
        for _ in range(500):
            trace_id = f"{rng.getrandbits(128):032x}"
            otel = (
                theirs.should_sample(None, int(trace_id, 16), "x").decision
                == Decision.RECORD_AND_SAMPLE
            )
            assert ours.keep(trace_id) == otel, (rate, trace_id)
    assert TraceSampler(0.0, enabled=False).keep("0" * 32)


def test_singleton_created_from_environment(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(li, "_service", None)
    service = get_langfuse_integration()
    assert service.mode == "local"
    assert service.store_path == Path(workdir / ".autoops" / "traces.db")
    assert get_langfuse_integration() is service
    service.shutdown()


def test_collaboration_output_counts_what_was_logged_inside_it(workdir: Path) -> None:
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-6")
    with service.track_collaboration(["pricing_agent", "promotion_agent"], "deal") as deal:
        service.log_coordination_message("pricing_agent", "promotion_agent", "price_proposal", {})
        service.log_conflict("price_vs_discount", ["pricing_agent", "promotion_agent"], {})
        service.log_conflict_resolution(
            "price_vs_discount",
            "r",
            {"winner": "pricing_agent"},
            overturned_agent="promotion_agent",
        )
    service.log_coordination_message("a", "b", "after", {})  # outside: not counted
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    assert [m["message_type"] for m in deal.coordination_messages] == ["price_proposal"]
    assert deal.resolutions[0]["overturned_agent"] == "promotion_agent"
    (chain,) = [s for s in capture.spans if s.name == "collaboration.deal"]
    output = json.loads(chain.attributes["langfuse.observation.output"])
    assert output["messages"] == 1 and output["conflicts"] == 1
    assert output["resolutions"][0]["rule"] == "r"


def test_a_fork_while_the_flush_thread_hands_over_leaves_the_child_working() -> None:
    """Forked while the tracer's flush thread held its lock (gunicorn --preload, a fork
    pool), the child's next flush blocked for ever and it had no flush thread."""
    import os
    import time

    from config.tracing.tracer import Tracer

    class Slow(Capture):
        def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
            time.sleep(0.5)
            super().export(spans, scores)

    exporter = Slow()
    tracer = Tracer(exporter, flush_interval=0.1, batch_size=1000)
    tracer.start_trace("parent", root_name="root").end()
    time.sleep(0.25)  # the flush thread is inside the slow export now
    pid = os.fork()
    if pid == 0:  # the child: a flush must return, and its own flush thread hand over
        code = 3
        try:
            tracer.start_trace("child", root_name="root").end()
            waited_until = time.monotonic() + 15  # its own flush thread hands it over
            while len(exporter.spans) < 2 and time.monotonic() < waited_until:
                time.sleep(0.05)
            code = 0 if len(exporter.spans) == 2 else 2  # the parent's root, then its own
            tracer.flush(timeout=1)
        finally:
            os._exit(code)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child hung")
    assert os.waitstatus_to_exitcode(status) == 0
    tracer.shutdown()


class UnprintableError(Exception):
    """An application's exception whose message cannot be read."""

    def __str__(self) -> str:
        raise RuntimeError("message unavailable")


def test_an_error_whose_message_cannot_be_read_reaches_the_caller_unchanged(
    workdir: Path,
) -> None:
    """Describing the error for the span (``f"{error}"``) raised in the block's clean-up: the
    caller got that RuntimeError instead of its own exception, and the span was lost."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    @observe("unprintable", as_type="tool")
    def fails() -> None:
        raise UnprintableError

    trace_id = service.create_simulation_trace(EVENT, session_id="run-10")
    with pytest.raises(UnprintableError):
        fails()
    with pytest.raises(UnprintableError), service.trace_operation("block"):
        raise UnprintableError
    service.finalize_trace(trace_id, {"ok": False})
    service.flush()
    levels = {s.name: s.attributes.get("langfuse.observation.level") for s in capture.spans}
    assert levels["unprintable"] == levels["block"] == "ERROR"


def test_a_traced_generator_resumed_in_another_context_ends_as_it_would_untraced(
    workdir: Path,
) -> None:
    """A generator tracing a block, started in one context and finished in another (asyncio
    tasks advancing it in turn): restoring the current observation raised ValueError ("was
    created in a different Context") into the application, where untraced it ends quietly."""
    import contextvars

    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    def stream(products: list[str]) -> Iterator[str]:
        with service.trace_operation("stream_prices"):
            yield from products

    trace_id = service.create_simulation_trace(EVENT, session_id="run-11")
    prices = stream(["P1", "P2"])
    assert contextvars.copy_context().run(next, prices) == "P1"
    assert list(prices) == ["P2"]
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    assert "stream_prices" in {s.name for s in capture.spans}


def test_agent_operation_on_an_object_without_agent_id_runs_as_untraced(workdir: Path) -> None:
    """Untraced, the method ran; inside a trace, reading ``self.agent_id`` raised
    AttributeError into the application. It is a tracing error now (counted, said once)."""
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=Capture())
    )

    class Anonymous:
        @agent_operation("work")
        def work(self, value: int) -> int:
            return value * 2

    trace_id = service.create_simulation_trace(EVENT, session_id="run-12")
    assert Anonymous().work(21) == 42
    service.finalize_trace(trace_id, {"ok": True})
    assert service.get_performance_metrics()["tracing_errors"] == 1


@pytest.mark.parametrize("agents", [None, "pricing_agent", ("a", "b"), 42])
def test_track_collaboration_takes_whatever_names_the_agents(workdir: Path, agents: Any) -> None:
    """``participating_agents=None`` raised TypeError into the application (from the
    untraced fallback, after a tracing error); one name, any iterable, or none will do."""
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=Capture())
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-13")
    with service.track_collaboration(workflow_id="w", participating_agents=agents) as handle:
        pass
    expected = {None: [], "pricing_agent": ["pricing_agent"], ("a", "b"): ["a", "b"], 42: []}
    assert handle.participating_agents == expected[agents]
    service.finalize_trace(trace_id, {"ok": True})


def test_a_mock_argument_is_recorded_without_calling_it(workdir: Path) -> None:
    """A ``MagicMock`` passed to a traced function (an application's test) answered every
    ``as_dict()`` / ``model_dump()`` with another mock: seconds per call, hundreds of
    recorded calls on the application's mock. Only methods its class defines are called."""
    from unittest.mock import MagicMock

    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    @observe("fetch", as_type="tool")
    def fetch(client: Any) -> str:
        return "ok"

    trace_id = service.create_simulation_trace(EVENT, session_id="run-14")
    client = MagicMock()
    assert fetch(client) == "ok"
    service.finalize_trace(trace_id, MagicMock())
    service.flush()
    assert client.mock_calls == []
    assert "fetch" in {s.name for s in capture.spans}
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_a_decision_by_agent_id_lands_on_the_operation_it_was_logged_in(workdir: Path) -> None:
    """Two asyncio tasks run the same agent in one trace, each logging its decision by
    agent id inside its own operation: both landed on the latest-opened operation (one
    score lost, the other operation without its decision)."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    async def price(product: str, opened: asyncio.Event, both: asyncio.Event) -> None:
        with service.trace_operation("optimize", agent_id="pricing_agent", inputs=product):
            opened.set()
            await both.wait()  # both operations are open when either decides
            service.log_agent_decision(
                "pricing_agent",
                {"decision_type": "price", "outputs": {"product_id": product}, "confidence": 0.9},
            )

    async def run() -> None:
        first, second, both = asyncio.Event(), asyncio.Event(), asyncio.Event()
        tasks = [
            asyncio.create_task(price("A", first, both)),
            asyncio.create_task(price("B", second, both)),
        ]
        await first.wait()
        await second.wait()
        both.set()
        await asyncio.gather(*tasks)

    trace_id = service.create_simulation_trace(EVENT, session_id="run-15")
    asyncio.run(run())
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    operations = [s for s in capture.spans if s.name == "pricing_agent.optimize"]
    assert len(operations) == 2
    assert all("langfuse.observation.metadata.decision_type" in s.attributes for s in operations)
    scored = [s.observation_id for s in capture.scores if s.name == "decision_confidence"]
    assert sorted(scored) == sorted(s.span_id for s in operations)


async def echo() -> AsyncIterator[str | None]:
    value: str | None = None
    while True:
        try:
            value = yield value
        except ValueError:
            value = "caught"


@pytest.mark.parametrize("traced", [False, True])
def test_an_observed_async_generator_passes_asend_and_athrow_on(
    workdir: Path, traced: bool
) -> None:
    """The wrapper was ``async for item in ...: yield item``: asend() values were lost (the
    generator saw None) and athrow() came out to the caller instead of reaching it, traced
    or not. They are handed on, as ``yield from`` does for a plain generator."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    async def drive() -> list[str | None]:
        if traced:
            service.create_simulation_trace(EVENT, session_id="run-16")
        generator = observe("echo")(echo)()
        seen = [await generator.asend(None), await generator.asend("hello")]
        seen.append(await generator.athrow(ValueError("x")))
        await generator.aclose()
        return seen

    assert asyncio.run(drive()) == [None, "hello", "caught"]
    service.flush()
    assert ("echo" in {s.name for s in capture.spans}) is traced


class Streaming:
    agent_id = "promotion_agent"

    @agent_operation("stream")
    def stream(self, count: int) -> Iterator[int]:
        for item in range(count):
            if item == 3:
                raise ValueError("no stock")
            yield item * 10

    @agent_operation("astream")
    async def astream(self, count: int) -> AsyncIterator[int]:
        for item in range(count):
            yield item


def test_an_agent_operation_on_a_generator_records_its_items_and_its_error(
    workdir: Path,
) -> None:
    """Ended as the method returned, the operation's output was the generator object's repr
    (``<generator object ...>``) and nothing of what it yielded or raised."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-17")
    agent = Streaming()
    assert list(agent.stream(2)) == [0, 10]
    with pytest.raises(ValueError, match="no stock"):
        list(agent.stream(5))

    async def drive() -> list[int]:
        return [item async for item in agent.astream(3)]

    assert asyncio.run(drive()) == [0, 1, 2]
    service.finalize_trace(trace_id)
    service.flush()
    operations = [s for s in capture.spans if s.name.startswith("promotion_agent.")]
    outputs = [
        (s.name, s.attributes.get("langfuse.observation.output"),
         s.attributes.get("langfuse.observation.level"))
        for s in operations
    ]  # fmt: skip
    assert outputs == [
        ("promotion_agent.stream", "[0, 10]", None),
        ("promotion_agent.stream", None, "ERROR"),
        ("promotion_agent.astream", "[0, 1, 2]", None),
    ]
    assert all(s.trace_id == trace_id for s in operations)
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_an_agent_generator_ended_with_its_trace_keeps_what_it_yielded(workdir: Path) -> None:
    """Its trace finalized before the caller closed it, the operation was ended with the
    trace and had no output: the items taken were lost (an observed generator kept them)."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-19")
    generator = Streaming().stream(3)
    assert [next(generator), next(generator)] == [0, 10]
    service.finalize_trace(trace_id)
    generator.close()
    service.flush()
    (operation,) = [s for s in capture.spans if s.name == "promotion_agent.stream"]
    assert operation.attributes["langfuse.observation.output"] == "[0, 10]"
    assert operation.attributes["langfuse.observation.status_message"] == "ended with its trace"


class Deciding:
    agent_id = "pricing_agent"

    @agent_operation("stream")
    def stream(self, label: str, count: int) -> Iterator[int]:
        for item in range(count):
            service = get_langfuse_integration()
            service.log_agent_decision(
                "pricing_agent", {"decision_type": label, "confidence": 0.1 * (item + 1)}
            )
            yield item

    @agent_operation("run")
    def run(self) -> list[int]:
        return list(self.stream("inner", 2))

    @agent_operation("ending")
    def ending(self, label: str) -> Iterator[int]:
        service = get_langfuse_integration()
        with service.trace_operation("quote") as quote:
            yield 0
            quote.end()  # what the body made current has ended: its operation is current
            yield 1
            service.log_agent_decision("pricing_agent", {"decision_type": label})
            yield 2

    @agent_operation("quoting")
    def quoting(self) -> Iterator[int]:
        service = get_langfuse_integration()
        with service.trace_operation("quote", agent_id="pricing_agent"):
            for item in range(2):  # the block stays current from one item to the next
                service.log_agent_decision(
                    "pricing_agent", {"decision_type": "quoted", "confidence": 0.5}
                )
                yield item


def test_decisions_logged_inside_an_agent_generator_are_its_own(workdir: Path) -> None:
    """Never current, a generator's operation did not get the decisions its body logged:
    they went to the caller's operation of the same agent, or to another generator of the
    agent open at the same time."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-18")
    agent = Deciding()
    agent.run()
    assert list(zip(agent.stream("first", 2), agent.stream("second", 2), strict=True))
    assert list(agent.quoting()) == [0, 1]
    assert list(zip(agent.ending("one"), agent.ending("two"), strict=True))
    service.finalize_trace(trace_id)
    service.flush()
    by_id = {s.span_id: s for s in capture.spans}
    decisions = [s for s in capture.spans if s.name == "pricing_agent.decision"]
    placed = sorted(
        (json.loads(s.attributes["langfuse.observation.metadata.decision_type"]),
         by_id[s.parent_span_id].name,
         json.loads(by_id[s.parent_span_id].attributes.get("langfuse.observation.input") or "{}")
         .get("label"))
        for s in decisions
    )  # fmt: skip
    assert placed == [
        ("first", "pricing_agent.stream", "first"), ("first", "pricing_agent.stream", "first"),
        ("inner", "pricing_agent.stream", "inner"), ("inner", "pricing_agent.stream", "inner"),
        ("one", "pricing_agent.ending", "one"),
        ("quoted", "pricing_agent.quote", None), ("quoted", "pricing_agent.quote", None),
        ("second", "pricing_agent.stream", "second"), ("second", "pricing_agent.stream", "second"),
        ("two", "pricing_agent.ending", "two"),
    ]  # fmt: skip


def test_a_value_that_refers_to_itself_is_recorded_with_masking_off(workdir: Path) -> None:
    """With masking off nothing cuts a cycle through objects: the serializer's "Circular
    reference detected" dropped the observation (a tracing error)."""
    capture = Capture()
    off = DataMaskingConfig(mask_pii=False, mask_financial_data=False, mask_customer_data=False)
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), off, exporter=capture)
    )

    class Node:
        pass

    node = Node()
    node.me = node  # type: ignore[attr-defined]
    loop: list[Any] = []
    loop.append(loop)

    @observe()
    def handle(item: Any, items: list[Any]) -> str:
        return "done"

    trace_id = service.create_simulation_trace(EVENT, session_id="run-20")
    assert handle(node, loop) == "done"
    service.finalize_trace(trace_id)
    service.flush()
    (handled,) = [s for s in capture.spans if s.name == "handle"]
    assert "Node object" in handled.attributes["langfuse.observation.input"]
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_values_json_cannot_write_as_they_are_are_recorded_not_dropped(workdir: Path) -> None:
    """A dict with a tuple key dropped the whole observation (a tracing error); an enum
    was recorded as {} and an array-like object (``tolist()``) as its private fields."""
    import enum

    class Color(enum.Enum):
        RED = "red"

    class Vector:
        def __init__(self, values: list[int]) -> None:
            self._values = values

        def tolist(self) -> list[int]:
            return list(self._values)

    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    @observe("odd_values")
    def odd(grid: Any, color: Any, vector: Any) -> str:
        return "ok"

    trace_id = service.create_simulation_trace(EVENT, session_id="run-17")
    assert odd({(1, 2): "x", 3: "y"}, Color.RED, Vector([1, 2])) == "ok"
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    (span,) = [s for s in capture.spans if s.name == "odd_values"]
    assert json.loads(str(span.attributes["langfuse.observation.input"])) == {
        "grid": {"(1, 2)": "x", "3": "y"},
        "color": "red",
        "vector": [1, 2],
    }
    assert service.get_performance_metrics()["tracing_errors"] == 0


def confidence_scored(confidence: Any) -> tuple[list[float | str], int]:
    """The decision_confidence scores of one decision logged with ``confidence``, and the
    tracing errors counted."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT, session_id="run-18")
    with service.trace_operation("optimize", agent_id="pricing_agent"):
        service.log_agent_decision(
            "pricing_agent", {"decision_type": "price"}, confidence=confidence
        )
    service.finalize_trace(trace_id, {"ok": True})
    service.flush()
    scored = [s.value for s in capture.scores if s.name == "decision_confidence"]
    return scored, service.get_performance_metrics()["tracing_errors"]


@pytest.mark.parametrize("confidence", [Decimal("0.5"), Fraction(1, 2), 0.5, 1])
def test_a_confidence_of_any_number_type_is_scored(workdir: Path, confidence: Any) -> None:
    """A Decimal confidence (from a database) was refused: the whole decision was lost."""
    assert confidence_scored(confidence) == ([float(confidence)], 0)


@pytest.mark.parametrize("confidence", ["0.8", True, 1.5, -2, float("nan")])
def test_a_confidence_that_is_not_a_number_from_0_to_1_is_a_tracing_error(
    workdir: Path, confidence: Any
) -> None:
    """ "0.8" and True were taken for numbers, 1.5 and -2 recorded as decision_confidence
    (averaged by `autoops metrics`): the schema's confidence is a number in [0, 1]. Anything
    else is a tracing error, no score; the agent carries on."""
    assert confidence_scored(confidence) == ([], 1)


def test_text_that_is_not_unicode_is_stored_as_u_fffd_and_stops_nothing(workdir: Path) -> None:
    """A lone surrogate (``os.fsdecode`` of a file name that is not UTF-8) cannot be bound by
    SQLite: the batch failed, and the store took nothing more of the process (traces finished
    before it in the batch included). Now it is U+FFFD, as the OTLP encoder sends it."""
    import os
    import sqlite3

    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig())
    )
    odd = os.fsdecode(b"rapport-\xe9t\xe9.csv")

    @observe("read_report", as_type="tool")
    def read_report(name: str) -> str:
        return name

    for event_type in ("before", "odd", "after"):
        trace_id = service.create_simulation_trace({**EVENT, "event_type": event_type})
        if event_type == "odd":
            read_report(odd)
            span_id = service.start_agent_span("inventory_agent", "assess", {"file": odd})
            service.log_agent_decision(
                span_id, {"decision_type": odd}, confidence=0.5, reasoning=odd
            )
            service.end_agent_span(span_id, {"file": odd})
        service.finalize_trace(trace_id, {"file": odd} if event_type == "odd" else {})
    assert service.flush()
    store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    with sqlite3.connect(store) as db:
        names = {row[0] for row in db.execute("SELECT name FROM traces")}
        outputs = [row[0] for row in db.execute("SELECT output FROM observations")]
    assert names == {"simulation.before", "simulation.odd", "simulation.after"}
    assert "rapport-\ufffdt\ufffd.csv" in outputs  # the tool's plain-string output
    assert service.get_performance_metrics()["spans_failed"] == 0


@pytest.mark.parametrize("parentheses", [False, True])
def test_observe_above_classmethod_and_staticmethod_traces_the_method(
    workdir: Path, parentheses: bool
) -> None:
    """A classmethod is not callable: ``@observe`` above ``@classmethod`` took it for the
    name, and the method returned the decorator instead of running."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    traced = observe() if parentheses else observe

    class Pricing:
        factor = 2

        @traced  # type: ignore[arg-type]
        @classmethod
        def scaled(cls, price: float) -> float:
            return price * cls.factor

        @traced  # type: ignore[arg-type]
        @staticmethod
        def rounded(price: float) -> float:
            return round(price, 1)

    trace_id = service.create_simulation_trace(EVENT)
    assert Pricing.scaled(3) == 6
    assert Pricing().rounded(2.26) == 2.3
    service.finalize_trace(trace_id)
    service.flush()
    assert {"scaled", "rounded"} <= {span.name for span in capture.spans}


def test_a_score_whose_metadata_holds_nan_is_sent_as_strict_json(workdir: Path) -> None:
    """A NaN in a score's metadata was sent as JSON's NaN: Langfuse refused the request
    (400), and with it the valid scores sent along; the local store wrote "nan"."""
    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )
    trace_id = service.create_simulation_trace(EVENT)
    with service.trace_operation("block") as observation:
        observation.score("good", 0.5)
        observation.score("odd", 0.7, metadata={"ratio": float("nan"), "top": [float("inf")]})
    service.finalize_trace(trace_id)
    service.flush()
    (odd,) = [score for score in capture.scores if score.name == "odd"]
    assert odd.metadata == {"ratio": "nan", "top": ["inf"]}
    json.dumps([score.as_request() for score in capture.scores], allow_nan=False)


@pytest.mark.parametrize("enabled", [False, True])
def test_collaborations_of_two_threads_keep_their_own_messages(
    workdir: Path, enabled: bool
) -> None:
    """Tracing off, every collaboration handle has the span id "": the ``with`` blocks of two
    threads shared one stack of tokens, a thread leaving its block took the other's, and
    its messages after the block still went into the collaboration it had left."""
    import threading

    service = install_langfuse_integration(
        LangfuseIntegrationService(
            LangfuseConfig(enabled=enabled), DataMaskingConfig(), exporter=Capture()
        )
    )
    handles: dict[str, Any] = {}
    first_inside, second_inside, first_left = (threading.Event() for _ in range(3))

    def first() -> None:
        trace_id = service.create_simulation_trace(EVENT)
        with service.track_collaboration("w0", ["a", "b"]) as handle:
            handles["first"] = handle
            service.log_coordination_message("a", "b", "inside-first", {})
            first_inside.set()
            second_inside.wait(30)
        first_left.set()
        service.log_coordination_message("a", "b", "after-first", {})
        service.finalize_trace(trace_id)

    def second() -> None:
        first_inside.wait(30)
        trace_id = service.create_simulation_trace(EVENT)
        with service.track_collaboration("w1", ["a", "b"]) as handle:
            handles["second"] = handle
            service.log_coordination_message("a", "b", "inside-second", {})
            second_inside.set()
            first_left.wait(30)
        service.log_coordination_message("a", "b", "after-second", {})
        service.finalize_trace(trace_id)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    kept = {name: [m["message_type"] for m in handle.coordination_messages]
            for name, handle in handles.items()}  # fmt: skip
    assert kept == {"first": ["inside-first"], "second": ["inside-second"]}


def test_a_pool_thread_whose_span_was_ended_elsewhere_nests_nothing_in_that_trace(
    workdir: Path,
) -> None:
    """The orchestrator ends the agent span a pool thread started: that thread's current
    observation had ended, and ``current()`` walked up to its parent, the earlier trace's
    root, which the thread had never entered: the next event's tool call landed there."""
    from concurrent.futures import ThreadPoolExecutor

    capture = Capture()
    service = install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig(), exporter=capture)
    )

    def agent(trace_id: str, product: str) -> str:
        span_id = service.start_agent_span("pricing_agent", "price", parent_trace_id=trace_id)
        lookup(product)
        return span_id

    first = service.create_simulation_trace({**EVENT, "event_id": "e1", "product_id": "P0"})
    second = service.create_simulation_trace({**EVENT, "event_id": "e2", "product_id": "P1"})
    with ThreadPoolExecutor(1) as pool:
        service.end_agent_span(pool.submit(agent, first, "P0").result())
        service.end_agent_span(pool.submit(agent, second, "P1").result())
    service.finalize_trace(first)
    service.finalize_trace(second)
    service.flush()
    agents = {s.trace_id: s for s in capture.spans if s.name == "pricing_agent.price"}
    tools = [s for s in capture.spans if s.name.endswith("lookup")]
    assert len(tools) == 2
    for tool in tools:
        assert tool.name == "pricing_agent.lookup"
        assert tool.parent_span_id == agents[tool.trace_id].span_id
    assert {tool.trace_id for tool in tools} == {first, second}
