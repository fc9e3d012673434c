"""Spans -> Langfuse traces and observations, as Langfuse's OTel ingestion maps them.

The mapping of Langfuse's OTLP ingestion (API-NOTES.md section 9, server code
``packages/shared/src/server/otel/``): ids from the OTel ids, the root span seeds the trace,
trace-level attributes may come from any span of the trace, observation type, level,
status, input, output and metadata from the ``langfuse.*`` attributes. An observation's
metadata also holds the trace metadata its own span carries (``langfuse.trace.metadata.*``),
as Langfuse's v4 observations show it.

Spans from other instrumentations (an instrumentation scope not named ``langfuse-sdk``) get
what Langfuse gives them: the GenAI and OpenInference conventions (``otel_conventions``) for
type, name, input, output, model, usage, cost and model parameters, and metadata holding
the span's own attributes, its resource's and its scope under ``attributes``,
``resourceAttributes`` and ``scope``. Langfuse also adds ``resourceAttributes`` and ``scope``
to a Langfuse SDK span's metadata; here they are left out, so the core's rows stay lean and
local mode (whose spans have no scope) stores exactly what ``autoops serve`` stores for the
same spans. Used by both, through ``LocalStore.write``.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _encode_string
from typing import Any

from config.store import otel_conventions as _conventions
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
SESSION_KEYS = (la.TRACE_SESSION_ID, "langfuse.session.id", "session.id", "gen_ai.conversation.id")
USER_KEYS = (la.TRACE_USER_ID, "langfuse.user.id", "user.id")
TAG_KEYS = (la.TRACE_TAGS, "langfuse.tags")
ENVIRONMENT_KEYS = (la.ENVIRONMENT, "deployment.environment.name", "deployment.environment")
PROMPT_NAME_KEYS = (la.OBSERVATION_PROMPT_NAME, "langfuse.prompt.name")
PROMPT_VERSION_KEYS = (la.OBSERVATION_PROMPT_VERSION, "langfuse.prompt.version")
PUBLIC_KEYS = (la.TRACE_PUBLIC, "langfuse.public")
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


def _timestamp_text(value: Any) -> str | None:
    """A timestamp attribute (JSON-encoded, as the SDK writes it) as the text the store
    keeps; None for anything that is no text (a number of 26 digits overflowed SQLite's
    integer, a map could not be bound: a 500 or a 503 for the whole export)."""
    decoded = _decode(value)
    return decoded if isinstance(decoded, str) else None


# What SQLite binds as it is; an int past 64 bits overflows it.
_SQLITE_INT_RANGE = range(-(2**63), 2**63)


def _numeric_details(row: dict[str, Any]) -> None:
    """Usage details as whole numbers and cost details as numbers, the rest dropped, as the
    ingestion API takes them and the reads answer them. Stored as sent ("12", 10.7), the
    observation reads showed {} or 10 where the metrics summed 12 and 10.7."""
    for column, kind in (("usage_details", int), ("cost_details", float)):
        text = row.get(column)
        if text is None:
            continue
        parsed = _parse(text) if isinstance(text, str) else text
        if column == "usage_details" and isinstance(parsed, dict):
            # OpenAI's shape (what Langfuse's OpenAI integration sends) as Langfuse reads it:
            # kept as sent, its total summed prompt, completion and total tokens again.
            parsed = _conventions.openai_usage(parsed) or parsed
        kept = {
            str(key): kind(value)
            for key, value in (parsed.items() if isinstance(parsed, dict) else ())
            if isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and abs(value) < 2**63  # what SQLite's JSON functions sum as integers
        }
        row[column] = la.to_json(kept) if kept else None


def _bindable(row: dict[str, Any]) -> None:
    """The row's values as SQLite can bind them, for spans from other clients: an attribute
    sent as an array or a map where Langfuse expects a string (``user.id``, a release, a
    status message) becomes its JSON text, an int past 64 bits a float. It stopped the
    whole export with a 503 the client would retry for ever."""
    for key, value in row.items():
        kind = type(value)
        if value is None or kind is str or kind is float or kind is bool:
            continue
        if kind is int:
            if value not in _SQLITE_INT_RANGE:
                row[key] = float(value)
            continue
        row[key] = la.to_json(value)


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
        if isinstance(decoded, list):
            value = decoded
        else:  # "a,b" is two tags, as Langfuse splits them
            value = [tag.strip() for tag in value.split(",")] if "," in value else [value]
    if isinstance(value, (list, tuple)):
        return [str(tag) for tag in value]
    return [str(value)]


def _environment(attributes: dict[str, Any], resource: dict[str, Any]) -> str:
    """The span's environment: each of ``ENVIRONMENT_KEYS`` in turn, on the span and then on
    its resource (Langfuse's order), normalized as Langfuse does."""
    for key in ENVIRONMENT_KEYS:
        value = attributes.get(key) or resource.get(key)
        if value:
            return _normal_environment(value if isinstance(value, str) else str(value))
    return "default"


_ENVIRONMENT_PREFIX = re.compile(r"^(?:langfuse[-_]?)+")
_ENVIRONMENT_NAME = re.compile(r"[a-z0-9_-]+")


@functools.lru_cache(maxsize=256)
def _normal_environment(value: str) -> str:
    """Langfuse's ``PublicEnvironmentName``: lowercased, its reserved ``langfuse`` prefixes
    removed, cut to 40 characters; "default" for what is then not ``[a-z0-9_-]+``. Kept as
    sent, "Production" was a value the API's own filters and ingestion refuse."""
    name = _ENVIRONMENT_PREFIX.sub("", value.lower())[:40]
    return name if _ENVIRONMENT_NAME.fullmatch(name) else "default"


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else la.to_json(value)


def _observation_type(attributes: dict[str, Any], *, conventions: bool = False) -> str:
    """Langfuse's declared type; then, for spans of other instrumentations, the GenAI and
    OpenInference conventions; then a generation's attributes make one."""
    declared = attributes.get(la.OBSERVATION_TYPE)
    if isinstance(declared, str) and declared.lower() in la.OBSERVATION_TYPES:
        return declared.upper()
    if conventions:
        found = _conventions.observation_type(attributes)
        if found is not None:
            return found
    if any(attributes.get(key) is not None for key in GENERATION_HINTS):
        return "GENERATION"
    return "SPAN"


def _root_io(attributes: dict[str, Any]) -> tuple[Any, Any]:
    """A foreign root span's trace input and output: Langfuse's trace attributes, else the
    span's own (by the conventions)."""
    found_input, found_output = _conventions.input_output(attributes)
    trace_input = attributes.get(TRACE_INPUT)
    trace_output = attributes.get(TRACE_OUTPUT)
    return (
        trace_input if trace_input is not None else found_input,
        trace_output if trace_output is not None else found_output,
    )


def _level(span: SpanRecord) -> str:
    declared = span.attributes.get(la.OBSERVATION_LEVEL)
    if isinstance(declared, str):
        upper = declared.upper()
        upper = LEVEL_ALIASES.get(upper, upper)
        if upper in la.LEVELS:
            return upper
    return "ERROR" if span.status_code == STATUS_ERROR else "DEFAULT"


def _langfuse_metadata(attributes: dict[str, Any]) -> dict[str, Any]:
    """The observation metadata and, over it, the trace metadata of one span (decoded)."""
    return {
        **(_metadata(attributes, la.OBSERVATION_METADATA, la.OBSERVATION_METADATA_PREFIX) or {}),
        **(_metadata(attributes, la.TRACE_METADATA, la.TRACE_METADATA_PREFIX) or {}),
    }


def _metadata_text(attributes: dict[str, Any], trusted: bool) -> str | None:
    """The observation's metadata object as JSON text: its own metadata attributes, then
    the trace metadata attributes of the same span (which win a key both have).

    Values the core wrote itself are already JSON: they are spliced into the object as they
    are (parsing and re-encoding every value would cost more than the rest of the mapping).
    """
    if la.OBSERVATION_METADATA in attributes or la.TRACE_METADATA in attributes:
        metadata = _langfuse_metadata(attributes)
        return la.to_json(metadata) if metadata else None
    own: dict[str, str] = {}
    trace: dict[str, str] = {}
    for key, value in attributes.items():
        if key.startswith(la.OBSERVATION_METADATA_PREFIX):
            target, name = own, key[len(la.OBSERVATION_METADATA_PREFIX) :]
        elif key.startswith(la.TRACE_METADATA_PREFIX):
            target, name = trace, key[len(la.TRACE_METADATA_PREFIX) :]
        else:
            continue
        if not isinstance(value, str):
            target[name] = la.to_json(value)
        elif trusted or _parse(value) is not _NOT_JSON:
            target[name] = value  # already JSON: spliced as it is
        else:
            target[name] = _encode_string(value)  # a plain string from another client
    if not own and not trace:
        return None
    own.update(trace)
    return "{" + ",".join(f"{_encode_string(key)}:{text}" for key, text in own.items()) + "}"


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
    **{key: ("public", rank) for rank, key in enumerate(PUBLIC_KEYS)},
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


def _sets_trace_metadata(span: SpanRecord) -> bool:
    """Whether a span carries trace metadata: the root does, and an observation the
    application called ``update_trace_metadata`` on (its keys were dropped past the first
    span of a trace in a batch)."""
    return any(key.startswith(la.TRACE_METADATA) for key in span.attributes)


def _merge_trace(
    batch: MappedBatch,
    span: SpanRecord,
    environment: str,
    release: Any,
    root_io: tuple[Any, Any] | None = None,
) -> None:
    """Merge what ``span`` says about its trace into the trace's row.

    ``root_io`` is the input and output a span from another instrumentation carries (the
    conventions found them); a root span seeds the trace's with it.
    """
    attributes = span.attributes
    is_root = _is_trace_root(span)
    start_us = span.start_ns // 1000
    row = batch.traces.get(span.trace_id)
    if row is not None and span.trusted_json and not is_root and not _sets_trace_metadata(span):
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
        # The root's own metadata is the trace's too, over its trace metadata, as Langfuse
        # builds a root span's trace (the metadata set on an entry point was not read back).
        own = _metadata(attributes, la.OBSERVATION_METADATA, la.OBSERVATION_METADATA_PREFIX)
        if own and la.OBSERVATION_SEQUENCE in attributes:
            # The core's order of the root in its trace, not the trace's: it replaced an
            # event's own "sequence" field in the trace's metadata.
            own.pop("sequence", None)
        if own:
            metadata = {**(metadata or {}), **own}
        # The root span seeds the trace's name, input and output.
        if "name" not in updates and row["name"] is None:
            updates["name"] = _conventions.observation_name(span.name, attributes)
        if root_io is None:
            root_io = attributes.get(la.OBSERVATION_INPUT), attributes.get(la.OBSERVATION_OUTPUT)
        updates.setdefault("input", root_io[0])
        updates.setdefault("output", root_io[1])
    if "tags" in updates:
        updates["tags"] = _tags(updates["tags"])
        if updates["tags"] is not None and row["tags"] is not None:
            # Tags add up, as Langfuse merges them (and as the store merges batches).
            updates["tags"] = sorted({*row["tags"], *updates["tags"]})
    updates["environment"] = environment
    updates["release"] = release
    if is_root and "version" not in updates:
        # The root's resource's service.version, as Langfuse's trace-create takes it (a
        # child's is no trace update: it replaced the version the root had set).
        updates["version"] = span.resource.get("service.version")
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
        "completion_start_time": _timestamp_text(
            attributes.get(la.OBSERVATION_COMPLETION_START_TIME)
        ),
        "prompt_name": _first(attributes, PROMPT_NAME_KEYS),
        "prompt_version": _first(attributes, PROMPT_VERSION_KEYS),
    }


def from_langfuse_sdk(span: SpanRecord) -> bool:
    """Whether a span follows the Langfuse SDK's conventions: the core's own spans (no
    scope), or a scope named ``langfuse-sdk...``, as Langfuse tells them apart."""
    if span.trusted_json or span.scope is None:
        return True
    return str(span.scope.get("name") or "").startswith("langfuse-sdk")


def _details_text(attributes: dict[str, Any], key: str, found: dict[str, Any]) -> str | None:
    """Langfuse's own attribute when present, else what the conventions found (or None)."""
    if attributes.get(key) is not None:
        return _json_text(attributes[key])
    return la.to_json(found) if found else None


def _foreign_fields(span: SpanRecord, observation_type: str) -> dict[str, Any]:
    """The fields of a span from another instrumentation, as Langfuse maps them."""
    attributes = span.attributes
    found_input, found_output = _conventions.input_output(attributes)
    scope = dict(span.scope or {})
    scope["attributes"] = scope.get("attributes") or {}
    metadata = {
        "attributes": _conventions.filtered_attributes(attributes),
        "resourceAttributes": span.resource,
        "scope": scope,
        **_langfuse_metadata(attributes),
    }
    generation = observation_type == "GENERATION"
    return {
        "name": _conventions.observation_name(span.name, attributes),
        "input": _json_text(found_input),
        "output": _json_text(found_output),
        "metadata": la.to_json(metadata),
        "model": _conventions.model_name(attributes),
        "model_parameters": _details_text(
            attributes, la.OBSERVATION_MODEL_PARAMETERS, _conventions.model_parameters(attributes)
        ),
        "usage_details": _details_text(
            attributes, la.OBSERVATION_USAGE_DETAILS, _conventions.usage_details(attributes)
        ),
        "cost_details": _details_text(
            attributes, la.OBSERVATION_COST_DETAILS, _conventions.cost_details(attributes)
        ),
        "completion_start_time": _timestamp_text(
            attributes.get(la.OBSERVATION_COMPLETION_START_TIME)
        ),
        # Prompts link to generations only (Langfuse's canLinkPrompt).
        "prompt_name": _first(attributes, PROMPT_NAME_KEYS) if generation else None,
        "prompt_version": _first(attributes, PROMPT_VERSION_KEYS) if generation else None,
    }


def _is_trace_root(span: SpanRecord) -> bool:
    """Whether the span seeds its trace (name, input, output): one without a parent, or one
    marked as its trace's root, as Langfuse compares ``String(as_root) === "true"``: the
    Langfuse SDK marks a span it starts in a chosen trace, under a parent it invented and
    never sends (``as_root``), and the first of its spans under a parent it does not export,
    such as a web framework's span or another service's (``is_app_root``). Its parent id is
    kept all the same, as Langfuse keeps it (a service continuing another's trace stays
    under that one's span); readers count an observation whose parent is not stored as a
    root (``IS_ROOT_SQL``)."""
    if span.parent_span_id is None:
        return True
    attributes = span.attributes
    for marker in (la.AS_ROOT, la.IS_APP_ROOT):
        marked = attributes.get(marker)  # absent on nearly every span: no str()
        if marked is not None and str(marked).lower() == "true":
            return True
    return False


def map_spans(spans: Iterable[SpanRecord]) -> MappedBatch:
    """Map spans onto trace rows and observation rows (JSON fields as text)."""
    batch = MappedBatch()
    untrusted = False
    for span in spans:
        attributes = span.attributes
        environment = _environment(attributes, span.resource)
        release = attributes.get(la.RELEASE) or span.resource.get(la.RELEASE)
        version = attributes.get(la.VERSION) or span.resource.get("service.version")
        sdk = from_langfuse_sdk(span)
        observation_type = _observation_type(attributes, conventions=not sdk)
        foreign = None if sdk else _foreign_fields(span, observation_type)
        root_io = None if foreign is None else _root_io(attributes)
        _merge_trace(batch, span, environment, release, root_io)
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
            "environment": environment,
            "release": release,
            "version": version,
        }
        if foreign is not None:
            row.update(foreign)
        else:
            row["input"] = _json_text(attributes.get(la.OBSERVATION_INPUT))
            row["output"] = _json_text(attributes.get(la.OBSERVATION_OUTPUT))
            row["metadata"] = _metadata_text(attributes, span.trusted_json)
            if observation_type == "GENERATION" or la.OBSERVATION_MODEL in attributes:
                row.update(_generation_fields(attributes))
            else:
                row.update(_NO_GENERATION_FIELDS)
        if not span.trusted_json:  # another client's attributes may be of any type
            _numeric_details(row)
            _bindable(row)
            untrusted = True
        batch.observations.append(row)
    for row in batch.traces.values():
        row["tags"] = la.to_json(row["tags"]) if row["tags"] is not None else None
        row["metadata"] = la.to_json(row["metadata"]) if row["metadata"] else None
        row["input"] = _json_text(row["input"])
        row["output"] = _json_text(row["output"])
        if row["public"] is not None:
            row["public"] = 1 if row["public"] is True or row["public"] == "true" else 0
        if untrusted:
            _bindable(row)
    return batch
