"""Errors of the local API, carrying the status and the body Langfuse would answer with."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ApiProblem(Exception):
    """An HTTP error response: ``status`` and a Langfuse-shaped JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message") or body.get("error") or str(status))
        self.status = status
        self.body = body


def invalid_request(message: str) -> ApiProblem:
    """400 as Langfuse's generic middleware answers it."""
    return ApiProblem(400, {"message": message, "error": "InvalidRequestError"})


def not_found(message: str) -> ApiProblem:
    """404 as Langfuse answers it."""
    return ApiProblem(404, {"message": message, "error": "LangfuseNotFoundError"})


class QueryParams(Protocol):
    """Query parameters: ``get`` the last value of a key, ``getlist`` all of them."""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` or ``default``."""

    def getlist(self, key: str) -> Sequence[str]:
        """Every value of ``key``, in order."""

    def __contains__(self, key: object) -> bool:
        """Whether ``key`` was given."""
