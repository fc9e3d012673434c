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


def server_message(response: httpx.Response) -> str:
    """The server's error message: its JSON ``message`` or ``error``, else the body's start."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:500]
    return str(body)[:500]
