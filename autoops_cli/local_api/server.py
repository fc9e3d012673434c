"""``autoops serve``: the local store behind Langfuse's public API shape (Starlette/uvicorn).

Routes, status codes and error bodies follow ``shared/langfuse/openapi.yml`` and
API-NOTES.md. Every route but the health check needs HTTP Basic auth with the server's key
pair (compared in constant time). Bodies are bounded (413), gzip is inflated only up to a
limit (a gzip bomb is refused), and the work on the store runs in a thread pool so a slow
query never blocks the event loop. Store access goes through ``LocalStore``, whose SQLite
connection is in WAL mode: a replay in another process can write while this serves.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autoops_cli.local_api.errors import ApiProblem

if TYPE_CHECKING:
    from config.local_store import LocalStore

logger = logging.getLogger("autoops.serve")

MAX_BODY_BYTES = 32 * 1024 * 1024  # per request, as sent
MAX_DECOMPRESSED_BYTES = 128 * 1024 * 1024  # after gzip
BODY_READ_TIMEOUT_S = 30.0
NO_AUTH_PATHS = frozenset({"/api/public/health", "/api/public/ready"})
# Routes where a Bearer token holding the public key alone is accepted (API-NOTES.md section 1).
PUBLIC_KEY_BEARER_PATHS = frozenset({"/api/public/scores"})


@dataclass(frozen=True)
class ServerSettings:
    """What the server needs: its key pair, its store and its limits."""

    public_key: str
    secret_key: str
    version: str
    max_body_bytes: int = MAX_BODY_BYTES
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES


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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (checked while reading)."""
    import anyio

    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(
            413, {"message": f"Request body exceeds {limit} bytes", "error": "PayloadTooLargeError"}
        )
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_READ_TIMEOUT_S):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiProblem(
                        413,
                        {
                            "message": f"Request body exceeds {limit} bytes",
                            "error": "PayloadTooLargeError",
                        },
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ApiProblem(
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
    from autoops_cli.local_api import ingest, metrics, reads

    def guarded(handler: Handler, *, auth: bool = True) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if auth:
                    check_auth(settings, request)
                body = await handler(request)
                if isinstance(body, Answer):
                    return _json(body.status, body.body)
                return _json(200, body)
            except ApiProblem as problem:
                return _json(problem.status, problem.body)
            except Exception as exc:  # never a traceback (or a secret) in a response
                logger.exception("unexpected error on %s", request.url.path)
                return _json(500, {"message": "Internal Server Error", "error": type(exc).__name__})

        return endpoint

    def threaded(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        return run_in_threadpool(function, *args)

    async def health(request: Request) -> Any:
        return reads.health(settings.version)

    async def projects(request: Request) -> Any:
        return reads.get_projects()

    async def otel_traces(request: Request) -> Any:
        body = await read_body(request, settings.max_body_bytes)
        return await threaded(
            lambda: ingest.ingest_otlp(
                store,
                body,
                content_type=request.headers.get("content-type"),
                content_encoding=request.headers.get("content-encoding"),
                ingestion_version=request.headers.get("x-langfuse-ingestion-version"),
                decompressed_limit=settings.max_decompressed_bytes,
            )
        )

    async def create_score(request: Request) -> Any:
        raw = await read_body(request, settings.max_body_bytes)
        try:
            payload = json.loads(raw)
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

    routes = [
        Route("/api/public/health", guarded(health, auth=False), methods=["GET"]),
        Route("/api/public/ready", guarded(health, auth=False), methods=["GET"]),
        Route("/api/public/projects", guarded(projects), methods=["GET"]),
        Route("/api/public/otel/v1/traces", guarded(otel_traces), methods=["POST"]),
        Route("/api/public/scores", guarded(create_score), methods=["POST"]),
        Route("/api/public/v2/scores", guarded(listing(reads.list_scores_v2)), methods=["GET"]),
        Route(
            "/api/public/v2/scores/{score_id}",
            guarded(item(reads.get_score_v2, "score_id")),
            methods=["GET"],
        ),
        Route("/api/public/v3/scores", guarded(listing(reads.list_scores_v3)), methods=["GET"]),
        Route("/api/public/traces", guarded(listing(reads.list_traces)), methods=["GET"]),
        Route(
            "/api/public/traces/{trace_id}",
            guarded(item(reads.get_trace, "trace_id", with_params=True)),
            methods=["GET"],
        ),
        Route(
            "/api/public/observations",
            guarded(listing(reads.list_observations_v1)),
            methods=["GET"],
        ),
        Route(
            "/api/public/observations/{observation_id}",
            guarded(item(reads.get_observation, "observation_id")),
            methods=["GET"],
        ),
        Route(
            "/api/public/v2/observations",
            guarded(listing(reads.list_observations_v2)),
            methods=["GET"],
        ),
        Route("/api/public/metrics", guarded(metrics_v1), methods=["GET"]),
        Route("/api/public/v2/metrics", guarded(metrics_v2), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(
            404,
            {"message": f"Route {request.url.path} not found", "error": "LangfuseNotFoundError"},
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return _json(405, {"message": "Method not allowed", "error": "MethodNotAllowedError"})

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: method_not_allowed})
