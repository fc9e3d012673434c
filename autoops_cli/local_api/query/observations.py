"""Observation reads: GET /api/public/observations[/{id}] (v1) and /api/public/v2/observations.

v1 answers full ``ObservationsView`` objects (input, output and metadata parsed from their
JSON text) with page-based pagination; v2 answers ``ObservationV2`` objects holding only the
requested field groups (input and output as the raw stored strings) with an opaque cursor.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from sqlite3 import Row
from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.query.common import (
    DEFAULT_ENVIRONMENT,
    PROJECT_ID,
    Where,
    bool_param,
    choice_param,
    csv_param,
    decode_cursor,
    encode_cursor,
    field_groups,
    int_param,
    iso,
    iso_or_none,
    json_list,
    json_object,
    json_value,
    list_param,
    page_meta,
    page_params,
    parse_iso_us,
    precise_iso,
    text_param,
    time_param,
)
from autoops_cli.local_api.query.errors import QueryParams, invalid_request, not_found
from autoops_cli.local_api.query.filters import OBSERVATION_COLUMNS, structured_filter
from autoops_cli.local_api.query.metrics_views import IS_ROOT_SQL

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

OBSERVATION_TYPES = (
    "SPAN", "GENERATION", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EVALUATOR",
    "EMBEDDING", "GUARDRAIL",
)  # fmt: skip
LEVELS = ("DEBUG", "DEFAULT", "WARNING", "ERROR")
V2_FIELD_GROUPS = (
    "core", "basic", "time", "io", "metadata", "model", "usage", "prompt", "metrics",
    "trace_context",
)  # fmt: skip
V2_DEFAULT_GROUPS = frozenset({"core", "basic"})
METADATA_TRUNCATE_AT = 200  # characters of a v2 metadata value unless expandMetadata names it
_CURSOR_KEYS = ("lastStartTimeTo", "lastTraceId", "lastId")
_FROM = "FROM observations AS o LEFT JOIN traces AS t ON t.id = o.trace_id"
_SELECT = (
    "SELECT o.*, t.user_id AS trace_user_id, t.session_id AS trace_session_id, "
    "t.name AS trace_name, t.tags AS trace_tags, t.release AS trace_release, "
    f"t.public AS trace_public, {IS_ROOT_SQL} AS is_root {_FROM}"
)


def get_observation(store: LocalStore, observation_id: str) -> dict[str, Any]:
    """GET /api/public/observations/{observationId}: one ``ObservationsView``, else 404."""
    rows = store.query(f"{_SELECT} WHERE o.id = ?", (observation_id,))
    if not rows:
        raise not_found("Observation not found within authorized project")
    return observation_view(rows[0])


def list_observations_v1(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/observations: ``{"data": [ObservationsView], "meta": {page...}}``."""
    page, limit = page_params(params)
    where = _filters(params, v2=False)
    total = int(store.query(f"SELECT COUNT(*) {_FROM}{where.sql()}", where.args)[0][0])
    rows = store.query(
        f"{_SELECT}{where.sql()} ORDER BY o.start_us DESC, o.id LIMIT ? OFFSET ?",
        [*where.args, limit, (page - 1) * limit],
    )
    return {"data": [observation_view(row) for row in rows], "meta": page_meta(page, limit, total)}


def list_observations_v2(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/v2/observations: chosen field groups, newest first, cursor pages.

    ``meta.cursor`` is present only when another page follows.
    """
    if bool_param(params, "parseIoAsJson"):
        raise invalid_request(
            "parseIoAsJson=true is no longer supported on the v2 observations endpoint. "
            "Input/output fields are always returned as raw strings. Remove the "
            "parseIoAsJson parameter or set it to false."
        )
    groups = field_groups(params, V2_FIELD_GROUPS) or V2_DEFAULT_GROUPS
    expand = frozenset(csv_param(params, "expandMetadata"))
    limit = int_param(params, "limit", 50, 0, 1000)
    where = _filters(params, v2=True)
    cursor = text_param(params, "cursor")
    if cursor is not None:
        where.add("(o.start_us, o.trace_id, o.id) < (?, ?, ?)", *_cursor_position(cursor))
    # One row more than asked tells whether a next page exists (no empty last page).
    rows = store.query(
        f"{_SELECT}{where.sql()} ORDER BY o.start_us DESC, o.trace_id DESC, o.id DESC LIMIT ?",
        [*where.args, limit + 1],
    )
    page = rows[:limit]
    meta: dict[str, Any] = {}
    if len(rows) > limit and page:
        last = page[-1]
        meta["cursor"] = encode_cursor(
            {
                "lastStartTimeTo": precise_iso(last["start_us"]),
                "lastTraceId": last["trace_id"],
                "lastId": last["id"],
            }
        )
    return {"data": [observation_v2(row, groups, expand) for row in page], "meta": meta}


def observations_of_trace(store: LocalStore, trace_id: str) -> list[dict[str, Any]]:
    """Every observation of a trace as ``ObservationsView``, in start order."""
    rows = store.query(f"{_SELECT} WHERE o.trace_id = ? ORDER BY o.start_us, o.id", (trace_id,))
    return [observation_view(row) for row in rows]


def _filters(params: QueryParams, *, v2: bool) -> Where:
    """``filter``, then the simple filters it leaves: those both versions share, plus v2's
    session and root filters."""
    where = Where()
    params = structured_filter(where, params, OBSERVATION_COLUMNS)
    where.equal("o.name", text_param(params, "name"))
    where.equal("t.user_id", text_param(params, "userId"))
    where.equal("o.type", choice_param(params, "type", OBSERVATION_TYPES))
    where.equal("o.trace_id", text_param(params, "traceId"))
    where.equal("o.level", choice_param(params, "level", LEVELS))
    where.equal("o.version", text_param(params, "version"))
    where.one_of("COALESCE(o.environment, 'default')", list_param(params, "environment"))
    where.time_range(
        "o.start_us", time_param(params, "fromStartTime"), time_param(params, "toStartTime")
    )
    parent = text_param(params, "parentObservationId")
    if parent is not None:
        where.equal("o.parent_observation_id", parent)
    elif v2 and "parentObservationId" in params:
        # v2: an empty value asks for the observations without a parent.
        where.add("o.parent_observation_id IS NULL")
    if v2:
        where.equal("t.session_id", text_param(params, "sessionId"))
        root = bool_param(params, "isRootObservation")
        if root is not None:
            where.add(IS_ROOT_SQL if root else f"NOT {IS_ROOT_SQL}")
    return where


def _cursor_position(cursor: str) -> tuple[int, str, str]:
    payload = decode_cursor(cursor, _CURSOR_KEYS)
    start_us = parse_iso_us(payload["lastStartTimeTo"])
    if start_us is None:
        raise invalid_request("Invalid cursor format")
    return start_us, payload["lastTraceId"], payload["lastId"]


# --- shapes ----------------------------------------------------------------------------


def observation_view(row: Row) -> dict[str, Any]:
    """A stored observation as Langfuse's v1 ``ObservationsView``."""
    usage = _details(row["usage_details"], int)
    cost = _details(row["cost_details"], float)
    tokens = _reduce(usage)
    costs = _reduce(cost)
    start_us, end_us = row["start_us"], row["end_us"]
    completion_us = _completion_start_us(row)
    input_tokens, output_tokens, total_tokens = (int(value or 0) for value in tokens)
    return {
        "id": row["id"],
        "projectId": PROJECT_ID,
        "traceId": row["trace_id"],
        "type": row["type"],
        "name": row["name"],
        "startTime": iso(start_us),
        "endTime": iso_or_none(end_us),
        "completionStartTime": iso_or_none(completion_us),
        "model": row["model"],
        "modelParameters": json_value(row["model_parameters"]),
        "input": json_value(row["input"]),
        "output": json_value(row["output"]),
        "metadata": json_value(row["metadata"]),
        "version": row["version"],
        "level": row["level"],
        "statusMessage": row["status_message"],
        "parentObservationId": row["parent_observation_id"],
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
        "promptId": None,
        "promptName": row["prompt_name"],
        "promptVersion": _int_or_none(row["prompt_version"]),
        "usage": {
            "input": input_tokens,
            "output": output_tokens,
            "total": total_tokens,
            "unit": "TOKENS",
        },
        "usageDetails": usage,
        "costDetails": cost,
        # Kept by Langfuse for old clients: the same numbers as ``usage``.
        "unit": "TOKENS",
        "promptTokens": input_tokens,
        "completionTokens": output_tokens,
        "totalTokens": total_tokens,
        "usagePricingTierName": None,
        "usagePricingTierId": None,
        # No model price table locally: nothing is matched, no price is calculated.
        "modelId": None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
        "calculatedInputCost": costs[0],
        "calculatedOutputCost": costs[1],
        "calculatedTotalCost": costs[2],
        "latency": _seconds(start_us, end_us),
        "timeToFirstToken": _seconds(start_us, completion_us),
    }


def observation_v2(
    row: Row, groups: frozenset[str] | set[str], expand: frozenset[str]
) -> dict[str, Any]:
    """A stored observation as ``ObservationV2`` with the fields of ``groups`` only."""
    body: dict[str, Any] = {
        "id": row["id"],
        "traceId": row["trace_id"],
        "startTime": iso(row["start_us"]),
        "endTime": iso_or_none(row["end_us"]),
        "projectId": PROJECT_ID,
        "parentObservationId": row["parent_observation_id"],
        "type": row["type"],
        # Required in every answer; null because no model price table is kept locally.
        "modelId": None,
        "inputPrice": None,
        "outputPrice": None,
        "totalPrice": None,
    }
    for group, fields in _V2_GROUPS.items():
        if group in groups:
            body.update(fields(row, expand))
    return body


def _basic(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "level": row["level"],
        "statusMessage": row["status_message"],
        "version": row["version"],
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
        "bookmarked": False,
        "public": bool(row["trace_public"]),
        "userId": row["trace_user_id"],
        "sessionId": row["trace_session_id"],
        "isRootObservation": bool(row["is_root"]),
    }


def _time(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    # The store keeps no insert or update time of an observation: its start, as the traces'
    # and scores' createdAt are their timestamps (Langfuse always fills both).
    started = iso_or_none(row["start_us"])
    return {
        "completionStartTime": iso_or_none(_completion_start_us(row)),
        "createdAt": started,
        "updatedAt": started,
    }


def _io(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    return {"input": row["input"], "output": row["output"]}


def _metadata(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    metadata = json_object(row["metadata"])
    if metadata is None:
        return {"metadata": None}
    return {
        "metadata": {
            key: value if key in expand else _truncated(value) for key, value in metadata.items()
        }
    }


def _model(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    # The server code of 2026-08 sends providedModelName; the SDK 5.2.0 and JS 5.11.1
    # models (and the 4.35.0 contract's field list) read model: both are sent.
    return {
        "model": row["model"],
        "providedModelName": row["model"],
        "internalModelId": None,
        "modelParameters": json_value(row["model_parameters"]),
    }


def _usage(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    usage = _details(row["usage_details"], int)
    cost = _details(row["cost_details"], float)
    return {
        "usageDetails": usage,
        "costDetails": cost,
        "totalCost": _reduce(cost)[2],
        "usagePricingTierName": None,
    }


def _prompt(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    return {
        "promptId": None,
        "promptName": row["prompt_name"],
        "promptVersion": _int_or_none(row["prompt_version"]),
    }


def _metrics(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    start_us = row["start_us"]
    return {
        "latency": _seconds(start_us, row["end_us"]),
        "timeToFirstToken": _seconds(start_us, _completion_start_us(row)),
    }


def _trace_context(row: Row, expand: frozenset[str]) -> dict[str, Any]:
    return {
        "tags": json_list(row["trace_tags"]),
        "release": row["trace_release"],
        "traceName": row["trace_name"],
    }


# ``core`` is always in the body; the other groups in the spec's order.
_V2_GROUPS: dict[str, Callable[[Row, frozenset[str]], dict[str, Any]]] = {
    "basic": _basic,
    "time": _time,
    "io": _io,
    "metadata": _metadata,
    "model": _model,
    "usage": _usage,
    "prompt": _prompt,
    "metrics": _metrics,
    "trace_context": _trace_context,
}


# --- values ----------------------------------------------------------------------------


def _details(text: str | None, kind: type[int] | type[float]) -> dict[str, Any]:
    """Usage or cost details: the numeric entries of the stored JSON object, with ``total``
    as the spec has it: "the sum of all (non-total) usage metrics or the total value
    ingested"."""
    parsed = json_value(text)
    if not isinstance(parsed, dict):
        return {}
    details = {
        key: kind(value)
        for key, value in parsed.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    }
    if details and "total" not in details:
        details["total"] = sum(details.values())
    return details


def _reduce(details: dict[str, Any]) -> tuple[Any, Any, Any]:
    """(input, output, total) of usage or cost details, None where nothing was recorded.

    As Langfuse reduces them: every ``input*`` key adds to input, every ``output*`` key to
    output; ``total`` is the recorded total, else the sum of everything.
    """
    if not details:
        return None, None, None
    inputs = [value for key, value in details.items() if key.startswith("input")]
    outputs = [value for key, value in details.items() if key.startswith("output")]
    total = details.get("total", sum(value for key, value in details.items() if key != "total"))
    return (sum(inputs) if inputs else None, sum(outputs) if outputs else None, total)


def _completion_start_us(row: Row) -> int | None:
    value = row["completion_start_time"]
    return parse_iso_us(value) if isinstance(value, str) else None


def _seconds(start_us: int, end_us: int | None) -> float | None:
    return None if end_us is None else (end_us - start_us) / 1_000_000


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _truncated(value: Any) -> Any:
    text = value if isinstance(value, str) else json.dumps(value)
    return value if len(text) <= METADATA_TRUNCATE_AT else text[:METADATA_TRUNCATE_AT]
