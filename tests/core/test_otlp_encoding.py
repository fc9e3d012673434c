"""The hand-written OTLP encoder writes what the protobuf runtime would build, byte for byte."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from autoops_cli.local_api.http.otlp import Body, decode_protobuf_spans
from config.delivery.otlp import SCOPE_NAME, AttributeEncoder, encode_spans
from config.delivery.sender import SPANS, rekey_body
from config.tracing.span_records import SpanRecord


def reference_value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[reference_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def reference_attributes(attributes: dict[str, Any]) -> list[KeyValue]:
    return [
        KeyValue(key=k, value=reference_value(v)) for k, v in attributes.items() if v is not None
    ]


def reference_encoding(
    spans: list[SpanRecord], resource: dict[str, Any], scope_attributes: dict[str, Any]
) -> ExportTraceServiceRequest:
    """The request built through the protobuf runtime's objects (the encoder before)."""
    scope = InstrumentationScope(
        name=SCOPE_NAME, version="5", attributes=reference_attributes(scope_attributes)
    )
    proto_spans = [
        Span(
            trace_id=bytes.fromhex(span.trace_id),
            span_id=bytes.fromhex(span.span_id),
            parent_span_id=bytes.fromhex(span.parent_span_id) if span.parent_span_id else b"",
            name=span.name,
            kind=Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=span.start_ns,
            end_time_unix_nano=span.end_ns,
            attributes=reference_attributes(span.attributes),
            status=Status(code=span.status_code, message=span.status_message or ""),  # type: ignore[arg-type]
        )
        for span in spans
    ]
    request = ExportTraceServiceRequest()
    if spans:
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(attributes=reference_attributes(dict(sorted(resource.items())))),
                scope_spans=[ScopeSpans(scope=scope, spans=proto_spans)],
            )
        )
    return request


hex_ids = st.binary(min_size=8, max_size=8).map(bytes.hex)
values = st.one_of(
    st.text(max_size=80),
    st.text(min_size=65, max_size=300),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.lists(st.text(max_size=10), max_size=5),
    st.lists(st.integers(min_value=-5, max_value=5), max_size=3),
    st.none(),
)
spans_strategy = st.lists(
    st.builds(
        SpanRecord,
        trace_id=st.binary(min_size=16, max_size=16).map(bytes.hex),
        span_id=hex_ids,
        parent_span_id=st.one_of(st.none(), hex_ids),
        name=st.text(max_size=30),
        start_ns=st.integers(min_value=0, max_value=2**63),
        end_ns=st.integers(min_value=0, max_value=2**63),
        attributes=st.dictionaries(st.text(max_size=20), values, max_size=8),
        status_code=st.sampled_from([0, 1, 2]),
        status_message=st.one_of(st.none(), st.text(max_size=20)),
    ),
    max_size=6,
)


def decode_spans(body: bytes) -> list[SpanRecord]:
    return decode_protobuf_spans(Body(body))


@given(spans=spans_strategy, resource=st.dictionaries(st.text(max_size=10), values, max_size=4))
def test_the_encoding_is_the_protobuf_runtimes(
    spans: list[SpanRecord], resource: dict[str, Any]
) -> None:
    encoder = AttributeEncoder()
    scope_attributes = {"public_key": "pk-lf-1"}
    expected = reference_encoding(spans, resource, scope_attributes)
    # Twice with one encoder: the second time from its cache of repeated attributes.
    for _ in range(2):
        encoded = encode_spans(
            spans,
            resource=resource,
            scope_version="5",
            scope_attributes=scope_attributes,
            encoder=encoder,
        )
        assert encoded == expected.SerializeToString()


def test_equal_values_of_other_types_are_not_confused_by_the_cache() -> None:
    """True, 1 and 1.0 are one dict key; encoded they are three different values."""
    spans = [
        SpanRecord("ab" * 16, f"{n:016x}", None, "s", 1, 2, {"k": value})
        for n, value in enumerate([True, 1, 1.0, [True], [1]])
    ]
    decoded = decode_spans(encode_spans(spans, resource={}, scope_version="5"))
    assert [span.attributes["k"] for span in decoded] == [True, 1, 1.0, [True], [1]]
    assert [type(span.attributes["k"]) for span in decoded] == [bool, int, float, list, list]


def test_text_that_is_not_unicode_is_sent_as_u_fffd_as_the_store_keeps_it() -> None:
    """A lone surrogate was sent as "?" while the local store now keeps U+FFFD."""
    odd = "rapport-\udce9t\udce9.csv"
    span = SpanRecord("ef" * 16, "0" * 15 + "2", None, odd, 1, 2, {"file": odd, "list": [odd]})
    (decoded,) = decode_spans(encode_spans([span], resource={}, scope_version="5"))
    assert decoded.name == decoded.attributes["file"] == "rapport-\ufffdt\ufffd.csv"
    assert decoded.attributes["list"] == ["rapport-\ufffdt\ufffd.csv"]


def test_a_moved_batch_carries_the_new_public_key() -> None:
    span = SpanRecord("cd" * 16, "0" * 15 + "1", None, "s", 1, 2, {"a": "b"})
    body = gzip.compress(
        encode_spans([span], resource={}, scope_version="5", scope_attributes={"public_key": "old"})
    )
    moved = ExportTraceServiceRequest()
    moved.ParseFromString(gzip.decompress(rekey_body(SPANS, body, "pk-lf-new")))
    scope = moved.resource_spans[0].scope_spans[0].scope
    assert {kv.key: kv.value.string_value for kv in scope.attributes} == {"public_key": "pk-lf-new"}
    assert decode_spans(gzip.decompress(rekey_body(SPANS, body, "pk-lf-new")))[0].span_id == (
        span.span_id
    )
    assert rekey_body(SPANS, body, "old") is body  # nothing to change: the body as it was
    # A damaged row moves as it is (its sender keeps it as a dead letter): it failed the
    # whole `--from` move as an internal error.
    for damaged in (body[: len(body) // 2], b"not gzip", gzip.compress(b"\xff\xff not protobuf")):
        assert rekey_body(SPANS, damaged, "pk-lf-new") is damaged


def test_the_encoders_caches_stay_bounded_and_exact_when_keys_never_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Metadata keys built from data (an id per key) must not grow the encoder forever."""
    from config.delivery import otlp

    monkeypatch.setattr(otlp, "_CACHE_LIMIT", 8)
    encoder = AttributeEncoder()
    spans = [
        SpanRecord("ab" * 16, f"{n + 1:016x}", None, "s", 1, 2, {f"metadata.k{n}": f"v{n}"})
        for n in range(40)
    ]
    encoded = encode_spans(spans, resource={}, scope_version="5", encoder=encoder)
    assert len(encoder._keys) <= 8
    assert len(encoder._pairs) <= 8
    assert [span.attributes for span in decode_spans(encoded)] == [s.attributes for s in spans]
