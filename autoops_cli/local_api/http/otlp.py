"""``POST /api/public/otel/v1/traces``: OTLP trace exports, protobuf or JSON.

The rules and error bodies follow Langfuse's (API-NOTES.md section 3): content type, gzip,
the ``x-langfuse-ingestion-version`` header, whole-export rejection for a malformed span,
``{}`` on success. Spans keep their resource and instrumentation scope, which the mapping
(``config.store.otel_mapping``, the same local mode uses) needs to tell a Langfuse SDK's
spans from other instrumentations'. They are written before the response is sent, so they
are readable at once; writing the same span twice stores it once.

A large export is decoded with memory in mind: the inflated body is dropped once parsed,
the parsed message once converted to span records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from autoops_cli.local_api.http.bodies import INT64, decompress, error
from autoops_cli.local_api.query.errors import ApiProblem
from config.json_values import unicode_text
from config.store.local_store import LocalStore
from config.store.otel_mapping import map_spans
from config.tracing.span_records import SpanRecord

MAX_INGESTION_VERSION = 4
UINT64_MAX = 2**64 - 1  # OTLP's fixed64 timestamps
_HEX = re.compile(r"[0-9a-fA-F]+")


class Body:
    """A request body passed on by reference: ``take()`` hands it over and drops this
    reference, so the bytes can be freed as soon as the decoder is done with them."""

    def __init__(self, data: bytes | bytearray) -> None:
        self._data: bytes | bytearray | None = data

    def peek(self) -> bytes | bytearray:
        """The body, kept here."""
        assert self._data is not None, "a request body is taken once"
        return self._data

    def take(self) -> bytes | bytearray:
        """The body, no longer kept here."""
        data = self.peek()
        self._data = None
        return data


def check_ingestion_version(value: str | None) -> None:
    """Absent or an integer up to 4 is accepted; anything else is a 400."""
    if value is None:
        return
    try:
        version = int(value.strip())
    except ValueError:
        version = MAX_INGESTION_VERSION + 1
    if version > MAX_INGESTION_VERSION or version < 0:
        raise error(
            f'Unsupported x-langfuse-ingestion-version: "{value}". '
            f'Maximum supported: "{MAX_INGESTION_VERSION}".'
        )


def _scope(name: Any, version: Any, attributes: dict[str, Any]) -> dict[str, Any]:
    """An instrumentation scope as Langfuse keeps it in metadata (name, version, attributes)."""
    scope: dict[str, Any] = {"name": unicode_text(str(name or ""))}
    if version:
        scope["version"] = unicode_text(str(version))
    scope["attributes"] = attributes
    return scope


# --- OTLP/protobuf ----------------------------------------------------------------------


def _any_value(value: Any) -> Any:
    """A protobuf ``AnyValue`` as a plain value (bytes as hex)."""
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
        return [_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return None


def _key_values(items: Any) -> dict[str, Any]:
    return {kv.key: _any_value(kv.value) for kv in items}


# Spans decoded, mapped and written at a time: a span costs some 2 KB as records and rows,
# some fifty times its protobuf bytes, and a 24 MB export of small spans took 1.3 GB at once.
PROTOBUF_CHUNK_SPANS = 2_000


def decode_protobuf_spans(body: Body) -> list[SpanRecord]:
    """Span records (with resource and scope) from a protobuf ``ExportTraceServiceRequest``."""
    return [record for chunk in protobuf_span_chunks(body) for record in chunk]


def protobuf_span_chunks(
    body: Body, size: int = PROTOBUF_CHUNK_SPANS
) -> Iterator[list[SpanRecord]]:
    """The span records of a protobuf ``ExportTraceServiceRequest``, ``size`` at a time.

    The body is taken from ``body`` and dropped once parsed. Every span's ids are checked
    before the first chunk: a bad one refuses the whole export, nothing of it written.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    data = body.take()
    try:
        request.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError, or others on garbage
        raise error("Failed to parse OTel Protobuf Trace") from None
    del data
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    raise _invalid_export("a span lacks a valid traceId or spanId")
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        resource = _key_values(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            raw_scope = scope_spans.scope
            scope = _scope(raw_scope.name, raw_scope.version, _key_values(raw_scope.attributes))
            for span in scope_spans.spans:
                records.append(
                    SpanRecord(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() if span.parent_span_id else None,
                        name=span.name,
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
                        attributes=_key_values(span.attributes),
                        status_code=span.status.code,
                        status_message=span.status.message or None,
                        resource=resource,
                        scope=scope,
                    )
                )
                if len(records) >= size:
                    yield records
                    records = []
    if records:
        yield records


# --- OTLP/JSON --------------------------------------------------------------------------


def _invalid_export(detail: str) -> ApiProblem:
    return error(f"Invalid OTLP trace export: {detail}; no spans were ingested")


def _json_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    if "stringValue" in value:
        return unicode_text(str(value["stringValue"]))
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:  # int64 travels as a string in OTLP/JSON
        try:
            number = int(value["intValue"])
        except (TypeError, ValueError, OverflowError):  # OverflowError: 1e999 is inf
            return None
        return number if INT64[0] <= number <= INT64[1] else None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in value:
        items = _object(value["arrayValue"]).get("values") or []
        return [_json_value(item) for item in items] if isinstance(items, list) else None
    if "kvlistValue" in value:
        pairs = _object(value["kvlistValue"]).get("values") or []
        return _json_attributes(pairs, "kvlistValue") if isinstance(pairs, list) else None
    return None


def _object(value: Any) -> dict[str, Any]:
    """A JSON object, or an empty one for anything else (a wrong type is no attribute)."""
    return value if isinstance(value, dict) else {}


def _json_attributes(items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise _invalid_export(f"{where} must be an array")
    found: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            found[unicode_text(item["key"])] = _json_value(item.get("value"))
    return found


def _hex_id(value: Any, length: int, name: str) -> str:
    # Not int(value, 16): it takes underscores, spaces and non-ASCII digits.
    if not isinstance(value, str) or len(value) != length or not _HEX.fullmatch(value):
        raise _invalid_export(f"span without a valid {name}")
    return value.lower()


def _nanos(value: Any, name: str) -> int:
    """A fixed64 time (a string or a number in OTLP/JSON); 0 when not a number."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    except OverflowError:  # 1e999 is inf
        number = -1
    if not 0 <= number <= UINT64_MAX:
        raise _invalid_export(f"span with {name} out of range")
    return number


def _status_code(value: Any) -> int:
    try:
        code = int(value)
    except (TypeError, ValueError, OverflowError):
        return 0
    return code if 0 <= code <= 2 else 0  # UNSET, OK, ERROR


def _list(container: Mapping[str, Any], key: str) -> list[Any]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_export(f"{key} must be an array")
    return value


def decode_json_spans(document: Any) -> list[SpanRecord]:
    """Span records from an OTLP/JSON ``ExportTraceServiceRequest`` (ids as hex strings)."""
    if not isinstance(document, dict):
        raise error("Failed to parse OTel JSON Trace")
    records: list[SpanRecord] = []
    for resource_spans in _list(document, "resourceSpans"):
        if not isinstance(resource_spans, dict):
            raise _invalid_export("resourceSpans entries must be objects")
        resource = _json_attributes(
            _object(resource_spans.get("resource")).get("attributes"), "attributes"
        )
        for scope_spans in _list(resource_spans, "scopeSpans"):
            if not isinstance(scope_spans, dict):
                raise _invalid_export("scopeSpans entries must be objects")
            raw_scope = _object(scope_spans.get("scope"))
            scope = _scope(
                raw_scope.get("name"),
                raw_scope.get("version"),
                _json_attributes(raw_scope.get("attributes"), "attributes"),
            )
            for span in _list(scope_spans, "spans"):
                if not isinstance(span, dict):
                    raise _invalid_export("spans entries must be objects")
                parent = span.get("parentSpanId") or None
                start = _nanos(span.get("startTimeUnixNano"), "startTimeUnixNano")
                raw_status = span.get("status")
                status: dict[str, Any] = raw_status if isinstance(raw_status, dict) else {}
                _list(span, "events")  # validated like Langfuse does, not stored
                records.append(
                    SpanRecord(
                        trace_id=_hex_id(span.get("traceId"), 32, "traceId"),
                        span_id=_hex_id(span.get("spanId"), 16, "spanId"),
                        parent_span_id=_hex_id(parent, 16, "parentSpanId") if parent else None,
                        name=unicode_text(str(span.get("name") or "")),
                        start_ns=start,
                        end_ns=_nanos(span.get("endTimeUnixNano"), "endTimeUnixNano") or start,
                        attributes=_json_attributes(span.get("attributes"), "attributes"),
                        status_code=_status_code(status.get("code")),
                        status_message=unicode_text(str(status.get("message") or "")) or None,
                        resource=resource,
                        scope=scope,
                    )
                )
    return records


def ingest_otlp(
    store: LocalStore,
    body: Body,
    *,
    content_type: str | None,
    content_encoding: str | None,
    ingestion_version: str | None,
    decompressed_limit: int,
    reserved: int | None = None,
) -> dict[str, Any]:
    """Handle ``POST /api/public/otel/v1/traces``; the response body (``{}``).

    ``reserved``: the memory set aside for the inflated body (``decompress``).
    """
    kind = (content_type or "").lower()
    if "application/x-protobuf" not in kind and "application/json" not in kind:
        raise error("Invalid content type")
    check_ingestion_version(ingestion_version)
    # The raw body is dropped only once inflated: a caller that reserved too little memory
    # (InflatedPastReservation) retries with the same body.
    inflated = Body(
        decompress(body.peek(), content_encoding, limit=decompressed_limit, reserved=reserved)
    )
    body.take()
    if "application/x-protobuf" in kind:
        chunks: Iterable[list[SpanRecord]] = protobuf_span_chunks(inflated)
    else:
        try:
            document = json.loads(inflated.take())
        except (ValueError, RecursionError):
            raise error("Failed to parse OTel JSON Trace") from None
        chunks = [decode_json_spans(document)]
        del document
    for spans in chunks:
        if not spans:
            continue
        # Mapped here, the span records dropped before the write: their attribute values
        # and the rows' JSON text are never in memory together with SQLite's copy.
        mapped = map_spans(spans)
        del spans
        store.write_rows(mapped.traces.values(), mapped.observations)
        del mapped
    return {}
