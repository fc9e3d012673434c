"""Score reads: GET /api/public/v2/scores[/{id}] and /api/public/v3/scores.

The store keeps a score's ``value`` (REAL), ``string_value`` (TEXT) and ``data_type``; the
API shapes differ per version. v1/v2 (``Score``, ``ScoreV1``): numeric ``value`` plus
``stringValue`` for categorical, boolean and correction scores, text scores only
``stringValue``. v3 (``ScoreV3``): one polymorphic ``value`` (number, boolean or string),
core fields always, ``details`` / ``subject`` / ``annotation`` groups on request, and an
opaque base64url cursor instead of pages.

The store records neither a creation nor an update time of a score (scores are written
once): both are the score's timestamp. Config, annotation queue, author and dataset run are
never recorded locally, so they are null, and a filter on one of them matches nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from sqlite3 import Row
from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.query.common import (
    DEFAULT_ENVIRONMENT,
    PROJECT_ID,
    Where,
    choice_param,
    csv_param,
    decode_cursor,
    encode_cursor,
    field_groups,
    float_param,
    int_param,
    iso,
    json_list,
    json_object,
    json_value,
    list_param,
    page_meta,
    page_params,
    parse_iso_us,
    precise_iso,
    tags_contain_all,
    text_param,
    time_param,
)
from autoops_cli.local_api.query.errors import QueryParams, invalid_request, not_found
from autoops_cli.local_api.query.filters import SCORE_COLUMNS, structured_filter

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

DATA_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL", "CORRECTION", "TEXT")
SOURCES = ("ANNOTATION", "API", "EVAL")
V2_FIELD_GROUPS = ("score", "trace")
V3_FIELD_GROUPS = ("core", "details", "subject", "annotation")
V3_VALUE_TYPES = ("NUMERIC", "BOOLEAN", "CATEGORICAL")
# A request's operator selects one of these SQL operators; its text never reaches the SQL.
_OPERATORS = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "=": "=", "!=": "!="}
_NEVER_RECORDED = ("configId", "queueId", "authorUserId", "experimentId")
_CURSOR_KEYS = ("lastTimestamp", "lastId")
_FROM = "FROM scores AS s LEFT JOIN traces AS t ON t.id = s.trace_id"
_SELECT = (
    "SELECT s.*, t.id AS trace_row_id, t.user_id AS trace_user_id, t.tags AS trace_tags, "
    f"t.environment AS trace_environment, t.session_id AS trace_session_id {_FROM}"
)


def get_score_v2(store: LocalStore, score_id: str) -> dict[str, Any]:
    """GET /api/public/v2/scores/{scoreId}: one ``Score``, else 404."""
    rows = store.query(f"{_SELECT} WHERE s.id = ?", (score_id,))
    if not rows:
        raise not_found("Score not found")
    return score_v2(rows[0])


def list_scores_v2(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/v2/scores: ``{"data": [score + trace], "meta": {page...}}``."""
    page, limit = page_params(params)
    groups = field_groups(params, V2_FIELD_GROUPS) or set(V2_FIELD_GROUPS)
    where = _v2_filters(params, with_trace="trace" in groups)
    total = int(store.query(f"SELECT COUNT(*) {_FROM}{where.sql()}", where.args)[0][0])
    rows = store.query(
        f"{_SELECT}{where.sql()} ORDER BY s.timestamp_us DESC, s.id LIMIT ? OFFSET ?",
        [*where.args, limit, (page - 1) * limit],
    )
    data = [
        {**score_v2(row), "trace": _trace_of(row)} if "trace" in groups else score_v2(row)
        for row in rows
    ]
    return {"data": data, "meta": page_meta(page, limit, total)}


def list_scores_v3(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/v3/scores: ``{"data": [ScoreV3], "meta": {"limit", "cursor"?}}``.

    Newest first; ``meta.cursor`` is present only when another page follows.
    """
    limit = int_param(params, "limit", 50, 1, 100)
    groups = _v3_groups(params)
    where = _v3_filters(params)
    cursor = text_param(params, "cursor")
    if cursor is not None:
        where.add("(s.timestamp_us, s.id) < (?, ?)", *_cursor_position(cursor))
    rows = store.query(
        f"{_SELECT}{where.sql()} ORDER BY s.timestamp_us DESC, s.id DESC LIMIT ?",
        [*where.args, limit + 1],
    )
    page = rows[:limit]
    meta: dict[str, Any] = {"limit": limit}
    if len(rows) > limit:
        last = page[-1]
        meta["cursor"] = encode_cursor(
            {"lastTimestamp": precise_iso(last["timestamp_us"]), "lastId": last["id"]},
            url_safe=True,
        )
    return {"data": [score_v3(row, groups) for row in page], "meta": meta}


def scores_of_trace(store: LocalStore, trace_id: str) -> list[dict[str, Any]]:
    """The scores of a trace as ``ScoreV1`` (which has no correction scores), oldest first."""
    rows = store.query(f"{_SELECT} WHERE s.trace_id = ? ORDER BY s.timestamp_us, s.id", (trace_id,))
    return [score_v2(row) for row in rows if _data_type(row) != "CORRECTION"]


# --- filters ---------------------------------------------------------------------------


def _v2_filters(params: QueryParams, *, with_trace: bool) -> Where:
    where = Where()
    params = structured_filter(where, params, SCORE_COLUMNS)
    user_id = text_param(params, "userId")
    trace_tags = list_param(params, "traceTags")
    if (user_id is not None or trace_tags) and not with_trace:
        raise invalid_request(
            "Invalid fields: the 'trace' field group is required to filter by userId or traceTags"
        )
    where.equal("t.user_id", user_id)
    tags_contain_all("t.tags", where, trace_tags)
    where.equal("s.name", text_param(params, "name"))
    where.equal("s.trace_id", text_param(params, "traceId"))
    where.one_of("s.observation_id", csv_param(params, "observationId"))
    where.equal("s.session_id", text_param(params, "sessionId"))
    where.one_of("s.id", csv_param(params, "scoreIds"))
    where.equal("UPPER(COALESCE(s.source, 'API'))", choice_param(params, "source", SOURCES))
    where.equal("UPPER(s.data_type)", choice_param(params, "dataType", DATA_TYPES))
    where.one_of("COALESCE(s.environment, 'default')", list_param(params, "environment"))
    where.time_range(
        "s.timestamp_us", time_param(params, "fromTimestamp"), time_param(params, "toTimestamp")
    )
    if any(text_param(params, name) for name in ("configId", "queueId", "datasetRunId")):
        where.never()
    operator, value = text_param(params, "operator"), float_param(params, "value")
    if operator is not None or value is not None:
        if operator not in _OPERATORS or value is None:
            raise invalid_request(
                "Invalid operator/value: give both, operator one of "
                f"{', '.join(_OPERATORS)} and value a number"
            )
        where.add(f"s.value {_OPERATORS[operator]} ?", value)
    return where


def _v3_groups(params: QueryParams) -> frozenset[str]:
    groups = csv_param(params, "fields")
    for group in groups:
        if group == "trace":
            raise invalid_request("Invalid fields: fields=trace is reserved and not yet available")
        if group not in V3_FIELD_GROUPS:
            raise invalid_request(
                f'Invalid fields: unknown field group "{group}". '
                f"Allowed: {', '.join(V3_FIELD_GROUPS)}"
            )
    return frozenset(groups)


def _v3_filters(params: QueryParams) -> Where:
    where = Where()
    where.one_of("s.id", csv_param(params, "id"))
    where.one_of("s.name", csv_param(params, "name"))
    where.one_of("UPPER(COALESCE(s.source, 'API'))", _csv_choice(params, "source", SOURCES))
    data_types = _csv_choice(params, "dataType", DATA_TYPES)
    where.one_of("UPPER(s.data_type)", data_types)
    where.one_of("COALESCE(s.environment, 'default')", csv_param(params, "environment"))
    if any(csv_param(params, name) for name in _NEVER_RECORDED):
        where.never()
    _v3_value_filters(params, where, data_types)
    _v3_subject_filters(params, where)
    where.time_range(
        "s.timestamp_us", time_param(params, "fromTimestamp"), time_param(params, "toTimestamp")
    )
    return where


def _csv_choice(params: QueryParams, name: str, allowed: Sequence[str]) -> list[str]:
    """A comma-separated enum list, case-insensitive as v3 accepts it."""
    values = [value.upper() for value in csv_param(params, name)]
    for value in values:
        if value not in allowed:
            raise invalid_request(f'Invalid {name} value: "{value}". Allowed: {", ".join(allowed)}')
    return values


def _v3_value_filters(params: QueryParams, where: Where, data_types: list[str]) -> None:
    values = csv_param(params, "value")
    if values:
        if len(data_types) != 1 or data_types[0] not in V3_VALUE_TYPES:
            raise invalid_request(
                "Invalid value: requires a single dataType of NUMERIC, BOOLEAN or CATEGORICAL"
            )
        where.one_of(*_value_condition(data_types[0], values))
    low, high = float_param(params, "valueMin"), float_param(params, "valueMax")
    if (low is not None or high is not None) and data_types != ["NUMERIC"]:
        raise invalid_request("Invalid valueMin/valueMax: requires dataType=NUMERIC")
    if low is not None:
        where.add("s.value >= ?", low)
    if high is not None:
        where.add("s.value <= ?", high)


def _value_condition(data_type: str, values: list[str]) -> tuple[str, list[Any]]:
    """The column and bound values of v3's exact ``value`` filter."""
    if data_type == "CATEGORICAL":
        return "s.string_value", values
    if data_type == "BOOLEAN":
        if any(value not in ("true", "false") for value in values):
            raise invalid_request("Invalid value: BOOLEAN values must be true or false")
        return "s.value", [1.0 if value == "true" else 0.0 for value in values]
    numbers = [_finite(value) for value in values]
    if None in numbers:
        raise invalid_request("Invalid value: NUMERIC values must be finite numbers")
    return "s.value", numbers


def _v3_subject_filters(params: QueryParams, where: Where) -> None:
    trace_ids = csv_param(params, "traceId")
    session_ids = csv_param(params, "sessionId")
    observation_ids = csv_param(params, "observationId")
    experiment_ids = csv_param(params, "experimentId")
    if session_ids and (trace_ids or observation_ids or experiment_ids):
        raise invalid_request(
            "Invalid sessionId: cannot be combined with traceId, observationId or experimentId"
        )
    if experiment_ids and (trace_ids or observation_ids):
        raise invalid_request(
            "Invalid experimentId: cannot be combined with traceId or observationId"
        )
    if observation_ids and not trace_ids:
        raise invalid_request("Invalid observationId: requires traceId")
    where.one_of("s.trace_id", trace_ids)
    where.one_of("s.session_id", session_ids)
    where.one_of("s.observation_id", observation_ids)


def _cursor_position(cursor: str) -> tuple[int, str]:
    payload = decode_cursor(cursor, _CURSOR_KEYS)
    timestamp_us = parse_iso_us(payload["lastTimestamp"])
    if timestamp_us is None:
        raise invalid_request("Invalid cursor format")
    return timestamp_us, payload["lastId"]


# --- shapes ----------------------------------------------------------------------------


def score_v2(row: Row) -> dict[str, Any]:
    """A stored score as ``Score`` (v2); for NUMERIC/CATEGORICAL/BOOLEAN/TEXT also ``ScoreV1``."""
    data_type = _data_type(row)
    timestamp = iso(row["timestamp_us"])
    return {
        "id": row["id"],
        "traceId": row["trace_id"],
        "sessionId": row["session_id"],
        "observationId": row["observation_id"],
        "datasetRunId": None,
        "name": row["name"],
        "dataType": data_type,
        **_values(row, data_type),
        "source": _source(row),
        "timestamp": timestamp,
        "createdAt": timestamp,
        "updatedAt": timestamp,
        "authorUserId": None,
        "comment": row["comment"],
        "metadata": json_value(row["metadata"]),
        "configId": None,
        "queueId": None,
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
    }


def score_v3(row: Row, groups: frozenset[str]) -> dict[str, Any]:
    """A stored score as ``ScoreV3``: core fields plus the requested groups."""
    data_type = _data_type(row)
    timestamp = iso(row["timestamp_us"])
    body: dict[str, Any] = {
        "id": row["id"],
        "projectId": PROJECT_ID,
        "name": row["name"],
        "dataType": data_type,
        "value": _value_v3(row, data_type),
        "source": _source(row),
        "timestamp": timestamp,
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
        "createdAt": timestamp,
        "updatedAt": timestamp,
    }
    if "details" in groups:
        body.update(comment=row["comment"], configId=None, metadata=json_object(row["metadata"]))
    if "subject" in groups:
        body["subject"] = _subject(row)
    if "annotation" in groups:
        body.update(authorUserId=None, queueId=None)
    return body


def _trace_of(row: Row) -> dict[str, Any] | None:
    if row["trace_row_id"] is None:
        return None
    return {
        "userId": row["trace_user_id"],
        "tags": json_list(row["trace_tags"]),
        "environment": row["trace_environment"] or DEFAULT_ENVIRONMENT,
        "sessionId": row["trace_session_id"],
    }


def _subject(row: Row) -> dict[str, Any] | None:
    if row["observation_id"]:
        return {"kind": "observation", "id": row["observation_id"], "traceId": row["trace_id"]}
    if row["trace_id"]:
        return {"kind": "trace", "id": row["trace_id"]}
    if row["session_id"]:
        return {"kind": "session", "id": row["session_id"]}
    return None


# --- values ----------------------------------------------------------------------------


def _data_type(row: Row) -> str:
    declared = str(row["data_type"] or "").upper()
    if declared in DATA_TYPES:
        return declared
    return "NUMERIC" if row["value"] is not None else "CATEGORICAL"


def _source(row: Row) -> str:
    source = str(row["source"] or "").upper()
    return source if source in SOURCES else "API"


def _values(row: Row, data_type: str) -> dict[str, Any]:
    """v1/v2 value fields: ``value`` and/or ``stringValue`` by data type."""
    number, text = _number(row), _text(row)
    if data_type == "NUMERIC":
        return {"value": number}
    if data_type == "BOOLEAN":
        flag = _flag(row)
        return {"value": 1.0 if flag else 0.0, "stringValue": "True" if flag else "False"}
    if data_type == "TEXT":
        return {"stringValue": text}
    # Categorical scores without a config map to 0; corrections are always 0.
    return {"value": number if data_type == "CATEGORICAL" else 0.0, "stringValue": text}


def _value_v3(row: Row, data_type: str) -> float | bool | str:
    if data_type == "NUMERIC":
        return _number(row)
    if data_type == "BOOLEAN":
        return _flag(row)
    return _text(row)


def _number(row: Row) -> float:
    if row["value"] is not None:
        return float(row["value"])
    return _finite(row["string_value"] or "") or 0.0


def _text(row: Row) -> str:
    if row["string_value"] is not None:
        return str(row["string_value"])
    return "" if row["value"] is None else format(row["value"], "g")


def _flag(row: Row) -> bool:
    if row["value"] is not None:
        return bool(row["value"])
    return str(row["string_value"]).strip().lower() in ("true", "1")


def _finite(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
