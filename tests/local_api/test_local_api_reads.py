"""The read side of ``autoops serve``: Langfuse-shaped answers from the local store.

The store is filled by the real core: two ``autoops replay`` runs (the second with another
environment and a release), plus one hand-made trace written through ``LocalStore.write``
with what replays never produce (a user id, a generation with usage, cost and prompt, an
error level, non-JSON input, a long metadata value, scores of every data type and a
session score). Every answer is checked against Langfuse's OpenAPI spec and, where the
Langfuse SDK 5 has a model of it, parsed by that model.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from autoops_cli.app import app
from autoops_cli.local_api.query.errors import ApiProblem
from autoops_cli.local_api.query.observations import (
    get_observation,
    list_observations_v1,
    list_observations_v2,
)
from autoops_cli.local_api.query.projects import get_projects, health
from autoops_cli.local_api.query.scores import get_score_v2, list_scores_v2, list_scores_v3
from autoops_cli.local_api.query.traces import get_trace, list_traces
from autoops_cli.simulation.generator import generate_events, write_events
from config.store.local_store import LocalStore, default_store_path
from config.tracing import attributes as la
from config.tracing.span_records import STATUS_ERROR, ScoreRecord, SpanRecord
from tests.conftest import Cli
from tests.support.openapi_schemas import validate_response
from tests.support.property_budget import examples

Body = dict[str, Any]
RUN_1_EVENTS = 30
RUN_2_EVENTS = 12
SYNTHETIC_TRACE = "0123456789abcdef0123456789abcdef"
SYNTHETIC_ROOT = "a000000000000001"
SYNTHETIC_GENERATION = "a000000000000002"
SYNTHETIC_START = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
LONG_METADATA = "x" * 300
SYNTHETIC_SCORES = "s-boolean,s-categorical,s-text,s-correction,s-session"
TRACES = "/api/public/traces"
TRACE = "/api/public/traces/{traceId}"
OBSERVATIONS = "/api/public/observations"
OBSERVATION = "/api/public/observations/{observationId}"
OBSERVATIONS_V2 = "/api/public/v2/observations"
SCORES_V2 = "/api/public/v2/scores"
SCORE_V2 = "/api/public/v2/scores/{scoreId}"
SCORES_V3 = "/api/public/v3/scores"
V2_GROUP_KEYS = {
    "core": {"id", "traceId", "startTime", "endTime", "projectId", "parentObservationId", "type"},
    "basic": {"name", "level", "statusMessage", "version", "environment", "bookmarked", "public",
              "userId", "sessionId", "isRootObservation"},
    "time": {"completionStartTime", "createdAt", "updatedAt"},
    "io": {"input", "output"},
    "metadata": {"metadata"},
    "model": {"model", "providedModelName", "internalModelId", "modelParameters"},
    "usage": {"usageDetails", "costDetails", "totalCost", "usagePricingTierName"},
    "prompt": {"promptId", "promptName", "promptVersion"},
    "metrics": {"latency", "timeToFirstToken"},
    "trace_context": {"tags", "release", "traceName"},
}  # fmt: skip
ALWAYS_V2 = {"modelId", "inputPrice", "outputPrice", "totalPrice"}  # required by the spec
INJECTIONS = (
    "x' OR '1'='1",
    "x'; DROP TABLE traces;--",
    '" OR ""="',
    "%",
    "1) OR (1=1",
    "') UNION SELECT * FROM scores --",
)


class Query:
    """Query parameters as a multi-dict (what Starlette's ``QueryParams`` offers)."""

    def __init__(self, *pairs: tuple[str, str], **single: str) -> None:
        self.items = [*pairs, *single.items()]

    def get(self, key: str, default: Any = None) -> Any:
        values = self.getlist(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return [value for name, value in self.items if name == key]

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self.items)


def q(*pairs: tuple[str, str], **single: str) -> Query:
    return Query(*pairs, **single)


# --- the store -------------------------------------------------------------------------


def _replay(events_file: Path, run_id: str, env: dict[str, str] | None = None) -> None:
    result = CliRunner().invoke(
        app, ["replay", str(events_file), "--run-id", run_id, "--json"], env=env
    )
    assert result.exit_code == 0, result.output


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _synthetic_trace(store: LocalStore) -> None:
    """What replays never record: user, generation fields, error, odd data, score types."""
    start_ns = _us(SYNTHETIC_START) * 1000
    root = SpanRecord(
        trace_id=SYNTHETIC_TRACE,
        span_id=SYNTHETIC_ROOT,
        parent_span_id=None,
        name="synthetic.root",
        start_ns=start_ns,
        end_ns=start_ns + 2_500_000_000,
        attributes={
            la.TRACE_NAME: "synthetic.chat",
            la.TRACE_USER_ID: "user-42",
            la.TRACE_SESSION_ID: "s-synthetic",
            la.TRACE_TAGS: ["synthetic", "chat"],
            la.OBSERVATION_TYPE: "span",
            la.OBSERVATION_INPUT: "plain text, not JSON",
            la.OBSERVATION_OUTPUT: '{"answer": 42}',
            la.OBSERVATION_METADATA_PREFIX + "long": json.dumps(LONG_METADATA),
            la.OBSERVATION_METADATA_PREFIX + "short": json.dumps("ok"),
        },
    )
    generation = SpanRecord(
        trace_id=SYNTHETIC_TRACE,
        span_id=SYNTHETIC_GENERATION,
        parent_span_id=SYNTHETIC_ROOT,
        name="llm.call",
        start_ns=start_ns + 500_000_000,
        end_ns=start_ns + 2_000_000_000,
        attributes={
            la.TRACE_NAME: "synthetic.chat",
            la.OBSERVATION_TYPE: "generation",
            la.OBSERVATION_MODEL: "gpt-4o",
            la.OBSERVATION_MODEL_PARAMETERS: '{"temperature": 0.2}',
            la.OBSERVATION_USAGE_DETAILS: '{"input": 10, "output": 5, "total": 15}',
            la.OBSERVATION_COST_DETAILS: '{"input": 0.001, "output": 0.002, "total": 0.003}',
            la.OBSERVATION_COMPLETION_START_TIME: json.dumps(
                (SYNTHETIC_START + timedelta(seconds=1)).isoformat()
            ),
            la.OBSERVATION_PROMPT_NAME: "qa",
            la.OBSERVATION_PROMPT_VERSION: 3,
        },
        status_code=STATUS_ERROR,
        status_message="RuntimeError: boom",
    )
    at = start_ns + 3_000_000_000

    def score(score_id: str, value: float | str, data_type: str, **extra: Any) -> ScoreRecord:
        fields = {"trace_id": SYNTHETIC_TRACE, "observation_id": None, **extra}
        return ScoreRecord(
            id=score_id, name=score_id, value=value, data_type=data_type, timestamp_ns=at, **fields
        )

    store.write(
        [root, generation],
        [
            score("s-boolean", 1.0, "BOOLEAN", observation_id=SYNTHETIC_GENERATION),
            score("s-categorical", "good", "CATEGORICAL", comment="fine"),
            score("s-text", "reads well", "TEXT", metadata={"reviewer": "qa"}),
            score("s-correction", "42, not 41", "CORRECTION"),
            score("s-session", 0.7, "NUMERIC", trace_id=None, session_id="s-synthetic"),
        ],
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """One store for the module: replays are the slow part, and no test writes to it."""
    yield from reads_store(tmp_path_factory)


def reads_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    """The store of these tests (other modules' module fixtures use it too).

    Isolated like conftest's ``workdir`` (no LANGFUSE_/AUTOOPS_/OTEL_ variables, a
    temporary home), which is function-scoped and so cannot serve a module fixture.
    """
    root = tmp_path_factory.mktemp("reads")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("LANGFUSE_", "AUTOOPS_", "OTEL_")):
                patch.delenv(name)
        patch.setenv("HOME", str(root / "home"))
        patch.setenv("XDG_CONFIG_HOME", str(root / "home" / ".config"))
        patch.setenv("AUTOOPS_HOME", str(root))
        patch.chdir(root)
        first = root / "run1.jsonl"
        second = root / "run2.jsonl"
        write_events(first, generate_events(RUN_1_EVENTS, seed=7))
        write_events(second, generate_events(RUN_2_EVENTS, seed=11))
        _replay(first, "r1")
        _replay(second, "r2", {"LANGFUSE_ENVIRONMENT": "staging", "LANGFUSE_RELEASE": "v2.1"})
    opened = LocalStore(root / "traces.db")
    _synthetic_trace(opened)
    yield opened
    opened.close()


def db(store: LocalStore, sql: str, *args: Any) -> list[Any]:
    """Ground truth straight from SQLite."""
    return [tuple(row) for row in store.query(sql, args)]


def count(store: LocalStore, sql: str, *args: Any) -> int:
    return int(db(store, sql, *args)[0][0])


def problem(call: Callable[[], Any]) -> ApiProblem:
    with pytest.raises(ApiProblem) as raised:
        call()
    return raised.value


def all_pages(fetch: Callable[[Query], dict[str, Any]], *pairs: tuple[str, str]) -> list[Body]:
    """Every page of a page-based list (each page validated by the caller's ``fetch``)."""
    items: list[Body] = []
    page = 1
    while True:
        body = fetch(q(*pairs, ("page", str(page))))
        items.extend(body["data"])
        if page >= body["meta"]["totalPages"]:
            return items
        page += 1


def all_cursor_pages(
    fetch: Callable[[Query], dict[str, Any]], *pairs: tuple[str, str]
) -> list[Body]:
    items: list[Body] = []
    cursor: str | None = None
    for _ in range(10_000):
        extra = (("cursor", cursor),) if cursor else ()
        body = fetch(q(*pairs, *extra))
        items.extend(body["data"])
        cursor = body["meta"].get("cursor")
        if not cursor:
            return items
    raise AssertionError("the cursor never ended")


# Fetchers that check every answer against the spec on the way.


def traces(store: LocalStore, params: Query) -> dict[str, Any]:
    body = list_traces(store, params)
    validate_response(TRACES, "get", 200, body)
    return body


def observations_v1(store: LocalStore, params: Query) -> dict[str, Any]:
    body = list_observations_v1(store, params)
    validate_response(OBSERVATIONS, "get", 200, body)
    return body


def observations_v2(store: LocalStore, params: Query) -> dict[str, Any]:
    body = list_observations_v2(store, params)
    validate_response(OBSERVATIONS_V2, "get", 200, body)
    return body


def scores_v2(store: LocalStore, params: Query) -> dict[str, Any]:
    body = list_scores_v2(store, params)
    validate_response(SCORES_V2, "get", 200, body)
    return body


def scores_v3(store: LocalStore, params: Query) -> dict[str, Any]:
    body = list_scores_v3(store, params)
    validate_response(SCORES_V3, "get", 200, body)
    return body


# --- every answer matches the spec and the SDK ----------------------------------------


def test_the_store_holds_what_the_tests_rely_on(store: LocalStore) -> None:
    assert count(store, "SELECT COUNT(*) FROM traces") == RUN_1_EVENTS + RUN_2_EVENTS + 1
    assert count(store, "SELECT COUNT(*) FROM observations WHERE level = 'WARNING'") > 0
    assert count(store, "SELECT COUNT(DISTINCT data_type) FROM scores") == 5


def test_every_trace_and_its_full_details_match_the_spec(store: LocalStore) -> None:
    listed = all_pages(lambda params: traces(store, params), ("limit", "17"))
    assert len(listed) == count(store, "SELECT COUNT(*) FROM traces")
    for item in listed:
        body = get_trace(store, item["id"], q())
        validate_response(TRACE, "get", 200, body)
        assert [o["id"] for o in body["observations"]] == item["observations"]
        assert {s["id"] for s in body["scores"]} <= set(item["scores"])


def test_every_observation_matches_the_spec_in_both_versions(store: LocalStore) -> None:
    total = count(store, "SELECT COUNT(*) FROM observations")
    v1 = all_pages(lambda params: observations_v1(store, params), ("limit", "100"))
    every_group = ",".join(V2_GROUP_KEYS)
    v2 = all_cursor_pages(
        lambda params: observations_v2(store, params), ("limit", "250"), ("fields", every_group)
    )
    assert len(v1) == len(v2) == total
    for observation_id in ("a000000000000002", v1[0]["id"], v1[-1]["id"]):
        validate_response(OBSERVATION, "get", 200, get_observation(store, observation_id))


def test_every_score_matches_the_spec_in_v2_and_v3(store: LocalStore) -> None:
    total = count(store, "SELECT COUNT(*) FROM scores")
    v2 = all_pages(lambda params: scores_v2(store, params), ("limit", "100"))
    v3 = all_cursor_pages(
        lambda params: scores_v3(store, params),
        ("limit", "100"),
        ("fields", "core,details,subject,annotation"),
    )
    assert len(v2) == len(v3) == total
    for data_type in ("NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT", "CORRECTION"):
        score_id = db(store, "SELECT id FROM scores WHERE data_type = ? LIMIT 1", data_type)[0][0]
        validate_response(SCORE_V2, "get", 200, get_score_v2(store, score_id))


def test_projects_and_health_match_the_spec() -> None:
    projects = get_projects()
    validate_response("/api/public/projects", "get", 200, projects)
    assert projects["data"][0]["id"] == "local"
    assert health("0.1.0") == {"status": "OK", "version": "0.1.0"}
    validate_response("/api/public/health", "get", 200, health("0.1.0"))


def test_the_langfuse_sdk_models_parse_the_answers(store: LocalStore) -> None:
    from langfuse.api import (
        GetScoresV3Response,
        HealthResponse,
        ObservationsV2Response,
        Projects,
        Score,
    )
    from langfuse.api.core.pydantic_utilities import parse_obj_as

    every_group = ",".join(V2_GROUP_KEYS)
    newest = parse_obj_as(
        ObservationsV2Response, list_observations_v2(store, q(fields=every_group))
    )
    assert len(newest.data) == 50 and newest.meta.cursor
    v2 = parse_obj_as(
        ObservationsV2Response,
        list_observations_v2(store, q(fields=every_group, traceId=SYNTHETIC_TRACE)),
    )
    generation = next(o for o in v2.data if o.id == SYNTHETIC_GENERATION)
    assert generation.usage_details == {"input": 10, "output": 5, "total": 15}
    assert generation.start_time == SYNTHETIC_START + timedelta(seconds=0.5)
    v3 = parse_obj_as(
        GetScoresV3Response,
        list_scores_v3(store, q(id=SYNTHETIC_SCORES, fields="details,subject,annotation")),
    )
    by_id = {score.id: score for score in v3.data}
    assert by_id["s-boolean"].value is True
    assert by_id["s-categorical"].value == "good"
    assert by_id["s-session"].subject is not None and by_id["s-session"].subject.kind == "session"
    assert v3.meta.limit == 50 and v3.meta.cursor is None
    for score_id in ("s-boolean", "s-categorical", "s-text", "s-correction", "s-session"):
        parsed: Any = parse_obj_as(Score, get_score_v2(store, score_id))  # type: ignore[arg-type]
        assert parsed.id == score_id
    assert parse_obj_as(Projects, get_projects()).data[0].organization.name == "autoops"
    assert parse_obj_as(HealthResponse, health("1.2.3")).version == "1.2.3"


# --- pagination ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [
        "timestamp.desc",
        "timestamp.asc",
        "name.asc",
        "id.desc",
        "sessionId.asc",
        "public.desc",
        "bookmarked.asc",
        "release.desc",
        "userId.asc",
        "version.asc",
    ],
)
def test_trace_pages_cover_every_trace_exactly_once(store: LocalStore, order: str) -> None:
    total = count(store, "SELECT COUNT(*) FROM traces")
    first = list_traces(store, q(limit="7", orderBy=order))
    assert first["meta"] == {
        "page": 1,
        "limit": 7,
        "totalItems": total,
        "totalPages": -(-total // 7),
    }
    items = all_pages(lambda params: list_traces(store, params), ("limit", "7"), ("orderBy", order))
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == total
    if order == "timestamp.asc":
        stamps = [item["timestamp"] for item in items]
        assert stamps == sorted(stamps)


def test_a_page_past_the_end_is_empty(store: LocalStore) -> None:
    body = list_traces(store, q(page="1000", limit="50"))
    assert body["data"] == [] and body["meta"]["page"] == 1000


def test_observation_pages_cover_every_observation_once(store: LocalStore) -> None:
    total = count(store, "SELECT COUNT(*) FROM observations")
    items = all_pages(lambda params: list_observations_v1(store, params), ("limit", "97"))
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == total


@pytest.mark.parametrize("limit", ["1", "37", "1000"])
def test_the_v2_cursor_walks_every_observation_once_newest_first(
    store: LocalStore, limit: str
) -> None:
    if limit == "1":  # one trace keeps the one-by-one walk short
        pairs: tuple[tuple[str, str], ...] = (("traceId", SYNTHETIC_TRACE), ("limit", "1"))
        expected = 2
    else:
        pairs = (("limit", limit),)
        expected = count(store, "SELECT COUNT(*) FROM observations")
    items = all_cursor_pages(lambda params: list_observations_v2(store, params), *pairs)
    ids = [item["id"] for item in items]
    assert len(ids) == len(set(ids)) == expected
    starts = [item["startTime"] for item in items]
    assert starts == sorted(starts, reverse=True)


def test_the_v2_cursor_is_base64_json_and_absent_on_the_last_page(store: LocalStore) -> None:
    first = list_observations_v2(store, q(limit="3"))
    cursor = json.loads(base64.b64decode(first["meta"]["cursor"]))
    assert set(cursor) == {"lastStartTimeTo", "lastTraceId", "lastId"}
    assert cursor["lastId"] == first["data"][-1]["id"]
    last = list_observations_v2(store, q(traceId=SYNTHETIC_TRACE, limit="2"))
    assert len(last["data"]) == 2 and "cursor" not in last["meta"]
    assert list_observations_v2(store, q(limit="0")) == {"data": [], "meta": {}}


def test_a_cursor_survives_url_mangling(store: LocalStore) -> None:
    cursor = list_observations_v2(store, q(limit="5"))["meta"]["cursor"]
    expected = list_observations_v2(store, q(limit="5", cursor=cursor))["data"]
    url_safe = cursor.replace("+", "-").replace("/", "_").rstrip("=")
    unescaped_plus = cursor.replace("+", " ")  # what a '+' left unescaped in a query becomes
    for variant in (url_safe, unescaped_plus):
        assert list_observations_v2(store, q(limit="5", cursor=variant))["data"] == expected


def test_score_pages_and_the_v3_cursor_cover_every_score_once(store: LocalStore) -> None:
    total = count(store, "SELECT COUNT(*) FROM scores")
    v2 = all_pages(lambda params: list_scores_v2(store, params), ("limit", "9"))
    v3 = all_cursor_pages(lambda params: list_scores_v3(store, params), ("limit", "9"))
    for items in (v2, v3):
        ids = [item["id"] for item in items]
        assert len(ids) == len(set(ids)) == total
    first = list_scores_v3(store, q(limit="2"))
    assert "=" not in first["meta"]["cursor"] and "+" not in first["meta"]["cursor"]


# --- filters ---------------------------------------------------------------------------


def trace_ids(store: LocalStore, **params: str) -> set[str]:
    return {item["id"] for item in all_pages(lambda p: traces(store, p), *params.items())}


def test_trace_filters(store: LocalStore) -> None:
    assert trace_ids(store, sessionId="r2") == set(
        row[0] for row in db(store, "SELECT id FROM traces WHERE session_id = 'r2'")
    )
    assert len(trace_ids(store, environment="staging")) == RUN_2_EVENTS
    assert len(trace_ids(store, release="v2.1")) == RUN_2_EVENTS
    assert trace_ids(store, userId="user-42") == {SYNTHETIC_TRACE}
    assert trace_ids(store, name="synthetic.chat") == {SYNTHETIC_TRACE}
    name = db(store, "SELECT name FROM traces WHERE session_id = 'r1' LIMIT 1")[0][0]
    assert trace_ids(store, name=name) == set(
        row[0] for row in db(store, "SELECT id FROM traces WHERE name = ?", name)
    )
    # The replays' environments (staging, and the default "development") and the hand-made
    # trace's Langfuse default: together, every trace.
    every = q(
        ("environment", "staging"), ("environment", "development"), ("environment", "default")
    )
    assert list_traces(store, every)["meta"]["totalItems"] == count(
        store, "SELECT COUNT(*) FROM traces"
    )


def test_tags_must_all_be_present(store: LocalStore) -> None:
    tags = json.loads(db(store, "SELECT tags FROM traces WHERE session_id = 'r1' LIMIT 1")[0][0])
    with_first = list_traces(store, q(("tags", tags[0]), ("limit", "100")))["data"]
    with_all = list_traces(store, q(*[("tags", tag) for tag in tags], ("limit", "100")))
    assert all(set(tags) <= set(item["tags"]) for item in with_all["data"])
    assert all(tags[0] in item["tags"] for item in with_first)
    assert 0 < with_all["meta"]["totalItems"] <= len(with_first)
    assert list_traces(store, q(("tags", "synthetic"), ("tags", "chat")))["meta"]["totalItems"] == 1
    nobody = list_traces(store, q(("tags", "synthetic"), ("tags", tags[0])))
    assert nobody["data"] == []


def test_timestamps_are_from_inclusive_and_to_exclusive(store: LocalStore) -> None:
    ordered = list_traces(store, q(orderBy="timestamp.asc", limit="100"))["data"]
    middle = ordered[len(ordered) // 2]
    later = list_traces(store, q(fromTimestamp=middle["timestamp"], limit="100"))["data"]
    earlier = list_traces(store, q(toTimestamp=middle["timestamp"], limit="100"))["data"]
    assert middle["id"] in {item["id"] for item in later}
    assert middle["id"] not in {item["id"] for item in earlier}
    assert len(later) + len(earlier) == len(ordered)
    old = list_traces(store, q(toTimestamp="2021-01-01T00:00:00+00:00"))["data"]
    assert [item["id"] for item in old] == [SYNTHETIC_TRACE]


def v1_and_v2(store: LocalStore, **params: str) -> tuple[list[Body], list[Body]]:
    v1 = all_pages(lambda p: observations_v1(store, p), ("limit", "100"), *params.items())
    v2 = all_cursor_pages(lambda p: observations_v2(store, p), ("limit", "1000"), *params.items())
    assert {item["id"] for item in v1} == {item["id"] for item in v2}
    return v1, v2


def test_observation_filters_in_both_versions(store: LocalStore) -> None:
    tools, _ = v1_and_v2(store, type="TOOL")
    assert len(tools) == count(store, "SELECT COUNT(*) FROM observations WHERE type = 'TOOL'")
    assert {item["type"] for item in tools} == {"TOOL"}
    warnings, _ = v1_and_v2(store, level="WARNING")
    assert {item["level"] for item in warnings} == {"WARNING"}
    assert len(warnings) == count(
        store, "SELECT COUNT(*) FROM observations WHERE level = 'WARNING'"
    )
    in_trace, _ = v1_and_v2(store, traceId=SYNTHETIC_TRACE)
    assert {item["id"] for item in in_trace} == {SYNTHETIC_ROOT, SYNTHETIC_GENERATION}
    children, _ = v1_and_v2(store, parentObservationId=SYNTHETIC_ROOT)
    assert [item["id"] for item in children] == [SYNTHETIC_GENERATION]
    staging, _ = v1_and_v2(store, environment="staging")
    assert {item["environment"] for item in staging} == {"staging"}
    named, _ = v1_and_v2(store, name="llm.call", userId="user-42")
    assert [item["id"] for item in named] == [SYNTHETIC_GENERATION]
    assert v1_and_v2(store, userId="nobody") == ([], [])
    generation_start = "2020-01-01T12:00:00.500Z"
    from_start, _ = v1_and_v2(store, fromStartTime=generation_start, toStartTime="2020-01-02")
    assert [item["id"] for item in from_start] == [SYNTHETIC_GENERATION]
    before, _ = v1_and_v2(store, toStartTime=generation_start)
    assert [item["id"] for item in before] == [SYNTHETIC_ROOT]


def test_v2_only_filters(store: LocalStore) -> None:
    def fetch(**params: str) -> list[Body]:
        return all_cursor_pages(
            lambda p: observations_v2(store, p), ("limit", "1000"), *params.items()
        )

    roots = fetch(isRootObservation="true")
    assert len(roots) == count(store, "SELECT COUNT(*) FROM traces")
    assert all(item["parentObservationId"] is None and item["isRootObservation"] for item in roots)
    assert {item["id"] for item in fetch(parentObservationId="")} == {i["id"] for i in roots}
    others = fetch(isRootObservation="false")
    assert all(item["parentObservationId"] is not None for item in others)
    assert len(roots) + len(others) == count(store, "SELECT COUNT(*) FROM observations")
    session = fetch(sessionId="s-synthetic")
    assert {item["sessionId"] for item in session} == {"s-synthetic"} and len(session) == 2


def test_score_filters(store: LocalStore) -> None:
    def v2(*pairs: tuple[str, str]) -> list[Body]:
        return all_pages(lambda params: scores_v2(store, params), ("limit", "100"), *pairs)

    def v3(*pairs: tuple[str, str]) -> list[Body]:
        return all_cursor_pages(lambda params: scores_v3(store, params), ("limit", "100"), *pairs)

    def ids(fetch: Callable[..., list[Body]], *pairs: tuple[str, str]) -> set[str]:
        return {item["id"] for item in fetch(*pairs)}

    assert ids(v2, ("userId", "user-42")) == {
        "s-boolean",
        "s-categorical",
        "s-text",
        "s-correction",
    }
    assert ids(v2, ("traceTags", "synthetic"), ("traceTags", "chat"), ("dataType", "TEXT")) == {
        "s-text"
    }
    assert ids(v2, ("sessionId", "s-synthetic")) == {"s-session"}
    assert ids(v2, ("scoreIds", "s-text,s-boolean")) == {"s-text", "s-boolean"}
    assert ids(v2, ("observationId", SYNTHETIC_GENERATION)) == {"s-boolean"}
    assert ids(v2, ("configId", "any")) == set()
    high = ids(v2, ("name", "decision_confidence"), ("operator", ">="), ("value", "0.8"))
    assert high == {
        row[0]
        for row in db(
            store, "SELECT id FROM scores WHERE name = 'decision_confidence' AND value >= 0.8"
        )
    }
    assert ids(v3, ("dataType", "boolean"), ("value", "true")) == {"s-boolean"}
    assert ids(v3, ("dataType", "CATEGORICAL"), ("value", "good,bad")) == {"s-categorical"}
    assert ids(v3, ("traceId", SYNTHETIC_TRACE), ("observationId", SYNTHETIC_GENERATION)) == {
        "s-boolean"
    }
    assert ids(v3, ("id", "s-text,s-session"), ("source", "api")) == {"s-text", "s-session"}
    staging = ids(v3, ("environment", "staging"))
    assert len(staging) == count(store, "SELECT COUNT(*) FROM scores WHERE environment = 'staging'")
    low = ids(v3, ("dataType", "NUMERIC"), ("valueMin", "0"), ("valueMax", "0.5"))
    assert low == {
        row[0]
        for row in db(store, "SELECT id FROM scores WHERE value <= 0.5 AND data_type = 'NUMERIC'")
    }


# --- field groups ----------------------------------------------------------------------


def test_trace_field_groups(store: LocalStore) -> None:
    core = list_traces(store, q(fields="core", limit="100"))["data"]
    assert all(not {"input", "output", "metadata"} & set(item) for item in core)
    assert all(item["observations"] == [] and item["scores"] == [] for item in core)
    assert all(item["latency"] == -1 and item["totalCost"] == -1 for item in core)
    full = list_traces(store, q(limit="100"))["data"]
    assert all(item["observations"] and item["latency"] > 0 for item in full)
    io_only = list_traces(store, q(fields="core,io,bogus", limit="1"))["data"][0]
    assert {"input", "output", "metadata"} <= set(io_only) and io_only["latency"] == -1
    trace = get_trace(store, SYNTHETIC_TRACE, q(fields="core,metrics"))
    validate_response(TRACE, "get", 200, trace)
    assert trace["observations"] == [] and trace["scores"] == [] and "input" not in trace
    assert trace["latency"] == pytest.approx(2.5)


def test_v2_observation_field_groups(store: LocalStore) -> None:
    default = list_observations_v2(store, q(limit="5"))["data"]
    expected = V2_GROUP_KEYS["core"] | V2_GROUP_KEYS["basic"] | ALWAYS_V2
    assert all(set(item) == expected for item in default)
    for group, keys in V2_GROUP_KEYS.items():
        body = observations_v2(store, q(fields=group, traceId=SYNTHETIC_TRACE))
        assert {key for item in body["data"] for key in item} == (
            V2_GROUP_KEYS["core"] | keys | ALWAYS_V2
        ), group
    unknown = list_observations_v2(store, q(fields="nonsense", limit="1"))["data"][0]
    assert set(unknown) == expected


def test_v3_score_field_groups(store: LocalStore) -> None:
    core = {
        "id",
        "projectId",
        "name",
        "dataType",
        "value",
        "source",
        "timestamp",
        "environment",
        "createdAt",
        "updatedAt",
    }
    groups = {
        "details": {"comment", "configId", "metadata"},
        "subject": {"subject"},
        "annotation": {"authorUserId", "queueId"},
    }
    assert set(list_scores_v3(store, q(limit="1"))["data"][0]) == core
    for group, keys in groups.items():
        item = list_scores_v3(store, q(fields=group, limit="1"))["data"][0]
        assert set(item) == core | keys


# --- shapes ----------------------------------------------------------------------------


def test_the_synthetic_trace_reads_back_as_langfuse_shows_it(store: LocalStore) -> None:
    trace = get_trace(store, SYNTHETIC_TRACE, q())
    assert trace["timestamp"] == "2020-01-01T12:00:00.000Z"
    assert trace["input"] == "plain text, not JSON" and trace["output"] == {"answer": 42}
    assert trace["tags"] == ["synthetic", "chat"] and trace["public"] is False
    assert trace["htmlPath"] == f"/project/local/traces/{SYNTHETIC_TRACE}"
    # The trace's cost is what its observations recorded, as on them and in the metrics.
    assert trace["environment"] == "default" and trace["totalCost"] == pytest.approx(0.003)
    listed = list_traces(store, q(userId="user-42"))["data"]
    assert [t["totalCost"] for t in listed] == [pytest.approx(0.003)]
    assert list_traces(store, q(userId="user-42", fields="core"))["data"][0]["totalCost"] == -1
    assert {score["id"] for score in trace["scores"]} == {"s-boolean", "s-categorical", "s-text"}
    generation = get_observation(store, SYNTHETIC_GENERATION)
    assert generation["type"] == "GENERATION" and generation["level"] == "ERROR"
    assert generation["statusMessage"] == "RuntimeError: boom"
    assert generation["usage"] == {"input": 10, "output": 5, "total": 15, "unit": "TOKENS"}
    assert generation["costDetails"] == {"input": 0.001, "output": 0.002, "total": 0.003}
    assert generation["calculatedTotalCost"] == 0.003
    assert generation["modelParameters"] == {"temperature": 0.2}
    assert generation["completionStartTime"] == "2020-01-01T12:00:01.000Z"
    assert generation["latency"] == 1.5 and generation["timeToFirstToken"] == 0.5
    assert (generation["promptName"], generation["promptVersion"]) == ("qa", 3)
    root = get_observation(store, SYNTHETIC_ROOT)
    assert root["metadata"] == {"long": LONG_METADATA, "short": "ok"}


def test_v2_io_is_raw_and_metadata_truncated_unless_expanded(store: LocalStore) -> None:
    [root] = list_observations_v2(
        store,
        q(fields="io,metadata,trace_context", parentObservationId="", traceId=SYNTHETIC_TRACE),
    )["data"]
    assert root["input"] == "plain text, not JSON" and root["output"] == '{"answer": 42}'
    assert root["metadata"] == {"long": LONG_METADATA[:200], "short": "ok"}
    assert root["tags"] == ["synthetic", "chat"] and root["traceName"] == "synthetic.chat"
    [expanded] = list_observations_v2(
        store,
        q(
            fields="metadata",
            expandMetadata="long",
            isRootObservation="true",
            traceId=SYNTHETIC_TRACE,
        ),
    )["data"]
    assert expanded["metadata"]["long"] == LONG_METADATA


def test_score_values_by_data_type(store: LocalStore) -> None:
    v2 = {
        item["id"]: item
        for item in list_scores_v2(store, q(scoreIds=SYNTHETIC_SCORES, limit="100"))["data"]
    }
    assert (v2["s-boolean"]["value"], v2["s-boolean"]["stringValue"]) == (1.0, "True")
    assert (v2["s-categorical"]["value"], v2["s-categorical"]["stringValue"]) == (0.0, "good")
    assert v2["s-text"]["stringValue"] == "reads well" and "value" not in v2["s-text"]
    assert (v2["s-correction"]["value"], v2["s-correction"]["stringValue"]) == (0.0, "42, not 41")
    assert v2["s-session"]["trace"] is None and v2["s-session"]["sessionId"] == "s-synthetic"
    assert v2["s-text"]["trace"] == {
        "userId": "user-42",
        "tags": ["synthetic", "chat"],
        "environment": "default",
        "sessionId": "s-synthetic",
    }
    numeric = list_scores_v2(store, q(name="decision_confidence", limit="1"))["data"][0]
    assert numeric["dataType"] == "NUMERIC" and isinstance(numeric["value"], float)
    assert numeric["source"] == "API" and numeric["observationId"]
    v3 = {item["id"]: item for item in list_scores_v3(store, q(id=SYNTHETIC_SCORES))["data"]}
    assert v3["s-boolean"]["value"] is True and v3["s-text"]["value"] == "reads well"
    assert v3["s-correction"]["value"] == "42, not 41"


# --- errors ----------------------------------------------------------------------------


BAD_REQUESTS = [
    (list_traces, {"page": "0"}, "page"),
    (list_traces, {"limit": "1000"}, "limit"),
    (list_traces, {"limit": "ten"}, "limit"),
    (list_traces, {"fromTimestamp": "yesterday"}, "fromTimestamp"),
    (list_traces, {"toTimestamp": "2026-13-45T99:00:00Z"}, "toTimestamp"),
    (list_traces, {"orderBy": "colour.asc"}, "orderBy"),
    (list_traces, {"orderBy": "timestamp.sideways"}, "orderBy"),
    (list_traces, {"filter": '[{"column": "name"}]'}, "filter"),
    (list_traces, {"filter": "[not json"}, "filter"),
    (list_observations_v1, {"limit": "101"}, "limit"),
    (list_observations_v1, {"type": "BOGUS"}, "type"),
    (list_observations_v1, {"level": "LOUD"}, "level"),
    (list_observations_v1, {"fromStartTime": "soon"}, "fromStartTime"),
    (list_observations_v2, {"limit": "1001"}, "limit"),
    (list_observations_v2, {"limit": "-1"}, "limit"),
    (list_observations_v2, {"cursor": "not base64!"}, "cursor"),
    (list_observations_v2, {"cursor": base64.b64encode(b"[1, 2]").decode()}, "cursor"),
    (list_observations_v2, {"cursor": base64.b64encode(b'{"lastId": 1}').decode()}, "cursor"),
    (list_observations_v2, {"parseIoAsJson": "true"}, "parseIoAsJson"),
    (list_observations_v2, {"isRootObservation": "maybe"}, "isRootObservation"),
    (list_observations_v2, {"toStartTime": "x"}, "toStartTime"),
    (list_scores_v2, {"limit": "101"}, "limit"),
    (list_scores_v2, {"operator": ">"}, "operator"),
    (list_scores_v2, {"operator": "LIKE", "value": "1"}, "operator"),
    (list_scores_v2, {"value": "high", "operator": ">"}, "value"),
    (list_scores_v2, {"userId": "u", "fields": "score"}, "fields"),
    (list_scores_v2, {"dataType": "FLOAT"}, "dataType"),
    (list_scores_v3, {"limit": "101"}, "limit"),
    (list_scores_v3, {"fields": "bogus"}, "fields"),
    (list_scores_v3, {"fields": "trace"}, "fields"),
    (list_scores_v3, {"value": "1"}, "value"),
    (list_scores_v3, {"dataType": "NUMERIC", "value": "abc"}, "value"),
    (list_scores_v3, {"dataType": "TEXT", "valueMin": "1"}, "valueMin"),
    (list_scores_v3, {"observationId": "o"}, "observationId"),
    (list_scores_v3, {"sessionId": "s", "traceId": "t"}, "sessionId"),
    (list_scores_v3, {"source": "HUMAN"}, "source"),
    (list_scores_v3, {"cursor": "%%%"}, "cursor"),
]


@pytest.mark.parametrize(
    ("function", "params", "named"),
    BAD_REQUESTS,
    ids=[f"{f.__name__}-{'&'.join(p)}-{i}" for i, (f, p, _) in enumerate(BAD_REQUESTS)],
)
def test_bad_parameters_are_400_naming_the_parameter(
    store: LocalStore, function: Callable[..., Any], params: dict[str, str], named: str
) -> None:
    error = problem(lambda: function(store, q(**params)))
    assert error.status == 400
    if isinstance(error.body["error"], list):  # zod's shape: every issue, each with its path
        assert error.body["message"] == "Invalid request data"
        assert all(issue["path"][0] == named for issue in error.body["error"])
        return
    assert error.body["error"] == "InvalidRequestError"
    message = error.body["message"]
    assert named in message or (named == "cursor" and message == "Invalid cursor format"), message


def test_missing_things_are_404_with_langfuse_bodies(store: LocalStore) -> None:
    error = problem(lambda: get_trace(store, "nope", q()))
    assert (error.status, error.body) == (
        404,
        {
            "message": "Trace nope not found within authorized project",
            "error": "LangfuseNotFoundError",
        },
    )
    error = problem(lambda: get_observation(store, "nope"))
    assert (error.status, error.body) == (
        404,
        {
            "message": "Observation not found within authorized project",
            "error": "LangfuseNotFoundError",
        },
    )
    error = problem(lambda: get_score_v2(store, "nope"))
    assert (error.status, error.body["error"]) == (404, "LangfuseNotFoundError")


# --- untrusted input -------------------------------------------------------------------


STRING_FILTERS = [
    (list_traces, ["userId", "name", "sessionId", "tags", "version", "release",
                         "environment"]),
    (list_observations_v1, ["name", "userId", "traceId", "parentObservationId",
                                  "environment", "version"]),
    (list_observations_v2, ["name", "userId", "sessionId", "traceId",
                                  "parentObservationId", "environment", "version",
                                  "expandMetadata", "fields"]),
    (list_scores_v2, ["userId", "name", "environment", "scoreIds", "configId", "queueId",
                            "traceTags", "traceId", "observationId", "sessionId",
                            "datasetRunId"]),
    (list_scores_v3, ["id", "name", "environment", "configId", "queueId",
                            "authorUserId", "traceId", "sessionId", "experimentId"]),
]  # fmt: skip
# Parameters that narrow nothing when they match nothing (the rest must answer no rows).
SELECTING_NOTHING_EXEMPT = {"expandMetadata", "fields"}


@pytest.mark.parametrize(
    ("function", "names"), STRING_FILTERS, ids=[f.__name__ for f, _ in STRING_FILTERS]
)
def test_sql_injection_through_string_filters_finds_nothing_and_changes_nothing(
    store: LocalStore, function: Callable[..., Any], names: list[str]
) -> None:
    before = store.counts()
    for name in names:
        for attack in INJECTIONS:
            try:
                body = function(store, q((name, attack)))
            except ApiProblem as error:  # refusing is fine, failing is not
                assert error.status == 400, (name, attack)
                continue
            if name not in SELECTING_NOTHING_EXEMPT:
                assert body["data"] == [], (name, attack)
    assert store.counts() == before
    tables = db(store, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    assert tables == [("observations",), ("scores",), ("traces",)]


def test_a_malicious_cursor_is_refused(store: LocalStore) -> None:
    payload = {
        "lastStartTimeTo": "2020-01-01T00:00:00Z'; DROP TABLE observations;--",
        "lastTraceId": "x' OR '1'='1",
        "lastId": "1",
    }
    cursor = base64.b64encode(json.dumps(payload).encode()).decode()
    assert problem(lambda: list_observations_v2(store, q(cursor=cursor))).status == 400
    payload["lastStartTimeTo"] = "2099-01-01T00:00:00Z"
    cursor = base64.b64encode(json.dumps(payload).encode()).decode()
    body = list_observations_v2(store, q(cursor=cursor, limit="1000"))
    # Rows are compared with the bound values: only observations after the position remain.
    assert len(body["data"]) <= count(store, "SELECT COUNT(*) FROM observations")
    assert count(store, "SELECT COUNT(*) FROM observations") > 0


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(max_size=40))
def test_any_name_filter_returns_exactly_the_matching_traces(store: LocalStore, text: str) -> None:
    body = list_traces(store, q(name=text, limit="100"))
    expected = count(store, "SELECT COUNT(*) FROM traces WHERE name = ?", text) if text else None
    if expected is None:  # an empty value is no filter, as in Langfuse
        assert body["meta"]["totalItems"] == count(store, "SELECT COUNT(*) FROM traces")
    else:
        assert body["meta"]["totalItems"] == expected
        assert all(item["name"] == text for item in body["data"])


# --- a store replayed in the standard isolated working directory -----------------------


def test_reads_of_a_replay_in_the_working_directory(cli: Cli, workdir: Path) -> None:
    events = workdir / "events.jsonl"
    write_events(events, generate_events(5, seed=3))
    assert cli("replay", str(events), "--run-id", "solo").exit_code == 0
    store = LocalStore(default_store_path())
    try:
        body = traces(store, q(sessionId="solo"))
        assert body["meta"]["totalItems"] == 5
        assert all(item["sessionId"] == "solo" for item in body["data"])
        first = get_trace(store, body["data"][0]["id"], q())
        validate_response(TRACE, "get", 200, first)
        assert len(first["observations"]) == len(body["data"][0]["observations"]) > 0
    finally:
        store.close()
    with sqlite3.connect(default_store_path()) as connection:
        assert connection.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 5


def test_a_failed_write_leaves_the_store_writable(tmp_path: Path) -> None:
    """A value SQLite cannot bind (here an integer beyond 64 bits) fails that batch only."""
    from config.store.local_store import LocalStore
    from config.tracing.span_records import ScoreRecord

    store = LocalStore(tmp_path / "traces.db")
    bad = ScoreRecord("s1", "a" * 32, None, "n", 0.5, 2**80)  # timestamp overflows SQLite
    with pytest.raises(OverflowError):
        store.write([], [bad])
    good = ScoreRecord("s2", "a" * 32, None, "n", 0.5, 1_795_000_000_000_000_000)
    store.write([], [good])  # was: "cannot start a transaction within a transaction"
    assert store.counts()["scores"] == 1
    store.close()


def test_numbers_a_javascript_client_would_round_are_answered_as_their_text(
    tmp_path: Path,
) -> None:
    """The JS SDK sends a text attribute as it is: ``"12345678901234567890"`` was read back
    as a number, which the official clients showed as 12345678901234567000. Langfuse's reads
    answer such numbers as text (``parseJsonPrioritised``); the others stay numbers."""
    store = LocalStore(tmp_path / "traces.db")
    now = 1_700_000_000_000_000_000
    attributes = {
        la.OBSERVATION_TYPE: "span",
        la.OBSERVATION_INPUT: "12345678901234567890",
        la.OBSERVATION_METADATA_PREFIX + "orderId": "12345678901234567890",
        la.OBSERVATION_METADATA_PREFIX
        + "values": "[9007199254740993, 9007199254740991, 1.5, 1e22, 0.1000000000000000055]",
        la.TRACE_METADATA_PREFIX + "accountId": "-98765432109876543210",
    }
    store.write([SpanRecord("d" * 32, "4" * 16, None, "root", now, now + 1000, attributes)])
    (item,) = observations_v2(store, q(fields="core,basic,io,metadata"))["data"]
    trace = get_trace(store, "d" * 32, q())
    store.close()
    assert item["input"] == "12345678901234567890"
    assert item["metadata"]["orderId"] == "12345678901234567890"
    assert item["metadata"]["values"] == [
        "9007199254740993",
        9007199254740991,
        1.5,
        1e22,
        "0.1000000000000000055",
    ]
    assert trace["metadata"]["accountId"] == "-98765432109876543210"


def test_v2_observations_carry_a_creation_and_update_time(tmp_path: Path) -> None:
    """Both were always null where Langfuse always fills them (the ``time`` field group):
    the observation's start, as a trace's and a score's are their timestamps."""
    store = LocalStore(tmp_path / "traces.db")
    now = 1_700_000_000_000_000_000
    span = SpanRecord(
        "e" * 32, "5" * 16, None, "root", now, now + 1000, {la.OBSERVATION_TYPE: "span"}
    )
    store.write([span])
    (item,) = observations_v2(store, q(fields="core,time"))["data"]
    store.close()
    assert item["createdAt"] == item["updatedAt"] == item["startTime"]
