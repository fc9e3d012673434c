"""The integration guide's API: its data models field for field, and each call as it writes it.

tests/core/test_seed_guide.py runs the guide's own code blocks; these tests pin down the
behaviour behind each call where the blocks leave it open: several traces open at once,
decisions found by agent id, a trace opened by ``trace_operation``, the two uses of a
collaboration handle, and what start-up and the health check report.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from config import langfuse_integration as li
from config import models
from config.langfuse_integration import (
    LangfuseIntegrationService,
    get_langfuse_integration,
    initialize_langfuse_integration,
    install_langfuse_integration,
)
from config.settings import DataMaskingConfig, LangfuseConfig
from tests.support.paths import REPO_ROOT

GUIDE = REPO_ROOT / "reference" / "seed" / "langfuse-integration-guide.md"
EVENT = {
    "event_id": "evt-1",
    "event_type": "demand_spike",
    "trigger_source": "iot_sensor",
    "product_id": "PROD_123",
    "severity": "high",
    "data": {"current_stock": 50, "forecast_demand": 150},
}


def guide_dataclasses() -> dict[str, list[tuple[str, str, str | None]]]:
    """Every ``@dataclass`` of the guide: name -> [(field, annotation, default source)]."""
    text = GUIDE.read_text(encoding="utf-8")
    found: dict[str, list[tuple[str, str, str | None]]] = {}
    for block in text.split("```python\n")[1:]:
        code = block.split("```", 1)[0]
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                isinstance(d, ast.Name) and d.id == "dataclass" for d in node.decorator_list
            ):
                found[node.name] = [
                    (
                        item.target.id,  # type: ignore[attr-defined]
                        ast.unparse(item.annotation),
                        ast.unparse(item.value) if item.value is not None else None,
                    )
                    for item in node.body
                    if isinstance(item, ast.AnnAssign)
                ]
    return found


def normalised(annotation: str) -> str:
    """``Optional[Dict[str, Any]]`` and ``dict[str, Any] | None`` read alike."""
    text = annotation.replace("Dict[", "dict[").replace("List[", "list[").replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        text = text[len("Optional[") : -1] + "|None"
    return text


@pytest.mark.parametrize(
    "name",
    [
        "SimulationTrace",
        "AgentSpan",
        "CollaborationSpan",
        "AgentPerformanceMetrics",
        "SystemWorkflowMetrics",
    ],
)
def test_the_data_models_have_the_guides_fields(name: str) -> None:
    expected = guide_dataclasses()[name]
    model = getattr(models, name)
    fields = [f for f in dataclasses.fields(model) if not f.name.startswith("_")]
    ours = [(f.name, normalised(str(f.type))) for f in fields][: len(expected)]
    assert ours == [(field, normalised(annotation)) for field, annotation, _ in expected]
    # The guide gives these no defaults: each of its fields is required here too.
    for field in fields[: len(expected)]:
        assert field.default is dataclasses.MISSING
        assert field.default_factory is dataclasses.MISSING
    # Anything more is optional, so the guide's construction works as written.
    for field in fields[len(expected) :]:
        assert (field.default, field.default_factory) != (dataclasses.MISSING,) * 2


def test_the_settings_have_the_guides_defaults(workdir: Path) -> None:
    guide = guide_dataclasses()
    masking = DataMaskingConfig()
    for field, _, default in guide["DataMaskingConfig"]:
        assert getattr(masking, field) == ast.literal_eval(default or "None"), field
    config = LangfuseConfig()
    departures = {"public_key", "secret_key"}  # optional here: no keys is local mode
    for field, _, default in guide["LangfuseConfig"]:
        if field in departures:
            assert getattr(config, field) is None
            continue
        assert getattr(config, field) == ast.literal_eval(default or "None"), field


def local_service(workdir: Path) -> LangfuseIntegrationService:
    return install_langfuse_integration(
        LangfuseIntegrationService(
            LangfuseConfig(), DataMaskingConfig(), store_path=workdir / "traces.db"
        )
    )


def rows(workdir: Path, sql: str) -> list[dict[str, Any]]:
    with sqlite3.connect(workdir / "traces.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql)]


def test_parent_trace_id_places_the_span_in_that_trace_with_several_open(workdir: Path) -> None:
    """An orchestrator handling events in threads: each agent span lands in its own trace."""
    service = local_service(workdir)
    traces: dict[int, str] = {}
    spans: dict[int, str] = {}
    opened = threading.Barrier(4)

    def handle(number: int) -> None:
        traces[number] = service.create_simulation_trace({**EVENT, "event_id": f"e{number}"})
        opened.wait()  # every trace is open before any agent starts
        spans[number] = service.start_agent_span(
            agent_id="inventory_agent",
            operation="forecast_demand",
            parent_trace_id=traces[number],
            inputs={"n": number},
        )
        service.log_agent_decision("inventory_agent", {"outputs": {"n": number}, "confidence": 0.5})
        service.end_agent_span(spans[number], {"done": number})
        service.finalize_trace(traces[number], {"n": number})

    threads = [threading.Thread(target=handle, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # From the main thread, with none of them current: a span into a chosen open trace.
    other = service.create_simulation_trace({**EVENT, "event_id": "main"})
    first = service.create_simulation_trace({**EVENT, "event_id": "second"})
    assert service.trace_manager.current_trace_id() == first
    late = service.start_agent_span("pricing_agent", "late", parent_trace_id=other)
    assert service.trace_manager.current_trace_id() == first  # the caller stays where it was
    service.end_agent_span(late)
    service.finalize_trace(first)
    service.finalize_trace(other)
    service.flush()
    stored = {r["id"]: r for r in rows(workdir, "SELECT * FROM observations")}
    for number in range(4):
        span = stored[spans[number]]
        assert span["trace_id"] == traces[number]
        assert json.loads(span["input"]) == {"n": number}
        (decision,) = [r for r in stored.values() if r["parent_observation_id"] == span["id"]]
        assert json.loads(decision["output"]) == {"n": number}
    assert stored[late]["trace_id"] == other
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_decisions_by_agent_id_and_what_they_record(workdir: Path) -> None:
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    span = service.start_agent_span("inventory_agent", "assess", parent_trace_id=trace_id)
    # The guide's shape: the confidence inside the decision.
    service.log_agent_decision("inventory_agent", {"decision_type": "restock", "confidence": 0.85})
    # No open operation of this agent in the trace: counted, not raised.
    service.log_agent_decision("pricing_agent", {"confidence": 0.5})
    # A confidence that is not a number: counted, not raised.
    service.log_agent_decision("inventory_agent", {"confidence": "high"})
    finished = service.end_agent_span(span, {"ok": True})
    assert finished is not None and finished.decision_confidence == 0.85
    assert finished.outputs == {"ok": True} and finished.end_time is not None
    # A decision without any confidence: recorded, but no score is made up.
    other = service.start_agent_span("pricing_agent", "price", parent_trace_id=trace_id)
    service.log_agent_decision("pricing_agent", {"decision_type": "hold"})
    service.end_agent_span(other)
    simulation = service.finalize_trace(trace_id, {"done": True})
    assert simulation is not None
    assert simulation.participating_agents == ["inventory_agent", "pricing_agent"]
    service.flush()
    scores = rows(workdir, "SELECT name, value FROM scores")
    assert scores == [{"name": "decision_confidence", "value": 0.85}]
    names = [r["name"] for r in rows(workdir, "SELECT name FROM observations ORDER BY start_us")]
    assert names.count("pricing_agent.decision") == 1
    assert service.get_performance_metrics()["tracing_errors"] == 2


def test_trace_operation_opens_its_own_trace_and_records_an_error(workdir: Path) -> None:
    service = local_service(workdir)
    with (
        pytest.raises(ZeroDivisionError),
        service.trace_operation(
            "price_optimization", agent_id="pricing_agent", inputs={"price": 1}
        ) as trace_info,
    ):
        assert service.trace_manager.current_trace_id() == trace_info.trace_id
        service.log_agent_decision("pricing_agent", {"confidence": 0.7})
        1 / 0  # noqa: B018
    assert service.trace_manager.current_trace_id() is None
    metrics = service.get_performance_metrics()
    assert (metrics["traces_finalized"], metrics["success_rate"]) == (1, 0.0)
    # Inside a trace: nested, an agent operation, the trace stays open.
    trace_id = service.create_simulation_trace(EVENT)
    with service.trace_operation("check", agent_id="inventory_agent") as nested:
        assert nested.trace_id == trace_id
    service.finalize_trace(trace_id)
    service.flush()
    stored = rows(workdir, "SELECT * FROM observations")
    (root,) = [r for r in stored if r["id"] == trace_info.span_id]
    assert (root["name"], root["type"], root["level"]) == (
        "pricing_agent.price_optimization",
        "AGENT",
        "ERROR",
    )
    assert root["status_message"].startswith("ZeroDivisionError")
    (check,) = [r for r in stored if r["name"] == "inventory_agent.check"]
    assert check["type"] == "AGENT" and check["parent_observation_id"] is not None
    trace_names = {r["id"]: r["name"] for r in rows(workdir, "SELECT id, name FROM traces")}
    assert trace_names[trace_info.trace_id] == "price_optimization"


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, 5.0), ("soon", 5.0), (float("nan"), 5.0), (True, 5.0), (-1, 0.0), (2.5, 2.5),
     (10**400, 86_400.0), (-(10**400), 0.0), (float("inf"), 86_400.0)],
    ids=["none", "text", "nan", "bool", "negative", "seconds", "past-float", "past-float-negative",
         "inf"],
)  # fmt: skip
def test_a_wait_given_to_flush_or_shutdown_is_seconds_within_a_day(
    given: Any, expected: float
) -> None:
    """None failed in the sender (shutdown(None) lost what was batched); a number past the
    float range raised; a negative one past it waited a day instead of not at all."""
    assert li._seconds(given, 5.0) == expected


def test_an_empty_trace_id_is_none_and_zero_is_an_id(workdir: Path) -> None:
    """``trace_id=""`` gave a random id where None derives one from the session and the
    event (a replay was no longer repeatable); 0 is an id, seeded, and found by itself."""
    service = local_service(workdir)
    derived = service.create_simulation_trace(EVENT, session_id="run-1")
    service.finalize_trace(derived)
    assert service.create_simulation_trace(EVENT, session_id="run-1", trace_id="") == derived
    service.finalize_trace(derived)
    zero = service.create_simulation_trace(EVENT, trace_id=0)
    assert service.start_agent_span("pricing_agent", "quote", parent_trace_id=0)
    assert service.finalize_trace(0) is not None
    assert service.create_simulation_trace(EVENT, trace_id=0) == zero


def test_the_same_event_opened_twice_at_once_gets_two_traces_that_do_not_mix(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The trace id of an event in a session is derived from both: processed twice at once,
    the second opened the same id while the first was open, its operations took the first
    one's ids (one row with the first's output and the second's input, an operation lost).
    The second is a trace of its own; after the first ended, the same id is used again (a
    replayed event is the same trace)."""
    service = local_service(workdir)
    first = service.create_simulation_trace(EVENT, session_id="run1")
    a = service.start_agent_span("pricing_agent", "first", {"n": 1}, parent_trace_id=first)
    second = service.create_simulation_trace(EVENT, session_id="run1")
    b = service.start_agent_span("pricing_agent", "second", {"n": 2}, parent_trace_id=second)
    assert second != first and b != a
    assert f"trace {first} is open already" in caplog.text
    service.end_agent_span(a, {"o": 1})
    service.end_agent_span(b, {"o": 2})
    service.finalize_trace(first)
    service.finalize_trace(second)
    assert service.create_simulation_trace(EVENT, session_id="run1") == first
    service.flush()
    stored = {
        r["name"]: (r["trace_id"], json.loads(r["input"]), json.loads(r["output"]))
        for r in rows(workdir, "SELECT * FROM observations WHERE type = 'AGENT'")
    }
    assert stored == {
        "pricing_agent.first": (first, {"n": 1}, {"o": 1}),
        "pricing_agent.second": (second, {"n": 2}, {"o": 2}),
    }


def test_trace_metadata_set_on_any_observation_is_the_traces_in_the_local_store(
    workdir: Path,
) -> None:
    """``update_trace_metadata`` on the second and later observations of a trace (in one
    batch) was dropped by the local store; Langfuse (and serve) keep every one."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    with service.trace_operation("child", agent_id="inventory_agent") as child:
        child.update_trace_metadata({"tm_child": 1})
    with service.trace_operation("plain") as plain:
        plain.update_trace_metadata({"tm_plain": 2})
    service.finalize_trace(trace_id)
    service.flush()
    (stored,) = rows(workdir, f"SELECT metadata FROM traces WHERE id = '{trace_id}'")
    metadata = json.loads(stored["metadata"])
    assert (metadata["tm_child"], metadata["tm_plain"]) == (1, 2)


def test_two_scores_of_one_name_on_an_observation_are_both_kept_and_counted(
    workdir: Path,
) -> None:
    """Score ids came from the trace, the observation and the name: two decisions in one
    operation gave two ``decision_confidence`` scores of one id, the second written over
    the first, while ``scores_recorded`` counted both."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT, session_id="s")
    span = service.start_agent_span("pricing_agent", "price", parent_trace_id=trace_id)
    for confidence in (0.2, 0.9):
        service.log_agent_decision(
            "pricing_agent", {"decision_type": "a", "confidence": confidence}
        )
    service.end_agent_span(span, {"x": 1})
    with service.trace_operation("check") as check:
        check.score("quality", 0.2)
        check.score("quality", 0.8)
    service.finalize_trace(trace_id)
    service.flush()
    stored = rows(workdir, "SELECT name, value FROM scores ORDER BY name, value")
    assert [(r["name"], r["value"]) for r in stored] == [
        ("decision_confidence", 0.2), ("decision_confidence", 0.9),
        ("quality", 0.2), ("quality", 0.8),
    ]  # fmt: skip
    assert service.get_performance_metrics()["scores_recorded"] == len(stored)


def test_a_masked_name_keeps_its_schema_prefix(workdir: Path) -> None:
    """Masked whole, an e-mail in a conflict type swallowed ``conflict.`` with it (the
    local part takes dots): ``autoops metrics``, which counts by those prefixes, lost the
    conflict, and ``simulation.`` went from the trace's name."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace({**EVENT, "event_type": "ann@shop.example.com"})
    service.log_conflict("owner@shop.example.com", ["pricing_agent", "promotion_agent"], {})
    with service.trace_operation("check", agent_id="pricing_agent") as check:
        check.score("quality", 0.2)
        check.score("quality", 0.5)
        check.score("quality\x1f2", 0.9)  # its id was the second "quality"'s: one lost
    service.finalize_trace(trace_id)
    service.flush()
    names = {r["name"] for r in rows(workdir, "SELECT name FROM observations")}
    assert "conflict.[EMAIL]" in names and "pricing_agent.check" in names
    (trace,) = rows(workdir, "SELECT name FROM traces")
    assert trace["name"] == "simulation.[EMAIL]"
    quality = rows(workdir, "SELECT value FROM scores WHERE name LIKE 'quality%'")
    assert sorted(r["value"] for r in quality) == [0.2, 0.5, 0.9]
    # Only the schema's own prefixes are kept: before any other first dot may stand part
    # of what is masked (an address's local part, a phone's country code).
    mask_name = service.trace_manager.tracer.mask_name
    for name, masked in [("john.doe@example.com", "[EMAIL]"), ("+1.555.123.4567", "[PHONE]"),
                         ("jane.doe%40example.com", "[EMAIL]"),
                         ("pricing_agent.plain", "pricing_agent.plain")]:  # fmt: skip
        assert mask_name(name) == masked


def test_an_output_set_inside_trace_operation_is_kept_when_the_block_ends(
    workdir: Path,
) -> None:
    """The developer guide sets an operation's output with ``update(output=...)``: the end
    of the block wrote it over with None for an agent operation and a trace of its own
    (a plain span kept it), an error too."""
    service = local_service(workdir)
    with service.trace_operation("quote", agent_id="pricing_agent") as own:
        own.update(output={"price": 1})
    trace_id = service.create_simulation_trace(EVENT)
    with service.trace_operation("assess", agent_id="inventory_agent") as nested:
        nested.update(output={"price": 2})
    with pytest.raises(KeyError), service.trace_operation("fail", agent_id="promotion_agent") as o:
        o.update(output={"price": 3})
        raise KeyError("sku")
    with service.trace_operation("plain") as plain:
        plain.update(output={"price": 4})
    service.finalize_trace(trace_id)
    service.flush()
    outputs = {r["id"]: r["output"] for r in rows(workdir, "SELECT id, output FROM observations")}
    assert [json.loads(outputs[o.span_id]) for o in (own, nested, o, plain)] == [
        {"price": n} for n in (1, 2, 3, 4)
    ]


def test_a_generator_stopped_early_inside_trace_operation_is_no_error(workdir: Path) -> None:
    """A generator whose body runs in ``trace_operation``, its caller breaking out: the
    operation was recorded as ERROR ``GeneratorExit`` and counted failed (the decorators
    treat the same early stop as no error)."""
    service = local_service(workdir)

    def candidates() -> Any:
        with service.trace_operation("candidates", agent_id="pricing_agent") as operation:
            spans.append(operation.span_id)
            yield from (9.99, 10.49, 10.99)

    spans: list[str] = []
    trace_id = service.create_simulation_trace(EVENT)
    for in_a_trace in (True, False):  # an operation of the trace, then a trace of its own
        if not in_a_trace:
            service.finalize_trace(trace_id)
        for price in candidates():
            if price > 10:
                break
    service.flush()
    levels = {r["id"]: r["level"] for r in rows(workdir, "SELECT id, level FROM observations")}
    assert [levels[span] for span in spans] == ["DEFAULT", "DEFAULT"]
    assert service.get_performance_metrics()["operations_failed"] == 0


def test_an_outcome_that_is_not_a_dict_is_the_traces_output_and_no_failure(
    workdir: Path,
) -> None:
    """``finalize_trace(trace_id, "completed")``: the core read the outcome as a dict, failed,
    and recorded a successful event as a failed trace (level ERROR, success rate down);
    ending a collaboration with such an outcome failed alike."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    collaboration = service.track_collaboration(["inventory_agent", "pricing_agent"], "sync")
    service.end_collaboration(collaboration, "agreed")  # type: ignore[arg-type]
    finished = service.finalize_trace(trace_id, "completed")  # type: ignore[arg-type]
    assert finished is not None and finished.outcome == {"value": "completed"}
    assert collaboration.resolution_outcome == {"value": "agreed"}
    service.flush()
    (root,) = rows(
        workdir, "SELECT level, output FROM observations WHERE parent_observation_id IS NULL"
    )
    assert (root["level"], root["output"]) == ("DEFAULT", "completed")
    metrics = service.get_performance_metrics()
    assert (metrics["success_rate"], metrics["tracing_errors"]) == (1.0, 0)


def test_overturned_decisions_are_scored_each_and_dated_as_their_decisions(
    workdir: Path,
) -> None:
    """decision_overturned was dated when the trace ended: a trace ending past a metrics
    window's end counted its conflicts in the next window, apart from the decisions (and
    dated at the operation's start, "2 overturned of 0 decisions" in a window cut inside
    it). And an operation of two decisions got one: `autoops metrics` counted one of two."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    span_id = service.start_agent_span("pricing_agent", "optimize", {"price": 10})
    service.log_agent_decision(span_id, {"decision_type": "price"}, confidence=0.7)
    service.log_agent_decision(span_id, {"decision_type": "discount"}, confidence=0.9)
    service.end_agent_span(span_id, {"price": 9})
    with service.track_collaboration(["pricing_agent", "inventory_agent"], "sync"):
        service.log_conflict("price_vs_stock", ["pricing_agent", "inventory_agent"], {})
        service.log_conflict_resolution(
            "price_vs_stock", "stock first", {}, overturned_agent="pricing_agent"
        )
    service.finalize_trace(trace_id)
    service.flush()

    def times(name: str) -> list[int]:
        found = rows(workdir, f"SELECT timestamp_us FROM scores WHERE name = '{name}' AND "
                              f"observation_id = '{span_id}' ORDER BY timestamp_us")  # fmt: skip
        return [row["timestamp_us"] for row in found]

    assert len(times("decision_confidence")) == 2
    assert times("decision_overturned") == times("decision_confidence")


def test_a_category_and_a_comment_given_as_a_dict_are_masked(workdir: Path) -> None:
    """A CATEGORICAL score's value (free text) was written whole, a secret key and an e-mail
    with it; a comment given as a dict was made text before masking, so its keys' masks
    (``password``, money fields) were not applied."""
    service = local_service(workdir)
    key = "sk-lf-0123abcd-4567-89ef-0123-456789abcdef"
    with service.trace_operation("review", agent_id="pricing_agent") as operation:
        operation.score("verdict", f"ok {key} bob@example.com", data_type="CATEGORICAL",
                        comment={"password": "hunter2", "unit_cost": 13.37, "note": "fine"})  # fmt: skip
    service.flush()
    (score,) = rows(workdir, "SELECT string_value, comment FROM scores WHERE name = 'verdict'")
    stored = json.dumps(score)
    for raw in (key, "bob@example.com", "hunter2", "13.37"):
        assert raw not in stored, raw
    assert json.loads(score["comment"])["note"] == "fine"


def test_odd_values_in_names_and_scores_never_stop_the_store_nor_raise(workdir: Path) -> None:
    """A decision's reasoning as a list (its score's comment), an enum as an operation's
    name: SQLite could not bind them, and the store took nothing more of the process, the
    traces before them in the same batch included. And the observation trace_operation
    yields raised into the block on a bad argument (a number as status_message), where
    with tracing off the same code ran."""
    import enum

    class Operation(enum.Enum):
        PRICE = "price_optimization"

    class Level(str, enum.Enum):  # noqa: UP042 (the mixin applications write)
        WARNING = "WARNING"

    service = local_service(workdir)
    before = service.create_simulation_trace({**EVENT, "event_id": "before"})
    service.finalize_trace(before)
    odd = service.create_simulation_trace({**EVENT, "event_id": "odd"})
    span = service.start_agent_span("inventory_agent", "assess", parent_trace_id=odd)
    service.log_agent_decision(
        "inventory_agent", {"confidence": 0.8, "reasoning": ["forecast 150", "stock 50"]}
    )
    service.end_agent_span(span)
    service.finalize_trace(odd)
    with service.trace_operation(Operation.PRICE, agent_id="pricing_agent") as trace_info:
        trace_info.update(output={"price": 26.99}, level=Level.WARNING, status_message=404)
        trace_info.score(Operation.PRICE, 0.5)
        trace_info.update(metadata=[1, 2])  # not a mapping: a tracing error, not raised
        trace_info.score(None, 1)  # no name: the same
        trace_info.event("checked", status_message={"code": 7}).score("found", True)
    after = service.create_simulation_trace({**EVENT, "event_id": "after"})
    service.finalize_trace(after)
    assert service.flush()
    traces = {r["id"]: r["name"] for r in rows(workdir, "SELECT id, name FROM traces")}
    assert set(traces) == {before, odd, after, trace_info.trace_id}
    assert traces[trace_info.trace_id] == "price_optimization"  # an enum of text: its value
    (decision,) = rows(workdir, "SELECT comment FROM scores WHERE name = 'decision_confidence'")
    assert json.loads(decision["comment"]) == ["forecast 150", "stock 50"]
    (root,) = rows(workdir, f"SELECT * FROM observations WHERE id = '{trace_info.span_id}'")
    assert (root["level"], root["status_message"]) == ("WARNING", "404")
    (named,) = rows(workdir, "SELECT value FROM scores WHERE name = 'price_optimization'")
    assert named["value"] == 0.5
    (found,) = rows(workdir, "SELECT value FROM scores WHERE name = 'found'")
    assert found["value"] == 1.0
    metrics = service.get_performance_metrics()
    assert (metrics["tracing_errors"], metrics["spans_failed"]) == (2, 0)


@pytest.mark.parametrize(
    ("value", "data_type"),
    [
        (float("nan"), "NUMERIC"),
        (float("inf"), "NUMERIC"),
        (10**400, "NUMERIC"),
        ("abc", "NUMERIC"),
        (0.5, "BOOLEAN"),
        (3, "CATEGORICAL"),
    ],
    ids=["nan", "inf", "10**400", "text-numeric", "boolean-0.5", "number-categorical"],
)
def test_a_score_langfuse_would_refuse_is_a_tracing_error_and_the_others_are_kept(
    workdir: Path, value: Any, data_type: str
) -> None:
    """A NaN score made Langfuse refuse its whole batch (the valid decision_confidence sent
    with it lost), a string as a NUMERIC score's value or a number as a CATEGORICAL one was
    refused there and stored here, and an int past the float range stopped the local store's
    writes. Each is now refused where it is scored, as a tracing error."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    span = service.start_agent_span("inventory_agent", "assess", parent_trace_id=trace_id)
    service.log_agent_decision("inventory_agent", {"decision_type": "d", "confidence": 0.7})
    with service.trace_operation("block") as observation:
        observation.score("odd", value, data_type=data_type)
        observation.score("", 1)  # no name
        observation.score("fine", "high", data_type="CATEGORICAL")
    service.end_agent_span(span)
    service.finalize_trace(trace_id)
    assert service.flush()
    scores = {r["name"]: r for r in rows(workdir, "SELECT * FROM scores")}
    assert set(scores) == {"decision_confidence", "fine"}
    assert scores["fine"]["string_value"] == "high"
    metrics = service.get_performance_metrics()
    assert (metrics["tracing_errors"], metrics["spans_failed"]) == (2, 0)


def test_tags_and_ids_of_a_trace_never_carry_a_secret_and_tags_are_masked(workdir: Path) -> None:
    """Tags are made from the event (its trigger source, its severity) and were stored and
    sent as they were, the configured secret key and an e-mail included, while the same
    values were masked in the trace's metadata and input."""
    secret = "sk-lf-0123456789abcdef"
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(
        {**EVENT, "trigger_source": f"webhook?token={secret}", "severity": "bob@example.com"},
        session_id=f"run-{secret}",
        tags=["card 4111111111111111"],
    )
    service.finalize_trace(trace_id)
    assert service.flush()
    (trace,) = rows(workdir, "SELECT tags, session_id FROM traces")
    stored = json.dumps(trace)
    assert secret not in stored
    for leaked in ("bob@example.com", "4111111111111111"):
        assert leaked not in stored
    tags = json.loads(trace["tags"])
    assert "[EMAIL]" in tags and "card [CARD]" in tags
    assert trace["session_id"].startswith("run-sk-lf-****")


def test_a_collaboration_is_plain_data_and_its_end_outcome_is_recorded(workdir: Path) -> None:
    """``asdict`` of the handle raised (it held the service and its SQLite connection); the
    outcome given to ``end()`` was kept on the handle only; the guide's keyword order given
    positionally recorded the letters of the name as the agents."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    handle = service.track_collaboration("inventory_pricing_sync", ["a", "b"], {"x": 1})  # type: ignore[arg-type]
    assert handle.participating_agents == ["a", "b"]
    assert handle.workflow_type == "inventory_pricing_sync"
    assert dataclasses.asdict(handle)["participating_agents"] == ["a", "b"]
    assert pickle.loads(pickle.dumps(handle)).span_id == handle.span_id
    handle.end({"result": "ok"})
    assert handle.resolution_outcome == {"result": "ok"}
    service.finalize_trace(trace_id)
    service.flush()
    stored = {r["name"]: r for r in rows(workdir, "SELECT * FROM observations")}
    output = json.loads(stored["collaboration.inventory_pricing_sync"]["output"])
    assert output["outcome"] == {"result": "ok"}


def test_a_collaboration_handle_works_as_the_guide_and_as_a_context_manager(
    workdir: Path,
) -> None:
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    handle = service.track_collaboration(
        workflow_id="sync", participating_agents=["a", "b"], workflow_data={"priority": "high"}
    )
    assert handle.trace_id == trace_id and handle.participating_agents == ["a", "b"]
    service.log_coordination_message(handle, "a", "b", "hello", {"x": 1})
    with handle:
        service.log_conflict("clash", ["a", "b"], {})
        service.log_conflict_resolution("clash", "rule", {"winner": "a"}, overturned_agent="b")
    assert len(handle.coordination_messages) == 1 and len(handle.conflicts_detected) == 1
    assert handle.resolution_outcome is not None and handle.resolution_outcome["winner"] == "a"
    # The style before the seed's: positional agents and purpose, `with ... as`, messages
    # without the handle going to the current collaboration.
    with service.track_collaboration(["c", "d"], "older") as older:
        service.log_coordination_message("c", "d", "note", "text")
    assert older.coordination_messages == [
        {"from_agent": "c", "to_agent": "d", "message_type": "note"}
    ]
    service.finalize_trace(trace_id)
    service.flush()
    stored = {r["name"]: r for r in rows(workdir, "SELECT * FROM observations")}
    sync = stored["collaboration.sync"]
    assert json.loads(sync["output"]) == {
        "messages": 1,
        "conflicts": 1,
        "resolutions": [
            {"conflict_type": "clash", "rule": "rule", "winner": "a", "overturned_agent": "b"}
        ],
    }
    assert stored["coordination.hello"]["parent_observation_id"] == sync["id"]
    assert stored["conflict.clash"]["parent_observation_id"] == sync["id"]
    assert (
        stored["coordination.note"]["parent_observation_id"] == stored["collaboration.older"]["id"]
    )
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_a_collaboration_never_ended_is_recorded_at_shutdown(workdir: Path) -> None:
    service = local_service(workdir)
    handle = service.track_collaboration(workflow_id="loose", participating_agents=["a"])
    service.log_coordination_message(handle, "a", "a", "self", {})
    service.shutdown()
    (row,) = rows(workdir, "SELECT * FROM observations WHERE name = 'collaboration.loose'")
    assert row["parent_observation_id"] is None and row["end_us"] is not None
    assert row["status_message"] == "still open at shutdown"


def test_start_up_and_health_as_the_guide_checks_them(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(li, "_service", None)
    assert initialize_langfuse_integration() is True
    health = get_langfuse_integration().health_check()
    assert health["available"] is True and health["mode"] == "local"
    # An invalid configuration: start-up fails, the application carries on untraced.
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "2")
    assert initialize_langfuse_integration() is False
    service = get_langfuse_integration()
    assert service.mode == "disabled"
    assert service.health_check()["available"] is False
    trace_id = service.create_simulation_trace(EVENT)  # no exception, nothing recorded
    service.finalize_trace(trace_id)
    # Disabled on purpose counts as ready: nothing failed.
    monkeypatch.delenv("LANGFUSE_SAMPLE_RATE")
    monkeypatch.setenv("LANGFUSE_TRACING_ENABLED", "false")
    assert initialize_langfuse_integration() is True
    get_langfuse_integration().shutdown()


def test_get_carries_on_untraced_when_the_configuration_is_invalid(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(li, "_service", None)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-only-one-key")
    service = get_langfuse_integration()
    assert service.mode == "disabled"
    assert "could not start" in caplog.text
    service.shutdown()


def test_tracing_after_shutdown_is_not_recorded_and_fails_nothing(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Calls after shutdown() (a thread still tracing at exit) were handed to the closed
    store: an ERROR "cannot write to the local store ... closed database", the spans counted
    as failed and the health degraded. They are now not recorded, said once."""
    service = local_service(workdir)
    kept = service.create_simulation_trace({**EVENT, "event_id": "kept"})
    service.finalize_trace(kept)
    service.shutdown()
    with caplog.at_level("WARNING"):
        for n in range(3):
            late = service.create_simulation_trace({**EVENT, "event_id": f"late-{n}"})
            span = service.start_agent_span("inventory_agent", "assess", parent_trace_id=late)
            service.end_agent_span(span)
            service.finalize_trace(late)
        service.flush()
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "tracing was shut down" in caplog.records[0].getMessage()
    metrics = service.get_performance_metrics()
    assert (metrics["spans_failed"], metrics["tracing_errors"]) == (0, 0)
    # Not recorded, and not sampled out either (no sampler dropped them).
    assert (metrics["traces_sampled_out"], metrics["effective_sample_rate"]) == (0, 1.0)
    # Neither started nor finalized (finalized counted them: 1 started, 4 finalized).
    assert (metrics["traces_started"], metrics["traces_finalized"]) == (1, 1)
    health = service.health_check()
    # Nothing traced now is recorded: not available (it said True), and disabled rather
    # than healthy (nothing failed: not degraded).
    assert health["available"] is False and "shut down" in health["detail"]
    assert health["status"] == "disabled"
    assert [r["id"] for r in rows(workdir, "SELECT id FROM traces")] == [kept]


def test_one_name_given_as_a_text_is_that_name_not_its_letters(workdir: Path) -> None:
    """``agents="pricing_agent"``, ``tags="urgent"``, ``tools_used="forecast_model"``, a
    conflict's one agent: a text is a sequence of texts, and each was recorded letter by
    letter (the route, the tags, the tools; an agent's sampling rule missed it and the
    conflict's agent was never scored). ``track_collaboration`` took them whole already."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT, agents="pricing_agent", tags="urgent")  # type: ignore[arg-type]
    span_id = service.start_agent_span("pricing_agent", "optimize", {"price": 10})
    service.log_agent_decision(
        "pricing_agent",
        {"decision_type": "price", "outputs": {"price": 9}, "tools_used": "forecast_model"},
        confidence=0.7,
    )
    span = service.end_agent_span(span_id, {"price": 9})
    service.log_conflict("price_vs_stock", "pricing_agent", {"price": 9})  # type: ignore[arg-type]
    service.log_conflict_resolution(
        "price_vs_stock", "stock first", {}, overturned_agent="pricing_agent"
    )
    finished = service.finalize_trace(trace_id)
    service.flush()
    assert finished is not None and finished.participating_agents == ["pricing_agent"]
    assert span is not None and span.tools_used == ["forecast_model"]
    (trace,) = rows(workdir, "SELECT tags FROM traces")
    assert "urgent" in json.loads(trace["tags"]) and "u" not in json.loads(trace["tags"])
    (event,) = rows(workdir, "SELECT metadata FROM observations WHERE name LIKE 'conflict.%'")
    assert json.loads(event["metadata"])["agents"] == ["pricing_agent"]
    overturned = rows(workdir, "SELECT value FROM scores WHERE name = 'decision_overturned'")
    assert [row["value"] for row in overturned] == [1.0]
    assert models.AgentDecision("a", "t", {}, 0.5, tools_used="tool").as_dict()["tools_used"] == [  # type: ignore[arg-type]
        "tool"
    ]


def test_a_conflict_whose_details_are_a_text_is_recorded_whole(workdir: Path) -> None:
    """Details given as a text failed the call half way: the trace counted the conflict and
    the agents were scored, but no conflict event was written (and a tracing error counted)."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    with service.track_collaboration(["pricing_agent", "inventory_agent"], "sync") as handle:
        service.log_conflict("price_vs_stock", ["pricing_agent", "inventory_agent"], "too low")  # type: ignore[arg-type]
    service.finalize_trace(trace_id)
    service.flush()
    assert len(handle.conflicts_detected) == 1
    (event,) = rows(workdir, "SELECT input, level FROM observations WHERE name LIKE 'conflict.%'")
    assert (event["input"], event["level"]) == ("too low", "WARNING")
    assert service.get_performance_metrics()["tracing_errors"] == 0


def test_an_operation_ended_after_its_trace_is_a_tracing_error_not_a_silent_success(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An orchestrator that finalizes first (a timeout): the agent's later end, its failure
    too, returned None with nothing said, and the operation stayed a success. Ended twice
    by its owner is still no error."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    late = service.start_agent_span("pricing_agent", "optimize", {"price": 10})
    service.finalize_trace(trace_id)
    with caplog.at_level("WARNING", logger="autoops.tracing"):
        assert service.end_agent_span(late, error=TimeoutError("feed timed out")) is None
    assert "had ended with its trace" in caplog.text
    assert service.get_performance_metrics()["tracing_errors"] == 1
    trace_id = service.create_simulation_trace(EVENT)
    twice = service.start_agent_span("pricing_agent", "optimize", {"price": 10})
    assert service.end_agent_span(twice, {"price": 9}) is not None
    assert service.end_agent_span(twice, {"price": 9}) is None
    service.finalize_trace(trace_id)
    assert service.get_performance_metrics()["tracing_errors"] == 1


def test_one_collaboration_handle_used_from_two_threads_ends_when_both_have_left(
    workdir: Path,
) -> None:
    """The first thread to leave its ``with`` ended the collaboration: the message the other
    thread, still inside, logged next was lost (a tracing error, "has ended"). An error in
    either block still marks it ERROR."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT)
    handle = service.track_collaboration(["pricing_agent", "promotion_agent"], "sync")
    first_left = threading.Event()
    inside = threading.Barrier(2)

    def agent(name: str, last: bool) -> None:
        try:
            with handle:
                inside.wait(timeout=30)
                if last:
                    first_left.wait(timeout=30)
                service.log_coordination_message(handle, name, "other", "proposal", {"by": name})
                if last:
                    raise RuntimeError("promotion budget exhausted")
        except RuntimeError:
            pass
        finally:
            if not last:
                first_left.set()

    threads = [threading.Thread(target=agent, args=(name, last))
               for name, last in (("pricing_agent", False), ("promotion_agent", True))]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    service.finalize_trace(trace_id)
    service.flush()
    assert len(handle.coordination_messages) == 2
    assert service.get_performance_metrics()["tracing_errors"] == 0
    messages = rows(workdir, "SELECT name FROM observations WHERE name LIKE 'coordination.%'")
    assert len(messages) == 2
    (collaboration,) = rows(
        workdir, "SELECT level, status_message FROM observations WHERE name LIKE 'collaboration.%'"
    )
    assert (
        collaboration["level"] == "ERROR" and "budget exhausted" in collaboration["status_message"]
    )


def test_a_late_decision_of_a_finalized_trace_never_lands_in_another_trace(
    workdir: Path,
) -> None:
    """An orchestrator gave up on a slow agent and finalized its trace; the agent's decision
    that came after found no current trace and went to the same agent's only open operation,
    another event's (two decisions there, a score too many). It is a tracing error now."""
    import contextvars

    service = local_service(workdir)

    def open_event(product: str) -> tuple[str, str]:
        trace_id = service.create_simulation_trace({**EVENT, "product_id": product})
        span = service.start_agent_span("promotion_agent", "plan_promotion", {"product": product})
        return trace_id, span

    slow = contextvars.copy_context()  # the slow agent's worker (a thread, a task)
    trace_a, _ = slow.run(open_event, "PROD_A")
    service.finalize_trace(trace_a, {"status": "timeout"})
    other = contextvars.copy_context()
    trace_b, span_b = other.run(open_event, "PROD_B")
    slow.run(
        service.log_agent_decision, "promotion_agent", {"decision_type": "late"}, confidence=0.7
    )
    other.run(service.log_agent_decision, "promotion_agent", {"decision_type": "b"}, confidence=0.9)
    other.run(service.end_agent_span, span_b, {"ok": True})
    service.finalize_trace(trace_b)
    service.flush()
    assert service.get_performance_metrics()["tracing_errors"] == 1
    decisions = rows(workdir, "SELECT trace_id FROM scores WHERE name = 'decision_confidence'")
    assert [row["trace_id"] for row in decisions] == [trace_b]


def test_a_traces_participants_are_the_agents_whose_operations_it_holds(workdir: Path) -> None:
    """The route given to create_simulation_trace was named: an agent routed to that never
    ran (the one before it failed) showed in `traces list` as a participant."""
    service = local_service(workdir)
    trace_id = service.create_simulation_trace(EVENT, agents=["inventory_agent", "promotion_agent"])
    span = service.start_agent_span("inventory_agent", "assess_inventory", {})
    service.end_agent_span(span, error=RuntimeError("stock service unavailable"))
    service.finalize_trace(trace_id, {"event_id": "evt-1"})
    service.flush()
    (trace,) = rows(workdir, "SELECT metadata FROM traces")
    assert json.loads(trace["metadata"])["participating_agents"] == ["inventory_agent"]


def test_a_decision_outside_any_trace_still_finds_the_agents_only_operation(
    workdir: Path,
) -> None:
    """A thread that finalized its own traces is outside any trace, and a decision it logs
    by agent id goes to that agent's only open operation (another thread's): the guard for
    late decisions took the trace this thread had ended itself and refused it."""
    service = local_service(workdir)
    first = service.create_simulation_trace({**EVENT, "product_id": "A"})
    second = service.create_simulation_trace({**EVENT, "product_id": "B"})
    service.finalize_trace(first)
    service.finalize_trace(second)
    opened: dict[str, str] = {}

    def worker() -> None:
        opened["trace"] = service.create_simulation_trace({**EVENT, "product_id": "D"})
        opened["span"] = service.start_agent_span("inventory_agent", "forecast", {})

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=60)
    service.log_agent_decision("inventory_agent", {"decision_type": "restock"}, confidence=0.8)
    service.end_agent_span(opened["span"], {"ok": True})
    service.finalize_trace(opened["trace"])
    service.flush()
    assert service.get_performance_metrics()["tracing_errors"] == 0
    decisions = rows(workdir, "SELECT trace_id FROM scores WHERE name = 'decision_confidence'")
    assert [row["trace_id"] for row in decisions] == [opened["trace"]]
