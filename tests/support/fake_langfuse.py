"""A minimal Langfuse ingestion peer on 127.0.0.1 for tests of langfuse mode.

It accepts OTLP/HTTP protobuf exports and score creations the way Langfuse does (auth,
content type, gzip, ``{}`` / ``{"id"}`` answers) and keeps what it received, so a test can
compare it with what local mode stores. ``autoops serve`` replaces it as the full peer.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from autoops_cli.local_api.http.otlp import Body, decode_protobuf_spans
from autoops_cli.local_api.query.errors import ApiProblem
from config.tracing.span_records import SpanRecord
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET
from tests.support.loopback import LoopbackServer


@dataclass
class Faults:
    """Faults to inject: answers to give instead of accepting, and a delay before answering."""

    statuses: list[int] = field(default_factory=list)  # consumed one per OTLP request
    health_status: int = 200
    always_status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    # Go away (close the listening socket: connections refused) once this many spans arrived.
    refuse_after_spans: int | None = None


@dataclass
class Received:
    otlp_times: list[float] = field(default_factory=list)
    spans: list[SpanRecord] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeLangfuse:
    """The server, its URL and what it received."""

    def __init__(
        self, port: int = 0, faults: Faults | None = None, received: Received | None = None
    ) -> None:
        self.faults = faults or Faults()
        self.received = received or Received()
        received = self.received
        faults_ = self.faults
        fake = self
        expected_auth = (
            "Basic " + base64.b64encode(f"{KNOWN_PUBLIC}:{KNOWN_SECRET}".encode()).decode()
        )

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if faults_.delay_s:
                    time.sleep(faults_.delay_s)
                if self.path.startswith("/api/public/health"):
                    ok = faults_.health_status == 200
                    body = {"status": "OK" if ok else "Database not available", "version": "3.99.0"}
                    self._reply(faults_.health_status, body)
                    return
                if self.headers.get("Authorization") != expected_auth:
                    self._reply(
                        401,
                        {
                            "message": "Invalid credentials. Confirm that you've configured the correct host."
                        },
                    )
                    return
                if self.path.startswith("/api/public/projects"):
                    self._reply(
                        200,
                        {
                            "data": [
                                {
                                    "id": "p1",
                                    "name": "fake project",
                                    "organization": {"id": "o", "name": "o"},
                                    "metadata": {},
                                }
                            ]
                        },
                    )
                    return
                self._reply(404, {"message": "Not found", "error": "LangfuseNotFoundError"})

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with received.lock:
                    received.headers.append({"path": self.path, **dict(self.headers.items())})
                if self.headers.get("Authorization") != expected_auth:
                    self._reply(
                        401,
                        {
                            "message": "Invalid credentials. Confirm that you've configured the correct host."
                        },
                    )
                    return
                if faults_.delay_s:
                    time.sleep(faults_.delay_s)
                if self.path == "/api/public/otel/v1/traces":
                    with received.lock:
                        received.otlp_times.append(time.monotonic())
                        injected = (
                            faults_.statuses.pop(0) if faults_.statuses else faults_.always_status
                        )
                    if injected is not None:
                        self.send_response(injected)
                        if faults_.retry_after is not None:
                            self.send_header("Retry-After", faults_.retry_after)
                        data = json.dumps({"message": "injected fault"}).encode()
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                    if "application/x-protobuf" not in self.headers.get("Content-Type", ""):
                        self._reply(400, {"error": "Invalid content type"})
                        return
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    try:
                        # The decoder of `autoops serve`: one way to read OTLP in this repo.
                        spans = decode_protobuf_spans(Body(body))
                    except ApiProblem as problem:
                        self._reply(problem.status, problem.body)
                        return
                    with received.lock:
                        received.spans.extend(spans)
                        outage = (
                            faults_.refuse_after_spans is not None
                            and len(received.spans) >= faults_.refuse_after_spans
                        )
                    self._reply(200, {})
                    if outage:
                        fake.close()  # from a handler thread: serve_forever runs in another
                elif self.path == "/api/public/scores":
                    score = json.loads(body)
                    batch = score if isinstance(score, list) else [score]
                    with received.lock:
                        received.scores.extend(batch)
                    if isinstance(score, list):
                        self._reply(202, {"message": "Accepted"})
                    else:
                        self._reply(200, {"id": score.get("id")})
                else:
                    self._reply(404, {"message": "Not found", "error": "LangfuseNotFoundError"})

        class QuietServer(ThreadingHTTPServer):
            allow_reuse_address = True
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that gave up (a timeout test) is expected, not an error

        self._loopback = LoopbackServer(Handler, port=port, server_class=QuietServer)
        self.port, self.url = self._loopback.port, self._loopback.url

    def close(self) -> None:
        self._loopback.close()
