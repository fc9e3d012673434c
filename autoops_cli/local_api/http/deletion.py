"""Deleting traces and scores: DELETE /api/public/traces[/{traceId}], /scores/{scoreId}.

As Langfuse: a trace goes with its observations and scores; deleting what does not exist
is not an error (Langfuse queues deletions and answers before looking); many traces take a
body ``{"traceIds": [...]}`` of 1 to 1,000 ids. Langfuse deletes asynchronously; here the
rows are gone when the answer is sent. A score deletion answers 202 as Langfuse does.
"""

from __future__ import annotations

from typing import Any

from autoops_cli.local_api.query.errors import ApiProblem
from config.store.local_store import LocalStore

MAX_TRACE_IDS = 1000


def _invalid(message: str, path: str) -> ApiProblem:
    return ApiProblem(
        400,
        {
            "message": "Invalid request data",
            "error": [{"code": "invalid_type", "path": [path], "message": message}],
        },
    )


def delete_trace(store: LocalStore, trace_id: str) -> dict[str, Any]:
    """DELETE /api/public/traces/{traceId}."""
    store.delete_traces([trace_id])
    return {"message": "Trace deleted successfully"}


def delete_traces(store: LocalStore, body: Any) -> dict[str, Any]:
    """DELETE /api/public/traces with ``{"traceIds": [...]}``."""
    ids = body.get("traceIds") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise _invalid("Invalid input: expected array of strings", "traceIds")
    if not ids:
        raise _invalid("At least 1 traceId is required.", "traceIds")
    if len(ids) > MAX_TRACE_IDS:
        raise _invalid("Cannot specify more than 1000 traces in a single request.", "traceIds")
    store.delete_traces(ids)
    return {"message": "Traces deleted successfully"}


def delete_score(store: LocalStore, score_id: str) -> dict[str, Any]:
    """DELETE /api/public/scores/{scoreId} (answered with 202, as Langfuse does)."""
    store.delete_scores([score_id])
    return {"message": "Score deleted successfully"}
