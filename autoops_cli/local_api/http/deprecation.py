"""Langfuse's deprecation signals, and what ``autoops serve --v4-only`` refuses.

API 4.35.0 deprecates the v3 read paths. Langfuse stamps a top-level ``_deprecation`` object
onto their answers (``web/src/features/public-api/server/deprecations.ts``); in a v4
``events_only`` deployment (Langfuse Cloud after 2026-11-16) the routes flagged
``rejectInEventsOnlyMode`` answer 404 before even checking the keys. ``--v4-only`` makes
the local server behave as such a deployment; ``batch`` refuses the trace and observation
events of ``/api/public/ingestion`` the same way.
"""

from __future__ import annotations

from typing import Any

SUNSET_AT = "2026-11-16"
_NOTICE = (
    "On Langfuse Cloud, Langfuse v3 is deprecated and this endpoint will be removed on "
    "November 16, 2026."
)
_OBSERVATIONS_V2 = "GET /api/public/v2/observations?fromStartTime=<from>&toStartTime=<to>"
_BY_SESSION = (
    "GET /api/public/v2/observations?filter=<urlencoded sessionId filter>"
    "&fromStartTime=<from>&toStartTime=<to>"
)
_OBSERVATIONS_DOCS = "https://langfuse.com/docs/api-and-data-platform/features/observations-api"


def _signal(message: str, replacement: str, docs: str) -> dict[str, str]:
    return {
        "message": f"{_NOTICE} {message}",
        "replacement": replacement,
        "docsUrl": docs,
        "sunsetAt": SUNSET_AT,
    }


OBSERVATIONS = _signal(f"Use {_OBSERVATIONS_V2} instead.", _OBSERVATIONS_V2, _OBSERVATIONS_DOCS)
TRACES = _signal(
    f"In Langfuse v4, read span and trace data via {_OBSERVATIONS_V2}.",
    _OBSERVATIONS_V2,
    _OBSERVATIONS_DOCS,
)
SESSIONS = _signal(
    f"In Langfuse v4, read session data via {_BY_SESSION}.", _BY_SESSION, _OBSERVATIONS_DOCS
)
SCORES = _signal(
    "Use GET /api/public/v3/scores instead.",
    "GET /api/public/v3/scores",
    "https://langfuse.com/docs/api-and-data-platform/features/scores-api",
)
METRICS = _signal(
    "Use GET /api/public/v2/metrics?query=<urlencoded json query> instead.",
    "GET /api/public/v2/metrics?query=<urlencoded json query>",
    "https://langfuse.com/docs/metrics/features/metrics-api",
)

# The deprecated read routes this server answers (path templates), with their signal.
DEPRECATED_READS: dict[str, dict[str, str]] = {
    "/api/public/traces": TRACES,
    "/api/public/traces/{trace_id}": TRACES,
    "/api/public/observations": OBSERVATIONS,
    "/api/public/observations/{observation_id}": OBSERVATIONS,
    "/api/public/sessions": SESSIONS,
    "/api/public/sessions/{session_id}": SESSIONS,
    "/api/public/v2/scores": SCORES,
    "/api/public/v2/scores/{score_id}": SCORES,
    "/api/public/metrics": METRICS,
}
EVENTS_ONLY_MESSAGE = (
    "This endpoint is not available on deployments running in Langfuse v4 events_only mode. "
    "Learn more about Langfuse v4 at: https://langfuse.com/docs/v4"
)


def deprecated(body: Any, signal: dict[str, str]) -> Any:
    """``body`` with ``_deprecation`` on top (objects only, as Langfuse stamps them)."""
    return {**body, "_deprecation": signal} if isinstance(body, dict) else body


def events_only_refusal(signal: dict[str, str]) -> dict[str, Any]:
    """The 404 body of a deprecated read route in a v4 events_only deployment."""
    return {"message": EVENTS_ONLY_MESSAGE, "_deprecation": signal}
