"""Trace reads: GET /api/public/traces (``Traces``) and /api/public/traces/{traceId}.

The list answers ``TraceWithDetails`` (observation and score ids, latency, the cost its observations
recorded); one trace
answers ``TraceWithFullDetails`` (full ``ObservationsView`` and ``ScoreV1`` objects). The
``fields`` groups thin both out as Langfuse does: without ``io`` no input, output or
metadata; without ``observations`` / ``scores`` empty lists; without ``metrics`` latency and
cost are -1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from sqlite3 import Row
from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.query.common import (
    DEFAULT_ENVIRONMENT,
    PROJECT_ID,
    Where,
    field_groups,
    iso,
    json_list,
    json_value,
    list_param,
    page_meta,
    page_params,
    placeholders,
    tags_contain_all,
    text_param,
    time_param,
)
from autoops_cli.local_api.query.errors import QueryParams, invalid_request, not_found
from autoops_cli.local_api.query.filters import TRACE_COLUMNS, structured_filter
from autoops_cli.local_api.query.metrics_views import observation_measures
from autoops_cli.local_api.query.observations import observations_of_trace
from autoops_cli.local_api.query.scores import scores_of_trace

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

FIELD_GROUPS = ("core", "io", "scores", "observations", "metrics")
# orderBy field -> SQL (None: no column, nothing is ever bookmarked locally).
ORDER_COLUMNS: dict[str, str | None] = {
    "id": "t.id",
    "timestamp": "t.timestamp_us",
    "name": "t.name",
    "userId": "t.user_id",
    "release": "t.release",
    "version": "t.version",
    "public": "COALESCE(t.public, 0)",
    "bookmarked": None,
    "sessionId": "t.session_id",
}
NOT_MEASURED = -1  # latency and cost when the ``metrics`` group is left out


def list_traces(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/traces: ``{"data": [TraceWithDetails], "meta": {page...}}``."""
    page, limit = page_params(params)
    groups = field_groups(params, FIELD_GROUPS) or set(FIELD_GROUPS)
    order = _order_by(params)
    where = _filters(params)
    total = int(store.query(f"SELECT COUNT(*) FROM traces AS t{where.sql()}", where.args)[0][0])
    rows = store.query(
        f"SELECT * FROM traces AS t{where.sql()} ORDER BY {order} LIMIT ? OFFSET ?",
        [*where.args, limit, (page - 1) * limit],
    )
    ids = [row["id"] for row in rows]
    observation_ids = _ids_by_trace(store, "observations", ids) if "observations" in groups else {}
    score_ids = _ids_by_trace(store, "scores", ids) if "scores" in groups else {}
    latencies = _latencies(store, ids) if "metrics" in groups else {}
    data = [
        {
            **trace_fields(row, groups),
            "observations": observation_ids.get(row["id"], []),
            "scores": score_ids.get(row["id"], []),
            **_metrics(row["id"], groups, latencies),
        }
        for row in rows
    ]
    return {"data": data, "meta": page_meta(page, limit, total)}


def get_trace(store: LocalStore, trace_id: str, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/traces/{traceId}: ``TraceWithFullDetails``, else Langfuse's 404."""
    groups = field_groups(params, FIELD_GROUPS) or set(FIELD_GROUPS)
    rows = store.query("SELECT * FROM traces AS t WHERE t.id = ?", (trace_id,))
    if not rows:
        raise not_found(f"Trace {trace_id} not found within authorized project")
    latencies = _latencies(store, [trace_id]) if "metrics" in groups else {}
    return {
        **trace_fields(rows[0], groups),
        "observations": observations_of_trace(store, trace_id) if "observations" in groups else [],
        "scores": scores_of_trace(store, trace_id) if "scores" in groups else [],
        **_metrics(trace_id, groups, latencies),
    }


def trace_fields(row: Row, groups: set[str]) -> dict[str, Any]:
    """The ``Trace`` fields of a stored trace (input, output, metadata with ``io`` only)."""
    body: dict[str, Any] = {
        "id": row["id"],
        "projectId": PROJECT_ID,
        "timestamp": iso(row["timestamp_us"]),
        "name": row["name"],
        "sessionId": row["session_id"],
        "release": row["release"],
        "version": row["version"],
        "userId": row["user_id"],
        "tags": json_list(row["tags"]),
        "public": bool(row["public"]),
        "bookmarked": False,
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
        "htmlPath": f"/project/{PROJECT_ID}/traces/{row['id']}",
        # The store keeps no insert time: the trace's start is the nearest it has.
        "createdAt": iso(row["timestamp_us"]),
        "updatedAt": iso(row["updated_us"]),
    }
    if "io" in groups:
        body["input"] = json_value(row["input"])
        body["output"] = json_value(row["output"])
        body["metadata"] = json_value(row["metadata"])
    return body


def _filters(params: QueryParams) -> Where:
    where = Where()
    params = structured_filter(where, params, TRACE_COLUMNS)
    where.equal("t.user_id", text_param(params, "userId"))
    where.equal("t.name", text_param(params, "name"))
    where.equal("t.session_id", text_param(params, "sessionId"))
    where.equal("t.version", text_param(params, "version"))
    where.equal("t.release", text_param(params, "release"))
    tags_contain_all("t.tags", where, list_param(params, "tags"))
    where.one_of("COALESCE(t.environment, 'default')", list_param(params, "environment"))
    where.time_range(
        "t.timestamp_us", time_param(params, "fromTimestamp"), time_param(params, "toTimestamp")
    )
    return where


def _order_by(params: QueryParams) -> str:
    """The ORDER BY clause of ``orderBy=field.asc|desc`` (default newest first).

    Built only from ``ORDER_COLUMNS`` and the two directions; ids break ties so pages
    never overlap.
    """
    value = text_param(params, "orderBy")
    if value is None:
        return "t.timestamp_us DESC, t.id DESC"
    name, _, direction = value.partition(".")
    if name not in ORDER_COLUMNS or direction.lower() not in ("asc", "desc"):
        raise invalid_request(
            "Invalid orderBy: expected <field>.<asc|desc> with field one of "
            + ", ".join(ORDER_COLUMNS)
        )
    sql_direction = "ASC" if direction.lower() == "asc" else "DESC"
    column = ORDER_COLUMNS[name]
    ties = f"t.id {sql_direction}"
    return f"{column} {sql_direction}, {ties}" if column else ties


def _ids_by_trace(store: LocalStore, table: str, trace_ids: Sequence[str]) -> dict[str, list[str]]:
    """Ids of the observations or scores (``table``) of each trace, in time order."""
    if not trace_ids:
        return {}
    time_column = {"observations": "start_us", "scores": "timestamp_us"}[table]
    rows = store.query(
        f"SELECT trace_id, id FROM {table} WHERE trace_id IN ({placeholders(len(trace_ids))}) "
        f"ORDER BY {time_column}, id",
        trace_ids,
    )
    found: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        found[row["trace_id"]].append(row["id"])
    return found


def _latencies(store: LocalStore, trace_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Per trace: seconds from the first observation's start to the last one's end, and the
    total cost of its observations (what their cost details say: no price table is kept
    locally, so only recorded costs count, as on the observations and in the metrics)."""
    if not trace_ids:
        return {}
    cost = observation_measures("o")["totalCost"].sql
    rows = store.query(
        "SELECT trace_id, MAX(COALESCE(end_us, start_us)) - MIN(start_us) AS span_us, "
        f"SUM({cost}) AS cost FROM observations AS o "
        f"WHERE trace_id IN ({placeholders(len(trace_ids))}) GROUP BY trace_id",
        trace_ids,
    )
    return {row["trace_id"]: (row["span_us"] / 1_000_000, float(row["cost"])) for row in rows}


def _metrics(
    trace_id: str, groups: set[str], measured: dict[str, tuple[float, float]]
) -> dict[str, float]:
    if "metrics" not in groups:
        return {"latency": NOT_MEASURED, "totalCost": NOT_MEASURED}
    latency, cost = measured.get(trace_id, (0.0, 0.0))
    return {"latency": latency, "totalCost": cost}
