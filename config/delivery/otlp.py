"""OTLP/HTTP encoding of span records (``ExportTraceServiceRequest``, protobuf).

The core's spans go to Langfuse as the SDK's would: one resource (service name, Langfuse
environment and release), one instrumentation scope named ``langfuse-sdk`` carrying the public
key (the SDK's tracer does the same, and Langfuse's ingestion keys SDK-specific handling on
that scope name), and per span the Langfuse attributes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from config.tracing.span_records import SpanRecord

SCOPE_NAME = "langfuse-sdk"


def any_value(value: Any) -> AnyValue:
    """An OTLP ``AnyValue`` for a Python attribute value."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=str(value))


def key_values(attributes: Mapping[str, Any]) -> list[KeyValue]:
    """OTLP attributes; None values are left out."""
    return [KeyValue(key=k, value=any_value(v)) for k, v in attributes.items() if v is not None]


def encode_spans(
    spans: Iterable[SpanRecord],
    *,
    resource: Mapping[str, Any],
    scope_version: str,
    scope_attributes: Mapping[str, Any] | None = None,
) -> bytes:
    """Serialize spans as one protobuf ``ExportTraceServiceRequest``.

    Spans carrying their own ``resource`` (none of the core's do) are grouped by it.
    """
    groups: dict[tuple[tuple[str, Any], ...], list[SpanRecord]] = defaultdict(list)
    for span in spans:
        key = tuple(sorted((span.resource or resource).items()))
        groups[key].append(span)
    scope = InstrumentationScope(
        name=SCOPE_NAME, version=scope_version, attributes=key_values(scope_attributes or {})
    )
    request = ExportTraceServiceRequest()
    for resource_items, members in groups.items():
        proto_spans = [
            Span(
                trace_id=bytes.fromhex(span.trace_id),
                span_id=bytes.fromhex(span.span_id),
                parent_span_id=bytes.fromhex(span.parent_span_id) if span.parent_span_id else b"",
                name=span.name,
                kind=Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=span.start_ns,
                end_time_unix_nano=span.end_ns,
                attributes=key_values(span.attributes),
                status=Status(code=span.status_code, message=span.status_message or ""),  # type: ignore[arg-type]
            )
            for span in members
        ]
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(attributes=key_values(dict(resource_items))),
                scope_spans=[ScopeSpans(scope=scope, spans=proto_spans)],
            )
        )
    encoded: bytes = request.SerializeToString()
    return encoded


class OtlpDecodeError(ValueError):
    """The body is not a valid OTLP trace export; the message says why (one line)."""


def _from_any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "array_value":
        return [_from_any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _from_any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def decode_spans(body: bytes) -> list[SpanRecord]:
    """Span records from a protobuf ``ExportTraceServiceRequest``.

    Raises ``OtlpDecodeError`` for a body that does not parse or a span without ids.
    """
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except Exception as exc:  # protobuf raises DecodeError, or others on garbage
        raise OtlpDecodeError("Failed to parse OTel Protobuf Trace") from exc
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _from_any_value(kv.value) for kv in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise OtlpDecodeError(
                        "Invalid OTLP trace export: a span lacks a valid traceId or spanId; "
                        "no spans were ingested"
                    )
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() if span.parent_span_id else None,
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
                        attributes={kv.key: _from_any_value(kv.value) for kv in span.attributes},
                        status_code=span.status.code,
                        status_message=span.status.message or None,
                        resource=resource,
                    )
                )
    return records
