"""``autoops serve`` against the API 4.35.0 contract, operation by operation.

- ``docs/serve-api.md`` lists what the server answers, in both modes, exactly as it does;
- every answered read is called with each of the contract's query parameters (a value that
  makes sense for it, plus the parameters it needs), and every answer is 200, matches the
  spec's response schema, and parses with the Python SDK 5.2.0's model where the SDK has
  one; a new parameter in the contract fails the test until it is given a value here;
- the writes answer with the spec's shapes and the SDK's models.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.local_api.test_official_clients import sdk, trace_with_every_type
from tests.support.openapi_schemas import validate_response
from tests.support.paths import REPO_ROOT
from tests.support.serve_operations import (
    ANSWERED,
    contract_operations,
    served_operations,
    table,
)
from tests.support.serve_process import ServeHandle, start_serve, stop_serve


@pytest.fixture
def v4_only(workdir: Path) -> Iterator[ServeHandle]:
    handle = start_serve(workdir / "v4only" / "traces.db", "--v4-only")
    yield handle
    stop_serve(handle)


def test_the_operations_table_is_what_the_server_answers(
    served: ServeHandle, v4_only: ServeHandle
) -> None:
    operations = served_operations(served, v4_only)
    assert len(operations) == 117
    documented = (REPO_ROOT / "docs" / "serve-api.md").read_text(encoding="utf-8")
    expected = table(operations)
    assert expected in documented, (
        "docs/serve-api.md is out of date; its table is now:\n" + expected
    )
    answered = {f"{o.method} {o.path}" for o in operations if o.default == ANSWERED}
    assert {
        "POST /api/public/ingestion",
        "GET /api/public/sessions",
        "DELETE /api/public/traces",
    } <= answered


def sdk_models() -> dict[str, Any]:
    """The Python SDK 5.2.0's response model of each operation that has one."""
    from langfuse import api

    return {
        "health_health": api.HealthResponse,
        "projects_get": api.Projects,
        "observations_getMany": api.ObservationsV2Response,
        "scoresV3_getManyV3": api.GetScoresV3Response,
        "metrics_metrics": api.MetricsV2Response,
        "trace_delete": api.DeleteTraceResponse,
        "trace_deleteMultiple": api.DeleteTraceResponse,
        "opentelemetry_exportTraces": api.OtelTraceResponse,
        "scores_create": api.CreateScoresResponse,
    }


def parsed(operation_id: str, body: Any) -> None:
    """Parse ``body`` with the SDK's model of the operation, as the SDK itself does."""
    from langfuse.api.core.pydantic_utilities import parse_obj_as

    model = sdk_models().get(operation_id)
    if model is not None:
        parse_obj_as(model, body)


def samples(seed: dict[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    """Per operation, per query parameter: the parameters of a request that uses it."""
    now = datetime.now(UTC)
    since, until = (now - timedelta(hours=1)).isoformat(), (now + timedelta(hours=1)).isoformat()
    trace, session = seed["trace_id"], seed["session"]
    agent, score = seed["observations"]["agent"], next(iter(seed["scores"]))
    condition = json.dumps(
        [{"type": "string", "column": "name", "operator": "=", "value": "py-agent"}]
    )
    query = json.dumps(
        {
            "view": "observations",
            "dimensions": [{"field": "type"}],
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "filters": [],
            "fromTimestamp": since,
            "toTimestamp": until,
        }
    )
    common = {
        "environment": {"environment": "sdk-test"},
        "limit": {"limit": "5"},
        "page": {"page": "1"},
    }
    return {
        "trace_list": {
            **common,
            "fields": {"fields": "core,io,metrics"},
            "filter": {
                "filter": json.dumps(
                    [{"type": "string", "column": "userId", "operator": "=", "value": "py-user"}]
                )
            },
            "fromTimestamp": {"fromTimestamp": since},
            "toTimestamp": {"toTimestamp": until},
            "name": {"name": "py-root"},
            "orderBy": {"orderBy": "timestamp.asc"},
            "release": {"release": "sdk-1"},
            "sessionId": {"sessionId": session},
            "tags": {"tags": "py"},
            "userId": {"userId": "py-user"},
            "version": {"version": "v"},
        },
        "trace_get": {"fields": {"fields": "core,scores"}},
        "legacy_observationsV1_getMany": {
            **common,
            "filter": {"filter": condition},
            "fromStartTime": {"fromStartTime": since},
            "toStartTime": {"toStartTime": until},
            "level": {"level": "WARNING"},
            "name": {"name": "py-agent"},
            "parentObservationId": {"parentObservationId": seed["observations"]["root"]},
            "traceId": {"traceId": trace},
            "type": {"type": "AGENT"},
            "userId": {"userId": "py-user"},
            "version": {"version": "v"},
        },
        "legacy_observationsV1_get": {"startTime": {"startTime": since}},
        "observations_getMany": {
            **common,
            "cursor": {"limit": "1", "cursor": "CURSOR"},
            "expandMetadata": {"fields": "core,metadata", "expandMetadata": "suite"},
            "fields": {
                "fields": "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
            },
            "filter": {"filter": condition},
            "fromStartTime": {"fromStartTime": since},
            "toStartTime": {"toStartTime": until},
            "isRootObservation": {"isRootObservation": "true"},
            "level": {"level": "DEFAULT"},
            "name": {"name": "py-agent"},
            "parentObservationId": {"parentObservationId": ""},
            "parseIoAsJson": {"parseIoAsJson": "false"},
            "sessionId": {"sessionId": session},
            "traceId": {"traceId": trace},
            "type": {"type": "GENERATION"},
            "userId": {"userId": "py-user"},
            "version": {"version": "v"},
        },
        "sessions_list": {
            **common,
            "fromTimestamp": {"fromTimestamp": since},
            "toTimestamp": {"toTimestamp": until},
        },
        "scores_get-many": {
            **common,
            "configId": {"configId": "c"},
            "datasetRunId": {"datasetRunId": "d"},
            "dataType": {"dataType": "NUMERIC"},
            "fields": {"fields": "score"},
            "filter": {
                "filter": json.dumps(
                    [
                        {
                            "type": "stringObject",
                            "column": "metadata",
                            "key": "k",
                            "operator": "=",
                            "value": "v",
                        }
                    ]
                )
            },
            "fromTimestamp": {"fromTimestamp": since},
            "toTimestamp": {"toTimestamp": until},
            "name": {"name": "py-numeric"},
            "observationId": {"observationId": agent},
            "operator": {"operator": ">=", "value": "0.5"},
            "value": {"operator": "<", "value": "2"},
            "queueId": {"queueId": "q"},
            "scoreIds": {"scoreIds": score},
            "sessionId": {"sessionId": session},
            "source": {"source": "API"},
            "traceId": {"traceId": trace},
            "traceTags": {"traceTags": "py"},
            "userId": {"userId": "py-user"},
        },
        "scoresV3_getManyV3": {
            **{k: v for k, v in common.items() if k != "page"},
            "authorUserId": {"authorUserId": "a"},
            "configId": {"configId": "c"},
            "cursor": {"limit": "1", "cursor": "CURSOR"},
            "dataType": {"dataType": "NUMERIC"},
            "environment": {"environment": "default"},
            "experimentId": {"experimentId": "e"},
            "fields": {"fields": "core,details,subject,annotation"},
            "fromTimestamp": {"fromTimestamp": since},
            "toTimestamp": {"toTimestamp": until},
            "id": {"id": score},
            "name": {"name": "py-numeric,py-text"},
            "observationId": {"observationId": agent, "traceId": trace},
            "queueId": {"queueId": "q"},
            "sessionId": {"sessionId": session},
            "source": {"source": "API"},
            "traceId": {"traceId": trace},
            "value": {"dataType": "NUMERIC", "value": "0.75"},
            "valueMax": {"dataType": "NUMERIC", "valueMax": "1"},
            "valueMin": {"dataType": "NUMERIC", "valueMin": "0"},
        },
        "legacy_metricsV1_metrics": {"query": {"query": query}},
        "metrics_metrics": {
            "query": {
                "query": query.replace(
                    '"count"}]', '"count"}, {"measure": "latency", "aggregation": "histogram"}]'
                )
            }
        },
    }


PATH_VALUES = {
    "traceId": lambda seed: seed["trace_id"],
    "observationId": lambda seed: seed["observations"]["agent"],
    "sessionId": lambda seed: seed["session"],
    "scoreId": lambda seed: next(iter(seed["scores"])),
}


def test_every_read_with_every_contract_parameter_matches_the_spec_and_the_sdk(
    served: ServeHandle,
) -> None:
    client = sdk(served)
    try:
        seed = trace_with_every_type(client)
    finally:
        client.shutdown()
    table_of_samples = samples(seed)
    answered = 0
    with httpx.Client(base_url=served.url, auth=served.auth, timeout=30) as http:
        for operation in contract_operations():
            if operation["method"] != "GET":
                continue
            path = operation["path"]
            for parameter in operation["parameters"]:
                if parameter["location"] == "path":
                    path = path.replace(
                        "{" + parameter["name"] + "}",
                        PATH_VALUES.get(parameter["name"], lambda _: "x")(seed),
                    )
            first = http.get(path, params=_required(operation, table_of_samples))
            if (
                first.status_code == 404
                and first.json().get("error") == "LangfuseNotFoundError"
                and ("Route" in first.json()["message"])
            ):
                continue  # not answered (the table says so)
            answered += 1
            check(operation, first, path)
            cursor = _cursor_of(http, path, operation)
            query_parameters = [p for p in operation["parameters"] if p["location"] == "query"]
            chosen = table_of_samples.get(operation["operationId"], {})
            for parameter in query_parameters:
                assert parameter["name"] in chosen, (
                    f"{operation['key']}: no sample value for the contract's parameter "
                    f"{parameter['name']!r}"
                )
                params = {
                    k: (cursor if v == "CURSOR" else v)
                    for k, v in chosen[parameter["name"]].items()
                }
                check(operation, http.get(path, params=params), path, parameter["name"])
    assert answered == 14  # the GET operations of the table's "answered" rows


def _required(operation: dict[str, Any], table_of_samples: dict[str, Any]) -> dict[str, str]:
    required = {}
    for parameter in operation["parameters"]:
        if parameter["location"] == "query" and parameter.get("required"):
            given = table_of_samples.get(operation["operationId"], {})
            required.update(given.get(parameter["name"], {parameter["name"]: "x"}))
    return required


def _cursor_of(http: httpx.Client, path: str, operation: dict[str, Any]) -> str | None:
    if operation.get("pagination") != "cursor":
        return None
    body = http.get(path, params={"limit": "1"}).json()
    cursor = body["meta"].get("cursor")
    assert cursor, f"{operation['key']}: no cursor after a page of one"
    return str(cursor)


def check(
    operation: dict[str, Any], response: httpx.Response, path: str, parameter: str = ""
) -> None:
    where = f"{operation['key']} ({path}, {parameter or 'no parameter'})"
    assert response.status_code == 200, (where, response.text[:500])
    body = response.json()
    validate_response(operation["path"], "get", 200, body)
    parsed(operation["operationId"], body)


def test_every_write_answers_with_the_spec_shape_and_the_sdk_model(served: ServeHandle) -> None:
    now = time.time_ns()
    trace_id = uuid.uuid4().hex
    otlp = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "scope": {"name": "contract"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": "c" * 16,
                                "name": "s",
                                "startTimeUnixNano": str(now),
                                "endTimeUnixNano": str(now + 1000),
                            }
                        ],
                    }
                ]
            }
        ]
    }
    writes = [
        ("opentelemetry_exportTraces", "POST", "/api/public/otel/v1/traces", {"json": otlp}, 200),
        (
            "scores_create",
            "POST",
            "/api/public/scores",
            {"json": [{"name": "a", "value": 1, "traceId": trace_id}]},
            202,
        ),
        (
            "ingestion_batch",
            "POST",
            "/api/public/ingestion",
            {
                "json": {
                    "batch": [
                        {
                            "id": "e1",
                            "type": "score-create",
                            "timestamp": "2026-12-01T00:00:00Z",
                            "body": {
                                "id": "contract-score",
                                "traceId": trace_id,
                                "name": "b",
                                "value": 1,
                            },
                        }
                    ]
                }
            },
            207,
        ),
        ("trace_delete", "DELETE", f"/api/public/traces/{trace_id}", {}, 200),
        (
            "trace_deleteMultiple",
            "DELETE",
            "/api/public/traces",
            {"json": {"traceIds": [trace_id]}},
            200,
        ),
    ]
    templates = {operation["operationId"]: operation["path"] for operation in contract_operations()}
    for operation_id, method, path, extra, status in writes:
        response = httpx.request(method, served.url + path, auth=served.auth, timeout=30, **extra)
        assert response.status_code == status, (operation_id, response.text)
        body = response.json()
        if operation_id != "scores_create":  # the spec documents the single score's 200 only
            validate_response(templates[operation_id], method.lower(), status, body)
        parsed(operation_id, body)
    single = httpx.post(
        served.url + "/api/public/scores",
        json={"name": "c", "value": 1, "traceId": trace_id},
        auth=served.auth,
        timeout=30,
    )
    validate_response("/api/public/scores", "post", 200, single.json())
