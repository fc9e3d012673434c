"""A peer on 127.0.0.1 that answers every request a byte at a time (a slow proxy, a stuck
link): the headers, or the headers and then the body, one byte per ``interval`` seconds.

httpx's timeouts are per read, so against this peer only a deadline on the whole exchange
ends a command in time.
"""

from __future__ import annotations

import json
import socket
import threading
import time


class TricklePeer:
    """Accepts connections and trickles a JSON answer on each; ``close()`` stops it."""

    def __init__(self, *, interval: float = 1.0, trickle_headers: bool = False) -> None:
        self.interval = interval
        self.trickle_headers = trickle_headers
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            try:
                request = connection.recv(65536).decode("latin-1")
            except OSError:
                return
            self.requests.append(request.split("\r\n", 1)[0])
            # A small answer: only its pace makes it slow (a minute at one byte a second).
            payload = json.dumps({"data": [], "meta": {}, "status": "OK", "version": "4.35.0"})
            payload = payload.encode()
            head = (
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                f"content-length: {len(payload)}\r\n\r\n"
            ).encode()
            try:
                if self.trickle_headers:
                    self._trickle(connection, head + payload)
                else:
                    connection.sendall(head)
                    self._trickle(connection, payload)
            except OSError:  # the client gave up: what the tests want
                return

    def _trickle(self, connection: socket.socket, data: bytes) -> None:
        for index in range(len(data)):
            if self._stop.is_set():
                return
            connection.sendall(data[index : index + 1])
            time.sleep(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(timeout=5)
