"""Session reads: GET /api/public/sessions (``PaginatedSessions``) and /sessions/{sessionId}.

The store keeps no session table: a session is the traces sharing a ``sessionId``. It was
created when its first trace started (``createdAt``) and has that trace's environment, as
Langfuse's session row does (it is written with the session's first trace). Session scores
alone do not make a session, in Langfuse either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.query.common import (
    DEFAULT_ENVIRONMENT,
    PROJECT_ID,
    Where,
    iso,
    list_param,
    page_meta,
    page_params,
    time_param,
)
from autoops_cli.local_api.query.errors import QueryParams, not_found
from autoops_cli.local_api.query.traces import trace_fields

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

# One row per session: its first trace's start and environment.
_SESSIONS = (
    "SELECT session_id AS id, MIN(timestamp_us) AS created_us, "
    "(SELECT COALESCE(t2.environment, 'default') FROM traces t2 WHERE t2.session_id = t.session_id "
    "ORDER BY t2.timestamp_us, t2.id LIMIT 1) AS environment "
    "FROM traces t WHERE session_id IS NOT NULL GROUP BY session_id"
)


def list_sessions(store: LocalStore, params: QueryParams) -> dict[str, Any]:
    """GET /api/public/sessions: newest first, page-based."""
    page, limit = page_params(params)
    where = Where()
    where.time_range(
        "s.created_us", time_param(params, "fromTimestamp"), time_param(params, "toTimestamp")
    )
    where.one_of("s.environment", list_param(params, "environment"))
    sessions = f"({_SESSIONS}) AS s{where.sql()}"
    total = int(store.query(f"SELECT COUNT(*) FROM {sessions}", where.args)[0][0])
    rows = store.query(
        f"SELECT * FROM {sessions} ORDER BY s.created_us DESC, s.id DESC LIMIT ? OFFSET ?",
        [*where.args, limit, (page - 1) * limit],
    )
    return {"data": [_session(row) for row in rows], "meta": page_meta(page, limit, total)}


def get_session(store: LocalStore, session_id: str) -> dict[str, Any]:
    """GET /api/public/sessions/{sessionId}: the session with its traces (oldest first)."""
    traces = store.query(
        "SELECT * FROM traces AS t WHERE t.session_id = ? ORDER BY t.timestamp_us, t.id",
        (session_id,),
    )
    if not traces:
        raise not_found("Session not found within authorized project")
    first = traces[0]
    return {
        "id": session_id,
        "createdAt": iso(first["timestamp_us"]),
        "projectId": PROJECT_ID,
        "environment": first["environment"] or DEFAULT_ENVIRONMENT,
        "traces": [trace_fields(row, {"io"}) for row in traces],
    }


def _session(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "createdAt": iso(row["created_us"]),
        "projectId": PROJECT_ID,
        "environment": row["environment"] or DEFAULT_ENVIRONMENT,
    }
