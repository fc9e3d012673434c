"""Sockets that give up at a deadline: the network backend of ``client.deadline_client``.

httpx's timeouts bound each socket operation, not an exchange: a peer sending one byte a
second keeps every read short and the request alive for ever. These wrappers of httpcore's
backend and streams give each connect, read and write only the time left before the
deadline, and raise httpcore's timeout errors (httpx's ``TimeoutException`` to the caller)
once it has passed.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable
from typing import Any

import httpcore


def time_left(deadline: float, timeout: float | None, error: type[Exception]) -> float:
    """The timeout of one socket operation: what it asked for, at most the time left."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise error("the time budget is spent")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float) -> None:
        self._inner, self._deadline = inner, deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        wait = time_left(self._deadline, timeout, httpcore.ReadTimeout)
        return self._inner.read(max_bytes, wait)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        wait = time_left(self._deadline, timeout, httpcore.WriteTimeout)
        self._inner.write(buffer, wait)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Connections whose streams end every operation by the deadline."""

    def __init__(self, inner: httpcore.NetworkBackend, deadline: float) -> None:
        self._inner, self._deadline = inner, deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, wait, local_address, socket_options)
        return DeadlineStream(stream, self._deadline)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = time_left(self._deadline, timeout, httpcore.ConnectTimeout)
        return DeadlineStream(
            self._inner.connect_unix_socket(path, wait, socket_options), self._deadline
        )

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(max(0.0, min(seconds, self._deadline - time.monotonic())))
