"""A loopback proxy in front of ``autoops serve`` that counts requests and injects faults.

Tests of the read commands use it to count what a command asks (``autoops metrics`` makes at
most 3 requests), to play a Langfuse without the v2 API (v2 paths answer 404 as Langfuse
does outside a v4 write mode), and to rate-limit (429 with ``Retry-After``).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx

from tests.support.loopback import LoopbackServer

V2_NOT_FOUND = {
    "message": "The metrics v2 API is only available in a Langfuse v4 write mode",
    "error": "LangfuseNotFoundError",
}

V1_READS = ("/api/public/traces", "/api/public/metrics", "/api/public/observations")


@dataclass
class ProxyFaults:
    v2_not_found: bool = False
    v1_not_found: bool = False  # the v1 reads answer 404, as on Langfuse Cloud today
    rate_limited: int = 0  # answer this many requests with 429 first
    retry_after: str = "1"


@dataclass
class Seen:
    paths: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # path and query string
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, prefix: str = "/api/public/") -> int:
        with self.lock:
            return sum(1 for p in self.paths if p.startswith(prefix))


class CountingProxy:
    """Forwards GETs to ``upstream``; ``url`` is where clients point."""

    def __init__(self, upstream: str, faults: ProxyFaults | None = None) -> None:
        self.faults = faults or ProxyFaults()
        self.seen = Seen()
        faults_, seen = self.faults, self.seen
        client = httpx.Client(base_url=upstream, timeout=60)
        self._client = client

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                with seen.lock:
                    seen.paths.append(self.path.split("?", 1)[0])
                    seen.targets.append(self.path)
                    seen.times.append(time.monotonic())
                    limited = faults_.rate_limited > 0
                    if limited:
                        faults_.rate_limited -= 1
                if limited:
                    body = json.dumps({"message": "Rate limit exceeded", "code": "rate_limited"})
                    headers = {
                        "Content-Type": "application/json",
                        "Retry-After": faults_.retry_after,
                    }
                    self._reply(429, body.encode(), headers)
                    return
                if faults_.v2_not_found and self.path.startswith("/api/public/v2/"):
                    body = json.dumps(V2_NOT_FOUND).encode()
                    self._reply(404, body, {"Content-Type": "application/json"})
                    return
                if faults_.v1_not_found and self.path.startswith(V1_READS):
                    self._reply(
                        404, b'{"message":"Not Found"}', {"Content-Type": "application/json"}
                    )
                    return
                upstream_answer = client.get(
                    self.path, headers={"Authorization": self.headers.get("Authorization", "")}
                )
                self._reply(
                    upstream_answer.status_code,
                    upstream_answer.content,
                    {
                        "Content-Type": upstream_answer.headers.get(
                            "Content-Type", "application/json"
                        )
                    },
                )

        self._server = LoopbackServer(Handler)
        self.url = self._server.url

    def close(self) -> None:
        self._server.close()
        self._client.close()
