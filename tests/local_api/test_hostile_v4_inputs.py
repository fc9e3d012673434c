"""Untrusted input of the new routes and readers, as property tests: whatever a client sends
as a batch of ingestion events or a ``filter``, and whatever a server answers the trace
readers, ends in an answer (or a 4xx), never a crash, and never leaves the store unwritable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoops_cli.actions.traces.rows import observation_tree, trace_row
from autoops_cli.actions.traces.source import root_as_trace
from autoops_cli.local_api.http.batch import EVENT_TYPES, ingest_batch
from autoops_cli.local_api.query.errors import ApiProblem
from autoops_cli.local_api.query.observations import list_observations_v2
from autoops_cli.local_api.query.traces import list_traces
from config.store.local_store import LocalStore
from config.tracing.span_records import SpanRecord
from tests.local_api.test_local_api_reads import q
from tests.support.property_budget import examples

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)  # 1e400 is JSON, and reads as infinity
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=16,
)
BODY_KEYS = (
    "id", "traceId", "name", "startTime", "endTime", "input", "output", "metadata", "level",
    "type", "model", "modelParameters", "usage", "usageDetails", "costDetails", "promptName",
    "promptVersion", "value", "dataType", "sessionId", "tags", "public", "environment",
    "timestamp", "parentObservationId", "statusMessage", "completionStartTime",
)  # fmt: skip
bodies = st.dictionaries(st.sampled_from(BODY_KEYS), json_values, max_size=8) | json_values
events = (
    st.fixed_dictionaries(
        {
            "id": st.text(min_size=1, max_size=10) | json_values,
            "type": st.sampled_from(sorted(EVENT_TYPES)) | json_values,
            "timestamp": st.sampled_from(["2026-12-01T00:00:00Z", "2026-12-01T00:00:00.123+02:00"])
            | json_values,
            "body": bodies,
        }
    )
    | json_values
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStore]:
    opened = LocalStore(Path(tmp_path_factory.mktemp("hostile-v4")) / "traces.db")
    yield opened
    opened.close()


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batch=st.lists(events, max_size=6), v4_only=st.booleans())
def test_any_batch_is_answered_event_by_event(
    store: LocalStore, batch: list[Any], v4_only: bool
) -> None:
    answer = ingest_batch(store, {"batch": batch}, v4_only=v4_only)
    sdk_logs = sum(1 for e in batch if isinstance(e, dict) and e.get("type") == "sdk-log")
    handled = len(answer["successes"]) + len(answer["errors"])
    assert len(batch) - sdk_logs <= handled <= len(batch)
    assert all(e["status"] == 400 and isinstance(e["id"], str) for e in answer["errors"])
    if v4_only:  # only scores (and logs) are taken
        taken = {s["id"] for s in answer["successes"]}
        for event in batch:
            if (
                isinstance(event, dict)
                and isinstance(event.get("id"), str)
                and event["id"] in taken
            ):
                assert event.get("type") in ("score-create", "sdk-log") or any(
                    other is not event and other.get("id") == event["id"]
                    for other in batch
                    if isinstance(other, dict)
                )
    store.write([])  # the store stays writable


class Params(dict[str, str]):
    """Query parameters as the readers take them."""

    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []


def test_a_number_past_the_float_range_is_stored_as_null_and_the_store_stays_readable(
    tmp_path: Path,
) -> None:
    """``1e400`` is JSON and reads as infinity: it was stored as ``Infinity``, which is no
    JSON, and from then on every metadata filter of the store answered 500 (until the trace
    was deleted). Stored as JavaScript writes it: null."""
    store = LocalStore(tmp_path / "traces.db")
    batch = json.loads(
        '[{"id": "e1", "type": "trace-create", "timestamp": "2026-12-03T10:00:00Z", "body": '
        '{"id": "t-inf", "name": "n", "metadata": {"k": 1e400, "env": "prod"}, "input": [1e400]}},'
        '{"id": "e2", "type": "span-create", "timestamp": "2026-12-03T10:00:00Z", "body": '
        '{"id": "o-inf", "traceId": "t-inf", "name": "n", "startTime": "2026-12-03T10:00:00Z", '
        '"metadata": {"k": -1e400, "env": "prod"}, "output": 1e400}}]'
    )
    answer = ingest_batch(store, {"batch": batch}, v4_only=False)
    assert answer["errors"] == []
    metadata = json.dumps(
        [{"type": "stringObject", "column": "metadata", "key": "env", "operator": "=",
          "value": "prod"}]
    )  # fmt: skip
    (trace,) = list_traces(store, Params(filter=metadata))["data"]
    assert trace["metadata"]["k"] is None and trace["input"] == [None]
    observations = list_observations_v2(store, Params(filter=metadata, fields="core,io,metadata"))
    assert [o["output"] for o in observations["data"] if o["id"] == "o-inf"] == [None]
    store.close()


def test_json_nested_past_the_limit_is_refused_with_400_and_the_rest_stored(
    tmp_path: Path,
) -> None:
    """About 500 levels deep, storing a body recursed past Python's stack: a 500 for the
    whole batch (retried by an SDK for ever) or the score."""
    from autoops_cli.local_api.http.bodies import MAX_JSON_DEPTH
    from autoops_cli.local_api.http.scores import create_scores

    store = LocalStore(tmp_path / "traces.db")
    deep: Any = 1
    for _ in range(MAX_JSON_DEPTH + 200):
        deep = {"a": deep}
    batch = [
        {"id": "deep", "type": "trace-create", "timestamp": "2026-12-03T10:00:00Z",
         "body": {"id": "t-deep", "metadata": deep}},
        {"id": "fine", "type": "trace-create", "timestamp": "2026-12-03T10:00:00Z",
         "body": {"id": "t-fine"}},
    ]  # fmt: skip
    answer = ingest_batch(store, {"batch": batch}, v4_only=False)
    assert [(e["id"], e["status"]) for e in answer["errors"]] == [("deep", 400)]
    assert [s["id"] for s in answer["successes"]] == ["fine"]
    with pytest.raises(ApiProblem) as refused:
        create_scores(store, {"name": "deep", "value": 1, "traceId": "t", "metadata": deep})
    assert refused.value.status == 400
    store.close()


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    condition=st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(
                [
                    "string",
                    "number",
                    "datetime",
                    "boolean",
                    "null",
                    "stringObject",
                    "numberObject",
                    "categoryOptions",
                    "arrayOptions",
                    "stringOptions",
                ]
            )
            | json_values,
            "column": st.sampled_from(
                [
                    "name",
                    "input",
                    "metadata",
                    "traceTags",
                    "latency",
                    "startTime",
                    "isRootObservation",
                    "x",
                ]
            )
            | json_values,
            "operator": st.sampled_from(
                ["=", "matches", "contains", "any of", "all of", ">=", "is null", "<>"]
            )
            | json_values,
            "value": json_values,
            "key": json_values,
        },
    )
    | json_values,
    as_text=st.booleans(),
)
def test_any_filter_is_answered_or_refused_with_400(
    store: LocalStore, condition: Any, as_text: bool
) -> None:
    raw = json.dumps([condition]) if as_text else json.dumps(condition)
    for read in (list_observations_v2, list_traces):
        try:
            body = read(store, Params(filter=raw))
        except ApiProblem as problem:
            assert problem.status == 400 and problem.body["message"]
        else:
            assert isinstance(body["data"], list)


@settings(max_examples=examples(150), deadline=None)
@given(
    root=st.dictionaries(
        st.sampled_from(
            ["traceId", "startTime", "traceName", "metadata", "output", "latency", "sessionId"]
        ),
        json_values,
    )
    | json_values
)
def test_any_root_observation_makes_a_row(root: Any) -> None:
    if not isinstance(root, dict):
        root = {"value": root}
    row = trace_row(root_as_trace(root))
    json.dumps(row)  # the --json document can always be written


@settings(max_examples=examples(150), deadline=None)
@given(
    observations=st.lists(
        st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "parentObservationId",
                    "name",
                    "type",
                    "level",
                    "startTime",
                    "endTime",
                    "metadata",
                ]
            ),
            json_values | st.sampled_from(["a", "b", "c"]),
        ),
        max_size=8,
    )
)
def test_any_v2_observations_make_a_tree(observations: list[dict[str, Any]]) -> None:
    roots = observation_tree({"observations": observations})
    json.dumps(roots)


# Attributes another OTel client may send with any value: where Langfuse expects a string, a
# number or a timestamp, an array, a map or a number past 64 bits made the store refuse the
# whole export (a 503 the client retries for ever, or a 500).
SPAN_ATTRIBUTE_KEYS = (
    "user.id", "langfuse.user.id", "session.id", "langfuse.session.id",
    "gen_ai.conversation.id", "langfuse.trace.name", "langfuse.release", "langfuse.version",
    "langfuse.environment", "deployment.environment", "langfuse.trace.tags",
    "langfuse.trace.public", "langfuse.observation.level", "langfuse.observation.type",
    "langfuse.observation.status_message", "langfuse.observation.model.name",
    "gen_ai.request.model", "gen_ai.response.model", "langfuse.observation.completion_start_time",
    "langfuse.observation.input", "langfuse.observation.output",
    "langfuse.observation.prompt.name", "langfuse.observation.prompt.version",
    "langfuse.observation.usage_details", "langfuse.observation.cost_details",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.cost", "gen_ai.operation.name",
    "openinference.span.kind", "input.value", "output.value",
)  # fmt: skip
attribute_values = (
    json_values
    | st.text(max_size=30).map(json.dumps)
    | st.sampled_from(["{}", "[]", "99999999999999999999999999", "-1", '"2026-12-01T00:00:00Z"'])
)


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    attributes=st.dictionaries(st.sampled_from(SPAN_ATTRIBUTE_KEYS), attribute_values, max_size=8),
    scope=st.sampled_from(["langfuse-sdk", "opentelemetry.instrumentation.openai_v2", "other"]),
)
def test_any_span_attributes_are_stored(
    store: LocalStore, attributes: dict[str, Any], scope: str
) -> None:
    span = SpanRecord(
        trace_id="c" * 32, span_id="d" * 16, parent_span_id=None, name="llm",
        start_ns=1_764_700_000_000_000_000, end_ns=1_764_700_000_100_000_000,
        attributes=attributes, scope={"name": scope},
    )  # fmt: skip
    store.write([span])
    (row,) = list_observations_v2(store, q(traceId="c" * 32))["data"]
    assert row["id"] == "d" * 16
