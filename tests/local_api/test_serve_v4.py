"""What current Langfuse (API 4.35.0) answers and ``autoops serve`` now does too: the legacy
batch ingestion, sessions, deletion, the deprecation signal, the health version, and
``--v4-only`` (Langfuse Cloud today). Every answer is checked against the spec.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.openapi_schemas import validate_response
from tests.support.serve_process import ServeHandle, start_serve, stop_serve

INGESTION = "/api/public/ingestion"
NOW = "2026-12-01T10:00:00.000Z"


@pytest.fixture
def v4_only(workdir: Path) -> Iterator[ServeHandle]:
    """``autoops serve --v4-only`` on 127.0.0.1, port 0."""
    handle = start_serve(workdir / "v4only" / "traces.db", "--v4-only")
    yield handle
    stop_serve(handle)


def call(
    served: ServeHandle, method: str, path: str, template: str | None = None, **kwargs: Any
) -> httpx.Response:
    """A request; its JSON answer checked against the spec's schema for its status."""
    response = httpx.request(method, served.url + path, auth=served.auth, timeout=30, **kwargs)
    documented = response.status_code < 300 and (template or path, method) != (
        "/api/public/scores/{scoreId}",
        "DELETE",  # the spec says 204; Langfuse's handler answers 202 with a message
    )
    if documented and response.headers.get("content-type", "").startswith("application/json"):
        validate_response(template or path, method.lower(), response.status_code, response.json())
    return response


def raw_get(served: ServeHandle, target: str) -> tuple[int, dict[str, Any]]:
    """GET a request target however long (httpx refuses URLs past 64 KiB; a client need not)."""
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(served.url)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.putrequest("GET", target)
        connection.putheader("Authorization", httpx.BasicAuth(*served.auth)._auth_header)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def event(kind: str, body: dict[str, Any], at: str = NOW, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": kind, "timestamp": at, "body": body, **extra}


def batch(served: ServeHandle, *events: dict[str, Any]) -> dict[str, Any]:
    response = call(served, "POST", INGESTION, json={"batch": list(events)})
    assert response.status_code == 207, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_names_the_langfuse_api_version(served: ServeHandle) -> None:
    health = call(served, "GET", "/api/public/health").json()
    assert health == {"status": "OK", "version": "4.35.0"}


def test_every_event_type_of_the_batch_route_is_stored_and_read_back(served: ServeHandle) -> None:
    trace_id, session = uuid.uuid4().hex, f"session-{uuid.uuid4().hex[:8]}"
    ids = {
        kind: uuid.uuid4().hex[:16] for kind in ("span", "generation", "event", "legacy", "agent")
    }
    created = [
        event(
            "trace-create",
            {
                "id": trace_id,
                "name": "batch-trace",
                "userId": "u1",
                "sessionId": session,
                "input": {"q": 1},
                "metadata": {"source": "batch"},
                "tags": ["a", "b"],
                "release": "r1",
                "version": "v1",
                "public": True,
                "environment": "staging",
            },
        ),
        event(
            "span-create",
            {
                "id": ids["span"],
                "traceId": trace_id,
                "name": "span",
                "startTime": NOW,
                "input": "in",
            },
        ),
        event(
            "generation-create",
            {
                "id": ids["generation"],
                "traceId": trace_id,
                "parentObservationId": ids["span"],
                "name": "llm",
                "startTime": NOW,
                "model": "gpt-x",
                "modelParameters": {"temperature": 0.1, "stop": ["x"]},
                "usage": {"input": 10, "output": 4, "unit": "TOKENS", "totalCost": 0.5},
                "promptName": "p",
                "promptVersion": 2,
            },
        ),
        event(
            "event-create",
            {"id": ids["event"], "traceId": trace_id, "name": "tick", "level": "WARNING"},
        ),
        event(
            "observation-create",
            {"id": ids["legacy"], "traceId": trace_id, "type": "SPAN", "name": "legacy"},
        ),
        event("agent-create", {"id": ids["agent"], "traceId": trace_id, "name": "agent"}),
        event(
            "score-create", {"id": "batch-score", "traceId": trace_id, "name": "q", "value": 0.9}
        ),
        event("sdk-log", {"log": "hello"}),
    ]
    updates = [
        event(
            "span-update",
            {"id": ids["span"], "endTime": "2026-12-01T10:00:02.000Z", "output": {"ok": True}},
            at="2026-12-01T10:00:03.000Z",
        ),
        event(
            "generation-update",
            {
                "id": ids["generation"],
                "endTime": "2026-12-01T10:00:01.500Z",
                "usageDetails": {"output": 6},
                "costDetails": {"input": 0.1},
                "metadata": {"late": 1},
            },
            at="2026-12-01T10:00:02.000Z",
        ),
        event(
            "observation-update",
            {"id": ids["legacy"], "type": "SPAN", "statusMessage": "done"},
            at="2026-12-01T10:00:04.000Z",
        ),
    ]
    # Updates first in the batch: they are applied after the creations anyway.
    answer = batch(served, *updates, *created)
    assert answer["errors"] == []
    sent = [e["id"] for e in created + updates if e["type"] != "sdk-log"]
    assert sorted(s["id"] for s in answer["successes"]) == sorted(sent)
    assert {s["status"] for s in answer["successes"]} == {201}

    trace = call(
        served, "GET", f"/api/public/traces/{trace_id}", "/api/public/traces/{traceId}"
    ).json()
    assert (trace["name"], trace["userId"], trace["sessionId"]) == ("batch-trace", "u1", session)
    assert (trace["release"], trace["version"], trace["environment"]) == ("r1", "v1", "staging")
    assert trace["input"] == {"q": 1} and trace["metadata"] == {"source": "batch"}
    assert trace["tags"] == ["a", "b"] and trace["public"] is True
    by_id = {o["id"]: o for o in trace["observations"]}
    assert set(by_id) == set(ids.values())
    span = by_id[ids["span"]]
    assert (span["type"], span["input"], span["output"]) == ("SPAN", "in", {"ok": True})
    assert span["endTime"] == "2026-12-01T10:00:02.000Z"
    generation = by_id[ids["generation"]]
    assert generation["type"] == "GENERATION" and generation["model"] == "gpt-x"
    assert generation["parentObservationId"] == ids["span"]
    assert generation["usageDetails"] == {"input": 10, "output": 6, "total": 16}
    assert generation["costDetails"] == {"total": 0.5, "input": 0.1}
    assert generation["metadata"] == {"late": 1}
    assert generation["modelParameters"] == {"temperature": 0.1, "stop": ["x"]}
    assert (generation["promptName"], generation["promptVersion"]) == ("p", 2)
    tick = by_id[ids["event"]]
    assert (tick["type"], tick["level"], tick["endTime"]) == ("EVENT", "WARNING", NOW)
    assert by_id[ids["agent"]]["type"] == "AGENT"
    assert by_id[ids["legacy"]]["statusMessage"] == "done"
    assert [s["id"] for s in trace["scores"]] == ["batch-score"]
    assert trace["totalCost"] == pytest.approx(0.5)  # the recorded total wins over its parts


def test_bad_events_are_refused_one_by_one(served: ServeHandle) -> None:
    good = event("score-create", {"traceId": "t", "name": "ok", "value": 1})
    bad = [
        event("span-create", {"traceId": "t", "name": "no id"}),
        event("generation-create", {"id": "g", "promptName": "p"}),
        event("span-create", {"id": "s", "startTime": "yesterday"}),
        event("trace-create", {"id": "t", "environment": "Langfuse-Prod"}),
        event(
            "score-create", {"traceId": "t", "name": "x", "value": "high", "dataType": "NUMERIC"}
        ),
        event("observation-create", {"id": "o", "type": "AGENT"}),
        event("party-create", {"id": "p"}),
        {"id": "no-timestamp", "type": "trace-create", "body": {}},
        "not an object",
    ]
    answer = batch(served, good, *bad)
    assert [s["id"] for s in answer["successes"]] == [good["id"]]
    assert len(answer["errors"]) == len(bad)
    assert all(
        e["status"] == 400 and e["message"] == "Invalid request data" for e in answer["errors"]
    )
    assert "unknown" in {e["id"] for e in answer["errors"]}  # the event that is no object
    for body in ({"events": []}, [], {"batch": "x"}):
        refused = call(served, "POST", INGESTION, json=body)
        assert refused.status_code == 400
        assert refused.json()["message"] == "Invalid request data"
    assert call(served, "POST", INGESTION, json={"batch": []}).json() == {
        "successes": [],
        "errors": [],
    }


def test_sessions_list_and_get(served: ServeHandle) -> None:
    first, second = f"s1-{uuid.uuid4().hex[:6]}", f"s2-{uuid.uuid4().hex[:6]}"
    batch(
        served,
        event(
            "trace-create", {"id": "t1", "sessionId": first, "timestamp": "2026-01-01T00:00:00Z"}
        ),
        event(
            "trace-create", {"id": "t2", "sessionId": first, "timestamp": "2026-01-02T00:00:00Z"}
        ),
        event(
            "trace-create",
            {
                "id": "t3",
                "sessionId": second,
                "timestamp": "2026-02-01T00:00:00Z",
                "environment": "prod",
            },
        ),
        event("trace-create", {"id": "t4", "timestamp": "2026-02-01T00:00:00Z"}),
    )
    listed = call(served, "GET", "/api/public/sessions").json()
    assert [s["id"] for s in listed["data"]] == [second, first]  # newest first
    assert listed["data"][1]["createdAt"] == "2026-01-01T00:00:00.000Z"
    assert listed["meta"] == {"page": 1, "limit": 50, "totalItems": 2, "totalPages": 1}
    assert listed["_deprecation"]["sunsetAt"] == "2026-11-16"
    only_prod = call(served, "GET", "/api/public/sessions", params={"environment": "prod"}).json()
    assert [s["id"] for s in only_prod["data"]] == [second]
    window = call(
        served,
        "GET",
        "/api/public/sessions",
        params={"fromTimestamp": "2026-01-15T00:00:00Z", "limit": 1},
    ).json()
    assert [s["id"] for s in window["data"]] == [second]
    one = call(served, "GET", f"/api/public/sessions/{first}", "/api/public/sessions/{sessionId}")
    session = one.json()
    assert (session["id"], session["environment"]) == (first, "default")
    assert [t["id"] for t in session["traces"]] == ["t1", "t2"]
    missing = call(served, "GET", "/api/public/sessions/nope", "/api/public/sessions/{sessionId}")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Session not found within authorized project"


def test_trace_deletion_takes_observations_and_scores_along(served: ServeHandle) -> None:
    def trace(trace_id: str) -> list[dict[str, Any]]:
        return [
            event("trace-create", {"id": trace_id, "name": trace_id}),
            event("span-create", {"id": f"{trace_id}-span", "traceId": trace_id}),
            event(
                "score-create",
                {"id": f"{trace_id}-score", "traceId": trace_id, "name": "s", "value": 1},
            ),
        ]

    batch(served, *trace("keep"), *trace("one"), *trace("many-1"), *trace("many-2"))
    single = call(served, "DELETE", "/api/public/traces/one", "/api/public/traces/{traceId}")
    assert (single.status_code, single.json()) == (200, {"message": "Trace deleted successfully"})
    many = call(
        served, "DELETE", "/api/public/traces", json={"traceIds": ["many-1", "many-2", "gone"]}
    )
    assert (many.status_code, many.json()) == (200, {"message": "Traces deleted successfully"})
    again = call(served, "DELETE", "/api/public/traces/one", "/api/public/traces/{traceId}")
    assert again.status_code == 200  # deleting what is gone is not an error, as in Langfuse
    remaining = call(served, "GET", "/api/public/traces").json()["data"]
    assert [t["id"] for t in remaining] == ["keep"]
    observations = call(served, "GET", "/api/public/v2/observations").json()["data"]
    assert [o["traceId"] for o in observations] == ["keep"]
    scores = call(served, "GET", "/api/public/v3/scores").json()["data"]
    assert [s["id"] for s in scores] == ["keep-score"]
    for body in ({"traceIds": []}, {"traceIds": "keep"}, {}, {"traceIds": ["x"] * 1001}):
        refused = call(served, "DELETE", "/api/public/traces", json=body)
        assert refused.status_code == 400 and refused.json()["message"] == "Invalid request data"
    score = call(served, "DELETE", "/api/public/scores/keep-score", "/api/public/scores/{scoreId}")
    assert score.status_code == 202
    assert call(served, "GET", "/api/public/v3/scores").json()["data"] == []


def test_deprecated_reads_carry_the_deprecation_signal(served: ServeHandle) -> None:
    batch(served, event("trace-create", {"id": "dep", "sessionId": "dep-s"}))
    for path, template in (
        ("/api/public/traces", None),
        ("/api/public/traces/dep", "/api/public/traces/{traceId}"),
        ("/api/public/observations", None),
        ("/api/public/sessions", None),
        ("/api/public/v2/scores", None),
    ):
        body = call(served, "GET", path, template).json()
        assert body["_deprecation"]["replacement"].startswith("GET /api/public/"), path
    for current in ("/api/public/v2/observations", "/api/public/v3/scores", "/api/public/projects"):
        assert "_deprecation" not in call(served, "GET", current).json()


def test_v4_only_refuses_the_v3_reads_and_the_legacy_trace_events(v4_only: ServeHandle) -> None:
    for path in (
        "/api/public/traces",
        "/api/public/traces/x",
        "/api/public/observations",
        "/api/public/observations/x",
        "/api/public/sessions",
        "/api/public/sessions/x",
        "/api/public/v2/scores",
        "/api/public/v2/scores/x",
        "/api/public/metrics?query=%7B%7D",
    ):
        for auth in (v4_only.auth, None):  # refused before the keys are looked at
            response = httpx.get(v4_only.url + path, auth=auth, timeout=10)
            assert response.status_code == 404, path
            body = response.json()
            assert "Langfuse v4 events_only mode" in body["message"]
            assert body["_deprecation"]["sunsetAt"] == "2026-11-16"
    trace_id = uuid.uuid4().hex
    answer = batch(
        v4_only,
        event("trace-create", {"id": trace_id}),
        event("span-create", {"id": "s", "traceId": trace_id}),
        event("score-create", {"id": "v4-score", "traceId": trace_id, "name": "q", "value": 1}),
        event("sdk-log", {"log": "x"}),
    )
    assert [s["id"] for s in answer["successes"]] == [answer["successes"][0]["id"]]
    assert len(answer["errors"]) == 2
    assert all(e["message"] == "Event type not accepted" for e in answer["errors"])
    assert 'Event type "trace-create"' in answer["errors"][0]["error"]
    scores = call(v4_only, "GET", "/api/public/v3/scores").json()["data"]
    assert [s["id"] for s in scores] == ["v4-score"]
    assert call(v4_only, "GET", "/api/public/v2/observations").json()["data"] == []
    deleted = call(
        v4_only, "DELETE", f"/api/public/traces/{trace_id}", "/api/public/traces/{traceId}"
    )
    assert deleted.status_code == 200
    assert call(v4_only, "GET", "/api/public/health").json()["version"] == "4.35.0"


def test_long_query_strings_are_400_or_414_never_500(served: ServeHandle) -> None:
    many = "&".join(f"tags=t{i}" for i in range(10_000))
    status, body = raw_get(served, f"/api/public/traces?{many}")
    assert (status, body["error"]) == (414, "URITooLongError")
    fits = [("tags", str(i)) for i in range(1_500)]  # under 16 KiB, with SQLite bounds in mind
    for path in ("/api/public/traces", "/api/public/observations", "/api/public/v2/observations"):
        answered = httpx.get(served.url + path, params=fits, auth=served.auth, timeout=30)
        assert answered.status_code in (200, 400), (path, answered.text)
    environments = [("environment", f"e{i}") for i in range(800)]
    for path in ("/api/public/traces", "/api/public/v2/observations", "/api/public/sessions"):
        answered = httpx.get(served.url + path, params=environments, auth=served.auth, timeout=30)
        assert answered.status_code == 200, (path, answered.text)
        assert answered.json()["data"] == []


def test_a_full_disk_is_a_retryable_503(workdir: Path) -> None:
    """The store cannot grow (a file size limit on the server process, SIGXFSZ ignored, is how
    a full disk looks to SQLite): writes get 503 with Retry-After, reads go on, and what was
    written before stays readable."""
    import resource
    import signal

    limit = 3 * 1024 * 1024

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    handle = start_serve(workdir / "full" / "traces.db", preexec_fn=small_disk)
    try:
        statuses = []
        text = "x" * 200_000
        for number in range(40):
            response = call(
                handle,
                "POST",
                INGESTION,
                json={"batch": [event("trace-create", {"id": f"t{number}", "input": text})]},
            )
            statuses.append(response.status_code)
            if response.status_code == 503:
                assert response.headers["retry-after"].isdigit()
                assert response.json()["error"] == "ServiceUnavailableError"
                break
        assert statuses[0] == 207 and statuses[-1] == 503, statuses
        score = call(
            handle, "POST", "/api/public/scores", json={"name": "s", "value": 1, "traceId": "t0"}
        )
        assert score.status_code in (200, 503)
        assert (
            call(handle, "GET", "/api/public/traces/t0", "/api/public/traces/{traceId}").status_code
            == 200
        )
        assert call(handle, "GET", "/api/public/health").status_code == 200
    finally:
        stop_serve(handle)


def test_json_bodies_past_the_ingestion_limit_are_413(served: ServeHandle) -> None:
    payload = json.dumps({"batch": [event("sdk-log", {"log": "x" * (5 * 1024 * 1024)})]})
    response = httpx.post(
        served.url + INGESTION,
        content=payload,
        headers={"content-type": "application/json"},
        auth=served.auth,
        timeout=30,
    )
    assert response.status_code == 413


def test_an_id_with_a_slash_is_one_path_segment(served: ServeHandle) -> None:
    """Ingestion takes any string id; the JS SDK sends one with a "/" as %2F
    (``encodeURIComponent``). The server decoded %2F before routing, so every ``{id}`` route
    answered 404 "Route not found" for it: read, get and delete by id all failed."""
    from urllib.parse import quote

    trace_id, score_id, session_id = "team/a:7", "s/1", "run/2026 12 01"
    batch(
        served,
        event("trace-create", {"id": trace_id, "name": "slashed", "sessionId": session_id}),
        event("span-create", {"id": "o/1", "traceId": trace_id, "name": "step"}),
        event("score-create", {"id": score_id, "traceId": trace_id, "name": "n", "value": 1}),
    )
    trace = call(served, "GET", f"/api/public/traces/{quote(trace_id, safe='')}",
                 "/api/public/traces/{traceId}")  # fmt: skip
    assert (trace.status_code, trace.json()["id"]) == (200, trace_id)
    observation = call(served, "GET", "/api/public/observations/o%2F1",
                       "/api/public/observations/{observationId}")  # fmt: skip
    assert (observation.status_code, observation.json()["id"]) == (200, "o/1")
    session = call(served, "GET", f"/api/public/sessions/{quote(session_id, safe='')}",
                   "/api/public/sessions/{sessionId}")  # fmt: skip
    assert (session.status_code, session.json()["id"]) == (200, session_id)
    score = call(served, "GET", "/api/public/v2/scores/s%2f1", "/api/public/v2/scores/{scoreId}")
    assert (score.status_code, score.json()["id"]) == (200, score_id)
    # Other escapes in such a path are decoded as in any other (they were matched encoded),
    # and an id's own "%" stays its own.
    escaped = call(served, "GET", "/api/public/trace%73/team%2Fa%3a7",
                   "/api/public/traces/{traceId}")  # fmt: skip
    assert (escaped.status_code, escaped.json()["id"]) == (200, trace_id)
    batch(served, event("trace-create", {"id": "50%/off%2F", "name": "percent"}))
    percent = call(served, "GET", f"/api/public/traces/{quote('50%/off%2F', safe='')}",
                   "/api/public/traces/{traceId}")  # fmt: skip
    assert (percent.status_code, percent.json()["name"]) == (200, "percent")
    deleted = call(served, "DELETE", "/api/public/scores/s%2F1", "/api/public/scores/{scoreId}")
    assert deleted.status_code == 202
    assert call(served, "GET", "/api/public/v2/scores/s%2F1").status_code == 404
    # An id holding any other character is its own: the slash is not stood for by one.
    lookalike = "team\uf8ffa:7"
    batch(served, event("trace-create", {"id": lookalike, "name": "lookalike"}))
    other = call(served, "GET", f"/api/public/traces/{quote(lookalike, safe='')}",
                 "/api/public/traces/{traceId}")  # fmt: skip
    assert (other.status_code, other.json()["name"]) == (200, "lookalike")
    deleted = call(served, "DELETE", f"/api/public/traces/{quote(trace_id, safe='')}",
                   "/api/public/traces/{traceId}")  # fmt: skip
    assert deleted.status_code == 200
    remaining = call(served, "GET", "/api/public/traces").json()["data"]
    assert sorted(trace["id"] for trace in remaining) == sorted([lookalike, "50%/off%2F"])
    # A route that does not exist is still one, named as the client sent it.
    missing = call(served, "GET", "/api/public/nowhere/a%2Fb")
    assert missing.status_code == 404
    assert missing.json()["message"] == "Route /api/public/nowhere/a%2Fb not found"
