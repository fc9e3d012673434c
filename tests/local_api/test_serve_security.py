"""``autoops serve`` under attack, over real HTTP on 127.0.0.1 (a real server process).

Credentials on every route, bodies past the limits, gzip bombs, slow clients, SQL injection
through every filter, hostile text, binding beyond loopback, keys in answers. Each test
records what it tried and what it saw in the ``reliability`` figures (docs/reliability.md).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import functools
import gzip
import hmac
import json
import os
import select
import socket
import threading
import time
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoops_cli.local_api.http.limits import ServeLimits
from autoops_cli.local_api.http.server import NO_AUTH_PATHS, PUBLIC_KEY_BEARER_PATHS
from autoops_cli.local_api.query.metrics_views import STRING, VIEWS
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Figures
from tests.support.serve_attack_helpers import (
    SQL_PAYLOADS,
    basic_auth,
    connect,
    memory_kb,
    otlp_export,
    read_response,
    route_table,
    seconds_until_closed,
    seed,
    store_snapshot,
)
from tests.support.serve_process import ServeHandle, start_serve, stop_serve

OTLP = "/api/public/otel/v1/traces"
SCORES = "/api/public/scores"
INVALID_CREDENTIALS = "Invalid credentials. Confirm that you've configured the correct host."
MiB = 1024 * 1024
# The limits of the ``limited`` server: low enough to hit in a second.
BODY_LIMIT = 1 * MiB
INFLATED_LIMIT = 4 * MiB
TIMEOUT_S = 1.5  # headers and body
DRAIN_S = 1.0
CLOSE_MARGIN_S = 4.0  # scheduling slack on a loaded 2-core machine


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeHandle]:
    """``autoops serve`` with its limits lowered (hidden options), in a clean environment."""
    base = tmp_path_factory.mktemp("limited")
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("LANGFUSE_", "AUTOOPS_", "OTEL_")):
                patch.delenv(name)
        patch.setenv("HOME", str(base))
        patch.setenv("AUTOOPS_HOME", str(base / ".autoops"))
        handle = start_serve(
            base / "served" / "traces.db",
            "--max-body-bytes", str(BODY_LIMIT),
            "--max-decompressed-bytes", str(INFLATED_LIMIT),
            "--body-timeout", str(TIMEOUT_S),
            "--header-timeout", str(TIMEOUT_S),
            "--drain-timeout", str(DRAIN_S),
        )  # fmt: skip
    yield handle
    stop_serve(handle)


def _client(handle: ServeHandle) -> httpx.Client:
    return httpx.Client(base_url=handle.url, auth=handle.auth, timeout=30)


# --- 1. credentials --------------------------------------------------------------------------


def _credential_cases(served: ServeHandle) -> list[tuple[str, str | None, str | None]]:
    """``(case, Authorization header, expected message)``; None: any 401 message."""
    public, secret = served.public_key, served.secret_key or ""
    encoded = base64.b64encode
    return [
        ("no header", None, "No authorization header"),
        ("wrong secret", basic_auth(public, secret + "x"), INVALID_CREDENTIALS),
        ("wrong public key", basic_auth(public + "x", secret), INVALID_CREDENTIALS),
        ("keys swapped", basic_auth(secret, public), INVALID_CREDENTIALS),
        ("empty secret", basic_auth(public, ""), INVALID_CREDENTIALS),
        ("secret as a prefix", basic_auth(public, secret[:-1]), INVALID_CREDENTIALS),
        ("no colon", "Basic " + encoded(public.encode() + secret.encode()).decode(), None),
        ("not base64", "Basic !!!" + secret, "Invalid authorization header"),
        ("scheme alone", "Basic", None),
        ("other scheme", "Digest " + encoded(f"{public}:{secret}".encode()).decode(), None),
        ("bearer secret", "Bearer " + secret, None),
        ("non-ASCII", "Basic \u00e9\u00e9" + secret[:4], None),
        ("NUL inside", basic_auth(public + "\x00", secret), INVALID_CREDENTIALS),
    ]


def test_every_route_but_health_refuses_missing_or_wrong_credentials(
    served: ServeHandle, reliability: Figures
) -> None:
    routes = route_table()
    assert {path for _, path, _ in routes} >= NO_AUTH_PATHS
    # A route added without auth must be named here on purpose (and then this test checks it).
    assert {"/api/public/health", "/api/public/ready"} == NO_AUTH_PATHS
    cases = _credential_cases(served)
    with httpx.Client(base_url=served.url, timeout=30) as client:
        for method, path, template in routes:
            body = b"{}" if method == "POST" else None
            if template in NO_AUTH_PATHS:
                for _, header, _ in cases:
                    headers = {b"Authorization": header.encode()} if header else {}
                    answer = client.request(method, path, headers=headers, content=body)
                    reliability.tried()
                    reliability.answered(answer.status_code)
                    assert answer.status_code == 200, (method, path)
                continue
            for case, header, message in cases:
                headers = {b"Authorization": header.encode()} if header else {}
                headers[b"Content-Type"] = b"application/json"
                answer = client.request(method, path, headers=headers, content=body)
                reliability.tried()
                reliability.answered(answer.status_code)
                assert answer.status_code == 401, (method, path, case, answer.text)
                if method == "HEAD":
                    continue
                payload = answer.json()
                # Langfuse's batch ingestion has its own handler, and its own 401 body.
                keys = {"error", "message"} if path == "/api/public/ingestion" else {"message"}
                assert set(payload) == keys, (method, path, case, payload)
                if message is not None:
                    assert payload["message"] == message, (method, path, case)
            if path not in PUBLIC_KEY_BEARER_PATHS:
                bearer = {"Authorization": "Bearer " + served.public_key}
                answer = client.request(method, path, headers=bearer, content=body)
                reliability.tried()
                reliability.answered(answer.status_code)
                assert answer.status_code == 401, (method, path, "bearer public key")
            # With the right keys the same request reaches its handler.
            answer = client.request(
                method,
                path,
                headers={"Authorization": basic_auth(*served.auth)},
                content=body,
            )
            reliability.answered(answer.status_code)
            assert answer.status_code not in (401, 405), (method, path, answer.text)
    reliability.missing(0)


def test_both_key_parts_are_compared_every_time(
    monkeypatch: pytest.MonkeyPatch, reliability: Figures
) -> None:
    """No early return on a wrong public key: the secret is compared too, in constant time."""
    from autoops_cli.local_api.http import server

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient on httpx is deprecated
        from starlette.testclient import TestClient

        settings_ = server.ServerSettings("pk-lf-right", "sk-lf-right", "0")
        client = TestClient(server.create_app(settings_, None))  # type: ignore[arg-type]
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(given: Any, expected: Any) -> bool:
        calls.append((given, expected))
        return real(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)  # the module the server calls
    cases = {
        ("pk-lf-wrong", "sk-lf-right"): 401,
        ("pk-lf-right", "sk-lf-wrong"): 401,
        ("pk-lf-wrong", "sk-lf-wrong"): 401,
        ("", "sk-lf-right"): 401,
        ("pk-lf-right", "sk-lf-right"): 200,
    }
    for (public, secret), status in cases.items():
        calls.clear()
        answer = client.get(
            "/api/public/projects", headers={"Authorization": basic_auth(public, secret)}
        )
        reliability.tried()
        reliability.answered(answer.status_code)
        assert answer.status_code == status
        assert calls == [
            (public.encode(), b"pk-lf-right"),
            (secret.encode(), b"sk-lf-right"),
        ], (public, secret)
    reliability.missing(0)


# --- 2. body limits and gzip bombs ----------------------------------------------------------


def _raw_post(
    handle: ServeHandle, path: str, headers: dict[str, str], body: bytes
) -> socket.socket:
    sock = connect(handle)
    head = f"POST {path} HTTP/1.1\r\nHost: test\r\n"
    head += f"Authorization: {basic_auth(*handle.auth)}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(head.encode() + b"\r\n" + body)
    return sock


def _refusals_leave_the_store_alone(handle: ServeHandle, reliability: Figures) -> None:
    """Every way of sending too much to both write routes is a 413 while reading."""
    too_big = b"[" + b" " * BODY_LIMIT + b"]"
    with _client(handle) as client:
        for path in (OTLP, SCORES):
            # Honest Content-Length past the limit, body sent in full: the client reads 413.
            answer = client.post(
                path, content=too_big, headers={"Content-Type": "application/json"}
            )
            reliability.tried()
            reliability.answered(answer.status_code)
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"] == "PayloadTooLargeError"
    for path in (OTLP, SCORES):
        # A Content-Length of 50 GB and no body at all: refused on the header alone.
        sock = _raw_post(handle, path, {"Content-Length": str(50 * 1024**3)}, b"")
        with sock:
            response = read_response(sock, timeout=10)
            reliability.tried()
            assert response is not None
            reliability.answered(response.status)
            assert response.status == 413
            # The connection does not stay open waiting for 50 GB.
            assert seconds_until_closed(sock, DRAIN_S + CLOSE_MARGIN_S) is not None
        # Chunked, no length: refused once the bytes read pass the limit, before the end.
        chunk = b" " * 65536
        chunks = b"".join(
            b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(BODY_LIMIT // 65536 + 2)
        )
        sock = _raw_post(handle, path, {"Transfer-Encoding": "chunked"}, b"1\r\n[\r\n" + chunks)
        with sock:
            response = read_response(sock, timeout=10)  # the last chunk was never sent
            reliability.tried()
            assert response is not None
            reliability.answered(response.status)
            assert response.status == 413
        # A Content-Length smaller than the body: only that many bytes are the body; the rest
        # is not a request.
        sock = _raw_post(handle, path, {"Content-Length": "10"}, b"[" + b" " * (2 * BODY_LIMIT))
        with sock:
            response = read_response(sock, timeout=10)
            reliability.tried()
            assert response is not None
            reliability.answered(response.status)
            assert response.status == 400


def test_bodies_past_the_limit_are_refused_while_reading_and_nothing_is_stored(
    limited: ServeHandle, reliability: Figures
) -> None:
    before = store_snapshot(limited.store)
    _refusals_leave_the_store_alone(limited, reliability)
    assert store_snapshot(limited.store) == before
    # Just under the limit is accepted: the limit is the limit, not a refusal of everything.
    score = json.dumps({"name": "fits", "value": 1, "traceId": "f" * 32}).encode()
    padded = score[:-1] + b" " * (BODY_LIMIT - len(score)) + b"}"
    with _client(limited) as client:
        answer = client.post(SCORES, content=padded, headers={"Content-Type": "application/json"})
    reliability.answered(answer.status_code)
    assert answer.status_code == 200, answer.text
    after = store_snapshot(limited.store)["counts"]
    assert after["scores"] == before["counts"]["scores"] + 1
    reliability.missing(0)


@functools.lru_cache(maxsize=1)
def _zeros_gzip(mebibytes: int) -> bytes:
    """``mebibytes`` MiB of zeros, gzipped (a thousandfold), without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(MiB)
    return b"".join([*(packer.compress(block) for _ in range(mebibytes)), packer.flush()])


def _post_gzip(client: httpx.Client, body: bytes) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return client.post(OTLP, content=body, headers=headers)


def test_a_gzip_bomb_is_refused_without_inflating_it(
    limited: ServeHandle, served: ServeHandle, reliability: Figures
) -> None:
    honest = _zeros_gzip(192)  # 192 MiB of zeros in ~200 KB; the trailer says so
    lying = honest[:-4] + (1000).to_bytes(4, "little")  # the trailer claims 1000 bytes
    member = gzip.compress(bytes(3 * MiB))  # two of them: 6 MiB, each trailer says 3 MiB
    growth: dict[str, int] = {}
    for name, handle, body in (
        ("honest trailer, default limits", served, honest),
        ("lying trailer, 4 MiB limit", limited, lying),
        ("two members, 4 MiB limit", limited, member + member),
    ):
        pid = handle.process.pid
        with _client(handle) as client:
            warm = _post_gzip(client, gzip.compress(json.dumps(otlp_export(name)).encode()))
            assert warm.status_code == 200, warm.text
            before_peak, before_store = memory_kb(pid), store_snapshot(handle.store)
            answer = _post_gzip(client, body)
            reliability.tried()
            reliability.answered(answer.status_code)
            assert answer.status_code == 413, (name, answer.text)
            assert answer.json()["error"] == "PayloadTooLargeError"
            growth[name] = memory_kb(pid) - before_peak
            assert store_snapshot(handle.store) == before_store
            assert client.get("/api/public/health").status_code == 200
    print(f"peak memory growth (KiB) under gzip bombs: {growth}")
    # Inflating the honest bomb would take 128 MiB (its limit), the lying one 192 MiB.
    assert growth["honest trailer, default limits"] < 16 * 1024, growth
    assert growth["lying trailer, 4 MiB limit"] < 24 * 1024, growth
    reliability.missing(0)


# --- 3. slow clients -------------------------------------------------------------------------


def test_slow_clients_are_cut_off_while_others_are_answered(
    limited: ServeHandle, reliability: Figures
) -> None:
    """Silent, trickling and stalled connections are closed in bounded time; meanwhile a
    normal client is answered as usual."""
    assert ServeLimits().header_timeout_s <= 30 and ServeLimits().body_timeout_s <= 60
    auth = basic_auth(*limited.auth)
    slow: dict[str, list[socket.socket]] = {
        "silent": [connect(limited) for _ in range(10)],
        "trickled request line": [connect(limited) for _ in range(10)],
        "headers, then nothing": [connect(limited) for _ in range(5)],
        "body stalled (read)": [connect(limited) for _ in range(5)],
        "body stalled (unread)": [connect(limited) for _ in range(5)],
    }
    for sock in slow["headers, then nothing"]:
        sock.sendall(
            f"GET /api/public/projects HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n".encode()
        )
    for sock in slow["body stalled (read)"]:
        sock.sendall(
            f"POST {SCORES} HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
    for sock in slow["body stalled (unread)"]:
        sock.sendall(
            f"GET /api/public/projects HTTP/1.1\r\nHost: t\r\nAuthorization: {auth}\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
    request_line = b"GET /api/public/projects HTTP/1.1\r\nHost: t\r\nX-Pad: " + b"a" * 1000
    start = time.monotonic()
    normal: list[tuple[int, float]] = []
    stop = threading.Event()

    def normal_client() -> None:
        with _client(limited) as client:
            while not stop.is_set():
                began = time.monotonic()
                status = client.get("/api/public/projects").status_code
                normal.append((status, time.monotonic() - began))
                time.sleep(0.05)

    worker = threading.Thread(target=normal_client)
    worker.start()
    closed_after: dict[str, list[float]] = {kind: [] for kind in slow}
    statuses: dict[str, list[int]] = {kind: [] for kind in slow}
    open_socks = {sock: kind for kind, socks in slow.items() for sock in socks}
    buffers: dict[socket.socket, bytes] = {sock: b"" for sock in open_socks}
    deadline = start + TIMEOUT_S + DRAIN_S + CLOSE_MARGIN_S + 2
    sent = 0
    try:
        while open_socks and time.monotonic() < deadline:
            for sock, kind in list(open_socks.items()):
                if kind == "trickled request line" and sent < len(request_line):
                    with contextlib.suppress(OSError):  # closed: the read below sees it
                        sock.sendall(request_line[sent : sent + 1])
            sent += 1
            readable, _, _ = select.select(list(open_socks), [], [], 0.1)
            for sock in readable:
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                if data:
                    buffers[sock] += data
                    continue
                kind = open_socks.pop(sock)
                closed_after[kind].append(time.monotonic() - start)
                if buffers[sock].startswith(b"HTTP/1.1 "):
                    statuses[kind].append(int(buffers[sock].split()[1]))
    finally:
        stop.set()
        worker.join()
        for kind_socks in slow.values():
            for sock in kind_socks:
                sock.close()
    reliability.tried(sum(len(socks) for socks in slow.values()))
    for status, _ in normal:
        reliability.answered(status)
    for kind_statuses in statuses.values():
        for status in kind_statuses:
            reliability.answered(status)
    print(f"closed after (s): { {k: round(max(v), 2) for k, v in closed_after.items() if v} }")
    print(f"normal requests: {len(normal)}, slowest {max(t for _, t in normal):.3f} s")
    assert not open_socks, f"still open: {sorted(set(open_socks.values()))}"
    for kind, times in closed_after.items():
        assert max(times) < TIMEOUT_S + DRAIN_S + CLOSE_MARGIN_S, (kind, times)
        assert min(times) > TIMEOUT_S * 0.5, (kind, times)  # deadlines, not instant refusals
    assert statuses["trickled request line"] == [408] * 10
    assert statuses["headers, then nothing"] == [408] * 5
    assert statuses["body stalled (read)"] == [408] * 5
    assert statuses["body stalled (unread)"] == [200] * 5  # answered, then cut off
    assert statuses["silent"] == []
    assert len(normal) >= 10 and all(status == 200 for status, _ in normal)


def test_oversized_headers_are_refused(limited: ServeHandle, reliability: Figures) -> None:
    with connect(limited) as sock:
        sock.sendall(b"GET /api/public/health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_000)
        response = read_response(sock)
    reliability.tried()
    assert response is not None
    reliability.answered(response.status)
    assert response.status == 400
    assert httpx.get(limited.url + "/api/public/health", timeout=10).status_code == 200
    reliability.missing(0)


def test_oversized_headers_arriving_whole_are_refused(limited: ServeHandle) -> None:
    """Headers in one read are parsed whatever their size; the server caps them again."""
    big = {"X-Big": "a" * 20_000}
    response = httpx.get(limited.url + "/api/public/health", headers=big, timeout=10)
    assert response.status_code == 431, response.text
    assert response.json()["error"] == "RequestHeaderFieldsTooLargeError"
    posted = httpx.post(limited.url + "/api/public/ingestion", headers=big, json={}, timeout=10)
    assert posted.status_code == 431
    assert httpx.get(limited.url + "/api/public/health", timeout=10).status_code == 200


# --- 4. SQL injection ------------------------------------------------------------------------

# Every query parameter of every read route; SHAPING ones choose what is shown, the others
# filter (so a payload there must match nothing).
READ_PARAMETERS = {
    "/api/public/traces": (
        "userId", "name", "sessionId", "version", "release", "tags", "environment",
        "fromTimestamp", "toTimestamp", "orderBy", "fields", "filter", "page", "limit",
    ),
    "/api/public/observations": (
        "name", "userId", "type", "traceId", "level", "parentObservationId", "environment",
        "fromStartTime", "toStartTime", "version", "filter", "page", "limit",
    ),
    "/api/public/v2/observations": (
        "name", "userId", "sessionId", "type", "traceId", "level", "parentObservationId",
        "isRootObservation", "environment", "fromStartTime", "toStartTime", "version",
        "filter", "fields", "expandMetadata", "cursor", "limit", "parseIoAsJson",
    ),
    "/api/public/v2/scores": (
        "userId", "traceTags", "name", "traceId", "observationId", "sessionId", "scoreIds",
        "source", "dataType", "environment", "fromTimestamp", "toTimestamp", "configId",
        "queueId", "datasetRunId", "operator", "value", "fields", "filter", "page", "limit",
    ),
    "/api/public/v3/scores": (
        "id", "name", "environment", "traceId", "sessionId", "observationId", "experimentId",
        "configId", "queueId", "authorUserId", "value", "valueMin", "valueMax", "dataType",
        "source", "fields", "cursor", "limit",
    ),
}  # fmt: skip
SHAPING = frozenset(
    {"fields", "expandMetadata", "orderBy", "page", "limit", "cursor", "parseIoAsJson"}
)
ITEM_ROUTES = ("/api/public/traces/", "/api/public/observations/", "/api/public/v2/scores/")
# What a metrics answer's rows are counted by (each view has the count measure).
MATCHING_OPERATORS = ("=", "contains", "starts with", "ends with")


def _rows(body: dict[str, Any]) -> int:
    meta = body.get("meta") or {}
    return int(meta["totalItems"]) if "totalItems" in meta else len(body["data"])


def _metrics_query(view: str, filters: list[dict[str, Any]], **extra: Any) -> str:
    now = time.time()
    return json.dumps(
        {
            "view": view,
            "dimensions": [],
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "filters": filters,
            "fromTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 3600)),
            "toTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
            **extra,
        }
    )


def _count(body: dict[str, Any]) -> int:
    return sum(int(row.get("count_count") or 0) for row in body["data"])


class Prober:
    """Sends hostile requests; every answer is 200 or 400 (404 for one item), never 5xx."""

    def __init__(self, client: httpx.Client, reliability: Figures) -> None:
        self.client = client
        self.reliability = reliability

    def get(self, path: str, params: Any = None, allowed: tuple[int, ...] = (200, 400)) -> Any:
        answer = self.client.get(path, params=params)
        self.reliability.tried()
        self.reliability.answered(answer.status_code)
        assert answer.status_code in allowed, (path, params, answer.status_code, answer.text)
        return answer.json() if answer.status_code == 200 else None


def _probe_read_routes(prober: Prober) -> None:
    for path, names in READ_PARAMETERS.items():
        baseline = _rows(prober.get(path, {"limit": 100}))  # everything seeded
        assert baseline > 0, path
        for name in names:
            for payload in SQL_PAYLOADS:
                extra = {"fields": "score,trace"} if path.endswith("v2/scores") else {}
                body = prober.get(path, {**extra, name: payload})
                if body is None:
                    continue
                rows = _rows(body) if name not in ("page", "limit", "cursor") else baseline
                assert rows <= baseline, (path, name, payload)
                if name not in SHAPING:
                    assert rows == 0, (path, name, payload, body)
            # A structured filter carrying the payload (a JSON array, as Langfuse takes it).
            condition = {
                "type": "string",
                "column": name,
                "operator": "=",
                "value": SQL_PAYLOADS[0],
            }
            prober.get(path, {"filter": json.dumps([condition])})
    for prefix in ITEM_ROUTES:
        for payload in SQL_PAYLOADS:
            prober.get(prefix + quote(payload, safe=""), allowed=(400, 404))


def _probe_metrics(prober: Prober) -> None:
    """Every string column of every view and version, metadata keys and values, tags, and
    the names in a query; each payload in each place at least once."""
    for version, path in ((1, "/api/public/metrics"), (2, "/api/public/v2/metrics")):
        for view_name, view in VIEWS.items():
            if version in view.versions:
                _probe_view(ViewProbe(prober, path, view_name), view.dimensions_for(version))


@dataclass
class ViewProbe:
    """Metrics queries on one view of one API version, counted."""

    prober: Prober
    path: str
    view: str
    total: int = -1

    def count(self, *filters: dict[str, Any]) -> int | None:
        """Rows matching the filters; None when the query was refused (400)."""
        query = _metrics_query(self.view, list(filters))
        body = self.prober.get(self.path, {"query": query})
        return None if body is None else _count(body)

    def expect(self, matching: int, operator: str, payload: str, *filters: Any) -> None:
        """``matching`` rows for the filters (a payload must match only what it honestly does)."""
        found = self.count(*filters)
        if any(_nul_value(f) for f in filters):
            # A NUL would end SQLite's LIKE pattern: such a filter value is refused.
            assert found is None, (self.path, self.view, filters)
        else:
            assert found == matching, (self.path, self.view, filters)


def _nul_value(condition: dict[str, Any]) -> bool:
    """A string filter whose value holds a NUL: refused (400), SQLite's LIKE would end there."""
    value = condition.get("value")
    return condition.get("type") in ("string", "stringObject") and "\x00" in str(value)


def _probe_view(probe: ViewProbe, dimensions: dict[str, Any]) -> None:
    total = probe.count()
    assert total is not None, probe.view
    probe.total = total
    assert probe.total > 0, probe.view
    columns = [name for name, field in dimensions.items() if field.kind == STRING]
    n = len(SQL_PAYLOADS)
    for index, column in enumerate(columns):
        # One filter at a time: a payload that escaped its quotes would match rows.
        payloads = SQL_PAYLOADS[index % n :] + SQL_PAYLOADS
        for operator, payload in zip(MATCHING_OPERATORS, payloads, strict=False):
            probe.expect(0, operator, payload, _condition(column, "string", operator, payload))
    metadata = {"column": "metadata", "type": "stringObject"}
    for payload in SQL_PAYLOADS:
        # Every column, every string operator at once: many bound values in one statement.
        every = [
            _condition(column, "string", operator, payload)
            for column in columns
            for operator in (*MATCHING_OPERATORS, "does not contain")
        ]
        every += [_condition(column, "stringOptions", "any of", [payload]) for column in columns]
        every += [_condition(column, "stringOptions", "none of", [payload]) for column in columns]
        # In parts that fit the 16 KiB query string a Langfuse (Node) server takes; a part
        # of exclusions only ("none of", "does not contain") keeps every row.
        for part in range(0, len(every), 40):
            conditions = every[part : part + 40]
            refused = any(_nul_value(f) for f in conditions)
            excluding = all(f["operator"] in ("none of", "does not contain") for f in conditions)
            expected = None if refused else (probe.total if excluding else 0)
            assert probe.count(*conditions) == expected, (probe.view, payload)
        probe.expect(0, "=", payload, {**metadata, "key": payload, "operator": "=", "value": "x"})
        contains = {**metadata, "key": "agent", "operator": "contains", "value": payload}
        probe.expect(0, "contains", payload, contains)
        excludes = {**metadata, "key": payload, "operator": "does not contain", "value": payload}
        probe.expect(probe.total, "does not contain", payload, excludes)
        if "tags" in dimensions:
            assert probe.count(_condition("tags", "arrayOptions", "any of", [payload])) == 0
    # The names in a query (view, fields, measures, columns) are never SQL: 400.
    for payload in SQL_PAYLOADS[::3]:
        for extra in (
            {"dimensions": [{"field": payload}]},
            {"metrics": [{"measure": payload, "aggregation": "count"}]},
            {"orderBy": [{"field": payload, "direction": "asc"}]},
            {"filters": [_condition(payload, "string", "=", "x")]},
            {"view": payload},
        ):
            query = {**json.loads(_metrics_query(probe.view, [])), **extra}
            probe.prober.get(probe.path, {"query": json.dumps(query)}, allowed=(400,))


def _condition(column: str, kind: str, operator: str, value: Any) -> dict[str, Any]:
    return {"column": column, "type": kind, "operator": operator, "value": value}


# Two halves of one matrix, each on its own server: they run side by side in a parallel run.
@pytest.mark.slow
@pytest.mark.parametrize("probes", ["read routes", "metrics"])
def test_sql_injection_through_every_filter_changes_nothing(
    served: ServeHandle, reliability: Figures, probes: str
) -> None:
    totals = seed(served)
    before = store_snapshot(served.store)
    assert before["counts"]["traces"] == totals["traces"]
    with _client(served) as client:
        prober = Prober(client, reliability)
        if probes == "read routes":
            _probe_read_routes(prober)
        else:
            _probe_metrics(prober)
    after = store_snapshot(served.store)
    assert after == before  # schema, row counts and every row unchanged
    assert not Path("/tmp/autoops-pwned.db").exists()
    reliability.missing(0)


def test_a_nul_byte_does_not_widen_a_like_filter(served: ServeHandle) -> None:
    """SQLite's LIKE ends a pattern at a NUL: such a filter value is refused (400), not widened."""
    seed(served)
    for operator in ("contains", "starts with", "ends with", "does not contain", "="):
        condition = _condition("name", "string", operator, "\x00no such name")
        answer = httpx.get(
            served.url + "/api/public/v2/metrics",
            params={"query": _metrics_query("observations", [condition])},
            auth=served.auth,
            timeout=30,
        )
        assert answer.status_code == 400, operator
        assert "NUL" in json.dumps(answer.json()), operator


_PARAMETERS = sorted({(path, name) for path, names in READ_PARAMETERS.items() for name in names})
_TEXT = st.text(st.characters(codec="utf-8"), max_size=40)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    target=st.sampled_from(_PARAMETERS),
    value=_TEXT,
    filter_value=_TEXT,
    key=_TEXT,
)
def test_any_text_in_any_read_parameter_is_answered_without_a_server_error(
    limited: ServeHandle,
    reliability: Figures,
    target: tuple[str, str],
    value: str,
    filter_value: str,
    key: str,
) -> None:
    path, name = target
    with _client(limited) as client:
        prober = Prober(client, reliability)
        prober.get(path, {name: value})
        condition = {
            "column": "metadata", "type": "stringObject", "key": key,
            "operator": "contains", "value": filter_value,
        }  # fmt: skip
        prober.get("/api/public/v2/metrics", {"query": _metrics_query("observations", [condition])})


# --- 5. hostile text and numbers in writes ---------------------------------------------------


def test_unencodable_text_and_huge_numbers_are_answered_and_the_store_stays_writable(
    limited: ServeHandle, reliability: Figures
) -> None:
    """JSON can carry half a surrogate pair or a 30-digit integer; SQLite takes neither. A
    write that failed half-way used to leave the store's transaction open (every later
    write failed): each is answered, and a normal write still works afterwards."""
    span = otlp_export("hostile", traces=1, spans=1)
    spans = span["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["name"] = "\ud800 lone"
    spans[0]["attributes"].append({"key": "\udfff", "value": {"stringValue": "\ud83d"}})
    spans[0]["attributes"].append(
        {"key": "langfuse.observation.prompt.version", "value": {"intValue": "9" * 30}}
    )
    far_future = otlp_export("far", traces=1, spans=1)
    far_future["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "9" * 30
    bodies: list[tuple[str, bytes, tuple[int, ...]]] = [
        (OTLP, json.dumps(span).encode(), (200,)),
        (OTLP, json.dumps(far_future).encode(), (400,)),
        (OTLP, b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "' + b"1_" * 16
         + b'", "spanId": "' + b"2" * 16 + b'"}]}]}]}', (400,)),
        (SCORES, b'{"name": "\\ud800", "value": 1, "traceId": "\\udc00"}', (200,)),
        (SCORES, b'{"name": "n", "value": NaN, "traceId": "t"}', (400,)),
        (SCORES, b'{"name": "n", "value": 1e999, "traceId": "t"}', (400,)),
        (SCORES, b'{"name": "n", "value": 1, "traceId": "t", "metadata": {"\\ud800": '
         + b"9" * 40 + b"}}", (200,)),
        (SCORES, b"[" * 100_000, (400,)),
    ]  # fmt: skip
    with _client(limited) as client:
        for path, body, allowed in bodies:
            answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
            reliability.tried()
            reliability.answered(answer.status_code)
            assert answer.status_code in allowed, (path, body[:80], answer.text)
        cursor = base64.b64encode(
            json.dumps(
                {
                    "lastStartTimeTo": "2026-01-01T00:00:00Z",
                    "lastTraceId": "\ud800",
                    "lastId": "\ud800",
                }
            ).encode()
        ).decode()
        for path, params in (
            ("/api/public/v2/observations", {"cursor": cursor}),
            ("/api/public/v2/metrics", {"query": _metrics_query("observations", [
                {"column": "name", "type": "string", "operator": "=", "value": "\ud800"}])}),
        ):  # fmt: skip
            answer = client.get(path, params=params)  # JSON escapes keep the URL ASCII
            reliability.tried()
            reliability.answered(answer.status_code)
            assert answer.status_code in (200, 400), (path, answer.text)
        before = store_snapshot(limited.store)["counts"]
        fine = client.post(OTLP, json=otlp_export("after hostile text", traces=2, spans=2))
        reliability.answered(fine.status_code)
        assert fine.status_code == 200, fine.text
        stored = client.get(
            "/api/public/traces", params={"sessionId": "session after hostile text"}
        )
    assert stored.json()["meta"]["totalItems"] == 2
    assert store_snapshot(limited.store)["counts"]["observations"] == before["observations"] + 4
    reliability.missing(0)


# --- 6. loopback and keys --------------------------------------------------------------------


def test_a_non_loopback_address_is_refused_before_binding(
    run_autoops: Any, reliability: Figures
) -> None:
    hosts = ("10.0.0.1", "0.0.0.0", "::", "192.168.1.1", "localhost.example.com")
    # Side by side: five process starts in the time of one or two. A server that bound the
    # address instead would run until the timeout (TimeoutExpired: the test fails).
    with concurrent.futures.ThreadPoolExecutor(len(hosts)) as pool:
        results = list(
            pool.map(
                lambda host: run_autoops("serve", "--host", host, "--port", "0", timeout=60),
                hosts,
            )
        )
    for host, result in zip(hosts, results, strict=True):
        reliability.tried()
        reliability.exited(result.exit_code)
        assert result.exit_code == 2, (host, result.stderr)
        assert "would expose the local store" in result.stderr, result.stderr  # not a bind error
        assert "--allow-remote" in result.stderr
        assert result.stdout == ""  # no address or key announced
    reliability.missing(0)


def _crawl(handle: ServeHandle, reliability: Figures) -> list[str]:
    """Every route with valid auth, and error paths: the text of every answer."""
    seen: list[str] = []

    def keep(answer: httpx.Response) -> None:
        reliability.tried()
        reliability.answered(answer.status_code)
        seen.append(answer.text)
        seen.append(json.dumps(dict(answer.headers)))

    with _client(handle) as client:
        for method, path, _ in route_table():
            keep(client.request(method, path, content=b"{}" if method == "POST" else None))
            keep(client.request(method, path, auth=(handle.public_key, "wrong")))
        for method, path, params in (
            ("GET", "/api/public/nope", None),
            ("DELETE", "/api/public/traces", None),
            ("GET", "/api/public/traces", {"limit": "x"}),
            ("GET", "/api/public/v2/metrics", {"query": "{"}),
            ("GET", "/api/public/v2/observations", {"cursor": "!!"}),
            ("POST", OTLP, None),
        ):
            keep(client.request(method, path, params=params))
        keep(client.post(SCORES, content=b"[" + b" " * (40 * MiB) + b"]"))
        keep(client.get("/api/public/health", auth=None))
    return seen


def test_no_answer_reveals_the_keys(
    served: ServeHandle, workdir: Path, monkeypatch: pytest.MonkeyPatch, reliability: Figures
) -> None:
    generated = served.secret_key or ""
    assert generated.startswith("sk-lf-")
    texts = _crawl(served, reliability)
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", KNOWN_SECRET)
    configured = start_serve(workdir / "configured" / "traces.db")
    try:
        assert configured.secret_key is None  # the configured secret is never announced
        configured.secret_key = KNOWN_SECRET
        texts += _crawl(configured, reliability)
    finally:
        stop_serve(configured)
    everything = "\n".join(texts)
    for secret in (generated, KNOWN_SECRET):
        assert secret not in everything
        assert secret.removeprefix("sk-lf-") not in everything
    assert "sk-lf-" not in everything
    assert "Traceback" not in everything
    reliability.missing(0)


def test_a_body_with_a_length_and_a_transfer_encoding_is_reserved_as_chunked() -> None:
    """``Content-Length: 1`` with ``Transfer-Encoding: chunked`` reserved one byte of the
    upload budget for a chunked body of any size (read by its chunks, as HTTP says): six of
    them held 180 MB at once, past the server's bound."""
    from starlette.requests import Request

    from autoops_cli.local_api.http.server import declared_length

    both = [(b"content-length", b"1"), (b"transfer-encoding", b"chunked")]
    assert declared_length(Request({"type": "http", "headers": both}), 4096) == 4096
    honest = [(b"content-length", b"10")]
    assert declared_length(Request({"type": "http", "headers": honest}), 4096) == 10


def test_a_client_that_hangs_up_mid_body_is_no_server_error(workdir: Path) -> None:
    """A client leaving mid-upload (a timed-out SDK) was logged as an unexpected error with
    a traceback, and after three of them every real 500 was "not shown"."""
    handle = start_serve(workdir / "served" / "traces.db")
    try:
        for path in (OTLP, SCORES, "/api/public/ingestion"):
            sock = _raw_post(handle, path, {"Content-Length": "1000"}, b'{"a":')
            time.sleep(0.2)
            sock.close()
        time.sleep(0.5)
    finally:
        _, stderr = stop_serve(handle)
    assert "unexpected error" not in stderr and "ClientDisconnect" not in stderr
