"""Raw sockets, process memory, store snapshots and seed data for the tests that attack
``autoops serve`` (``tests/local_api/test_serve_security.py``, ``tests/local_api/test_serve_load.py``)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import select
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx

from tests.support.serve_process import ServeHandle

# Classic injection payloads: quotes that close a literal, comments, stacked statements,
# LIKE wildcards, look-alike quotes, NUL bytes, JSON-path and escape tricks.
SQL_PAYLOADS = (
    "' OR 1=1 --",
    "' OR '1'='1",
    '" OR ""="',
    '"; DROP TABLE traces; --',
    "'; DROP TABLE observations; --",
    "1; DELETE FROM scores",
    "') OR ('1'='1",
    "1 UNION SELECT name, sql FROM sqlite_master --",
    "x'; ATTACH DATABASE '/tmp/autoops-pwned.db' AS p; --",
    "%' --",
    "%",
    "_",
    "\u2019 OR 1=1 --",  # right single quotation mark
    "\uff07 OR \uff071\uff07=\uff071",  # fullwidth apostrophes
    "\x00' OR 1=1 --",
    "a\x00b",
    "\\' OR 1=1 --",
    '$."a"\') OR 1=1 --',
)


def host_port(handle: ServeHandle) -> tuple[str, int]:
    """The server's address from its URL."""
    host, _, port = handle.url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def connect(handle: ServeHandle, timeout: float = 10) -> socket.socket:
    """A raw TCP connection to the server."""
    sock = socket.create_connection(host_port(handle), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def basic_auth(public_key: str, secret_key: str) -> str:
    """An ``Authorization`` header value for Basic auth."""
    return "Basic " + base64.b64encode(f"{public_key}:{secret_key}".encode()).decode()


@dataclass
class RawResponse:
    """One HTTP/1.1 response read off a raw socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_response(sock: socket.socket, timeout: float = 10) -> RawResponse | None:
    """The next response on ``sock`` (Content-Length framed); None if it closed first."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = _recv(sock, deadline)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = _recv(sock, deadline)
        if not chunk:
            break
        body += chunk
    return RawResponse(status, headers, body)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("no answer in time")
    readable, _, _ = select.select([sock], [], [], remaining)
    if not readable:
        raise TimeoutError("no answer in time")
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def seconds_until_closed(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closes ``sock`` (anything it sends is read and dropped)."""
    start = time.monotonic()
    deadline = start + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], deadline - time.monotonic())
        if readable:
            try:
                if not sock.recv(65536):
                    return time.monotonic() - start
            except OSError:
                return time.monotonic() - start
    return None


def memory_kb(pid: int, field: str = "VmHWM") -> int:
    """A memory figure of a process from /proc (VmHWM: peak resident set; VmRSS: now)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def store_snapshot(path: Path) -> dict[str, Any]:
    """Schema, row counts and a digest of every row of the store file (read-only)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        schema = db.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
        tables = [name for kind, name, _ in schema if kind == "table"]
        counts = {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
        digest = hashlib.sha256()
        for table in ("traces", "observations", "scores"):
            for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid"):
                digest.update(repr(row).encode())
        return {"schema": schema, "counts": counts, "digest": digest.hexdigest()}
    finally:
        db.close()


def route_table() -> list[tuple[str, str, str]]:
    """``(method, concrete path, path template)`` of every route of the app itself.

    Built from ``create_app`` so a route added later is covered without editing a test.
    Path parameters get a sample id.
    """
    from starlette.routing import Route

    from autoops_cli.local_api.http.server import ServerSettings, create_app

    app = create_app(ServerSettings("pk-lf-enum", "sk-lf-enum", "0"), cast(Any, None))
    found = []
    for route in app.routes:
        assert isinstance(route, Route), f"unexpected route type {route!r}"
        concrete = re.sub(r"\{[^}]+\}", "0123456789abcdef", route.path)
        for method in sorted(route.methods or ()):
            found.append((method, concrete, route.path))
    return found


def otlp_export(run: str, traces: int = 3, spans: int = 3) -> dict[str, Any]:
    """An OTLP/JSON export: ``traces`` traces of ``spans`` spans each, tagged with ``run``.

    String values avoid quotes, ``%`` and ``_`` so that no injection payload can match
    them honestly.
    """
    now = time.time_ns()

    def attr(key: str, value: Any) -> dict[str, Any]:
        if isinstance(value, list):
            items = [{"stringValue": v} for v in value]
            return {"key": key, "value": {"arrayValue": {"values": items}}}
        return {"key": key, "value": {"stringValue": str(value)}}

    out = []
    for t in range(traces):
        trace_id = hashlib.md5(f"{run}-{t}".encode()).hexdigest()
        root = None
        for s in range(spans):
            span_id = hashlib.md5(f"{run}-{t}-{s}".encode()).hexdigest()[:16]
            attributes = [
                attr("session.id", f"session {run}"),
                attr("user.id", f"user {t}"),
                attr("langfuse.trace.name", f"workflow {run}"),
                attr("langfuse.trace.tags", ["alpha", "beta"]),
                attr("langfuse.observation.type", "generation" if s else "chain"),
                attr("langfuse.observation.metadata.agent", f"agent {s}"),
                attr("langfuse.observation.level", "WARNING" if s == 2 else "DEFAULT"),
                attr("langfuse.observation.model.name", "model one"),
                attr("langfuse.release", "release one"),
                attr("langfuse.version", "version one"),
            ]
            span: dict[str, Any] = {
                "traceId": trace_id,
                "spanId": span_id,
                "name": f"step {s}",
                "startTimeUnixNano": str(now - (spans - s) * 1_000_000),
                "endTimeUnixNano": str(now),
                "attributes": attributes,
            }
            if root:
                span["parentSpanId"] = root
            else:
                root = span_id
            out.append(span)
    return {"resourceSpans": [{"scopeSpans": [{"scope": {"name": "seed"}, "spans": out}]}]}


def seed(handle: ServeHandle, run: str = "seed") -> dict[str, int]:
    """Write a few traces, observations and scores through the API; the totals."""
    export = otlp_export(run)
    spans = export["resourceSpans"][0]["scopeSpans"][0]["spans"]
    with httpx.Client(base_url=handle.url, auth=handle.auth, timeout=30) as client:
        answer = client.post("/api/public/otel/v1/traces", json=export)
        assert answer.status_code == 200, answer.text
        scores = [
            {"name": "confidence", "value": 0.5 + i / 10, "traceId": span["traceId"]}
            for i, span in enumerate(spans[::3])
        ]
        first = spans[0]["traceId"]
        scores += [
            {"name": "verdict", "value": "good", "dataType": "CATEGORICAL", "traceId": first},
            {"name": "approved", "value": 1, "dataType": "BOOLEAN", "traceId": first},
        ]
        answer = client.post("/api/public/scores", json=scores)
        assert answer.status_code == 202, answer.text
    return {
        "traces": len({span["traceId"] for span in spans}),
        "observations": len(spans),
        "scores": len(scores),
    }
