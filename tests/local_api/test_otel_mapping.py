"""Spans of other instrumentations, mapped as Langfuse's OTel ingestion maps them.

A GenAI-instrumented application exports with the OpenTelemetry SDK's own OTLP/HTTP exporter
(protobuf, its own instrumentation scope, no Langfuse attributes) to ``autoops serve``; the
answers are read back with the Langfuse SDK 5.2.0's API client and its ``ObservationV2``
model, and compared field by field with what Langfuse derives from those attributes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from config.store.local_store import LocalStore
from config.store.otel_conventions import usage_details
from config.tracing import attributes as la
from config.tracing.span_records import SpanRecord
from tests.support.serve_process import ServeHandle


def export_spans(served: ServeHandle, build: Any, scope: str = "opentelemetry.genai.test") -> str:
    """Run ``build(tracer)`` under an OTel SDK provider exporting to ``served``; the trace id."""
    import base64

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    token = base64.b64encode(f"{served.public_key}:{served.secret_key}".encode()).decode()
    exporter = OTLPSpanExporter(
        endpoint=f"{served.url}/api/public/otel/v1/traces",
        headers={"Authorization": f"Basic {token}"},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "genai-app"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer(scope, "1.2.3")
    trace_id = build(tracer)
    provider.shutdown()
    return f"{trace_id:032x}"


@pytest.fixture
def api(served: ServeHandle) -> Iterator[Any]:
    from langfuse import Langfuse

    client = Langfuse(
        public_key=served.public_key, secret_key=served.secret_key, base_url=served.url
    )
    yield client.api
    client.shutdown()


def observations(api: Any, trace_id: str) -> dict[str, Any]:
    """The trace's observations by name (SDK models), every field group, metadata whole."""
    groups = "core,basic,time,io,metadata,model,usage,prompt,metrics,trace_context"
    found = api.observations.get_many(
        trace_id=trace_id,
        fields=groups,
        limit=100,
        expand_metadata="attributes,resourceAttributes,scope",
    ).data
    return {o.name: o for o in found}


def test_genai_chat_span_becomes_a_generation_with_its_fields(
    served: ServeHandle, api: Any
) -> None:
    def build(tracer: Any) -> int:
        with tracer.start_as_current_span("chat gpt-4o-mini") as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                    "gen_ai.request.temperature": 0.2,
                    "gen_ai.request.max_tokens": 256,
                    "gen_ai.request.stop_sequences": ["END"],
                    "gen_ai.usage.input_tokens": 120,
                    "gen_ai.usage.output_tokens": 30,
                    "gen_ai.usage.cache_read.input_tokens": 20,
                    "gen_ai.usage.cost": 0.0042,
                    "gen_ai.prompt.0.role": "system",
                    "gen_ai.prompt.0.content": "You price products.",
                    "gen_ai.prompt.1.role": "user",
                    "gen_ai.prompt.1.content": "Price of PROD_7?",
                    "gen_ai.completion.0.role": "assistant",
                    "gen_ai.completion.0.content": "29.99",
                    "session.id": "chat-session",
                    "user.id": "chat-user",
                }
            )
            return int(span.get_span_context().trace_id)

    trace_id = export_spans(served, build)
    chat = observations(api, trace_id)["chat gpt-4o-mini"]
    assert chat.type == "GENERATION"
    assert chat.model == "gpt-4o-mini-2024-07-18"  # the response model wins, as in Langfuse
    # input excludes the cached tokens, which get their own key
    assert chat.usage_details == {
        "input": 100,
        "output": 30,
        "input_cached_tokens": 20,
        "total": 150,
    }
    assert chat.cost_details == {"total": pytest.approx(0.0042)}
    assert chat.total_cost == pytest.approx(0.0042)
    assert chat.model_parameters == {
        "temperature": 0.2,
        "max_tokens": 256,
        "stop_sequences": '["END"]',
    }
    assert json.loads(chat.input) == [
        {"role": "system", "content": "You price products."},
        {"role": "user", "content": "Price of PROD_7?"},
    ]
    assert json.loads(chat.output) == [{"role": "assistant", "content": "29.99"}]
    assert (chat.session_id, chat.user_id) == ("chat-session", "chat-user")
    metadata = chat.metadata
    assert metadata["resourceAttributes"]["service.name"] == "genai-app"
    assert metadata["scope"]["name"] == "opentelemetry.genai.test"
    assert metadata["scope"]["version"] == "1.2.3"
    kept = metadata["attributes"]
    assert kept["gen_ai.system"] == "openai" and kept["gen_ai.request.max_tokens"] == "256"
    assert not any(key.startswith(("gen_ai.prompt", "gen_ai.completion")) for key in kept)
    # The trace's cost is its observations'.
    trace = httpx.get(
        f"{served.url}/api/public/traces/{trace_id}", auth=served.auth, timeout=10
    ).json()
    assert trace["totalCost"] == pytest.approx(0.0042)
    assert trace["name"] == "chat gpt-4o-mini" and trace["sessionId"] == "chat-session"
    assert trace["output"] == [{"role": "assistant", "content": "29.99"}]  # the root's, seeded


def test_messages_tools_and_types_of_the_genai_conventions(served: ServeHandle, api: Any) -> None:
    def build(tracer: Any) -> int:
        with tracer.start_as_current_span("invoke_agent pricing") as agent:
            agent.set_attribute("gen_ai.operation.name", "invoke_agent")
            with tracer.start_as_current_span("chat") as chat:
                chat.set_attributes(
                    {
                        "gen_ai.request.model": "claude",
                        "gen_ai.system_instructions": json.dumps(
                            [{"type": "text", "content": "Be brief."}]
                        ),
                        "gen_ai.input.messages": json.dumps(
                            [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
                        ),
                        "gen_ai.output.messages": json.dumps(
                            [{"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}]
                        ),
                        "gen_ai.usage.prompt_tokens": 7,
                        "gen_ai.usage.completion_tokens": 2,
                    }
                )
            with tracer.start_as_current_span("execute_tool") as tool:
                tool.set_attributes(
                    {
                        "gen_ai.tool.name": "competitor_feed",
                        "gen_ai.tool.call.id": "call-1",
                        "gen_ai.tool.call.arguments": '{"sku": "PROD_7"}',
                        "gen_ai.tool.call.result": '{"price": 27.5}',
                    }
                )
            with tracer.start_as_current_span("embed") as embed:
                embed.set_attribute("gen_ai.operation.name", "embeddings")
            with tracer.start_as_current_span("lookup") as lookup:
                lookup.set_attributes(
                    {
                        "openinference.span.kind": "RETRIEVER",
                        "input.value": "query",
                        "output.value": "docs",
                    }
                )
            with tracer.start_as_current_span("plain step") as plain:
                plain.set_attributes({"http.method": "GET", "retry.count": 2, "cached": True})
            return int(agent.get_span_context().trace_id)

    by_name = observations(api, export_spans(served, build))
    assert by_name["invoke_agent pricing"].type == "AGENT"
    chat = by_name["chat"]
    assert chat.type == "GENERATION" and chat.model == "claude"
    assert chat.usage_details == {"input": 7, "output": 2, "total": 9}
    assert json.loads(chat.input) == [
        {"role": "system", "content": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
    ]
    assert json.loads(chat.output)[0]["role"] == "assistant"
    tool = by_name["competitor_feed"]  # named after the tool
    assert tool.type == "TOOL"
    assert (tool.input, tool.output) == ('{"sku": "PROD_7"}', '{"price": 27.5}')
    assert by_name["embed"].type == "EMBEDDING"
    lookup = by_name["lookup"]
    assert (lookup.type, lookup.input, lookup.output) == ("RETRIEVER", "query", "docs")
    plain = by_name["plain step"]
    assert plain.type == "SPAN" and plain.model is None and plain.usage_details == {}
    assert plain.metadata["attributes"] == {
        "http.method": "GET",
        "retry.count": "2",
        "cached": "true",
    }
    assert plain.metadata["scope"] == {
        "name": "opentelemetry.genai.test",
        "version": "1.2.3",
        "attributes": {},
    }


def test_a_langfuse_sdk_span_keeps_lean_metadata_with_its_trace_metadata(tmp_path: Any) -> None:
    """The SDK's (and the core's) spans: their own metadata and the trace metadata they
    carry, without the span's other attributes (Langfuse keeps those only for foreign spans)."""
    store = LocalStore(tmp_path / "traces.db")
    now = time.time_ns()
    attributes = {
        la.OBSERVATION_TYPE: "chain",
        la.OBSERVATION_METADATA_PREFIX + "step": '"route"',
        la.TRACE_METADATA_PREFIX + "event_type": '"demand_spike"',
        la.TRACE_METADATA_PREFIX + "step": '"trace wins"',
        "gen_ai.usage.input_tokens": 5,
    }
    sdk_scope = {"name": "langfuse-sdk", "version": "5.2.0", "attributes": {}}
    for span_id, scope in (("1" * 16, None), ("2" * 16, sdk_scope)):
        store.write(
            [
                SpanRecord(
                    "a" * 32, span_id, None, "root", now, now + 1000, dict(attributes), scope=scope
                )
            ]
        )
    rows = store.query("SELECT metadata, usage_details FROM observations ORDER BY id")
    store.close()
    for row in rows:
        assert json.loads(row["metadata"]) == {"step": "trace wins", "event_type": "demand_spike"}
        assert row["usage_details"] is None


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4},
            {"input": 10, "output": 4},
        ),
        (
            {"gen_ai.usage.prompt_tokens": "12", "gen_ai.usage.total_tokens": 20},
            {"input": 12, "total": 20},
        ),
        (
            {
                "llm.token_count.prompt": 9,
                "llm.token_count.completion": 3,
                "llm.token_count.total": 12,
            },
            {"input": 9, "output": 3, "total": 12},
        ),
        (
            {"gen_ai.usage.output_tokens": 50, "gen_ai.usage.reasoning.output_tokens": 20},
            {"output": 30, "output_reasoning_tokens": 20},
        ),
        ({"gen_ai.usage.input_tokens": "many"}, {}),
        ({"gen_ai.usage.cost": 0.5}, {}),
    ],
)
def test_usage_is_normalised_as_langfuse_does(attributes: dict, expected: dict) -> None:
    assert usage_details(attributes) == expected


def test_usage_and_cost_of_another_client_are_kept_as_every_reader_answers_them(
    tmp_path: Any,
) -> None:
    """Usage sent as text ("12"), as a fraction (10.7) or past 64 bits, and a cost as text:
    stored as sent, the observation reads answered {} and 10 where the metrics summed 12
    and 10.7. They are kept as the ingestion API takes them and the reads answer them:
    whole numbers for usage, numbers for costs, the rest dropped."""
    store = LocalStore(tmp_path / "traces.db")
    span = SpanRecord(
        trace_id="e" * 32, span_id="f" * 16, parent_span_id=None, name="llm",
        start_ns=1_764_700_000_000_000_000, end_ns=1_764_700_000_100_000_000,
        attributes={
            la.OBSERVATION_TYPE: "generation",
            la.OBSERVATION_USAGE_DETAILS: json.dumps(
                {"input": "12", "output": 10.7, "huge": 2**70, "cached": 3}
            ),
            la.OBSERVATION_COST_DETAILS: json.dumps({"input": "0.5", "output": 0.25}),
        },
        scope={"name": "langfuse-sdk"},
    )  # fmt: skip
    store.write([span])
    (row,) = store.query("SELECT usage_details, cost_details FROM observations")
    assert json.loads(row[0]) == {"output": 10, "cached": 3}
    assert json.loads(row[1]) == {"output": 0.25}
    store.close()


def test_trace_fields_of_another_client_are_read_as_langfuse_reads_them() -> None:
    """Found by comparing with Langfuse's OtelIngestionProcessor: an environment kept as
    sent ("Production", which the API's own filters and ingestion refuse), a span's
    deployment.environment winning over its resource's langfuse.environment, no trace
    version from the resource's service.version, "a,b" as one tag, a generation's
    langfuse.prompt.name unread, langfuse.public unread and "True" taken for true."""
    from config.store.otel_mapping import map_spans

    now = time.time_ns()

    def mapped(attributes: dict[str, Any], resource: dict[str, Any] | None = None) -> Any:
        span = SpanRecord("c" * 32, "3" * 16, None, "root", now, now + 1000, attributes,
                          resource=resource or {}, scope={"name": "some.instrumentation"})  # fmt: skip
        batch = map_spans([span])
        return batch.traces["c" * 32], batch.observations[0]

    for sent, kept in (("Production", "production"), ("my env", "default"),
                       ("langfuse-x", "x"), ("Staging-EU", "staging-eu")):  # fmt: skip
        trace, observation = mapped({la.ENVIRONMENT: sent})
        assert trace["environment"] == observation["environment"] == kept
    trace, _ = mapped({"deployment.environment": "staging"}, {la.ENVIRONMENT: "prod"})
    assert trace["environment"] == "prod"
    trace, observation = mapped({}, {"service.version": "9.9.9"})
    assert trace["version"] == observation["version"] == "9.9.9"
    # Only the root's: a child without langfuse.version is no trace update.
    resource = {"service.version": "1.0"}
    root = SpanRecord("d" * 32, "4" * 16, None, "root", now, now + 1000,
                      {la.VERSION: "v2"}, resource=resource, scope={"name": "x"})  # fmt: skip
    child = SpanRecord("d" * 32, "5" * 16, "4" * 16, "child", now, now + 1000, {},
                       resource=resource, scope={"name": "x"})  # fmt: skip
    assert map_spans([root, child]).traces["d" * 32]["version"] == "v2"
    assert map_spans([child]).traces["d" * 32]["version"] is None
    trace, _ = mapped({la.TRACE_TAGS: "a, b"})
    assert json.loads(trace["tags"]) == ["a", "b"]
    _, generation = mapped({la.OBSERVATION_TYPE: "generation", "langfuse.prompt.name": "p1",
                            "langfuse.prompt.version": 3})  # fmt: skip
    assert (generation["prompt_name"], generation["prompt_version"]) == ("p1", 3)
    assert mapped({"langfuse.public": True})[0]["public"] == 1
    assert mapped({la.TRACE_PUBLIC: "True"})[0]["public"] == 0


def test_a_traces_metadata_reads_the_same_however_its_spans_were_cut_into_batches(
    tmp_path: Any,
) -> None:
    """Later keys replace earlier ones, a null too, nested objects whole: within one batch as
    across batches (serve writes a large export 2,000 spans at a time; SQLite's json_patch
    merged nested objects and dropped the nulls of later batches)."""
    now = time.time_ns()

    def span(span_id: str, parent: str | None, metadata: dict[str, str]) -> SpanRecord:
        attributes: dict[str, Any] = {la.OBSERVATION_TYPE: "span"}
        attributes.update({la.TRACE_METADATA_PREFIX + k: v for k, v in metadata.items()})
        return SpanRecord("b" * 32, span_id, parent, span_id, now, now + 1000, attributes)

    spans = [
        span("1" * 16, None, {"cfg": '{"a":1,"b":2}', "keep": '"x"', "other": "3"}),
        span("2" * 16, "1" * 16, {"cfg": '{"a":9}', "keep": "null"}),
    ]
    read = []
    for batches in ([spans], [spans[:1], spans[1:]]):
        store = LocalStore(tmp_path / f"{len(batches)}.db")
        for batch in batches:
            store.write(batch)
        read.append(json.loads(store.query("SELECT metadata FROM traces")[0]["metadata"]))
        store.close()
    assert read[0] == read[1] == {"cfg": {"a": 9}, "keep": None, "other": 3}


OPENAI_USAGE = [
    (  # Chat Completions, as Langfuse's OpenAI integration sends it
        {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
         "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": None}},
        {"input": 3, "output": 7, "total": 12, "input_cached_tokens": 2},
    ),
    (  # Responses
        {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14,
         "input_tokens_details": {"cached_tokens": 3},
         "output_tokens_details": {"reasoning_tokens": 1}},
        {"input": 7, "output": 3, "total": 14, "input_cached_tokens": 3,
         "output_reasoning_tokens": 1},
    ),
    (  # another key: not OpenAI's shape, its numbers kept as sent
        {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12, "extra": 1},
        {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12, "extra": 1},
    ),
]  # fmt: skip


@pytest.mark.parametrize(("sent", "stored"), OPENAI_USAGE)
def test_openai_shaped_usage_details_are_read_as_langfuse_reads_them(
    tmp_path: Any, sent: dict[str, Any], stored: dict[str, Any]
) -> None:
    """Kept as sent, the reads summed prompt, completion and total tokens into a total twice
    the call's, and found no input nor output tokens."""
    store = LocalStore(tmp_path / "traces.db")
    now = time.time_ns()
    attributes = {la.OBSERVATION_TYPE: "generation", la.OBSERVATION_USAGE_DETAILS: json.dumps(sent)}
    store.write([SpanRecord("c" * 32, "3" * 16, None, "llm", now, now + 1000, attributes)])
    (row,) = store.query("SELECT usage_details FROM observations")
    store.close()
    assert json.loads(row["usage_details"]) == stored


def test_a_root_spans_own_metadata_is_its_traces_too(tmp_path: Any) -> None:
    """Langfuse builds a root span's trace metadata as its trace metadata and, over it, the
    span's own (``createTraceEvent``): the metadata an SDK user set on the entry point
    (``update_current_span(metadata=...)``) was missing from every trace read."""
    store = LocalStore(tmp_path / "traces.db")
    now = time.time_ns()
    attributes = {
        la.OBSERVATION_TYPE: "span",
        la.OBSERVATION_METADATA_PREFIX + "request_id": '"r-42"',
        la.OBSERVATION_METADATA_PREFIX + "shared": '"from-span"',
        la.TRACE_METADATA_PREFIX + "shared": '"from-trace"',
        la.TRACE_METADATA_PREFIX + "tenant": '"acme"',
    }
    child = {la.OBSERVATION_TYPE: "span", la.OBSERVATION_METADATA_PREFIX + "step": '"child"'}
    store.write(
        [
            SpanRecord("f" * 32, "6" * 16, None, "root", now, now + 1000, attributes),
            SpanRecord("f" * 32, "7" * 16, "6" * 16, "child", now, now + 500, child),
        ]
    )
    (row,) = store.query("SELECT metadata FROM traces")
    store.close()
    assert json.loads(row["metadata"]) == {
        "shared": "from-span",
        "tenant": "acme",
        "request_id": "r-42",
    }


def test_an_events_own_sequence_field_is_kept_in_its_traces_metadata(tmp_path: Any) -> None:
    """The core's order of the root in its trace (``sequence`` in its own metadata) replaced
    an event's ``sequence`` field in the trace's metadata once the root's metadata became
    the trace's too; the core's order is no trace metadata."""
    store = LocalStore(tmp_path / "traces.db")
    now = time.time_ns()
    attributes = {
        la.OBSERVATION_TYPE: "chain",
        la.OBSERVATION_SEQUENCE: "1",
        la.OBSERVATION_METADATA_PREFIX + "event_type": '"demand_spike"',
        la.TRACE_METADATA_PREFIX + "sequence": "42",
    }
    store.write([SpanRecord("a1" * 16, "8" * 16, None, "root", now, now + 1000, attributes)])
    (row,) = store.query("SELECT metadata FROM traces")
    store.close()
    assert json.loads(row["metadata"]) == {"sequence": 42, "event_type": "demand_spike"}
