"""The structured ``filter`` parameter of the list endpoints, against ground truth from SQLite.

The store is test_local_api_reads' (two replays and a synthetic trace); every answer is
validated against the spec on the way (its fetchers do that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from autoops_cli.local_api.query.filters import OBSERVATION_COLUMNS, SCORE_COLUMNS, TRACE_COLUMNS
from autoops_cli.local_api.query.observations import list_observations_v1, list_observations_v2
from autoops_cli.local_api.query.scores import list_scores_v2
from autoops_cli.local_api.query.traces import list_traces
from config.store.local_store import LocalStore
from tests.local_api.test_local_api_reads import (
    SYNTHETIC_GENERATION,
    SYNTHETIC_ROOT,
    SYNTHETIC_START,
    SYNTHETIC_TRACE,
    all_cursor_pages,
    all_pages,
    db,
    observations_v1,
    observations_v2,
    problem,
    q,
    reads_store,
    scores_v2,
    traces,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """test_local_api_reads' store: two replays and the synthetic trace."""
    yield from reads_store(tmp_path_factory)


def condition(column: str, kind: str, operator: str, value: Any = "", **extra: Any) -> dict:
    return {"column": column, "type": kind, "operator": operator, "value": value, **extra}


def filtered_v2(store: LocalStore, *conditions: dict, **params: str) -> list[dict]:
    pairs = [("filter", json.dumps(list(conditions))), ("limit", "1000"), *params.items()]
    return all_cursor_pages(lambda query: observations_v2(store, query), *pairs)


def ids(rows: list[dict]) -> set[str]:
    return {row["id"] for row in rows}


def truth(store: LocalStore, where: str, *args: Any) -> set[str]:
    return {
        row[0]
        for row in db(
            store,
            f"SELECT o.id FROM observations o LEFT JOIN traces t ON t.id = o.trace_id WHERE {where}",
            *args,
        )
    }


def test_string_options_and_null_conditions_match_sql(store: LocalStore) -> None:
    assert ids(filtered_v2(store, condition("type", "string", "=", "GENERATION"))) == truth(
        store, "o.type = 'GENERATION'"
    )
    names = ["orchestrator.process_event", "llm.call"]
    assert ids(filtered_v2(store, condition("name", "stringOptions", "any of", names))) == truth(
        store, "o.name IN (?, ?)", *names
    )
    assert ids(filtered_v2(store, condition("name", "stringOptions", "none of", names))) == truth(
        store, "o.name NOT IN (?, ?)", *names
    )
    assert ids(filtered_v2(store, condition("name", "string", "starts with", "ORCHESTRATOR"))) == (
        truth(store, "o.name LIKE 'orchestrator%'")
    )
    assert ids(filtered_v2(store, condition("statusMessage", "null", "is not null"))) == truth(
        store, "o.status_message IS NOT NULL AND o.status_message <> ''"
    )


def test_time_number_and_boolean_conditions(store: LocalStore) -> None:
    since = (SYNTHETIC_START - timedelta(minutes=1)).isoformat()
    until = (SYNTHETIC_START + timedelta(seconds=1)).isoformat()
    window = filtered_v2(
        store,
        condition("startTime", "datetime", ">=", since),
        condition("startTime", "datetime", "<", until),
    )
    assert ids(window) == {SYNTHETIC_ROOT, SYNTHETIC_GENERATION}
    slow = filtered_v2(store, condition("latency", "number", ">=", 2.0))
    assert ids(slow) == truth(store, "o.end_us - o.start_us >= 2000000")
    assert SYNTHETIC_ROOT in ids(slow)
    roots = filtered_v2(store, condition("isRootObservation", "boolean", "=", True))
    assert ids(roots) == truth(store, "o.parent_observation_id IS NULL")
    assert all(row["isRootObservation"] for row in roots)
    costly = filtered_v2(store, condition("totalCost", "number", ">", 0.002))
    assert ids(costly) == {SYNTHETIC_GENERATION}
    assert ids(filtered_v2(store, condition("promptVersion", "number", "=", 3))) == {
        SYNTHETIC_GENERATION
    }


def test_trace_columns_tags_and_metadata(store: LocalStore) -> None:
    tagged = filtered_v2(
        store, condition("traceTags", "arrayOptions", "all of", ["synthetic", "chat"])
    )
    assert ids(tagged) == {SYNTHETIC_ROOT, SYNTHETIC_GENERATION}
    named = filtered_v2(store, condition("traceName", "string", "=", "synthetic.chat"))
    assert ids(named) == ids(tagged)
    short = filtered_v2(store, condition("metadata", "stringObject", "=", "ok", key="short"))
    assert ids(short) == {SYNTHETIC_ROOT}
    confident = filtered_v2(
        store, condition("metadata", "numberObject", ">=", 0.8, key="confidence")
    )
    expected = truth(store, "CAST(json_extract(o.metadata, '$.confidence') AS REAL) >= 0.8")
    assert expected and ids(confident) == expected
    kinds = filtered_v2(
        store,
        condition(
            "metadata", "categoryOptions", "any of", ["hold", "price_change"], key="decision_type"
        ),
    )
    assert ids(kinds) == truth(
        store, "json_extract(o.metadata, '$.decision_type') IN ('hold', 'price_change')"
    )


def test_matches_on_input_and_the_input_output_rule(store: LocalStore) -> None:
    found = filtered_v2(store, condition("input", "string", "matches", "PLAIN TEXT, not"))
    assert ids(found) == {SYNTHETIC_ROOT}  # case-insensitive, literal
    assert filtered_v2(store, condition("input", "string", "matches", "%")) == []
    alone = problem(
        lambda: list_observations_v2(
            store, q(filter=json.dumps([condition("output", "string", "contains", "answer")]))
        )
    )
    assert alone.status == 400 and "'=' or 'matches'" in alone.body["message"]
    paired = filtered_v2(
        store,
        condition("output", "string", "matches", "answer"),
        condition("output", "string", "contains", "42"),
    )
    assert ids(paired) == {SYNTHETIC_ROOT}
    not_text = problem(
        lambda: list_observations_v2(
            store, q(filter=json.dumps([condition("name", "string", "matches", "llm")]))
        )
    )
    assert not_text.status == 400 and "matches" in not_text.body["message"]


def test_a_condition_overrides_the_simple_parameter_of_its_column_only(store: LocalStore) -> None:
    both = filtered_v2(
        store,
        condition("name", "string", "=", "llm.call"),
        name="synthetic.root",
        traceId=SYNTHETIC_TRACE,
    )
    assert ids(both) == {SYNTHETIC_GENERATION}  # name from the filter, traceId still applied
    elsewhere = filtered_v2(store, condition("name", "string", "=", "llm.call"), traceId="0" * 32)
    assert elsewhere == []
    v1 = all_pages(
        lambda query: observations_v1(store, query),
        ("filter", json.dumps([condition("type", "string", "=", "GENERATION")])),
        ("type", "SPAN"),
    )
    assert {row["type"] for row in v1} == {"GENERATION"}


def test_trace_filters(store: LocalStore) -> None:
    def listed(*conditions: dict) -> set[str]:
        pairs = [("filter", json.dumps(list(conditions))), ("limit", "100")]
        return {t["id"] for t in all_pages(lambda query: traces(store, query), *pairs)}

    failing = {
        row[0]
        for row in db(store, "SELECT DISTINCT trace_id FROM observations WHERE level = 'ERROR'")
    }
    assert listed(condition("level", "string", "=", "ERROR")) == failing
    assert listed(condition("errorCount", "number", ">", 0)) == failing
    assert listed(condition("totalCost", "number", ">", 0)) == {SYNTHETIC_TRACE}
    assert listed(condition("userId", "string", "=", "user-42")) == {SYNTHETIC_TRACE}
    assert listed(condition("tags", "arrayOptions", "any of", ["chat"])) == {SYNTHETIC_TRACE}
    assert listed(condition("latency", "number", ">=", 2.5)) >= {SYNTHETIC_TRACE}
    critical = listed(condition("metadata", "stringObject", "=", "critical", key="severity"))
    assert critical == {
        row[0]
        for row in db(
            store, "SELECT id FROM traces WHERE json_extract(metadata, '$.severity') = 'critical'"
        )
    }
    assert listed(condition("scores_avg", "number", ">=", 0.0)) == {
        row[0]
        for row in db(
            store,
            "SELECT DISTINCT trace_id FROM scores WHERE data_type IN ('NUMERIC', 'BOOLEAN') AND trace_id IS NOT NULL",
        )
    }


def test_score_filters(store: LocalStore) -> None:
    def listed(*conditions: dict) -> set[str]:
        pairs = [("filter", json.dumps(list(conditions))), ("limit", "100")]
        return {s["id"] for s in all_pages(lambda query: scores_v2(store, query), *pairs)}

    assert listed(condition("metadata", "stringObject", "=", "qa", key="reviewer")) == {"s-text"}
    assert listed(condition("traceTags", "arrayOptions", "all of", ["chat"])) == {
        "s-boolean",
        "s-categorical",
        "s-text",
        "s-correction",
    }
    high = listed(condition("value", "number", ">=", 0.9))
    assert high == {row[0] for row in db(store, "SELECT id FROM scores WHERE value >= 0.9")}


@pytest.mark.parametrize(
    ("function", "columns"),
    [
        (list_observations_v2, OBSERVATION_COLUMNS),
        (list_observations_v1, OBSERVATION_COLUMNS),
        (list_traces, TRACE_COLUMNS),
        (list_scores_v2, SCORE_COLUMNS),
    ],
    ids=["observations-v2", "observations-v1", "traces", "scores-v2"],
)
def test_every_column_with_every_type_it_takes_is_answered(
    store: LocalStore, function: Any, columns: dict
) -> None:
    samples = {
        "string": ("=", "x"),
        "stringOptions": ("any of", ["x"]),
        "categoryOptions": ("none of", ["x"]),
        "arrayOptions": ("all of", ["x"]),
        "number": (">=", 1),
        "datetime": (">=", "2026-01-01T00:00:00Z"),
        "boolean": ("=", True),
        "null": ("is null", ""),
        "stringObject": ("contains", "x"),
        "numberObject": ("<", 1),
    }
    from autoops_cli.local_api.query.filters import TYPES_BY_KIND

    for name, column in columns.items():
        for kind in TYPES_BY_KIND[column.kind]:
            operator, value = samples[kind]
            item = condition(name, kind, operator, value)
            if column.kind == "metadata":
                item["key"] = "k"
            if column.kind == "text" and kind == "string":
                item["operator"] = "="
            body = function(store, q(filter=json.dumps([item])))
            assert isinstance(body["data"], list), (name, kind)


def test_bad_conditions_are_400(store: LocalStore) -> None:
    def refused(*conditions: Any) -> dict:
        error = problem(lambda: list_observations_v2(store, q(filter=json.dumps(list(conditions)))))
        assert error.status == 400
        return error.body

    assert (
        "Invalid filter column colour"
        in refused(condition("colour", "string", "=", "x"))["message"]
    )
    assert "does not apply" in refused(condition("latency", "string", "=", "x"))["message"]
    shape = refused({"column": "name", "type": "string", "operator": "≈", "value": "x"})
    assert shape["message"] == "Invalid request data"
    assert shape["error"][0]["path"] == ["filter", 0, "operator"]
    assert refused(*[condition("name", "string", "=", "x")] * 51)["message"].startswith(
        "Invalid filter: at most"
    )
    assert (
        "Invalid JSON"
        in problem(lambda: list_observations_v2(store, q(filter="[{"))).body["message"]
    )
