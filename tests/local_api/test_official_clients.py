"""The official Langfuse clients are the acceptance tests of ``autoops serve``.

- the Python SDK 5.2.0: every observation type and scores of every data type, read back
  through its own API client and models, compared field by field, then deleted;
- the official CLI (``langfuse-cli`` 1.2.4 from npm): its default 4.35.0 snapshot,
  ``--api-version 3`` (the deprecated v3 reads) and ``--api-version auto`` (which picks the
  snapshot from ``/api/public/health``'s version);
- the JS SDK 5.11.1 (``@langfuse/tracing`` + ``@langfuse/otel`` for traces,
  ``@langfuse/client`` for scores, which it sends through ``/api/public/ingestion``, and its
  API client to read back and delete).

Each also runs against ``--v4-only``, where what Langfuse Cloud removed must fail as it
fails there and everything else must still work.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.js_clients import langfuse_cli, node, run_script
from tests.support.serve_process import ServeHandle, start_serve, stop_serve

ALL_GROUPS = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
OBSERVATION_TYPES = (
    "span", "agent", "tool", "chain", "retriever", "evaluator", "embedding", "guardrail",
)  # fmt: skip


@pytest.fixture
def v4_only(workdir: Path) -> Iterator[ServeHandle]:
    handle = start_serve(workdir / "v4only" / "traces.db", "--v4-only")
    yield handle
    stop_serve(handle)


def sdk(served: ServeHandle) -> Any:
    from langfuse import Langfuse

    return Langfuse(
        public_key=served.public_key,
        secret_key=served.secret_key,
        base_url=served.url,
        flush_at=1000,
        environment="sdk-test",
        release="sdk-1",
    )


def trace_with_every_type(client: Any) -> dict[str, Any]:
    """One trace with every observation type and scores of every data type; what was sent."""
    from langfuse import propagate_attributes

    sent: dict[str, Any] = {"observations": {}, "scores": {}}
    session = f"py-session-{uuid.uuid4().hex[:8]}"
    with (
        client.start_as_current_observation(name="py-root", as_type="chain", input={"q": 1}) as root,
        propagate_attributes(user_id="py-user", session_id=session, tags=["py", "sdk"], metadata={"suite": "official"}),
    ):  # fmt: skip
        sent["trace_id"], sent["session"] = root.trace_id, session
        sent["observations"]["root"] = root.id
        for kind in OBSERVATION_TYPES:
            with client.start_as_current_observation(
                name=f"py-{kind}", as_type=kind, input={"kind": kind}, metadata={"n": kind}
            ) as observation:
                observation.update(output={"done": kind})
                sent["observations"][kind] = observation.id
        with client.start_as_current_observation(
            name="py-generation",
            as_type="generation",
            model="gpt-py",
            input=[{"role": "user", "content": "hi"}],
            model_parameters={"temperature": 0.3, "max_tokens": 64},
            usage_details={"input": 11, "output": 7},
            cost_details={"input": 0.011, "output": 0.007},
        ) as generation:
            generation.update(output={"role": "assistant", "content": "yo"})
            sent["observations"]["generation"] = generation.id
        event = client.create_event(name="py-event", input={"tick": 1}, level="WARNING")
        sent["observations"]["event"] = event.id
        root.update(output={"ok": True}, level="WARNING", status_message="watch out")
    agent = sent["observations"]["agent"]
    scores = {
        "py-numeric": dict(value=0.75, data_type="NUMERIC", comment="numeric"),
        "py-boolean": dict(value=1.0, data_type="BOOLEAN"),
        "py-categorical": dict(value="good", data_type="CATEGORICAL"),
        "py-text": dict(value="reads well", data_type="TEXT"),
        "py-correction": dict(value="42, not 41", data_type="CORRECTION"),
    }
    for name, fields in scores.items():
        score_id = f"{name}-{uuid.uuid4().hex[:8]}"
        client.create_score(
            name=name, trace_id=sent["trace_id"], observation_id=agent, score_id=score_id, **fields
        )
        sent["scores"][score_id] = {"name": name, **fields}
    session_score = f"py-session-{uuid.uuid4().hex[:8]}"
    client.create_score(name="py-session", value=0.5, session_id=session, score_id=session_score)
    sent["session_score"] = session_score
    client.flush()
    return sent


def test_python_sdk_round_trip_every_type_every_score_and_deletion(served: ServeHandle) -> None:
    client = sdk(served)
    try:
        sent = trace_with_every_type(client)
        api = client.api
        found = api.observations.get_many(
            trace_id=sent["trace_id"], fields=ALL_GROUPS, limit=100, expand_metadata="suite,n"
        ).data
        by_id = {o.id: o for o in found}
        assert set(by_id) == set(sent["observations"].values())
        for kind, observation_id in sent["observations"].items():
            observation = by_id[observation_id]
            assert observation.type == ("CHAIN" if kind == "root" else kind.upper()), kind
            assert observation.name == f"py-{kind}"
            assert observation.trace_id == sent["trace_id"]
            assert (observation.user_id, observation.session_id) == ("py-user", sent["session"])
            assert observation.environment == "sdk-test"
            assert observation.tags == ["py", "sdk"] and observation.release == "sdk-1"
            assert observation.metadata["suite"] == "official"
            if kind in OBSERVATION_TYPES:
                assert json.loads(observation.input) == {"kind": kind}
                assert json.loads(observation.output) == {"done": kind}
                assert observation.metadata["n"] == kind
                assert observation.parent_observation_id == sent["observations"]["root"]
        generation = by_id[sent["observations"]["generation"]]
        assert generation.model == "gpt-py"
        assert generation.model_parameters == {"temperature": 0.3, "max_tokens": 64}
        assert generation.usage_details == {"input": 11, "output": 7, "total": 18}
        assert generation.cost_details == {"input": 0.011, "output": 0.007, "total": 0.018}
        assert generation.total_cost == pytest.approx(0.018)
        event = by_id[sent["observations"]["event"]]
        assert (event.level, json.loads(event.input)) == ("WARNING", {"tick": 1})
        root = by_id[sent["observations"]["root"]]
        assert (root.level, root.status_message, root.is_root_observation) == (
            "WARNING",
            "watch out",
            True,
        )

        scores = api.scores.get_many(
            trace_id=sent["trace_id"], fields="core,details,subject", limit=100
        ).data
        assert {s.id for s in scores} == set(sent["scores"])
        for score in scores:
            expected = sent["scores"][score.id]
            assert score.name == expected["name"] and score.data_type == expected["data_type"]
            value = expected["value"]
            assert score.value == (bool(value) if expected["data_type"] == "BOOLEAN" else value)
            assert score.subject.kind == "observation"
            assert score.subject.id == sent["observations"]["agent"]
        session_scores = api.scores.get_many(session_id=sent["session"], fields="core,subject").data
        assert [s.id for s in session_scores] == [sent["session_score"]]

        deleted = api.trace.delete(sent["trace_id"])
        assert deleted.message == "Trace deleted successfully"
        assert api.observations.get_many(trace_id=sent["trace_id"]).data == []
        assert api.scores.get_many(trace_id=sent["trace_id"]).data == []
        api.scores.delete(sent["session_score"])
        assert api.scores.get_many(session_id=sent["session"]).data == []

        others = [trace_with_every_type(client)["trace_id"] for _ in range(2)]
        assert api.trace.delete_multiple(trace_ids=others).message == "Traces deleted successfully"
        assert all(api.observations.get_many(trace_id=t).data == [] for t in others)
    finally:
        client.shutdown()


def test_python_sdk_root_in_a_chosen_trace_is_the_traces_root(served: ServeHandle) -> None:
    """``trace_context={"trace_id": ...}`` (and ``@observe(langfuse_trace_id=...)``): the SDK
    starts the span under a parent it invents and marks it ``langfuse.internal.as_root``.
    Langfuse takes it for the root: the trace is named after it and has its input and output."""
    client = sdk(served)
    try:
        trace_id = client.create_trace_id()
        with client.start_as_current_observation(
            name="chosen-root", trace_context={"trace_id": trace_id}, input={"x": 1}
        ) as root:
            root.update(output={"y": 2})
            with client.start_as_current_observation(name="chosen-child"):
                pass
        client.flush()
        import httpx

        trace = httpx.get(
            f"{served.url}/api/public/traces/{trace_id}",
            auth=(served.public_key, served.secret_key),
        ).json()
        assert (trace["name"], trace["input"], trace["output"]) == (
            "chosen-root",
            {"x": 1},
            {"y": 2},
        )
        found = {
            o.name: o
            for o in client.api.observations.get_many(trace_id=trace_id, fields=ALL_GROUPS).data
        }
        # As Langfuse: the invented parent's id is kept, and the span is a root all the same.
        invented = found["chosen-root"].parent_observation_id
        assert invented is not None and invented not in {o.id for o in found.values()}
        assert found["chosen-root"].is_root_observation is True
        assert found["chosen-child"].parent_observation_id == found["chosen-root"].id
        roots = client.api.observations.get_many(trace_id=trace_id, is_root_observation=True)
        assert [o.name for o in roots.data] == ["chosen-root"]
    finally:
        client.shutdown()


def test_python_sdk_span_continuing_another_services_trace_keeps_its_parent(
    served: ServeHandle,
) -> None:
    """A second service continues a trace under the first one's span (the SDK's
    ``trace_context`` with ``parent_span_id``, as a ``traceparent`` header carries it). The
    store dropped the parent of every span marked as a root: a trace of two roots, and a
    ``parentObservationId`` filter that missed the child."""
    client = sdk(served)
    try:
        with client.start_as_current_observation(name="svcA-root") as first:
            trace_id, parent_id = first.trace_id, first.id
        client.flush()
        context = {"trace_id": trace_id, "parent_span_id": parent_id}
        with (
            client.start_as_current_observation(name="svcB", trace_context=context),
            client.start_as_current_observation(name="svcB-child"),
        ):
            pass
        client.flush()
        found = {o.name: o for o in client.api.observations.get_many(trace_id=trace_id).data}
        assert found["svcB"].parent_observation_id == parent_id
        assert found["svcB-child"].parent_observation_id == found["svcB"].id
        under = client.api.observations.get_many(parent_observation_id=parent_id).data
        assert [o.name for o in under] == ["svcB"]
        # Under a span of another trace (a follow-up trace linked to its cause): the root of
        # its own trace all the same (its parent is in no observation of this trace).
        followup = client.create_trace_id()
        context = {"trace_id": followup, "parent_span_id": parent_id}
        with client.start_as_current_observation(name="follow-up", trace_context=context):
            pass
        client.flush()
        roots = client.api.observations.get_many(trace_id=followup, is_root_observation=True)
        assert [o.name for o in roots.data] == ["follow-up"]
    finally:
        client.shutdown()


def test_python_sdk_app_root_under_a_span_it_does_not_export_is_the_traces_root(
    served: ServeHandle,
) -> None:
    """A web framework's span (another instrumentation, filtered out by the SDK) around the
    application's first observation: the SDK marks that one ``langfuse.internal.is_app_root``
    and Langfuse counts it a root. It had a parent that never arrives, so the trace had no
    root: no name, no isRootObservation, and `autoops traces list` left it out."""
    from opentelemetry import trace as otel

    client = sdk(served)
    try:
        with (
            otel.get_tracer("my.web.framework").start_as_current_span("HTTP GET /chat"),
            client.start_as_current_observation(name="handle-chat") as app,
            client.start_as_current_observation(name="answer"),
        ):
            trace_id = app.trace_id
        client.flush()
        found = {
            o.name: o
            for o in client.api.observations.get_many(trace_id=trace_id, fields=ALL_GROUPS).data
        }
        assert set(found) == {"handle-chat", "answer"}  # the framework's span is not sent
        # As Langfuse: the framework span's id is kept as the parent, never stored.
        parent = found["handle-chat"].parent_observation_id
        assert parent is not None and parent not in {o.id for o in found.values()}
        roots = client.api.observations.get_many(trace_id=trace_id, is_root_observation=True)
        assert [o.name for o in roots.data] == ["handle-chat"]
        import httpx

        trace = httpx.get(
            f"{served.url}/api/public/traces/{trace_id}",
            auth=(served.public_key, served.secret_key),
        ).json()
        assert trace["name"] == "handle-chat"
    finally:
        client.shutdown()


def test_a_trace_with_two_roots_is_one_row_and_one_id_for_autoops(
    served: ServeHandle, tmp_path: Path
) -> None:
    """The SDK opening two spans in one chosen trace makes two roots: `traces list` showed the
    trace twice and `traces show <prefix>` called the prefix ambiguous between it and itself."""
    import subprocess

    from tests.support.serve_process import autoops_executable

    client = sdk(served)
    try:
        trace_id = client.create_trace_id()
        for name in ("first-root", "second-root"):
            with client.start_as_current_observation(
                name=name, trace_context={"trace_id": trace_id}
            ):
                pass
        client.flush()
    finally:
        client.shutdown()
    env = {**served.client_env(), "AUTOOPS_HOME": str(tmp_path), "NO_COLOR": "1",
           "PATH": "/usr/bin:/bin"}  # fmt: skip

    def autoops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([autoops_executable(), *args], capture_output=True, text=True,
                              env=env, timeout=120, check=False)  # fmt: skip

    listed = json.loads(autoops("--json", "traces", "list", "--since", "1h", "--all").stdout)
    assert [row["id"] for row in listed["traces"]].count(trace_id) == 1
    shown = autoops("--json", "traces", "show", trace_id[:10])
    assert shown.returncode == 0, shown.stderr


def test_trace_tags_from_several_spans_and_events_add_up_as_in_langfuse(
    served: ServeHandle,
) -> None:
    """Tags propagated to two spans of a trace (in one export and in two), or sent by two
    trace-create events: the last replaced the others, and a filter on the first missed the
    trace. Langfuse merges them: the union, sorted."""
    import httpx
    from langfuse import propagate_attributes

    auth = (served.public_key, served.secret_key)
    client = sdk(served)
    trace_ids = []
    try:
        for flush_between in (False, True):
            with client.start_as_current_observation(name="root") as root:
                with (
                    propagate_attributes(tags=["tb"]),
                    client.start_as_current_observation(name="child-b"),
                ):
                    pass
                if flush_between:
                    client.flush()
                with (
                    propagate_attributes(tags=["ta"]),
                    client.start_as_current_observation(name="child-a"),
                ):
                    pass
            trace_ids.append(root.trace_id)
        client.flush()
    finally:
        client.shutdown()
    legacy = uuid.uuid4().hex
    batch = [
        {"id": uuid.uuid4().hex, "type": "trace-create", "timestamp": "2026-12-01T10:00:00Z",
         "body": {"id": legacy, "name": "legacy", "tags": tags}}
        for tags in (["tb"], ["ta"])
    ]  # fmt: skip
    sent = httpx.post(f"{served.url}/api/public/ingestion", json={"batch": batch}, auth=auth)
    assert sent.status_code == 207 and not sent.json()["errors"], sent.text
    for trace_id in [*trace_ids, legacy]:
        trace = httpx.get(f"{served.url}/api/public/traces/{trace_id}", auth=auth).json()
        assert trace["tags"] == ["ta", "tb"], trace_id
    found = httpx.get(f"{served.url}/api/public/traces", params={"tags": "ta"}, auth=auth)
    assert {row["id"] for row in found.json()["data"]} >= {*trace_ids, legacy}


def test_a_score_whose_metadata_is_a_list_or_a_text_is_kept_as_langfuse_keeps_it(
    served: ServeHandle,
) -> None:
    """The SDKs type a score's metadata as any value: a list or a text was refused (400 in
    the 207), and the SDK dropped the score. Langfuse keeps it, under ``metadata``."""
    client = sdk(served)
    try:
        trace_id = client.create_trace_id()
        given = {"obj": {"a": 1}, "list": ["x", "y"], "text": "free text note"}
        for kind, metadata in given.items():
            client.create_score(name="md", value=1.0, trace_id=trace_id, score_id=f"md-{kind}",
                                metadata=metadata)  # fmt: skip
        client.flush()
        stored = client.api.scores.get_many(trace_id=trace_id, fields="core,details").data
    finally:
        client.shutdown()
    assert {score.id: score.metadata for score in stored} == {
        "md-obj": {"a": 1},
        "md-list": {"metadata": ["x", "y"]},
        "md-text": {"metadata": "free text note"},
    }


def test_python_sdk_works_unchanged_against_v4_only(v4_only: ServeHandle) -> None:
    """The SDK 5 only uses v4's API: nothing it does is refused by a v4-only server."""
    client = sdk(v4_only)
    try:
        sent = trace_with_every_type(client)
        api = client.api
        assert len(api.observations.get_many(trace_id=sent["trace_id"], limit=100).data) == 11
        assert len(api.scores.get_many(trace_id=sent["trace_id"]).data) == 5
        assert api.health.health().version == "4.35.0"
        api.trace.delete(sent["trace_id"])
        assert api.observations.get_many(trace_id=sent["trace_id"]).data == []
    finally:
        client.shutdown()


# --- the official CLI ----------------------------------------------------------------------


def seeded(served: ServeHandle) -> dict[str, Any]:
    client = sdk(served)
    try:
        return trace_with_every_type(client)
    finally:
        client.shutdown()


def ok(result: tuple[int, Any, str]) -> Any:
    code, output, stderr = result
    assert code == 0, (output, stderr)
    assert isinstance(output, dict) and 200 <= output["status"] < 300, output
    return output["body"]


def test_the_official_cli_on_its_default_snapshot(served: ServeHandle) -> None:
    node()
    sent = seeded(served)
    trace_id = sent["trace_id"]
    assert ok(langfuse_cli(served, "health", "get"))["version"] == "4.35.0"
    assert ok(langfuse_cli(served, "projects", "list"))["data"][0]["id"]
    listed = ok(
        langfuse_cli(
            served, "observations", "list", "--trace-id", trace_id, "--fields", ALL_GROUPS, "--all"
        )
    )
    assert {o["id"] for o in listed["data"]} == set(sent["observations"].values())
    roots = ok(
        langfuse_cli(
            served,
            "observations",
            "list",
            "--filter",
            json.dumps(
                [{"type": "string", "column": "traceId", "operator": "=", "value": trace_id}]
            ),
            "--is-root-observation",
            "--fields",
            "core,basic,model",
        )
    )
    assert [o["id"] for o in roots["data"]] == [sent["observations"]["root"]]
    scores = ok(langfuse_cli(served, "scores", "list", "--trace-id", trace_id, "--all"))
    assert {s["id"] for s in scores["data"]} == set(sent["scores"])
    now = time.time()
    query = {
        "view": "observations",
        "dimensions": [{"field": "type"}],
        "metrics": [
            {"measure": "count", "aggregation": "count"},
            {"measure": "latency", "aggregation": "histogram"},
        ],
        "filters": [],
        "fromTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
        "toTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
    }
    rows = ok(langfuse_cli(served, "metrics", "get", "--query", json.dumps(query)))["data"]
    assert {row["type"]: row["count_count"] for row in rows}["AGENT"] == 1
    assert all(isinstance(row["histogram_latency"], list) for row in rows)
    # The v4 snapshot refuses the deprecated reads itself (it does not even call them).
    code, _, stderr = langfuse_cli(served, "legacy-traces", "list")
    assert code != 0 and "deprecated" in stderr.lower()
    assert ok(langfuse_cli(served, "traces", "delete", trace_id))["message"]
    assert ok(langfuse_cli(served, "observations", "list", "--trace-id", trace_id))["data"] == []


def test_the_official_cli_on_the_v3_snapshot(served: ServeHandle, v4_only: ServeHandle) -> None:
    node()
    sent = seeded(served)
    trace_id, session = sent["trace_id"], sent["session"]
    listed = ok(langfuse_cli(served, "traces", "list", "--session-id", session, api_version="3"))
    assert [t["id"] for t in listed["data"]] == [trace_id]
    trace = ok(langfuse_cli(served, "traces", "get", trace_id, api_version="3"))
    assert len(trace["observations"]) == 11 and trace["sessionId"] == session
    assert trace["_deprecation"]["sunsetAt"] == "2026-11-16"
    sessions = ok(langfuse_cli(served, "sessions", "list", api_version="3"))
    assert session in {s["id"] for s in sessions["data"]}
    one = ok(langfuse_cli(served, "sessions", "get", session, api_version="3"))
    assert [t["id"] for t in one["traces"]] == [trace_id]
    agent = sent["observations"]["agent"]
    observation = ok(langfuse_cli(served, "observations", "get", agent, api_version="3"))
    assert observation["type"] == "AGENT"
    ingested = ok(
        langfuse_cli(
            served,
            "ingestion",
            "batch",
            "--body-json",
            json.dumps(
                {
                    "batch": [
                        {
                            "id": str(uuid.uuid4()),
                            "type": "score-create",
                            "timestamp": "2026-12-01T00:00:00Z",
                            "body": {"traceId": trace_id, "name": "cli", "value": 1},
                        }
                    ]
                }
            ),
            api_version="3",
        )
    )
    assert ingested["errors"] == [] and len(ingested["successes"]) == 1
    # Langfuse Cloud today: the v3 reads are gone (404 from the server, exit 5).
    code, output, _ = langfuse_cli(v4_only, "traces", "list", api_version="3")
    assert code == 5 and output["status"] == 404


def test_the_official_cli_detects_the_api_version(served: ServeHandle) -> None:
    node()
    sent = seeded(served)
    code, output, stderr = langfuse_cli(served, "versions", "current", api_version="auto")
    assert (code, str(output).strip()) == (0, "4.35.0"), stderr  # the snapshot it picked
    found = ok(
        langfuse_cli(
            served, "observations", "list", "--trace-id", sent["trace_id"], api_version="auto"
        )
    )
    assert len(found["data"]) == 11


# --- the JS SDK ----------------------------------------------------------------------------


def check_js_round_trip(document: dict[str, Any], stderr: str, *, legacy: bool) -> None:
    sent, read = document["sent"], document["read"]
    assert "Failed to export" not in stderr and "Error ingesting scores" not in stderr, stderr
    assert read["health"]["version"] == "4.35.0"
    by_id = {o["id"]: o for o in read["observations"]["data"]}
    assert set(by_id) == set(sent["observations"].values())
    for kind, observation_id in sent["observations"].items():
        observation = by_id[observation_id]
        assert observation["type"] == kind.upper(), kind
        assert observation["traceId"] == sent["traceId"]
        assert observation["userId"] == "js-user" and observation["sessionId"] == sent["sessionId"]
        assert observation["tags"] == ["js", "round-trip"]
        assert (observation["environment"], observation["release"]) == ("js-test", "js-1")
        if kind not in ("chain", "event"):
            assert (
                observation["parentObservationId"] == sent["observations"]["agent"]
                or kind == "agent"
            )
    generation = by_id[sent["observations"]["generation"]]
    assert generation["model"] == generation["providedModelName"] == "gpt-js"
    assert generation["usageDetails"] == {"input": 12, "output": 7, "total": 19}
    assert generation["costDetails"] == {"input": 0.0012, "output": 0.0021, "total": 0.0033}
    assert generation["modelParameters"] == {"temperature": 0.5, "max_tokens": 100}
    assert json.loads(generation["output"]) == {"role": "assistant", "content": "hi"}
    agent = by_id[sent["observations"]["agent"]]
    assert (agent["level"], agent["statusMessage"]) == ("WARNING", "close to floor")
    assert json.loads(agent["input"]) == {"price": 10}
    scores = {s["id"]: s for s in read["scores"]["data"]}
    expected = {s["id"]: s for s in sent["scores"] if s["name"] != "js-session"}
    assert set(scores) == set(expected)
    for score_id, score in scores.items():
        value = expected[score_id]["value"]
        assert score["name"] == expected[score_id]["name"]
        assert score["value"] == (bool(value) if score["dataType"] == "BOOLEAN" else value)
    assert [s["name"] for s in read["sessionScores"]["data"]] == ["js-session"]
    assert read["deleted"] == {"message": "Trace deleted successfully"}
    assert read["afterDelete"]["data"] == []
    if legacy:
        assert read["trace"]["id"] == sent["traceId"]
        assert len(read["trace"]["observations"]) == len(sent["observations"])
        assert [t["id"] for t in read["session"]["traces"]] == [sent["traceId"]]
        assert sent["sessionId"] in {s["id"] for s in read["sessions"]["data"]}


def test_the_js_sdk_traces_scores_and_reads_back(served: ServeHandle) -> None:
    document, stderr = run_script(served, "sdk_round_trip.mjs", AUTOOPS_JS_LEGACY_READS="1")
    check_js_round_trip(document, stderr, legacy=True)


def test_the_js_sdk_against_v4_only_keeps_its_scores(v4_only: ServeHandle) -> None:
    document, stderr = run_script(v4_only, "sdk_round_trip.mjs")
    check_js_round_trip(document, stderr, legacy=False)
