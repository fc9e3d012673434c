"""``autoops serve`` over real HTTP on 127.0.0.1: auth, OTLP ingestion, the SDK as a client."""

from __future__ import annotations

import base64
import gzip
import json
import os
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from config.store.rows import OBSERVATION_COLUMNS
from tests.cli.test_replay import EXAMPLE
from tests.conftest import Cli
from tests.local_api.test_otel_mapping import OPENAI_USAGE
from tests.support.openapi_schemas import validate_response
from tests.support.serve_process import ServeHandle, autoops_executable

OTLP = "/api/public/otel/v1/traces"
# The default 2 s exit deadline is not always enough on a busy machine (exit 4, batches kept);
# where a test needs everything delivered, the replay may wait that long for a healthy peer.
DELIVER_EVERYTHING = {"AUTOOPS_FLUSH_DEADLINE": "60"}


def get(served: ServeHandle, path: str, template: str | None = None, **params: Any) -> Any:
    response = httpx.get(served.url + path, params=params, auth=served.auth, timeout=30)
    body = response.json()
    validate_response(template or path, "get", response.status_code, body)
    assert response.status_code == 200, body
    return body


def metrics_answer(served: ServeHandle, query: dict[str, Any]) -> httpx.Response:
    """``GET /api/public/v2/metrics`` of ``query``, whatever it answers."""
    return httpx.get(
        served.url + "/api/public/v2/metrics",
        params={"query": json.dumps(query)},
        auth=served.auth,
        timeout=30,
    )


def otlp_json_export(trace_id: str = "a" * 32, span_id: str = "b" * 16) -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "test"}}]
                },
                "scopeSpans": [
                    {
                        "scope": {"name": "test"},
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "json-span",
                                "startTimeUnixNano": str(time.time_ns() - 1_000_000),
                                "endTimeUnixNano": str(time.time_ns()),
                                "attributes": [
                                    {
                                        "key": "langfuse.observation.type",
                                        "value": {"stringValue": "tool"},
                                    },
                                    {
                                        "key": "langfuse.trace.name",
                                        "value": {"stringValue": "json-trace"},
                                    },
                                    {
                                        "key": "langfuse.observation.metadata.n",
                                        "value": {"intValue": "3"},
                                    },
                                ],
                            }
                        ],
                    }
                ],
            }
        ]
    }


def test_health_needs_no_auth_and_everything_else_does(served: ServeHandle) -> None:
    health = httpx.get(served.url + "/api/public/health", timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "OK"
    validate_response("/api/public/health", "get", 200, health.json())
    for path in (
        "/api/public/projects",
        "/api/public/traces",
        "/api/public/v2/observations",
        "/api/public/v3/scores",
    ):
        missing = httpx.get(served.url + path, timeout=10)
        assert missing.status_code == 401
        assert missing.json() == {"message": "No authorization header"}
        wrong = httpx.get(served.url + path, auth=(served.public_key, "sk-lf-wrong"), timeout=10)
        assert wrong.status_code == 401
        assert "Invalid credentials" in wrong.json()["message"]
    projects = get(served, "/api/public/projects")
    assert len(projects["data"]) == 1
    unknown = httpx.get(served.url + "/api/public/nope", auth=served.auth, timeout=10)
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "LangfuseNotFoundError"


def test_otlp_ingestion_rules(served: ServeHandle) -> None:
    url = served.url + OTLP
    auth = served.auth
    body = json.dumps(otlp_json_export()).encode()
    bad_type = httpx.post(url, content=body, headers={"Content-Type": "text/plain"}, auth=auth)
    assert (bad_type.status_code, bad_type.json()) == (400, {"error": "Invalid content type"})
    bad_gzip = httpx.post(
        url,
        content=b"not gzip",
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        auth=auth,
    )
    assert (bad_gzip.status_code, bad_gzip.json()) == (
        400,
        {"error": "Failed to decompress request body"},
    )
    # Plain JSON sent as gzip: its last bytes, read as a gzip trailer, claimed gigabytes
    # (a 413 "exceeds" where the body is simply not gzip).
    not_gzip = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        auth=auth,
    )
    assert (not_gzip.status_code, not_gzip.json()) == (
        400,
        {"error": "Failed to decompress request body"},
    )
    too_new = httpx.post(
        url,
        content=body,
        headers={"Content-Type": "application/json", "x-langfuse-ingestion-version": "5"},
        auth=auth,
    )
    assert too_new.status_code == 400
    assert (
        too_new.json()["error"]
        == 'Unsupported x-langfuse-ingestion-version: "5". Maximum supported: "4".'
    )
    broken = otlp_json_export(trace_id="xyz")
    rejected = httpx.post(url, json=broken, auth=auth)
    assert rejected.status_code == 400
    assert "no spans were ingested" in rejected.json()["error"]
    assert (
        httpx.post(
            url,
            content=b"\x00garbage",
            headers={"Content-Type": "application/x-protobuf"},
            auth=auth,
        ).status_code
        == 400
    )
    empty = httpx.post(url, json={"resourceSpans": []}, auth=auth)
    assert (empty.status_code, empty.json()) == (200, {})
    for response in (bad_type, bad_gzip, too_new, rejected, empty):
        validate_response(OTLP, "post", response.status_code, response.json())
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": "4",
    }
    for _ in range(2):  # the same export twice is stored once
        ok = httpx.post(url, content=gzip.compress(body), headers=headers, auth=auth)
        assert (ok.status_code, ok.json()) == (200, {})
    # Readable as soon as the response is sent.
    trace = get(served, "/api/public/traces/" + "a" * 32, "/api/public/traces/{traceId}")
    assert trace["name"] == "json-trace"
    assert [o["id"] for o in trace["observations"]] == ["b" * 16]
    assert trace["observations"][0]["type"] == "TOOL"
    # A span of another instrumentation (scope "test") keeps its attributes, its resource's
    # and its scope in metadata, as Langfuse does; its Langfuse metadata sits beside them.
    assert trace["observations"][0]["metadata"] == {
        "attributes": {"langfuse.observation.type": "tool", "langfuse.trace.name": "json-trace"},
        "resourceAttributes": {"service.name": "test"},
        "scope": {"name": "test", "attributes": {}},
        "n": 3,
    }


def test_the_langfuse_sdk_exports_and_reads_back(
    served: ServeHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langfuse import Langfuse

    client = Langfuse(
        public_key=served.public_key,
        secret_key=served.secret_key,
        base_url=served.url,
        flush_at=1000,
    )
    with client.start_as_current_observation(
        name="workflow", as_type="chain", input={"event": "e1"}
    ) as root:
        with client.start_as_current_observation(
            name="pricing_agent.optimize_price",
            as_type="agent",
            input={"price": 29.99},
            metadata={"agent_id": "pricing_agent"},
        ) as agent:
            with client.start_as_current_observation(
                name="competitor_feed", as_type="tool"
            ) as tool:
                tool.update(output={"competitor_price": 27.5})
            with client.start_as_current_observation(
                name="llm", as_type="generation", model="gpt-test", input="prompt",
                usage_details={"input": 10, "output": 5},
            ) as generation:  # fmt: skip
                generation.update(output="completion")
            agent.update(
                output={"new_price": 28.49}, level="WARNING", status_message="close to floor"
            )
            agent.score(name="decision_confidence", value=0.82, comment="competitor undercut")
        root.update(output={"done": True})
        trace_id = root.trace_id
        ids = {"workflow": root.id, "agent": agent.id, "tool": tool.id, "llm": generation.id}
    client.flush()
    client.shutdown()

    trace = get(served, f"/api/public/traces/{trace_id}", "/api/public/traces/{traceId}")
    assert trace["name"] == "workflow"
    assert trace["input"] == {"event": "e1"} and trace["output"] == {"done": True}
    by_id = {o["id"]: o for o in trace["observations"]}
    assert set(by_id) == set(ids.values())
    assert (
        by_id[ids["workflow"]]["type"] == "CHAIN"
        and by_id[ids["workflow"]]["parentObservationId"] is None
    )
    agent_row = by_id[ids["agent"]]
    assert (agent_row["type"], agent_row["name"], agent_row["parentObservationId"]) == (
        "AGENT", "pricing_agent.optimize_price", ids["workflow"]
    )  # fmt: skip
    assert agent_row["input"] == {"price": 29.99} and agent_row["output"] == {"new_price": 28.49}
    assert agent_row["metadata"]["agent_id"] == "pricing_agent"
    assert (agent_row["level"], agent_row["statusMessage"]) == ("WARNING", "close to floor")
    assert (
        by_id[ids["tool"]]["type"] == "TOOL"
        and by_id[ids["tool"]]["parentObservationId"] == ids["agent"]
    )
    llm = by_id[ids["llm"]]
    assert (llm["type"], llm["model"], llm["input"], llm["output"]) == (
        "GENERATION",
        "gpt-test",
        "prompt",
        "completion",
    )
    assert llm["usageDetails"]["input"] == 10 and llm["usageDetails"]["output"] == 5
    scores = get(served, "/api/public/v3/scores", traceId=trace_id, fields="subject,details")
    (score,) = scores["data"]
    assert score["name"] == "decision_confidence"
    assert score["subject"] == {"kind": "observation", "id": ids["agent"], "traceId": trace_id}
    assert score["comment"] == "competitor undercut"
    assert score["value"] == pytest.approx(0.82)

    # The SDK's own API client parses our answers with its own models.
    api = Langfuse(
        public_key=served.public_key, secret_key=served.secret_key, base_url=served.url
    ).api
    assert api.health.health().status == "OK"
    assert api.projects.get().data[0].id
    observations = api.observations.get_many(trace_id=trace_id, fields="core,basic,io")
    assert {o.id for o in observations.data} == set(ids.values())
    v3 = api.scores.get_many(trace_id=trace_id)
    assert [s.name for s in v3.data] == ["decision_confidence"]
    now = time.time()
    query = json.dumps(
        {
            "view": "observations",
            "dimensions": [{"field": "name"}],
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "filters": [],
            "fromTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
            "toTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        }
    )
    rows = api.metrics.metrics(query=query).data
    assert {row["name"]: int(row["count_count"]) for row in rows}["competitor_feed"] == 1


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    compared = [c for c in OBSERVATION_COLUMNS if c not in ("start_us", "end_us")]
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return {
            r["id"]: {c: r[c] for c in compared} for r in db.execute("SELECT * FROM observations")
        }


def test_replay_into_serve_records_what_local_mode_records(
    cli: Cli, workdir: Path, served: ServeHandle
) -> None:
    local = cli("replay", str(EXAMPLE), "--run-id", "compare", "--limit", "60", "--json")
    assert local.exit_code == 0
    remote = cli(
        "replay",
        str(EXAMPLE),
        "--run-id",
        "compare",
        "--limit",
        "60",
        "--json",
        env={**served.client_env(), **DELIVER_EVERYTHING},
    )
    assert remote.exit_code == 0, remote.stderr
    assert json.loads(remote.stdout)["destination"] == served.url
    local_rows = _rows(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    served_rows = _rows(served.store)
    assert served_rows == local_rows
    listed = get(served, "/api/public/traces", sessionId="compare", limit=100)
    assert listed["meta"]["totalItems"] == 60


CONCURRENT_EVENTS = 1_000


@pytest.mark.slow
def test_reads_while_a_replay_writes_the_same_store(workdir: Path, served: ServeHandle) -> None:
    """A replay of 1,000 events writes the served store from another process; reads go on,
    see the replay part-way through, and never see a count go back."""
    from autoops_cli.simulation.generator import generate_events, write_events

    events_file = workdir / "big.jsonl"
    write_events(events_file, generate_events(CONCURRENT_EVENTS, seed=21))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANGFUSE_")}
    env["AUTOOPS_HOME"] = str(served.store.parent)
    replay = subprocess.Popen(
        [autoops_executable(), "-q", "--json", "replay", str(events_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[int] = []
    with httpx.Client(base_url=served.url, auth=served.auth, timeout=30) as client:
        while replay.poll() is None:
            response = client.get("/api/public/traces", params={"limit": 5})
            assert response.status_code == 200, response.text
            seen.append(response.json()["meta"]["totalItems"])
            time.sleep(0.1)
    stdout, stderr = replay.communicate()
    assert replay.returncode == 0, stderr
    assert "database is locked" not in stderr
    assert json.loads(stdout)["traces_recorded"] == CONCURRENT_EVENTS
    assert len(seen) >= 3 and seen == sorted(seen)
    # Reads really overlapped the writes: some answer came while the replay was part-way.
    assert any(0 < count < CONCURRENT_EVENTS for count in seen), seen[-5:]
    final = httpx.get(
        served.url + "/api/public/traces", params={"limit": 1}, auth=served.auth, timeout=30
    ).json()
    assert final["meta"]["totalItems"] == CONCURRENT_EVENTS


def test_basic_auth_header_shape_is_checked(served: ServeHandle) -> None:
    for header in (
        "Bearer " + served.secret_key,
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ):
        response = httpx.get(
            served.url + "/api/public/projects", headers={"Authorization": header}, timeout=10
        )
        assert response.status_code == 401
        assert set(response.json()) == {"message"}
    # The batch ingestion route has its own handler in Langfuse, and its own 401 body.
    ingestion = httpx.post(served.url + "/api/public/ingestion", json={"batch": []}, timeout=10)
    assert ingestion.status_code == 401
    assert ingestion.json() == {"error": "UnauthorizedError", "message": "No authorization header"}
    bearer = httpx.post(
        served.url + "/api/public/scores",
        json={"name": "s", "value": 1, "traceId": "c" * 32},
        headers={"Authorization": "Bearer " + served.public_key},
        timeout=10,
    )
    assert bearer.status_code == 200 and bearer.json()["id"]
    validate_response("/api/public/scores", "post", 200, bearer.json())
    batch = httpx.post(
        served.url + "/api/public/scores",
        json=[{"name": "a", "value": 0.5, "traceId": "c" * 32}, {"name": "", "value": "x"}],
        auth=served.auth,
        timeout=10,
    )
    assert batch.status_code == 207
    assert (batch.json()["accepted"], batch.json()["rejected"]) == (1, 1)


def test_a_sum_beyond_the_largest_float_answers_null_not_500(served: ServeHandle) -> None:
    """Two accepted scores of 1.7e308 sum to infinity, which JSON cannot carry: every metrics
    query over them answered 500 until the data was deleted."""
    name = f"huge-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        done = httpx.post(
            served.url + "/api/public/scores",
            json={"traceId": "t" * 32, "name": name, "value": 1.7e308},
            auth=served.auth,
            timeout=30,
        )
        assert done.status_code == 200, done.text
    query = {
        "view": "scores-numeric",
        "metrics": [{"measure": "value", "aggregation": "sum"}],
        "filters": [{"column": "name", "operator": "=", "value": name, "type": "string"}],
        "fromTimestamp": "2000-01-01T00:00:00Z",
        "toTimestamp": "2100-01-01T00:00:00Z",
    }
    answer = metrics_answer(served, query)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == [{"sum_value": None}]


def test_a_sum_beyond_64_bit_integers_is_a_422_not_a_500(served: ServeHandle) -> None:
    """Usage details of 6e18 tokens each (every one a 64-bit integer) sum past 2^63: SQLite
    raises "integer overflow", and every metrics query over them answered 500."""
    trace_id = uuid.uuid4().hex
    usage = {"input": 6 * 10**18, "output": 6 * 10**18}
    batch = [
        {
            "id": uuid.uuid4().hex,
            "type": "generation-create",
            "timestamp": "2026-12-01T00:00:00Z",
            "body": {
                "id": uuid.uuid4().hex,
                "traceId": trace_id,
                "name": "huge-usage",
                "startTime": "2026-12-01T00:00:00Z",
                "usageDetails": usage,
            },
        }
        for _ in range(2)
    ]
    done = httpx.post(
        served.url + "/api/public/ingestion", json={"batch": batch}, auth=served.auth, timeout=30
    )
    assert done.status_code == 207 and not done.json()["errors"], done.text
    for measure in ("inputTokens", "totalTokens"):
        query = {
            "view": "observations",
            "metrics": [{"measure": measure, "aggregation": "sum"}],
            "filters": [
                {"column": "traceId", "operator": "=", "value": trace_id, "type": "string"}
            ],
            "fromTimestamp": "2000-01-01T00:00:00Z",
            "toTimestamp": "2100-01-01T00:00:00Z",
        }
        answer = metrics_answer(served, query)
        assert answer.status_code == 422, answer.text
        assert "64-bit" in answer.json()["message"]
    # The observations themselves stay readable.
    read = get(served, "/api/public/v2/observations", traceId=trace_id)
    assert len(read["data"]) == 2


def test_a_batch_score_of_an_environment_langfuse_refuses_is_refused(served: ServeHandle) -> None:
    """The ingestion route checks a score event's environment as a trace event's: "Bad Env"
    and "langfuse-internal" were stored (201) where the trace event beside them got 400."""
    trace_id = uuid.uuid4().hex

    def score(environment: str) -> dict[str, Any]:
        return {"id": uuid.uuid4().hex, "type": "score-create", "timestamp": "2026-12-01T00:00:00Z",
                "body": {"id": uuid.uuid4().hex, "traceId": trace_id, "name": "quality",
                         "value": 1, "environment": environment}}  # fmt: skip

    batch = [score("Bad Env"), score("langfuse-internal"), score("staging")]
    done = httpx.post(
        served.url + "/api/public/ingestion", json={"batch": batch}, auth=served.auth, timeout=30
    )
    assert done.status_code == 207, done.text
    refused = {error["id"] for error in done.json()["errors"]}
    assert refused == {batch[0]["id"], batch[1]["id"]}
    kept = get(served, "/api/public/v2/scores", traceId=trace_id)["data"]
    assert [item["environment"] for item in kept] == ["staging"]


@pytest.mark.parametrize(("sent", "stored"), OPENAI_USAGE[:2])
def test_openai_shaped_usage_details_of_a_batch_are_read_as_langfuse_reads_them(
    served: ServeHandle, sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    """The keys were renamed, but the cached and reasoning tokens dropped and counted twice
    in input and output."""
    trace_id = uuid.uuid4().hex
    event = {
        "id": uuid.uuid4().hex,
        "type": "generation-create",
        "timestamp": "2026-12-01T00:00:00Z",
        "body": {"id": uuid.uuid4().hex, "traceId": trace_id, "name": "llm",
                 "startTime": "2026-12-01T00:00:00Z", "usageDetails": sent},
    }  # fmt: skip
    done = httpx.post(
        served.url + "/api/public/ingestion", json={"batch": [event]}, auth=served.auth, timeout=30
    )
    assert done.status_code == 207 and not done.json()["errors"], done.text
    (read,) = get(served, "/api/public/v2/observations", traceId=trace_id, fields="usage")["data"]
    assert read["usageDetails"] == stored


def test_a_create_event_for_a_stored_observation_merges_into_it(served: ServeHandle) -> None:
    """A create of an id an earlier request stored replaced the row: name, model, input,
    usage, and what an update sent before it had set, were gone (in one batch, the same two
    events merged), and every event was answered 201."""
    trace_id, generation, span = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex

    def send(event_type: str, body: dict[str, Any]) -> None:
        event = {"id": uuid.uuid4().hex, "type": event_type,
                 "timestamp": "2026-05-05T00:00:00Z", "body": {**body, "traceId": trace_id}}  # fmt: skip
        done = httpx.post(
            served.url + "/api/public/ingestion",
            json={"batch": [event]},
            auth=served.auth,
            timeout=30,
        )
        assert done.status_code == 207 and not done.json()["errors"], done.text

    send("generation-create", {"id": generation, "name": "llm", "model": "gpt", "input": "prompt",
                               "usageDetails": {"input": 10}, "startTime": "2026-05-05T00:00:00Z"})  # fmt: skip
    send("generation-create", {"id": generation, "output": "answer",
                               "endTime": "2026-05-05T00:00:01Z"})  # fmt: skip
    send("span-update", {"id": span, "output": "late", "endTime": "2026-05-05T00:00:02Z"})
    send("span-create", {"id": span, "name": "step", "input": "early",
                         "startTime": "2026-05-05T00:00:00Z"})  # fmt: skip
    merged = get(
        served, f"/api/public/observations/{generation}", "/api/public/observations/{observationId}"
    )
    assert (merged["name"], merged["model"], merged["input"], merged["output"]) == (
        "llm",
        "gpt",
        "prompt",
        "answer",
    )
    assert merged["usageDetails"]["input"] == 10 and merged["type"] == "GENERATION"
    step = get(
        served, f"/api/public/observations/{span}", "/api/public/observations/{observationId}"
    )
    assert (step["name"], step["input"], step["output"]) == ("step", "early", "late")
    assert step["endTime"] is not None


def test_serve_whose_stdout_reader_left_keeps_serving(workdir: Path) -> None:
    """Unbuffered (PYTHONUNBUFFERED=1), the announcement of the generated keys hit the broken
    pipe at once, and the server ended, exit 0, having said nothing."""
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    read_end, write_end = os.pipe()
    os.close(read_end)
    server = subprocess.Popen(
        [autoops_executable(), "--json", "serve", "--port", str(port)],
        stdout=write_end, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "AUTOOPS_HOME": str(workdir / "home")},
    )  # fmt: skip
    os.close(write_end)
    try:
        deadline = time.monotonic() + 60  # until it answers (only a hang reaches this)
        healthy = False
        while not healthy and server.poll() is None and time.monotonic() < deadline:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/api/public/health").is_success
            except httpx.HTTPError:
                time.sleep(0.1)
        assert healthy, server.stderr.read() if server.poll() is not None else "no answer"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=60)


def test_a_scores_source_is_kept_and_a_score_of_a_dataset_run_alone_is_refused(
    served: ServeHandle,
) -> None:
    """``source: ANNOTATION`` was dropped (read back as API, no source filter found it); a
    score whose only subject was a dataset run was acknowledged and stored with none."""
    trace_id = uuid.uuid4().hex

    def post(body: dict[str, Any]) -> httpx.Response:
        return httpx.post(served.url + "/api/public/scores", json=body, auth=served.auth,
                          timeout=30)  # fmt: skip

    assert post({"id": f"{trace_id}-a", "name": "ann", "value": 1, "traceId": trace_id,
                 "source": "ANNOTATION"}).status_code == 200  # fmt: skip
    assert (
        post({"id": f"{trace_id}-p", "name": "api", "value": 1, "traceId": trace_id}).status_code
        == 200
    )
    (annotated,) = get(served, "/api/public/v3/scores", traceId=trace_id, source="ANNOTATION")[
        "data"
    ]
    assert (annotated["id"], annotated["source"]) == (f"{trace_id}-a", "ANNOTATION")
    sources = {
        s["id"]: s["source"] for s in get(served, "/api/public/v2/scores", traceId=trace_id)["data"]
    }
    assert sources == {f"{trace_id}-a": "ANNOTATION", f"{trace_id}-p": "API"}
    for body in ({"name": "run", "value": 1, "datasetRunId": "run-1"},
                 {"name": "eval", "value": 1, "traceId": trace_id, "source": "EVAL"}):  # fmt: skip
        refused = post(body)
        assert refused.status_code == 400, refused.text


def test_the_cores_scores_carry_the_time_they_were_made(served: ServeHandle) -> None:
    """The core's score requests had no ``timestamp``: Langfuse stamped them on arrival, and
    decisions kept in the outbox through an outage (or a second in it) left the metrics
    window of their operations."""
    from config.tracing.span_records import ScoreRecord

    trace_id = uuid.uuid4().hex
    made_ns = 1_764_000_000_123_456_789  # 2025-11-24T16:00:00.123456Z, long before arrival
    record = ScoreRecord(f"{trace_id}-d", trace_id, None, "decision_confidence", 0.8, made_ns)
    assert record.as_request()["timestamp"] == "2025-11-24T16:00:00.123456Z"
    done = httpx.post(served.url + "/api/public/scores", json=[record.as_request()],
                      auth=served.auth, timeout=30)  # fmt: skip
    assert done.status_code in (200, 202), done.text
    kept = get(served, "/api/public/v3/scores", id=record.id)["data"]
    assert [s["timestamp"] for s in kept] == ["2025-11-24T16:00:00.123Z"]


def test_a_scores_timestamp_is_kept_and_the_numeric_view_counts_numbers_only(
    served: ServeHandle,
) -> None:
    """POST /api/public/scores dropped the ``timestamp`` the SDK sends (every score "now":
    time filters and buckets placed it wrongly), and the scores-numeric metrics view counted
    TEXT and CORRECTION scores (as value 0 in histograms)."""
    trace_id = uuid.uuid4().hex
    scores = [
        {"id": f"{trace_id}-n", "name": "n", "value": 0.9, "dataType": "NUMERIC",
         "timestamp": "2025-01-02T03:04:05.000Z"},
        {"id": f"{trace_id}-b", "name": "b", "value": 1, "dataType": "BOOLEAN"},
        {"id": f"{trace_id}-t", "name": "t", "value": "some text", "dataType": "TEXT"},
        {"id": f"{trace_id}-c", "name": "c", "value": "fixed", "dataType": "CORRECTION"},
    ]  # fmt: skip
    for score in scores:
        done = httpx.post(
            served.url + "/api/public/scores",
            json={**score, "traceId": trace_id},
            auth=served.auth,
            timeout=30,
        )
        assert done.status_code == 200, done.text
    old = get(served, "/api/public/v3/scores", id=f"{trace_id}-n")["data"]
    assert [s["timestamp"] for s in old] == ["2025-01-02T03:04:05.000Z"]
    before = get(
        served, "/api/public/v3/scores", traceId=trace_id, toTimestamp="2025-06-01T00:00:00Z"
    )
    assert [s["name"] for s in before["data"]] == ["n"]
    query = {
        "view": "scores-numeric",
        "metrics": [{"measure": "count", "aggregation": "count"}],
        "dimensions": [{"field": "dataType"}],
        "filters": [{"column": "traceId", "operator": "=", "value": trace_id, "type": "string"}],
        "fromTimestamp": "2000-01-01T00:00:00Z",
        "toTimestamp": "2100-01-01T00:00:00Z",
    }
    rows = get(served, "/api/public/v2/metrics", query=json.dumps(query))["data"]
    assert {row["dataType"]: row["count_count"] for row in rows} == {"NUMERIC": 1, "BOOLEAN": 1}
    # Not a time, or one outside the years 1-9999 once in UTC (every later listing of
    # scores answered 500: the reads could not show it again).
    for stamp in ("yesterday", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        bad = httpx.post(
            served.url + "/api/public/scores",
            json={"traceId": trace_id, "name": "x", "value": 1, "timestamp": stamp},
            auth=served.auth,
            timeout=30,
        )
        assert bad.status_code == 400 and "timestamp" in bad.text, stamp
    assert len(get(served, "/api/public/v2/scores", limit=100)["data"]) >= 4
    # A year below 1000 keeps its four digits ("999-01-01..." failed the SDK's whole page).
    early = httpx.post(
        served.url + "/api/public/scores",
        json={"id": f"{trace_id}-e", "traceId": trace_id, "name": "early", "value": 1,
              "timestamp": "0999-01-01T00:00:00Z"},
        auth=served.auth,
        timeout=30,
    )  # fmt: skip
    assert early.status_code == 200, early.text
    shown = get(served, "/api/public/v3/scores", id=f"{trace_id}-e")["data"]
    assert [s["timestamp"] for s in shown] == ["0999-01-01T00:00:00.000Z"]
