"""Reading Langfuse's HTTP answers: how long it asks us to wait, and what its error says.

Shared by the background sender (``config.delivery.sender``) and the CLI's API client
(``autoops_cli.langfuse_api.client``), so both read an answer the same way. A leaf: it
imports nothing of the core, and httpx only for type checking.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds from the ``Retry-After`` header (None when absent or not a number)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def server_message(response: httpx.Response, limit: int = 200) -> str:
    """The server's error message on one line, at most ``limit`` characters.

    Langfuse's JSON ``message`` field; else its ``error`` field (the OTLP endpoint answers
    ``{"error": ...}``); else the start of the body as sent.
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
    return " ".join(text.split())[:limit]
