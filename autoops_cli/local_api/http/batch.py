"""``POST /api/public/ingestion``: the legacy batch of tracing events.

Langfuse never shuts this route down: it "continues to accept score events", which the JS
SDK (``@langfuse/client`` 4.x and 5.x) sends through it. As Langfuse's handler
(``web/src/pages/api/public/ingestion.ts``, ``processEventBatch``, the worker's
``IngestionService``):

- the body is ``{"batch": [events], "metadata"?}``; anything else is a whole-request 400
  ``{"message": "Invalid request data", "errors": [...]}``;
- every event is checked on its own (envelope ``id``, ``timestamp``, ``type``, ``body``;
  the body of its type) and the answer is always 207 ``{"successes": [{"id", "status": 201}],
  "errors": [{"id", "status", "message", "error"}]}``; ``sdk-log`` events are accepted and
  not stored (no entry, as in Langfuse);
- events are applied non-update events first, then updates, each in timestamp order; a
  ``*-create`` event creates or merges into its entity (non-null fields win, metadata and
  usage merge), an update merges into what is stored; an observation without a trace id
  gets a wrapper trace of its own id (SDKs before 2.0);
- ``v4_only`` (Langfuse v4's ``events_only`` write mode, Langfuse Cloud today): trace and
  observation events are refused per event (400 ``Event type not accepted``) while scores
  and SDK logs are still taken, so a mixed batch keeps its scores.

Everything one batch stores is written in one transaction, before the response is sent.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autoops_cli.local_api.http.bodies import TooDeep, iso_micros, metadata_object, storable
from autoops_cli.local_api.http.scores import validated_score
from autoops_cli.local_api.query.errors import ApiProblem
from config.store.local_store import LocalStore
from config.store.otel_conventions import openai_usage
from config.store.rows import OBSERVATION_COLUMNS, TRACE_COLUMNS
from config.tracing.span_records import ScoreRecord

MAX_BODY_BYTES = int(4.5 * 1024 * 1024)  # Langfuse's body parser limit of this route ("4.5mb")
OBSERVATION_EVENTS = {
    "span-create": "SPAN",
    "span-update": "SPAN",
    "generation-create": "GENERATION",
    "generation-update": "GENERATION",
    "event-create": "EVENT",
    "agent-create": "AGENT",
    "tool-create": "TOOL",
    "chain-create": "CHAIN",
    "retriever-create": "RETRIEVER",
    "evaluator-create": "EVALUATOR",
    "embedding-create": "EMBEDDING",
    "guardrail-create": "GUARDRAIL",
    "observation-create": "",  # the legacy events name their type in the body
    "observation-update": "",
}
UPDATES = frozenset({"span-update", "generation-update", "observation-update"})
ALWAYS_ACCEPTED = frozenset({"score-create", "sdk-log"})  # also in v4-only mode
EVENT_TYPES = frozenset(
    {*OBSERVATION_EVENTS, *ALWAYS_ACCEPTED, "trace-create", "dataset-run-item-create"}
)
LEGACY_TYPES = ("GENERATION", "SPAN", "EVENT")
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
V4_ONLY_REMEDIATION = (
    "Upgrade the client or integration to a v4-compatible SDK or OTLP ingestion path. "
    "Docs: https://langfuse.com/self-hosting/upgrade/upgrade-guides/upgrade-v3-to-v4"
)
_ENVIRONMENT = re.compile(r"^(?!langfuse)[a-z0-9_-]{1,40}$")


class Invalid(Exception):
    """A field of an event that Langfuse's schema refuses."""


@dataclass
class _Event:
    id: str
    type: str
    timestamp_us: int
    body: dict[str, Any]


# --- field checks ---------------------------------------------------------------------


def _datetime(body: dict[str, Any], key: str) -> int | None:
    """An ISO 8601 date-time with an offset (zod's ``datetime({offset: true})``), or None."""
    value = body.get(key)
    if value is None:
        return None
    try:
        return iso_micros(value)
    except ValueError:
        raise Invalid(f"body.{key}: Invalid ISO datetime") from None


def _id(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 800 or "\r" in value:
        raise Invalid(f"{where}: expected an id (1 to 800 characters, no carriage return)")
    return value


def _string(body: dict[str, Any], key: str, *, max_length: int | None = None) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or (max_length is not None and len(value) > max_length):
        raise Invalid(
            f"body.{key}: Expected string" + (f" of at most {max_length}" if max_length else "")
        )
    return value


def _environment(body: dict[str, Any]) -> str:
    value = body.get("environment")
    if value is None:
        return "default"
    if not isinstance(value, str) or not _ENVIRONMENT.match(value):
        raise Invalid(
            "body.environment: lowercase letters, digits, '_' or '-', not starting with 'langfuse'"
        )
    return value


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _numbers(value: Any, key: str, kind: type) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"body.{key}: Expected object")
    found = {}
    for name, number in value.items():
        if number is None:
            continue
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise Invalid(f"body.{key}.{name}: Expected number")
        if kind is int and not float(number).is_integer():
            raise Invalid(f"body.{key}.{name}: Expected integer")
        found[str(name)] = kind(number)
    return found


def _usage(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Usage and cost details from ``usage`` (either shape) and ``usageDetails`` /
    ``costDetails``; the details win a key both give."""
    usage: dict[str, Any] = {}
    cost: dict[str, Any] = {}
    legacy = body.get("usage")
    if legacy is not None:
        if not isinstance(legacy, dict):
            raise Invalid("body.usage: Expected object")
        names = {"input": "input", "output": "output", "total": "total"}
        names.update(
            {"promptTokens": "input", "completionTokens": "output", "totalTokens": "total"}
        )
        for key, target in names.items():
            value = legacy.get(key)
            if value is not None:
                usage[target] = _numbers({key: value}, "usage", int)[key]
        for key, target in (
            ("inputCost", "input"),
            ("outputCost", "output"),
            ("totalCost", "total"),
        ):
            if legacy.get(key) is not None:
                cost[target] = _numbers({key: legacy[key]}, "usage", float)[key]
    details = body.get("usageDetails")
    if isinstance(details, dict):
        # OpenAI's shapes, their details taken out of the prompt's and completion's counts.
        details = openai_usage(details) or details
    usage.update(_numbers(details, "usageDetails", int))
    cost.update(_numbers(body.get("costDetails"), "costDetails", float))
    return usage, cost


def _model_parameters(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid("body.modelParameters: Expected object")
    for key, item in value.items():
        fits = (
            item is None
            or isinstance(item, (str, int, float, bool))
            or (isinstance(item, list) and all(isinstance(v, str) for v in item))
            or (isinstance(item, dict) and all(isinstance(v, str) for v in item.values()))
        )
        if not fits:
            raise Invalid(f"body.modelParameters.{key}: Invalid input")
    return value


# --- events -> rows ---------------------------------------------------------------------


def _trace_row(event: _Event) -> dict[str, Any]:
    body = event.body
    tags = body.get("tags")
    if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
        raise Invalid("body.tags: Expected array of strings")
    public = body.get("public")
    if public is not None and not isinstance(public, bool):
        raise Invalid("body.public: Expected boolean")
    trace_id = _id(body["id"], "body.id") if body.get("id") is not None else str(uuid.uuid4())
    row = dict.fromkeys(TRACE_COLUMNS)
    row.update(
        id=trace_id,
        timestamp_us=_datetime(body, "timestamp") or event.timestamp_us,
        name=_string(body, "name", max_length=1000),
        user_id=_string(body, "userId"),
        session_id=_string(body, "sessionId"),
        release=_string(body, "release"),
        version=_string(body, "version"),
        environment=_environment(body),
        tags=json.dumps(tags) if tags is not None else None,
        metadata=_json_text(metadata_object(body.get("metadata"))),
        input=_json_text(body.get("input")),
        output=_json_text(body.get("output")),
        public=None if public is None else int(public),
    )
    return row


def _observation_fields(event: _Event) -> dict[str, Any]:
    """The columns an observation event sets (None where it says nothing)."""
    body = event.body
    kind = OBSERVATION_EVENTS[event.type]
    if not kind:
        declared = body.get("type")
        if declared not in LEGACY_TYPES:
            raise Invalid(f"body.type: Invalid option: expected one of {'|'.join(LEGACY_TYPES)}")
        kind = str(declared)
    level = body.get("level")
    if level is not None and level not in LEVELS:
        raise Invalid(f"body.level: Invalid option: expected one of {'|'.join(LEVELS)}")
    prompt_name, prompt_version = body.get("promptName"), body.get("promptVersion")
    if bool(prompt_name) != bool(prompt_version):
        raise Invalid("body: promptName and promptVersion go together")
    if prompt_version is not None and (
        isinstance(prompt_version, bool) or not isinstance(prompt_version, int)
    ):
        raise Invalid("body.promptVersion: Expected integer")
    usage, cost = _usage(body)
    completion = body.get("completionStartTime")
    _datetime(body, "completionStartTime")
    trace_id = body.get("traceId")
    return {
        "id": _id(body.get("id"), "body.id"),
        "trace_id": _id(trace_id, "body.traceId") if trace_id is not None else None,
        "parent_observation_id": _string(body, "parentObservationId"),
        "type": kind,
        "name": _string(body, "name"),
        "start_us": _datetime(body, "startTime"),
        "end_us": _datetime(body, "endTime"),
        "level": level,
        "status_message": _string(body, "statusMessage"),
        "input": _json_text(body.get("input")),
        "output": _json_text(body.get("output")),
        "metadata": metadata_object(body.get("metadata")),
        "environment": _environment(body) if body.get("environment") is not None else None,
        "version": _string(body, "version"),
        "model": _string(body, "model"),
        "model_parameters": _model_parameters(body.get("modelParameters")),
        "usage_details": usage or None,
        "cost_details": cost or None,
        "completion_start_time": completion,
        "prompt_name": _string(body, "promptName"),
        "prompt_version": prompt_version,
    }


_MERGED_OBJECTS = ("metadata", "model_parameters", "usage_details", "cost_details")


def _merge(stored: dict[str, Any] | None, fields: dict[str, Any], event: _Event) -> dict[str, Any]:
    """An observation row: the stored one with the event's non-null fields over it."""
    if stored is None:
        row: dict[str, Any] = dict.fromkeys(OBSERVATION_COLUMNS)
        row.update(level="DEFAULT", environment="default")
    else:
        row = dict(stored)
        if event.type in UPDATES:  # an update keeps the type of what it updates
            fields = {**fields, "type": row["type"]}
    for column, value in fields.items():
        if value is None:
            continue
        if column in _MERGED_OBJECTS:
            row[column] = {**(row.get(column) or {}), **value}
        else:
            row[column] = value
    if row["start_us"] is None:
        row["start_us"] = event.timestamp_us
    if row["type"] == "EVENT" and row["end_us"] is None:
        row["end_us"] = row["start_us"]
    if row["trace_id"] is None:  # SDKs before 2.0: a wrapper trace of the observation's id
        row["trace_id"] = row["id"]
    return row


def _stored_observations(store: LocalStore, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Stored rows of the observations ``ids`` names, objects parsed."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in store.query(f"SELECT * FROM observations WHERE id IN ({marks})", chunk):
            parsed = dict(row)
            for column in _MERGED_OBJECTS:
                try:
                    value = json.loads(parsed[column]) if parsed[column] else None
                except ValueError:
                    value = None
                parsed[column] = value if isinstance(value, dict) else None
            found[parsed["id"]] = parsed
    return found


def _observation_rows(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            **row,
            **{
                column: json.dumps(row[column], separators=(",", ":")) if row[column] else None
                for column in _MERGED_OBJECTS
            },
        }
        for row in rows.values()
    ]


# --- the batch --------------------------------------------------------------------------


def _envelope(raw: Any) -> _Event:
    if not isinstance(raw, dict):
        raise Invalid("Expected object")
    event_id = _id(raw.get("id"), "id")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise Invalid(f"type: Invalid input: unknown event type {json.dumps(event_type)}")
    try:
        micros = iso_micros(raw.get("timestamp"))
    except ValueError:
        raise Invalid("timestamp: Invalid ISO datetime") from None
    body = raw.get("body")
    if not isinstance(body, dict):
        raise Invalid("body: Expected object")
    return _Event(event_id, str(event_type), micros, body)


def _error(event_id: str, status: int, message: str, error: str) -> dict[str, Any]:
    return {"id": event_id, "status": status, "message": message, "error": error}


def _raw_id(raw: Any) -> str:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, str) else "unknown"


def ingest_batch(
    store: LocalStore, payload: Any, *, v4_only: bool, lock: threading.Lock | None = None
) -> dict[str, Any]:
    """Handle ``POST /api/public/ingestion``: the 207 body, once everything is stored.

    ``lock`` serialises batches that update stored observations (read, merge, write).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ApiProblem(
            400, {"message": "Invalid request data", "errors": ["batch: Expected array"]}
        )
    errors: list[dict[str, Any]] = []
    events: list[_Event] = []
    for given in payload["batch"]:
        try:
            raw = storable(given)
        except TooDeep as problem:  # this event refused, the others stored
            errors.append(_error(_raw_id(given), 400, "Invalid request data", str(problem)))
            continue
        raw_type = raw.get("type") if isinstance(raw, dict) else None
        raw_type = raw_type if isinstance(raw_type, str) else None
        if v4_only and raw_type not in ALWAYS_ACCEPTED:
            errors.append(
                _error(
                    _raw_id(raw),
                    400,
                    "Event type not accepted",
                    f'Event type "{raw_type or "unknown"}" is not '
                    "accepted by /api/public/ingestion when LANGFUSE_MIGRATION_V4_WRITE_MODE is "
                    "events_only (autoops serve --v4-only). This endpoint only accepts score and "
                    f"log events. {V4_ONLY_REMEDIATION}",
                )
            )
            continue
        try:
            events.append(_envelope(raw))
        except Invalid as problem:
            errors.append(_error(_raw_id(raw), 400, "Invalid request data", str(problem)))
    # Non-update events first, then updates; each in the order they happened.
    events.sort(key=lambda e: (e.type in UPDATES, e.timestamp_us))
    with lock or threading.Lock():
        successes = _apply(store, events, errors)
    return {"successes": successes, "errors": errors}


def _apply(
    store: LocalStore, events: list[_Event], errors: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    # Creates too: an observation stored by an earlier request is merged into, whatever the
    # event (a create of a stored id replaced the row: what the earlier batch or an update
    # set was lost, depending on how the client had batched its events).
    named = [e.body.get("id") for e in events if e.type in OBSERVATION_EVENTS]
    observations = _stored_observations(store, list({i for i in named if isinstance(i, str)}))
    traces: list[dict[str, Any]] = []
    scores: list[ScoreRecord] = []
    successes: list[dict[str, Any]] = []
    handlers: dict[str, Callable[[_Event], None]] = {}

    def trace(event: _Event) -> None:
        traces.append(_trace_row(event))

    def observation(event: _Event) -> None:
        fields = _observation_fields(event)
        row = _merge(observations.get(fields["id"]), fields, event)
        observations[row["id"]] = row
        # A trace row for reads that join traces (a shallow one when no trace event came).
        shallow = dict.fromkeys(TRACE_COLUMNS)  # None merges as "unchanged"
        shallow.update(id=row["trace_id"], timestamp_us=row["start_us"])
        if row["trace_id"] == row["id"]:  # a wrapper trace takes its observation's environment
            shallow["environment"] = row["environment"]
        traces.append(shallow)

    def score(event: _Event) -> None:
        # The ingestion route checks a score's environment as a trace's (POST /scores takes
        # any): "Bad Env" and "langfuse-internal" were stored.
        _environment(event.body)
        record, issues = validated_score(event.body, event.timestamp_us * 1000)
        if record is None:
            raise Invalid("; ".join(f"body.{'.'.join(i['path'])}: {i['message']}" for i in issues))
        scores.append(record)

    def dataset_run_item(event: _Event) -> None:
        raise Invalid("dataset run items are not kept by autoops serve (no datasets)")

    handlers.update(
        {"trace-create": trace, "score-create": score, "dataset-run-item-create": dataset_run_item}
    )
    for event in events:
        if event.type == "sdk-log":
            continue  # logged by Langfuse, never stored, and answered with no entry
        handler = handlers.get(event.type, observation)
        try:
            handler(event)
        except Invalid as problem:
            errors.append(_error(event.id, 400, "Invalid request data", str(problem)))
            continue
        successes.append({"id": event.id, "status": 201})
    store.write_rows(traces, _observation_rows(observations_touched(observations, events)), scores)
    return successes


def observations_touched(
    observations: dict[str, dict[str, Any]], events: list[_Event]
) -> dict[str, dict[str, Any]]:
    """The observations this batch created or changed (not every stored one it read)."""
    named = {
        event.body["id"]
        for event in events
        if event.type in OBSERVATION_EVENTS and isinstance(event.body.get("id"), str)
    }
    return {key: row for key, row in observations.items() if key in named}
