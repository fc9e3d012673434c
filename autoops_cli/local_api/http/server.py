"""``autoops serve``: the local store behind Langfuse's public API shape (Starlette/uvicorn).

Routes, status codes and error bodies follow ``shared/langfuse/openapi.yml`` and
API-NOTES.md. Every route but the health checks (``/api/public/health``, ``/ready``) needs
HTTP Basic auth with the server's key pair; both parts are compared in constant time
(``hmac.compare_digest``, always both, so the time taken does not tell which part was
wrong). The work on the store runs in a thread pool so a slow query never blocks the event
loop. Store access goes through ``LocalStore``, whose SQLite connection is in WAL mode: a
replay in another process can write while this serves.

Limits on what a client may send (``limits.ServeLimits``; hidden ``serve`` options lower
them for tests):

- request body: 32 MiB as sent, refused with 413 as soon as ``Content-Length`` or the bytes
  read so far pass it (chunked bodies too), before anything is stored;
- gzip: 128 MiB once inflated; a gzip trailer announcing more is refused before inflating,
  and inflation stops one byte past the limit (413), so a gzip bomb grows memory by the
  limit at most;
- body read: 30 s for the whole body, then 408 and the connection is closed;
- request headers (``limits``): 10 s from the connection (or a request's first byte) to
  the end of the headers, at most 16 KiB of them; an unread body after the response is
  discarded for at most 5 s, then the connection is closed; an idle kept-alive connection
  is closed after 30 s.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autoops_cli.local_api.http.limits import BODY_READ_TIMEOUT_S, ServeLimits
from autoops_cli.local_api.query.errors import ApiProblem

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

logger = logging.getLogger("autoops.serve")

NO_AUTH_PATHS = frozenset({"/api/public/health", "/api/public/ready"})
# Routes where a Bearer token holding the public key alone is accepted (API-NOTES.md section 1).
PUBLIC_KEY_BEARER_PATHS = frozenset({"/api/public/scores"})


@dataclass(frozen=True)
class ServerSettings:
    """What the server needs: its key pair, its store and its limits."""

    public_key: str
    secret_key: str
    version: str
    limits: ServeLimits = field(default_factory=ServeLimits)


BAD_TEXT = "Invalid request data: text with a lone surrogate (not Unicode)"


def _not_json(name: str) -> Any:
    """``parse_constant`` hook: NaN and Infinity are not JSON (Langfuse's parser refuses them)."""
    raise ValueError(name)


def _json(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def _unauthorized(message: str) -> ApiProblem:
    return ApiProblem(401, {"message": message})


def check_auth(settings: ServerSettings, request: Request) -> None:
    """Basic auth with the key pair (Bearer public key on the scores route); else 401."""
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("No authorization header")
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    expected_public = settings.public_key.encode()
    if scheme == "bearer" and request.url.path in PUBLIC_KEY_BEARER_PATHS:
        if hmac.compare_digest(credentials.strip().encode(), expected_public):
            return
        raise _unauthorized("Invalid credentials. Confirm that you've configured the correct host.")
    if scheme != "basic":
        raise _unauthorized("Invalid authorization header")
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _unauthorized("Invalid authorization header") from None
    public, separator, secret = decoded.partition(b":")
    # Both comparisons always run: the time taken does not tell which part was wrong.
    public_ok = hmac.compare_digest(public, expected_public)
    secret_ok = hmac.compare_digest(secret, settings.secret_key.encode())
    if not (separator and public_ok and secret_ok):
        raise _unauthorized("Invalid credentials. Confirm that you've configured the correct host.")


class ClosingProblem(ApiProblem):
    """An error answered with ``Connection: close`` (the connection is not reusable)."""


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413, {"message": f"Request body exceeds {limit} bytes", "error": "PayloadTooLargeError"}
    )


async def read_body(request: Request, limit: int, timeout_s: float = BODY_READ_TIMEOUT_S) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (checked while reading).

    A body that has not fully arrived after ``timeout_s`` seconds is a 408 (and the
    connection is closed). After a 413 the connection stays open so the client can read the
    answer; the protocol (``limits``) discards the rest of the body for a bounded time.
    """
    import anyio

    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise ClosingProblem(
            408, {"message": "Request body not received in time", "error": "RequestTimeout"}
        ) from None
    return b"".join(chunks)


Handler = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Answer:
    """A handler's answer with a status other than 200."""

    status: int
    body: Any


def create_app(settings: ServerSettings, store: LocalStore) -> Starlette:
    """The Starlette application serving ``store``."""
    from autoops_cli.local_api.http import ingest
    from autoops_cli.local_api.query import metrics
    from autoops_cli.local_api.query.observations import (
        get_observation,
        list_observations_v1,
        list_observations_v2,
    )
    from autoops_cli.local_api.query.projects import get_projects, health
    from autoops_cli.local_api.query.scores import get_score_v2, list_scores_v2, list_scores_v3
    from autoops_cli.local_api.query.traces import get_trace, list_traces

    limits = settings.limits

    def guarded(handler: Handler, *, auth: bool) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if auth:
                    check_auth(settings, request)
                body = await handler(request)
                if isinstance(body, Answer):
                    return _json(body.status, body.body)
                return _json(200, body)
            except ApiProblem as problem:
                response = _json(problem.status, problem.body)
                if isinstance(problem, ClosingProblem):
                    response.headers["connection"] = "close"
                return response
            except UnicodeEncodeError:
                # Text that is not Unicode (a lone surrogate from a JSON escape, e.g. in a
                # cursor or a metrics filter) cannot reach SQLite: the request is bad.
                return _json(400, {"message": BAD_TEXT, "error": "InvalidRequestError"})
            except Exception as exc:  # never a traceback (or a secret) in a response
                logger.exception("unexpected error on %s", request.url.path)
                return _json(500, {"message": "Internal Server Error", "error": type(exc).__name__})

        return endpoint

    def threaded(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return run_in_threadpool(function, *args)

    async def health_check(request: Request) -> Any:
        return health(settings.version)

    async def projects(request: Request) -> Any:
        return get_projects()

    async def otel_traces(request: Request) -> Any:
        body = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        return await threaded(
            lambda: ingest.ingest_otlp(
                store,
                body,
                content_type=request.headers.get("content-type"),
                content_encoding=request.headers.get("content-encoding"),
                ingestion_version=request.headers.get("x-langfuse-ingestion-version"),
                decompressed_limit=limits.max_decompressed_bytes,
            )
        )

    async def create_score(request: Request) -> Any:
        raw = await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        try:
            payload = json.loads(raw, parse_constant=_not_json)
        except (ValueError, RecursionError):
            raise ApiProblem(
                400, {"message": "Invalid request data", "error": "body is not valid JSON"}
            ) from None
        status, body = await threaded(ingest.create_scores, store, payload)
        return Answer(status, body)

    def listing(function: Callable[[LocalStore, Any], Any]) -> Handler:
        """A list route: the read function with the store and the query parameters."""

        async def handler(request: Request) -> Any:
            return await threaded(function, store, request.query_params)

        return handler

    def item(function: Callable[..., Any], name: str, *, with_params: bool = False) -> Handler:
        """A route for one item: the read function with the store and the path id."""

        async def handler(request: Request) -> Any:
            extra = (request.query_params,) if with_params else ()
            return await threaded(function, store, request.path_params[name], *extra)

        return handler

    async def metrics_v1(request: Request) -> Any:
        query = request.query_params.get("query")
        return await threaded(lambda: metrics.run_metrics_query(store, query, version=1))

    async def metrics_v2(request: Request) -> Any:
        query = request.query_params.get("query")
        return await threaded(lambda: metrics.run_metrics_query(store, query, version=2))

    def route(path: str, handler: Handler, method: str = "GET") -> Route:
        # Auth unless the path is listed in NO_AUTH_PATHS: a new route is guarded by default.
        return Route(path, guarded(handler, auth=path not in NO_AUTH_PATHS), methods=[method])

    routes = [
        route("/api/public/health", health_check),
        route("/api/public/ready", health_check),
        route("/api/public/projects", projects),
        route("/api/public/otel/v1/traces", otel_traces, "POST"),
        route("/api/public/scores", create_score, "POST"),
        route("/api/public/v2/scores", listing(list_scores_v2)),
        route("/api/public/v2/scores/{score_id}", item(get_score_v2, "score_id")),
        route("/api/public/v3/scores", listing(list_scores_v3)),
        route("/api/public/traces", listing(list_traces)),
        route("/api/public/traces/{trace_id}", item(get_trace, "trace_id", with_params=True)),
        route("/api/public/observations", listing(list_observations_v1)),
        route(
            "/api/public/observations/{observation_id}",
            item(get_observation, "observation_id"),
        ),
        route("/api/public/v2/observations", listing(list_observations_v2)),
        route("/api/public/metrics", metrics_v1),
        route("/api/public/v2/metrics", metrics_v2),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(
            404,
            {"message": f"Route {request.url.path} not found", "error": "LangfuseNotFoundError"},
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return _json(405, {"message": "Method not allowed", "error": "MethodNotAllowedError"})

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: method_not_allowed})
