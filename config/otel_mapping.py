"""Spans with Langfuse attributes -> Langfuse traces and observations.

The mapping Langfuse's OTLP ingestion applies (API-NOTES.md section 9, server code
``packages/shared/src/server/otel/attributes.ts``): ids from the OTel ids, the root span seeds
the trace, trace-level attributes may come from any span of the trace, observation type,
level, status, input, output and metadata from the ``langfuse.observation.*`` attributes.
Used by the local store in local mode and by ``autoops serve`` for what it ingests, so the
two hold the same rows for the same spans.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring as _encode_string
from typing import Any

from config import langfuse_attributes as la
from config.span_records import STATUS_ERROR, SpanRecord

LEVEL_ALIASES = {"INFO": "DEFAULT", "WARN": "WARNING", "FATAL": "ERROR", "CRITICAL": "ERROR"}
GENERATION_HINTS = (
    la.OBSERVATION_MODEL,
    la.OBSERVATION_USAGE_DETAILS,
    la.OBSERVATION_COST_DETAILS,
    la.OBSERVATION_COMPLETION_START_TIME,
    la.OBSERVATION_MODEL_PARAMETERS,
    "gen_ai.request.model",
    "gen_ai.response.model",
)
SESSION_KEYS = (la.TRACE_SESSION_ID, "langfuse.session.id", "gen_ai.conversation.id")
USER_KEYS = (la.TRACE_USER_ID, "langfuse.user.id")
TAG_KEYS = (la.TRACE_TAGS, "langfuse.tags")
ENVIRONMENT_KEYS = (la.ENVIRONMENT, "deployment.environment.name", "deployment.environment")
TRACE_INPUT = "langfuse.trace.input"
TRACE_OUTPUT = "langfuse.trace.output"

TRACE_COLUMNS = (
    "id", "timestamp_us", "name", "user_id", "session_id", "release", "version",
    "environment", "tags", "metadata", "input", "output", "public",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "id", "trace_id", "parent_observation_id", "type", "name", "start_us", "end_us", "level", "status_message", "input", "output", "metadata",
    "environment", "release", "version", "model", "model_parameters", "usage_details",
    "cost_details", "completion_start_time", "prompt_name", "prompt_version",
)  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    return datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_from_ns(ns: int) -> str:
    """Langfuse's timestamp format: UTC, millisecond precision, ``Z``.

    The seconds part is cached: a batch's spans share a handful of seconds, and formatting
    a datetime twice per observation was a tenth of the store's write cost.
    """
    second, rest = divmod(ns, 1_000_000_000)
    return f"{_iso_second(second)}.{rest // 1_000_000:03d}Z"


def _decode(value: Any) -> Any:
    """Decode a JSON-encoded attribute value; anything that is not JSON stays as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _first(attributes: dict[str, Any], keys: Iterable[str]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def _metadata(attributes: dict[str, Any], whole_key: str, prefix: str) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    whole = attributes.get(whole_key)
    if whole is not None:
        decoded = _decode(whole)
        found.update(decoded if isinstance(decoded, dict) else {"metadata": decoded})
    for key, value in attributes.items():
        if key.startswith(prefix):
            found[key[len(prefix) :]] = _decode(value)
    return found or None


def _tags(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        decoded = _decode(value)
        value = decoded if isinstance(decoded, list) else [value]
    if isinstance(value, (list, tuple)):
        return [str(tag) for tag in value]
    return [str(value)]


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else la.to_json(value)


def _observation_type(attributes: dict[str, Any]) -> str:
    declared = attributes.get(la.OBSERVATION_TYPE)
    if isinstance(declared, str) and declared.lower() in la.OBSERVATION_TYPES:
        return declared.upper()
    if any(attributes.get(key) is not None for key in GENERATION_HINTS):
        return "GENERATION"
    return "SPAN"


def _level(span: SpanRecord) -> str:
    declared = span.attributes.get(la.OBSERVATION_LEVEL)
    if isinstance(declared, str):
        upper = declared.upper()
        upper = LEVEL_ALIASES.get(upper, upper)
        if upper in la.LEVELS:
            return upper
    return "ERROR" if span.status_code == STATUS_ERROR else "DEFAULT"


def _metadata_text(
    attributes: dict[str, Any], whole_key: str, prefix: str, trusted: bool
) -> str | None:
    """The metadata object as JSON text.

    Values the core wrote itself are already JSON: they are spliced into the object as they
    are (parsing and re-encoding every value would cost more than the rest of the mapping).
    """
    if trusted and whole_key not in attributes:
        start = len(prefix)
        parts = [
            f"{_encode_string(key[start:])}:{value}"
            for key, value in attributes.items()
            if key.startswith(prefix) and isinstance(value, str)
        ]
        return "{" + ",".join(parts) + "}" if parts else None
    metadata = _metadata(attributes, whole_key, prefix)
    return la.to_json(metadata) if metadata else None


@dataclass
class MappedBatch:
    """Trace rows (merged per trace id) and observation rows of a batch of spans."""

    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    observations: list[dict[str, Any]] = field(default_factory=list)


def _merge_trace(batch: MappedBatch, span: SpanRecord, environment: str, release: Any) -> None:
    attributes = span.attributes
    is_root = span.parent_span_id is None
    row = batch.traces.get(span.trace_id)
    if row is not None and span.trusted_json and not is_root:
        # The core puts the same trace-level attributes on every span of a trace: past the
        # first one only the trace's start time can change (the root carries the rest).
        row["timestamp_us"] = min(row["timestamp_us"], span.start_ns // 1000)
        return
    if row is None:
        row = {column: None for column in TRACE_COLUMNS}
        row["id"] = span.trace_id
        row["timestamp_us"] = span.start_ns // 1000
        batch.traces[span.trace_id] = row
    elif span.start_ns // 1000 < row["timestamp_us"]:
        row["timestamp_us"] = span.start_ns // 1000
    name = attributes.get(la.TRACE_NAME) or (span.name if is_root else None)
    updates = {
        "name": name,
        "user_id": _first(attributes, USER_KEYS),
        "session_id": _first(attributes, SESSION_KEYS),
        "tags": _tags(_first(attributes, TAG_KEYS)),
        "metadata": _metadata(attributes, la.TRACE_METADATA, la.TRACE_METADATA_PREFIX),
        "input": attributes.get(TRACE_INPUT)
        or (attributes.get(la.OBSERVATION_INPUT) if is_root else None),
        "output": attributes.get(TRACE_OUTPUT)
        or (attributes.get(la.OBSERVATION_OUTPUT) if is_root else None),
        "public": attributes.get(la.TRACE_PUBLIC),
        "environment": environment,
        "release": release,
        "version": attributes.get(la.VERSION),
    }
    for column, value in updates.items():
        if value is None:
            continue
        if column == "metadata" and row["metadata"]:
            row["metadata"] = {**row["metadata"], **value}
        elif column == "name" and row["name"] and not is_root and la.TRACE_NAME not in attributes:
            continue
        else:
            row[column] = value


_NO_GENERATION_FIELDS = dict.fromkeys(
    ("model", "model_parameters", "usage_details", "cost_details", "completion_start_time",
     "prompt_name", "prompt_version"),
)  # fmt: skip


def _generation_fields(attributes: dict[str, Any]) -> dict[str, Any]:
    """Model, usage, cost and prompt fields: present on generations only, so looked up only then."""
    return {
        "model": _first(attributes, (la.OBSERVATION_MODEL, "gen_ai.request.model")),
        "model_parameters": _json_text(attributes.get(la.OBSERVATION_MODEL_PARAMETERS)),
        "usage_details": _json_text(attributes.get(la.OBSERVATION_USAGE_DETAILS)),
        "cost_details": _json_text(attributes.get(la.OBSERVATION_COST_DETAILS)),
        "completion_start_time": _decode(attributes.get(la.OBSERVATION_COMPLETION_START_TIME)),
        "prompt_name": attributes.get(la.OBSERVATION_PROMPT_NAME),
        "prompt_version": attributes.get(la.OBSERVATION_PROMPT_VERSION),
    }


def map_spans(spans: Iterable[SpanRecord]) -> MappedBatch:
    """Map spans onto trace rows and observation rows (JSON fields as text)."""
    batch = MappedBatch()
    for span in spans:
        attributes = span.attributes
        environment = attributes.get(la.ENVIRONMENT) or _first(attributes, ENVIRONMENT_KEYS)
        environment = environment or _first(span.resource, ENVIRONMENT_KEYS)
        environment = str(environment) if environment else "default"
        release = attributes.get(la.RELEASE) or span.resource.get(la.RELEASE)
        version = attributes.get(la.VERSION) or span.resource.get("service.version")
        _merge_trace(batch, span, environment, release)
        observation_type = _observation_type(attributes)
        row = {
            "id": span.span_id,
            "trace_id": span.trace_id,
            "parent_observation_id": span.parent_span_id,
            "type": observation_type,
            "name": span.name,
            "start_us": span.start_ns // 1000,
            "end_us": span.end_ns // 1000,
            "level": _level(span),
            "status_message": attributes.get(la.OBSERVATION_STATUS_MESSAGE) or span.status_message,
            "input": _json_text(attributes.get(la.OBSERVATION_INPUT)),
            "output": _json_text(attributes.get(la.OBSERVATION_OUTPUT)),
            "metadata": _metadata_text(
                attributes,
                la.OBSERVATION_METADATA,
                la.OBSERVATION_METADATA_PREFIX,
                span.trusted_json,
            ),
            "environment": environment,
            "release": release,
            "version": version,
        }
        if observation_type == "GENERATION" or la.OBSERVATION_MODEL in attributes:
            row.update(_generation_fields(attributes))
        else:
            row.update(_NO_GENERATION_FIELDS)
        batch.observations.append(row)
    for row in batch.traces.values():
        row["tags"] = la.to_json(row["tags"]) if row["tags"] is not None else None
        row["metadata"] = la.to_json(row["metadata"]) if row["metadata"] else None
        row["input"] = _json_text(row["input"])
        row["output"] = _json_text(row["output"])
        if row["public"] is not None:
            row["public"] = 1 if row["public"] in (True, "true", "True", 1) else 0
    return batch
