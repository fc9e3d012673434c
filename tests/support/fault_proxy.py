"""A loopback proxy in front of ``autoops serve`` for delivery faults, over real HTTP.

Every request is forwarded as it came (method, path, headers, body) unless a fault says
otherwise: a delay before forwarding (a slow server), a connection closed without an answer
after the upstream stored the batch (a reset: the client cannot know it arrived and sends it
again), or a host that answers ``200 text/html`` to everything (a proxy login page or a
captive portal). The faults can be changed while it runs; it counts what it saw.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

PORTAL_PAGE = b"<!doctype html><html><body><h1>Sign in to continue</h1></body></html>"


@dataclass
class ProxyFaults:
    delay_s: float = 0.0  # before forwarding each POST
    reset_every: int = 0  # every Nth POST: forwarded, then the connection closed unanswered
    html: bool = False  # answer 200 text/html to everything, forward nothing
    # The next POSTs are answered these statuses, one each, and not forwarded.
    post_statuses: list[int] = field(default_factory=list)


class FaultProxy:
    """Forwards to ``upstream``; ``url`` is where clients point."""

    def __init__(self, upstream: str, faults: ProxyFaults | None = None) -> None:
        self.faults = faults or ProxyFaults()
        self.posts = 0
        self.resets = 0
        self._lock = threading.Lock()
        proxy = self
        client = httpx.Client(base_url=upstream, timeout=60)
        self._client = client

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Langfuse behind a proxy would

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                faults = proxy.faults
                reset = False
                if method == "POST":
                    with proxy._lock:
                        proxy.posts += 1
                        reset = bool(faults.reset_every) and proxy.posts % faults.reset_every == 0
                if faults.html:
                    self._reply(200, PORTAL_PAGE, "text/html; charset=utf-8")
                    return
                with proxy._lock:
                    injected = (
                        faults.post_statuses.pop(0)
                        if method == "POST" and faults.post_statuses
                        else None
                    )
                if injected is not None:
                    self._reply(injected, b'{"message": "injected"}', "application/json")
                    return
                if method == "POST" and faults.delay_s:
                    time.sleep(faults.delay_s)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = client.request(method, self.path, content=body, headers=headers)
                if reset:
                    with proxy._lock:
                        proxy.resets += 1
                    self.close_connection = True  # stored upstream, no answer here
                    return
                self._reply(
                    answer.status_code,
                    answer.content,
                    answer.headers.get("Content-Type", "application/json"),
                )

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._forward("GET")

            def do_POST(self) -> None:
                self._forward("POST")

        class QuietServer(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request is what some tests do

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
