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
from json.encoder import encode_basestring as _encode_string
from typing import Any

from config.store.rows import TRACE_COLUMNS
from config.tracing import attributes as la
from config.tracing.span_records import STATUS_ERROR, SpanRecord

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

_NOT_JSON = object()


@functools.lru_cache(maxsize=8192)
def _parse_short(text: str) -> Any:
    # Spans of one trace repeat the same propagated values (session, tags, trace metadata):
    # parsing each distinct short text once keeps ingestion of SDK batches fast. Callers
    # never mutate what comes back (the cache shares it).
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _parse(text: str) -> Any:
    """The JSON value of ``text``, or ``_NOT_JSON``."""
    if len(text) <= 512:
        return _parse_short(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return _NOT_JSON


def _decode(value: Any) -> Any:
    """Decode a JSON-encoded attribute value; anything that is not JSON stays as it is."""
    if not isinstance(value, str):
        return value
    parsed = _parse(value)
    return value if parsed is _NOT_JSON else parsed


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
    if whole_key in attributes:
        metadata = _metadata(attributes, whole_key, prefix)
        return la.to_json(metadata) if metadata else None
    start = len(prefix)
    parts = []
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        if not isinstance(value, str):
            text = la.to_json(value)
        elif trusted or _parse(value) is not _NOT_JSON:
            text = value  # already JSON: spliced as it is
        else:
            text = _encode_string(value)  # a plain string from another client
        parts.append(f"{_encode_string(key[start:])}:{text}")
    return "{" + ",".join(parts) + "}" if parts else None


@dataclass
class MappedBatch:
    """Trace rows (merged per trace id) and observation rows of a batch of spans."""

    traces: dict[str, dict[str, Any]] = field(default_factory=dict)
    observations: list[dict[str, Any]] = field(default_factory=list)


# Trace-level attributes -> trace columns; earlier keys of a column take precedence.
TRACE_ATTRIBUTE_COLUMNS: dict[str, tuple[str, int]] = {
    la.TRACE_NAME: ("name", 0),
    **{key: ("user_id", rank) for rank, key in enumerate(USER_KEYS)},
    **{key: ("session_id", rank) for rank, key in enumerate(SESSION_KEYS)},
    **{key: ("tags", rank) for rank, key in enumerate(TAG_KEYS)},
    la.TRACE_PUBLIC: ("public", 0),
    la.VERSION: ("version", 0),
    TRACE_INPUT: ("input", 0),
    TRACE_OUTPUT: ("output", 0),
}


def _trace_attributes(attributes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trace columns a span sets and its trace metadata, in one pass over its attributes."""
    found: dict[str, tuple[int, Any]] = {}
    metadata: dict[str, Any] | None = None
    prefix = la.TRACE_METADATA_PREFIX
    for key, value in attributes.items():
        if value is None:
            continue
        target = TRACE_ATTRIBUTE_COLUMNS.get(key)
        if target is not None:
            column, rank = target
            if column not in found or rank < found[column][0]:
                found[column] = (rank, value)
        elif key.startswith(prefix) or key == la.TRACE_METADATA:
            if metadata is None:
                metadata = {}
            if key == la.TRACE_METADATA:
                decoded = _decode(value)
                metadata.update(decoded if isinstance(decoded, dict) else {"metadata": decoded})
            else:
                metadata[key[len(prefix) :]] = _decode(value)
    return {column: value for column, (_, value) in found.items()}, metadata


def _merge_trace(batch: MappedBatch, span: SpanRecord, environment: str, release: Any) -> None:
    attributes = span.attributes
    is_root = span.parent_span_id is None
    start_us = span.start_ns // 1000
    row = batch.traces.get(span.trace_id)
    if row is not None and span.trusted_json and not is_root:
        # The core puts the same trace-level attributes on every span of a trace: past the
        # first one only the trace's start time can change (the root carries the rest).
        row["timestamp_us"] = min(row["timestamp_us"], start_us)
        return
    if row is None:
        row = {column: None for column in TRACE_COLUMNS}
        row["id"] = span.trace_id
        row["timestamp_us"] = start_us
        batch.traces[span.trace_id] = row
    elif start_us < row["timestamp_us"]:
        row["timestamp_us"] = start_us
    updates, metadata = _trace_attributes(attributes)
    if is_root:
        # The root span seeds the trace's name, input and output.
        if "name" not in updates and row["name"] is None:
            updates["name"] = span.name
        updates.setdefault("input", attributes.get(la.OBSERVATION_INPUT))
        updates.setdefault("output", attributes.get(la.OBSERVATION_OUTPUT))
    if "tags" in updates:
        updates["tags"] = _tags(updates["tags"])
    updates["environment"] = environment
    updates["release"] = release
    for column, value in updates.items():
        if value is not None:
            row[column] = value
    if metadata:
        row["metadata"] = {**row["metadata"], **metadata} if row["metadata"] else metadata


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
