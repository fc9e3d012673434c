"""Reading Langfuse's HTTP answers: at most so many bytes of them, how long they ask us to
wait, and what their error says (without the credentials a peer may echo).

Shared by the background sender (``config.delivery.sender``) and the CLI's API client
(``autoops_cli.langfuse_api.client``), so both read an answer the same way. A leaf: it
imports nothing of the core but the redaction of secrets, and httpx only when it sends.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from config.redaction import redact_secrets

if TYPE_CHECKING:
    import httpx

# What is read of an answer that is short when it comes from Langfuse: to a batch (an OTLP
# partial success, a list of score errors) or a health probe, a few hundred bytes. A peer
# streaming without end must not fill memory.
SHORT_ANSWER_BYTES = 1 << 20


class AnswerTooLarge(Exception):
    """The peer's answer went past what is read of it; the rest was not read."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def request_bounded(
    client: httpx.Client, method: str, url: str, *, limit: int, **kwargs: Any
) -> httpx.Response:
    """Send a request and read at most ``limit`` bytes of the answer's body (decoded).

    The response returned holds the body read, as ``client.request`` would have; a longer
    body raises ``AnswerTooLarge`` after ``limit`` bytes (``client.request`` reads every
    byte a peer sends, gigabytes included).
    """
    import httpx

    with client.stream(method, url, **kwargs) as streamed:
        chunks: list[bytes] = []
        size = 0
        for chunk in streamed.iter_bytes():
            size += len(chunk)
            if size > limit:
                raise AnswerTooLarge(
                    f"HTTP {streamed.status_code} answer longer than {limit} bytes, "
                    "not read further",
                    streamed.status_code,
                )
            chunks.append(chunk)
        # The body is decoded already: the headers that describe its encoding on the wire go.
        headers = [
            (name, value)
            for name, value in streamed.headers.multi_items()
            if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return httpx.Response(
            streamed.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=streamed.request,
        )


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from the ``Retry-After`` header: a number of seconds or an HTTP date.

    None when it is absent, unreadable, or asks for no wait at all (0, a negative number,
    NaN, a date past): the caller's own backoff applies then, so a peer answering
    ``Retry-After: 0`` to every attempt is not hammered.
    """
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime  # only for the rare HTTP date

        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if math.isnan(seconds) or seconds <= 0:
        return None
    return seconds


def server_message(response: httpx.Response, limit: int = 200) -> str:
    """The server's error message on one line, at most ``limit`` characters.

    Langfuse's JSON ``message`` field; else its ``error`` field (the OTLP endpoint answers
    ``{"error": ...}``); else the start of the body as sent; with no body, where a redirect
    points (``a redirect to https://...``) or ``an empty answer``. Credentials the peer echoes
    are masked (``redact_secrets``: the configured keys in every form, anything shaped like a
    secret key or Basic credentials): the message is logged, shown and kept in the outbox.
    """
    try:
        body = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
        body = None
    text = response.text
    if isinstance(body, dict):
        for key in ("message", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
    message = " ".join(text.split())
    if not message:  # "answered 302:" and nothing: say what the answer was
        location = response.headers.get("location")
        redirect = response.is_redirect and location
        message = f"a redirect to {' '.join(location.split())}" if redirect else "an empty answer"
    return redact_secrets(message)[:limit]
