"""What a client may send ``autoops serve``, and the slow-client guard of uvicorn's protocol.

``ServeLimits`` holds the sizes and deadlines (hidden ``serve`` options lower them for
tests). uvicorn's h11 protocol has a keep-alive timeout but no deadline for a request that
is still arriving: a client that connects and sends nothing, or trickles its headers a byte
at a time (slowloris), or stops sending a body nobody reads, holds its connection for ever.
``guarded_protocol`` adds the missing deadlines:

- headers: ``header_timeout_s`` from the connection (or from the first byte of the next
  request on a kept-alive connection) to the end of the request's headers; then a 408
  (when part of a request came) and the connection is closed. Headers are capped at
  ``MAX_HEADER_BYTES``: h11 answers 400 to headers arriving in pieces past it, and the
  server (``check_header_size``) 431 to headers that arrived whole in one read;
- an unread body: after the response, the rest of a body the application did not read is
  discarded for at most ``drain_timeout_s``, then the connection is closed (the client
  could read the answer, a 413 for instance, first);
- the body the application reads has its own deadline (``server.read_body``: 408).

The subclass uses uvicorn's ``H11Protocol`` internals (``conn``, ``cycle``,
``on_response_complete``); ``tests/local_api/test_serve_security.py`` fails if an upgrade moves them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_BODY_BYTES = 32 * 1024 * 1024  # per request, as sent
MAX_DECOMPRESSED_BYTES = 128 * 1024 * 1024  # after gzip
BODY_READ_TIMEOUT_S = 30.0  # the whole body
HEADER_READ_TIMEOUT_S = 10.0  # from the connection (or a request's first byte) to its headers
DRAIN_TIMEOUT_S = 5.0  # an unread body is discarded this long after the response
MAX_HEADER_BYTES = 16 * 1024  # request line and headers (Node's default, as Langfuse runs)
KEEP_ALIVE_TIMEOUT_S = 30  # an idle kept-alive connection
REQUEST_TIMEOUT_BODY = (
    b'{"message":"Request headers not received in time","error":"RequestTimeout"}'
)


@dataclass(frozen=True)
class ServeLimits:
    """What a client may send the server: sizes in bytes, deadlines in seconds."""

    max_body_bytes: int = MAX_BODY_BYTES
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES
    body_timeout_s: float = BODY_READ_TIMEOUT_S
    header_timeout_s: float = HEADER_READ_TIMEOUT_S
    drain_timeout_s: float = DRAIN_TIMEOUT_S


def guarded_protocol(header_timeout_s: float, drain_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with deadlines for headers and for an unread body."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        """One connection; ``_update_deadlines`` runs after every step of h11's state."""

        header_deadline: asyncio.TimerHandle | None = None
        drain_deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self.header_deadline = self.loop.call_later(header_timeout_s, self.headers_late)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._update_deadlines()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._update_deadlines()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel("header_deadline")
            self._cancel("drain_deadline")
            super().connection_lost(exc)

        def _cancel(self, name: str) -> None:
            handle: asyncio.TimerHandle | None = getattr(self, name)
            if handle is not None:
                handle.cancel()
                setattr(self, name, None)

        def _update_deadlines(self) -> None:
            if self.transport.is_closing():
                self._cancel("header_deadline")
                self._cancel("drain_deadline")
                return
            state = self.conn.their_state
            if state is not h11.IDLE:
                self._cancel("header_deadline")  # the headers are in
            elif self.header_deadline is None and self.conn.trailing_data[0]:
                # The first bytes of the next request on a kept-alive connection.
                self.header_deadline = self.loop.call_later(header_timeout_s, self.headers_late)
            responded = self.cycle is not None and self.cycle.response_complete
            if state is h11.SEND_BODY and responded:
                if self.drain_deadline is None:
                    self.drain_deadline = self.loop.call_later(drain_timeout_s, self.drain_late)
            elif state is not h11.SEND_BODY:
                self._cancel("drain_deadline")

        def headers_late(self) -> None:
            self.header_deadline = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:
                # Part of a request came: say why. A connection that sent nothing is just
                # closed (a 408 there could be read as the answer to a request sent later).
                self.transport.write(
                    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                    b"connection: close\r\ncontent-length: "
                    + str(len(REQUEST_TIMEOUT_BODY)).encode()
                    + b"\r\n\r\n"
                    + REQUEST_TIMEOUT_BODY
                )
            self.transport.close()

        def drain_late(self) -> None:
            self.drain_deadline = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedH11Protocol
