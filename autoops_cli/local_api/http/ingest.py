"""The write side of the local API: OTLP trace exports and score creation.

The rules and error bodies follow Langfuse's (API-NOTES.md sections 3 and 4): content type,
gzip, the ``x-langfuse-ingestion-version`` header, whole-export rejection for a malformed
span, ``{}`` on success. Spans are mapped onto rows by ``config.store.otel_mapping`` (the same
mapping local mode uses) and written before the response is sent, so they are readable at
once; writing the same span or score twice stores it once.
"""

from __future__ import annotations

import math
import re
import time
import zlib
from collections.abc import Mapping
from typing import Any

from autoops_cli.local_api.query.errors import ApiProblem
from config.delivery.otlp import OtlpDecodeError, decode_spans
from config.store.local_store import LocalStore
from config.tracing.ids import random_id
from config.tracing.span_records import ScoreRecord, SpanRecord

MAX_INGESTION_VERSION = 4
INFLATE_CHUNK = 1024 * 1024
GZIP_MIN_SIZE = 18  # a 10-byte header and an 8-byte trailer
INT64 = (-(2**63), 2**63 - 1)  # OTLP's intValue; SQLite's integers
UINT64_MAX = 2**64 - 1  # OTLP's fixed64 timestamps
_HEX = re.compile(r"[0-9a-fA-F]+")
SCORE_DATA_TYPES = frozenset({"NUMERIC", "BOOLEAN", "CATEGORICAL", "CORRECTION", "TEXT"})


def _error(message: str) -> ApiProblem:
    return ApiProblem(400, {"error": message})


def check_ingestion_version(value: str | None) -> None:
    """Absent or an integer up to 4 is accepted; anything else is a 400."""
    if value is None:
        return
    try:
        version = int(value.strip())
    except ValueError:
        version = MAX_INGESTION_VERSION + 1
    if version > MAX_INGESTION_VERSION or version < 0:
        raise _error(
            f'Unsupported x-langfuse-ingestion-version: "{value}". '
            f'Maximum supported: "{MAX_INGESTION_VERSION}".'
        )


def _decompressed_too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413,
        {"message": f"Decompressed body exceeds {limit} bytes", "error": "PayloadTooLargeError"},
    )


def decompress(body: bytes, encoding: str | None, *, limit: int) -> bytes:
    """Undo ``Content-Encoding: gzip``, refusing to inflate past ``limit`` bytes (413).

    A gzip bomb is refused early: a trailer announcing more than ``limit`` bytes before
    anything is inflated (its size field is the true size modulo 4 GiB, so a larger claim is
    never a false alarm), and a trailer that lies once the output passes ``limit``:
    inflation runs in chunks of at most ``INFLATE_CHUNK`` bytes and never produces more than
    ``limit + 1``, so memory grows by the limit at most. Concatenated gzip members are one
    body, as ``gzip -d`` reads them.
    """
    if not encoding or encoding.strip().lower() == "identity":
        return body
    if encoding.strip().lower() != "gzip":
        raise _error(f"Unsupported content encoding: {encoding}")
    if len(body) >= GZIP_MIN_SIZE and int.from_bytes(body[-4:], "little") > limit:
        raise _decompressed_too_large(limit)
    parts: list[bytes] = []
    size = 0
    pending = body
    while pending:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not inflater.eof:
            try:
                # max_length bounds each step: a bomb stops one byte past the limit.
                chunk = inflater.decompress(pending, min(INFLATE_CHUNK, limit + 1 - size))
            except zlib.error:
                raise _error("Failed to decompress request body") from None
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > limit:
                raise _decompressed_too_large(limit)
            parts.append(chunk)
            if not chunk and not pending:  # the input ended inside a member
                raise _error("Failed to decompress request body")
        pending = inflater.unused_data
    if not parts:
        raise _error("Failed to decompress request body")
    return parts[0] if len(parts) == 1 else b"".join(parts)


# --- OTLP/JSON ------------------------------------------------------------------------


def _invalid_export(detail: str) -> ApiProblem:
    return _error(f"Invalid OTLP trace export: {detail}; no spans were ingested")


def unicode_text(text: str) -> str:
    """``text`` with lone surrogates (JSON's ``\\ud800``) replaced by U+FFFD.

    JSON can escape half a surrogate pair; JavaScript keeps it, but it is not Unicode and
    SQLite cannot take it (it would fail the whole write). U+FFFD is what the text becomes
    once a JavaScript server writes it as UTF-8.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def storable(value: Any) -> Any:
    """A parsed JSON value whose text is Unicode and whose integers fit SQLite's 64 bits.

    An integer beyond 64 bits becomes a float (what it is to JavaScript), or None past the
    float range; the store could not bind it otherwise.
    """
    if isinstance(value, str):
        return unicode_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else _as_float(value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {unicode_text(str(key)): storable(item) for key, item in value.items()}
    return value


def _as_float(value: int) -> float | None:
    try:
        return float(value)
    except OverflowError:
        return None


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
        raise _error("Failed to parse OTel JSON Trace")
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
                    )
                )
    return records


def ingest_otlp(
    store: LocalStore,
    body: bytes,
    *,
    content_type: str | None,
    content_encoding: str | None,
    ingestion_version: str | None,
    decompressed_limit: int,
) -> dict[str, Any]:
    """Handle ``POST /api/public/otel/v1/traces``; the response body (``{}``)."""
    import json

    kind = (content_type or "").lower()
    if "application/x-protobuf" not in kind and "application/json" not in kind:
        raise _error("Invalid content type")
    check_ingestion_version(ingestion_version)
    data = decompress(body, content_encoding, limit=decompressed_limit)
    if "application/x-protobuf" in kind:
        try:
            spans = decode_spans(data)
        except OtlpDecodeError as exc:
            raise _error(str(exc)) from None
    else:
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            raise _error("Failed to parse OTel JSON Trace") from None
        spans = decode_json_spans(document)
    if spans:
        store.write(spans)
    return {}


# --- scores ---------------------------------------------------------------------------


def _issue(path: str, message: str) -> dict[str, Any]:
    return {"code": "invalid_type", "path": [path], "message": message}


def _score_value(
    body: Mapping[str, Any], data_type: str, issues: list[dict[str, Any]]
) -> float | str:
    value = body.get("value")
    if data_type in ("CATEGORICAL", "TEXT"):
        if not isinstance(value, str):
            issues.append(_issue("value", f"{data_type} scores need a string value"))
            return ""
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        issues.append(_issue("value", "Expected number"))
        return 0.0
    if data_type == "BOOLEAN" and value not in (0, 1):
        issues.append(_issue("value", "BOOLEAN scores take 0 or 1"))
    return float(value)


def _validated_score(body: Any) -> tuple[ScoreRecord | None, list[dict[str, Any]]]:
    """A score record from a ``CreateScoreRequest`` body, or the validation issues."""
    if not isinstance(body, dict):
        return None, [_issue("", "Expected object")]
    issues: list[dict[str, Any]] = []
    name = body.get("name")
    if not isinstance(name, str) or not name:
        issues.append(_issue("name", "Required"))
    data_type = body.get("dataType") or (
        "CATEGORICAL" if isinstance(body.get("value"), str) else "NUMERIC"
    )
    if data_type not in SCORE_DATA_TYPES:
        issues.append(
            _issue("dataType", f"Invalid enum value, expected one of {sorted(SCORE_DATA_TYPES)}")
        )
    value = _score_value(body, str(data_type), issues)
    for key in (
        "id",
        "traceId",
        "observationId",
        "sessionId",
        "comment",
        "environment",
        "configId",
    ):
        if body.get(key) is not None and not isinstance(body[key], str):
            issues.append(_issue(key, "Expected string"))
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        issues.append(_issue("metadata", "Expected object"))
    if not any(body.get(k) for k in ("traceId", "observationId", "sessionId", "datasetRunId")):
        issues.append(
            _issue("traceId", "A score needs a traceId, observationId, sessionId or datasetRunId")
        )
    if issues:
        return None, issues
    record = ScoreRecord(
        id=body.get("id") or random_id(),
        trace_id=body.get("traceId"),
        observation_id=body.get("observationId"),
        name=str(name),
        value=value,
        timestamp_ns=time.time_ns(),
        data_type=str(data_type),
        comment=body.get("comment"),
        session_id=body.get("sessionId"),
        environment=body.get("environment") or "default",
        metadata=metadata,
    )
    return record, []


def create_scores(store: LocalStore, body: Any) -> tuple[int, dict[str, Any]]:
    """Handle ``POST /api/public/scores``; the status and the body.

    One ``CreateScoreRequest`` object: 200 ``{"id"}`` (the spec). A list of them, as the SDK 5
    sends: the valid ones are stored; 202 ``{"message": "Accepted"}`` when all were, else 207
    with ``accepted``, ``rejected`` and one error per rejected score. Idempotent on ids.
    """
    body = storable(body)
    if isinstance(body, list):
        records: list[ScoreRecord] = []
        errors: list[dict[str, str]] = []
        for index, item in enumerate(body):
            record, issues = _validated_score(item)
            if record is None:
                errors.append(
                    {"message": f"score {index}: " + "; ".join(i["message"] for i in issues)}
                )
            else:
                records.append(record)
        if records:
            store.write([], records)
        if errors:
            return 207, {"accepted": len(records), "rejected": len(errors), "errors": errors}
        return 202, {"message": "Accepted"}
    record, issues = _validated_score(body)
    if record is None:
        raise ApiProblem(400, {"message": "Invalid request data", "error": issues})
    store.write([], [record])
    return 200, {"id": record.id}
