"""``autoops serve``: the local store behind Langfuse's public API (Starlette/uvicorn).

Routes, status codes and error bodies follow ``reference/langfuse/openapi.yml``, the API
4.35.0 contract and API-NOTES.md; ``docs/serve-api.md`` lists every operation of the
contract and whether this server answers it. Every route but the health checks
(``/api/public/health``, ``/ready``) needs HTTP Basic auth with the server's key pair;
both parts are compared in constant time (``hmac.compare_digest``, always both, so the time
taken does not tell which part was wrong). The work on the store runs in a thread pool so a
slow query never blocks the event loop. Store access goes through ``LocalStore``, whose
SQLite connection is in WAL mode: a replay in another process can write while this serves.

The deprecated read routes carry Langfuse's ``_deprecation`` signal; with ``v4_only`` they
answer 404 as a Langfuse v4 ``events_only`` deployment does (``deprecation``).

Limits on what a client may send (``limits.ServeLimits``; hidden ``serve`` options lower
them for tests):

- request body: 32 MiB as sent (4.5 MiB on ``/api/public/ingestion``, as Langfuse), refused
  with 413 as soon as ``Content-Length`` or the bytes read so far pass it (chunked bodies
  too), before anything is stored;
- gzip: 128 MiB once inflated; a gzip trailer announcing more is refused before inflating,
  and inflation stops one byte past the limit (413), so a gzip bomb grows memory by the
  limit at most;
- memory: bodies are read and decoded within two budgets (``budget``), so whatever the
  number of parallel requests the server decodes at most 128 MiB of body at a time;
- body read: 30 s for the whole body, then 408 and the connection is closed;
- query string: at most 16 KiB (414 beyond), as Node, which Langfuse runs on, takes;
- request headers (``limits``): 10 s from the connection (or a request's first byte) to
  the end of the headers, at most 16 KiB of them; an unread body after the response is
  discarded for at most 5 s, then the connection is closed; an idle kept-alive connection
  is closed after 30 s.

A store that cannot be written (a full disk) is a 503 with ``Retry-After``: the SDKs and
the toolkit's own outbox send the batch again later.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
import re
import sqlite3
import threading
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from autoops_cli.local_api.http.budget import (
    LARGE_BODY_BYTES,
    SMALL_BODY_BYTES,
    MemoryBudget,
    release_memory,
)
from autoops_cli.local_api.http.deprecation import (
    DEPRECATED_READS,
    deprecated,
    events_only_refusal,
)
from autoops_cli.local_api.http.limits import BODY_READ_TIMEOUT_S, MAX_HEADER_BYTES, ServeLimits
from autoops_cli.local_api.query.errors import ApiProblem
from config.errors import LocalFileError
from config.json_values import finite

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

logger = logging.getLogger("autoops.serve")

# The Langfuse API version this server implements, as /api/public/health reports it. The
# field is the Langfuse server version, from which the official CLI's --api-version auto
# picks its API snapshot: 4.35.0 is the contract the tests check every answer against
# (reference/langfuse/api-4.35.0-contract.json). This package's own version means nothing
# to a Langfuse client (the CLI exits 3 on it).
LANGFUSE_API_VERSION = "4.35.0"
NO_AUTH_PATHS = frozenset({"/api/public/health", "/api/public/ready"})
# Routes where a Bearer token holding the public key alone is accepted (API-NOTES.md section 1).
PUBLIC_KEY_BEARER_PATHS = frozenset({"/api/public/scores"})
MAX_QUERY_BYTES = MAX_HEADER_BYTES
RETRY_AFTER_S = 30  # what a 503 asks a client to wait when the store cannot be written
BAD_TEXT = "Invalid request data: text with a lone surrogate (not Unicode)"


@dataclass(frozen=True)
class ServerSettings:
    """What the server needs: its key pair, its limits, and whether it is v4-only."""

    public_key: str
    secret_key: str
    version: str = LANGFUSE_API_VERSION
    limits: ServeLimits = field(default_factory=ServeLimits)
    v4_only: bool = False


def _not_json(name: str) -> Any:
    """``parse_constant`` hook: NaN and Infinity are not JSON (Langfuse's parser refuses them)."""
    raise ValueError(name)


class _JsonAnswer(JSONResponse):
    """JSON as Starlette writes it, except that a float JSON cannot carry (a sum of values
    near the largest float overflows to infinity) is written as null, not a 500."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except ValueError:  # allow_nan=False met inf or nan: rare, so walked only then
            return super().render(finite(content))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return _JsonAnswer(body, status_code=status, headers=headers)


WRONG_CREDENTIALS = "Invalid credentials. Confirm that you've configured the correct host."
INGESTION_PATH = "/api/public/ingestion"  # its own handler in Langfuse, its own 401 body


def _unauthorized(message: str, path: str) -> ApiProblem:
    if path == INGESTION_PATH:
        return ApiProblem(401, {"error": "UnauthorizedError", "message": message})
    return ApiProblem(401, {"message": message})


def check_auth(settings: ServerSettings, request: Request) -> None:
    """Basic auth with the key pair (Bearer public key on the scores route); else 401."""
    path = request.url.path
    header = request.headers.get("authorization")
    if not header:
        raise _unauthorized("No authorization header", path)
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    expected_public = settings.public_key.encode()
    if scheme == "bearer" and path in PUBLIC_KEY_BEARER_PATHS:
        if hmac.compare_digest(credentials.strip().encode(), expected_public):
            return
        raise _unauthorized(WRONG_CREDENTIALS, path)
    if scheme != "basic":
        raise _unauthorized("Invalid authorization header", path)
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _unauthorized("Invalid authorization header", path) from None
    public, separator, secret = decoded.partition(b":")
    # Both comparisons always run: the time taken does not tell which part was wrong.
    public_ok = hmac.compare_digest(public, expected_public)
    secret_ok = hmac.compare_digest(secret, settings.secret_key.encode())
    if not (separator and public_ok and secret_ok):
        raise _unauthorized(WRONG_CREDENTIALS, path)


class ClosingProblem(ApiProblem):
    """An error answered with ``Connection: close`` (the connection is not reusable)."""


def check_header_size(request: Request) -> None:
    """431 for a request line and headers over ``MAX_HEADER_BYTES``.

    The protocol caps headers that arrive in pieces; headers that arrive whole in one read
    are parsed whatever their size, so the bound is checked again here, on what was parsed.
    """
    scope = request.scope
    size = len(scope.get("method", "")) + len(scope.get("raw_path") or b"")
    size += len(scope.get("query_string", b"")) + 12  # spaces, "?", " HTTP/1.1\r\n"
    size += sum(len(name) + len(value) + 4 for name, value in scope.get("headers", ()))
    if size > MAX_HEADER_BYTES:
        raise ClosingProblem(
            431,
            {
                "message": f"Request header fields exceed {MAX_HEADER_BYTES} bytes",
                "error": "RequestHeaderFieldsTooLargeError",
            },
        )


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(
        413, {"message": f"Request body exceeds {limit} bytes", "error": "PayloadTooLargeError"}
    )


def declared_length(request: Request, limit: int) -> int:
    """The body size ``Content-Length`` announces, capped at ``limit`` (the limit without one).

    A request with a ``Transfer-Encoding`` too is read by it, whatever its length says (HTTP
    1.1): ``Content-Length: 1`` reserved one byte for a chunked body of any size, and such
    bodies, in memory at once, went past the server's bound.
    """
    declared = request.headers.get("content-length")
    if "transfer-encoding" in request.headers:
        return limit
    if declared is not None and declared.isascii() and declared.isdigit():
        return min(int(declared), limit)
    return limit


async def read_body(
    request: Request, limit: int, timeout_s: float = BODY_READ_TIMEOUT_S
) -> bytearray:
    """The request body, refused with 413 past ``limit`` bytes (checked while reading).

    A body that has not fully arrived after ``timeout_s`` seconds is a 408 (and the
    connection is closed). After a 413 the connection stays open so the client can read the
    answer; the protocol (``limits``) discards the rest of the body for a bounded time. The
    body grows in one buffer (no list of chunks joined at the end: half the peak memory).
    """
    import anyio

    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    try:
        with anyio.fail_after(timeout_s):
            async for chunk in request.stream():
                if len(body) + len(chunk) > limit:
                    raise _too_large(limit)
                body += chunk
    except TimeoutError:
        raise ClosingProblem(
            408, {"message": "Request body not received in time", "error": "RequestTimeout"}
        ) from None
    return body


def parse_json_body(raw: bytes | bytearray) -> Any:
    """A request body as JSON; a 400 as Langfuse's zod layer answers when it is not."""
    try:
        return json.loads(raw, parse_constant=_not_json)
    except (ValueError, RecursionError):
        raise ApiProblem(
            400, {"message": "Invalid request data", "error": "body is not valid JSON"}
        ) from None


Handler = Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class Answer:
    """A handler's answer with a status other than 200."""

    status: int
    body: Any


def _store_unavailable(reason: str) -> JSONResponse:
    """503 + Retry-After: the store cannot be written now (a full disk); come back later."""
    return _json(
        503,
        {
            "message": f"The local store cannot be written: {reason}",
            "error": "ServiceUnavailableError",
        },
        {"retry-after": str(RETRY_AFTER_S)},
    )


def _sqlite_problem(exc: sqlite3.Error) -> JSONResponse | None:
    """The answer to an SQLite error a request may cause, or None (a bug: 500)."""
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return _store_unavailable(text)
    if "too large" in text or "too many" in text or "too deep" in text:
        # SQLite's own bounds on a statement (expression depth, variables): a request this
        # large is refused, never a server error.
        return _json(
            400,
            {
                "message": "Invalid request data: the request is too large",
                "error": "InvalidRequestError",
            },
        )
    if "integer overflow" in text:
        # SUM over stored whole numbers (usage, latencies in microseconds) beyond 64 bits: a
        # hostile client's usage of 6e18 tokens, twice, made every metrics query a 500.
        return _json(
            422,
            {
                "message": "A sum asked for exceeds the range of 64-bit integers: some stored "
                "values are out of range; narrow the query's filters or time range",
                "error": "UnprocessableEntityError",
            },
        )
    return None


def guarded(
    handler: Handler, settings: ServerSettings, *, auth: bool
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of ``handler``: query-string bound, auth, and every error a JSON answer."""

    async def endpoint(request: Request) -> Response:
        try:
            if len(request.scope.get("query_string", b"")) > MAX_QUERY_BYTES:
                return _json(
                    414,
                    {
                        "message": f"Query string exceeds {MAX_QUERY_BYTES} bytes",
                        "error": "URITooLongError",
                    },
                )
            check_header_size(request)
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
        except LocalFileError as exc:
            return _store_unavailable(exc.message)
        except ClientDisconnect:
            # The client hung up mid-body (a timed-out or killed SDK): nobody to answer, and
            # no server error (logged as one, three of them hid every real 500 after them).
            logger.debug("client left during %s", request.url.path)
            return _json(400, {"message": "Client disconnected", "error": "ClientDisconnect"})
        except sqlite3.Error as exc:
            answer = _sqlite_problem(exc)
            if answer is not None:
                return answer
            logger.exception("unexpected error on %s", request.url.path)
            return _json(500, {"message": "Internal Server Error", "error": type(exc).__name__})
        except Exception as exc:  # never a traceback (or a secret) in a response
            logger.exception("unexpected error on %s", request.url.path)
            return _json(500, {"message": "Internal Server Error", "error": type(exc).__name__})

    return endpoint


def drop_frames(error: BaseException) -> None:
    """Clear the locals of the frames an error (and its causes) came through.

    A frame that raised from inside ``except ... as exc`` holds ``exc``, whose traceback
    holds the frame: a cycle that only the garbage collector frees, and with it the body
    decoded there (128 MB each, so a few refused bodies in a row grew the server to 800 MB).
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__


def threaded(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Run blocking work (the store, decoding) in the thread pool."""
    return run_in_threadpool(function, *args)


class WriteRoutes:
    """The routes that write: OTLP, scores, the batch ingestion, deletions.

    Bodies are read within the raw budget and decoded within the decoded one (``budget``).
    """

    def __init__(self, settings: ServerSettings, store: LocalStore) -> None:
        self.settings, self.store = settings, store
        self.limits = settings.limits
        self.raw_budget = MemoryBudget(self.limits.max_body_bytes)
        # Bodies announced at up to SMALL_BODY_BYTES wait in a budget of their own: a large
        # upload trickling in (a slow link) holds its reservation until it has arrived, and
        # every SDK's small export queued behind it for up to the body timeout (an SDK
        # gives up after 5 s, and its spans were lost).
        self.small_raw_budget = MemoryBudget(self.limits.max_body_bytes)
        self.decoded_budget = MemoryBudget(self.limits.max_decompressed_bytes)
        self._decoded_since_release = 0  # bytes decoded since memory was last given back
        self.batch_lock = threading.Lock()

    @contextlib.asynccontextmanager
    async def received(self, request: Request, limit: int) -> AsyncIterator[bytearray]:
        """The body, read within the raw budget (held until the request is done)."""
        size = declared_length(request, limit)
        budget = self.small_raw_budget if size <= SMALL_BODY_BYTES else self.raw_budget
        async with budget.hold(size):
            yield await read_body(request, limit, self.limits.body_timeout_s)

    async def after_large(self, reserved: int) -> None:
        """After a large body, or small ones adding up to one (sixteen 1 MB exports at once
        kept 190 MB): SQLite's cache and the freed heap go back to the system."""
        self._decoded_since_release += reserved
        if self._decoded_since_release >= LARGE_BODY_BYTES:
            self._decoded_since_release = 0

            def release() -> None:
                self.store.release_memory()
                release_memory()

            await threaded(release)

    async def otel_traces(self, request: Request) -> Any:
        """POST /api/public/otel/v1/traces."""
        from autoops_cli.local_api.http import otlp
        from autoops_cli.local_api.http.bodies import (
            InflatedPastReservation,
            decompressed_too_large,
            inflated_size,
            is_gzip,
        )

        encoding = request.headers.get("content-encoding")
        limit = self.limits.max_decompressed_bytes
        async with self.received(request, self.limits.max_body_bytes) as raw:
            body = otlp.Body(raw)
            del raw
            need = inflated_size(body.peek()) if is_gzip(encoding) else len(body.peek())
            if need > limit:  # refused before waiting for the budget
                raise decompressed_too_large(limit)

            def ingest(reserved: int) -> dict[str, Any]:
                return otlp.ingest_otlp(
                    self.store,
                    body,
                    content_type=request.headers.get("content-type"),
                    content_encoding=encoding,
                    ingestion_version=request.headers.get("x-langfuse-ingestion-version"),
                    decompressed_limit=limit,
                    reserved=reserved,
                )

            for reserve in (need, limit):
                async with self.decoded_budget.hold(reserve) as reserved:
                    try:
                        return await threaded(ingest, reserved)
                    except InflatedPastReservation as exc:
                        drop_frames(exc)
                        continue  # a multi-member body: again, with the whole budget
                    except BaseException as exc:
                        drop_frames(exc)
                        raise
                    finally:
                        await self.after_large(reserved)
        raise AssertionError("unreachable: the second pass reserves the whole limit")

    async def json_body(self, request: Request, limit: int, work: Callable[[Any], Any]) -> Any:
        """A JSON write route: the body read and decoded within the budgets."""
        async with (
            self.received(request, limit) as raw,
            self.decoded_budget.hold(len(raw)) as reserved,
        ):
            payload = parse_json_body(raw)
            del raw
            try:
                return await threaded(work, payload)
            except BaseException as exc:
                drop_frames(exc)
                raise
            finally:
                await self.after_large(reserved)

    async def create_score(self, request: Request) -> Any:
        """POST /api/public/scores."""
        from autoops_cli.local_api.http import scores

        status, body = await self.json_body(
            request,
            self.limits.max_body_bytes,
            lambda payload: scores.create_scores(self.store, payload),
        )
        return Answer(status, body)

    async def ingestion(self, request: Request) -> Any:
        """POST /api/public/ingestion (207 always, per-event results)."""
        from autoops_cli.local_api.http import batch

        body = await self.json_body(
            request,
            min(self.limits.max_body_bytes, batch.MAX_BODY_BYTES),
            lambda payload: batch.ingest_batch(
                self.store, payload, v4_only=self.settings.v4_only, lock=self.batch_lock
            ),
        )
        return Answer(207, body)

    async def delete_traces(self, request: Request) -> Any:
        """DELETE /api/public/traces."""
        from autoops_cli.local_api.http import deletion

        return await self.json_body(
            request,
            self.limits.max_body_bytes,
            lambda payload: deletion.delete_traces(self.store, payload),
        )

    async def delete_trace(self, request: Request) -> Any:
        """DELETE /api/public/traces/{traceId}."""
        from autoops_cli.local_api.http import deletion

        return await threaded(deletion.delete_trace, self.store, path_id(request, "trace_id"))

    async def delete_score(self, request: Request) -> Any:
        """DELETE /api/public/scores/{scoreId} (202, as Langfuse)."""
        from autoops_cli.local_api.http import deletion

        score_id = path_id(request, "score_id")
        return Answer(202, await threaded(deletion.delete_score, self.store, score_id))


def _read_handlers(settings: ServerSettings, store: LocalStore) -> dict[str, Handler]:
    """The read routes' handlers by path template."""
    from autoops_cli.local_api.query import metrics
    from autoops_cli.local_api.query.observations import (
        get_observation,
        list_observations_v1,
        list_observations_v2,
    )
    from autoops_cli.local_api.query.projects import get_projects, health
    from autoops_cli.local_api.query.scores import get_score_v2, list_scores_v2, list_scores_v3
    from autoops_cli.local_api.query.sessions import get_session, list_sessions
    from autoops_cli.local_api.query.traces import get_trace, list_traces

    def listing(function: Callable[[LocalStore, Any], Any]) -> Handler:
        async def handler(request: Request) -> Any:
            return await threaded(function, store, request.query_params)

        return handler

    def item(function: Callable[..., Any], name: str, *, with_params: bool = False) -> Handler:
        async def handler(request: Request) -> Any:
            extra = (request.query_params,) if with_params else ()
            return await threaded(function, store, path_id(request, name), *extra)

        return handler

    def metrics_query(version: int) -> Handler:
        async def handler(request: Request) -> Any:
            query = request.query_params.get("query")
            return await threaded(lambda: metrics.run_metrics_query(store, query, version=version))

        return handler

    async def health_check(request: Request) -> Any:
        return health(settings.version)

    async def projects(request: Request) -> Any:
        return get_projects()

    return {
        "/api/public/health": health_check,
        "/api/public/ready": health_check,
        "/api/public/projects": projects,
        "/api/public/v2/scores": listing(list_scores_v2),
        "/api/public/v2/scores/{score_id}": item(get_score_v2, "score_id"),
        "/api/public/v3/scores": listing(list_scores_v3),
        "/api/public/traces": listing(list_traces),
        "/api/public/traces/{trace_id}": item(get_trace, "trace_id", with_params=True),
        "/api/public/sessions": listing(list_sessions),
        "/api/public/sessions/{session_id}": item(get_session, "session_id"),
        "/api/public/observations": listing(list_observations_v1),
        "/api/public/observations/{observation_id}": item(get_observation, "observation_id"),
        "/api/public/v2/observations": listing(list_observations_v2),
        "/api/public/metrics": metrics_query(1),
        "/api/public/v2/metrics": metrics_query(2),
    }


def _read_route(settings: ServerSettings, path: str, handler: Handler) -> Route:
    """A GET route; a deprecated one is stamped, or refused in v4-only mode."""
    signal = DEPRECATED_READS.get(path)
    if signal is None:
        return _route(settings, path, handler)
    if settings.v4_only:  # refused before the keys are checked, as Langfuse does

        async def refused(request: Request) -> Any:
            return Answer(404, events_only_refusal(signal))

        return Route(path, guarded(refused, settings, auth=False), methods=["GET"])

    async def stamped(request: Request) -> Any:
        return deprecated(await handler(request), signal)

    return _route(settings, path, stamped)


def _route(settings: ServerSettings, path: str, handler: Handler, method: str = "GET") -> Route:
    # Auth unless the path is listed in NO_AUTH_PATHS: a new route is guarded by default.
    return Route(path, guarded(handler, settings, auth=path not in NO_AUTH_PATHS), methods=[method])


def create_app(settings: ServerSettings, store: LocalStore) -> Starlette:
    """The Starlette application serving ``store``."""
    writes = WriteRoutes(settings, store)
    routes = [
        _read_route(settings, path, handler)
        for path, handler in _read_handlers(settings, store).items()
    ]
    routes += [
        _route(settings, "/api/public/otel/v1/traces", writes.otel_traces, "POST"),
        _route(settings, "/api/public/ingestion", writes.ingestion, "POST"),
        _route(settings, "/api/public/scores", writes.create_score, "POST"),
        _route(settings, "/api/public/scores/{score_id}", writes.delete_score, "DELETE"),
        _route(settings, "/api/public/traces", writes.delete_traces, "DELETE"),
        _route(settings, "/api/public/traces/{trace_id}", writes.delete_trace, "DELETE"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _json(
            404,
            {
                "message": f"Route {request.url.path} not found",
                "error": "LangfuseNotFoundError",
            },
        )

    async def method_not_allowed(request: Request, exc: Exception) -> Response:
        return _json(405, {"message": "Method not allowed", "error": "MethodNotAllowedError"})

    return Starlette(
        routes=routes,
        middleware=[Middleware(EncodedSlashes)],
        exception_handlers={404: not_found, 405: method_not_allowed},
    )


# Set on a request whose path came with %2F: its path was matched with each %2F kept and
# each "%" of the decoded rest as %25 (``routed_path``), for ``path_id`` to decode.
ENCODED_PATH = "autoops.encoded_path"
_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)


class EncodedSlashes:
    """An id with a "/" in it (sent as %2F, as the JS SDK's ``encodeURIComponent`` does)
    stays one path segment. The ASGI server decodes %2F in ``path`` before routing, so
    ``/traces/x%2Fy`` was ``/traces/x/y``: 404 "Route not found" for an id ingestion took.
    Such a request is routed on its path as sent (``raw_path``) with every escape but %2F
    decoded, and ``path_id`` decodes the id; an id is never changed otherwise (a marker
    character standing for the slash made another id holding that character read, and
    delete, the wrong trace).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or b""
        if scope["type"] == "http" and b"%2f" in raw.lower():
            path = routed_path(raw.split(b"?", 1)[0].decode("ascii", "replace"))
            scope = {**scope, "path": path, ENCODED_PATH: True}
        await self.app(scope, receive, send)


def routed_path(raw_path: str) -> str:
    """``raw_path`` decoded but for its %2F, which stay (and "%" is %25): one segment each
    (``/traces/a%2Fb%20c`` is routed as ``/traces/a%2Fb c``, ``path_id`` gives "a/b c")."""
    return "%2F".join(
        unquote(piece).replace("%", "%25") for piece in _ENCODED_SLASH.split(raw_path)
    )


def path_id(request: Request, name: str) -> str:
    """The id in the path parameter ``name``, as the client meant it."""
    value = str(request.path_params[name])
    return unquote(value) if request.scope.get(ENCODED_PATH) else value
