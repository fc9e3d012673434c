"""GET requests to the Langfuse public API, with the error handling every read command shares.

- the whole command has one time budget: each request gets only the time left of it;
- 429 is retried after ``Retry-After`` while the budget allows, then reported (exit 5);
- 401/403 are rejected credentials (exit 3), other errors are API errors (exit 5) and an
  unreachable host is a network error (exit 4);
- the answer body is JSON, else it is an API error (a proxy's HTML page is not an answer).

Messages name the host and the path, never the keys.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from config.errors import ApiError, CredentialsError, NetworkError

if TYPE_CHECKING:
    import httpx

    from config.settings import LangfuseConfig


class ApiClient:
    """An authenticated client for one command; use as a context manager."""

    def __init__(self, config: LangfuseConfig, *, timeout: float) -> None:
        import httpx

        assert config.public_key is not None and config.secret_key is not None
        self.host = config.host
        self.deadline = time.monotonic() + timeout
        self.requests = 0
        self._client = httpx.Client(
            base_url=config.host,
            auth=(config.public_key, config.secret_key.get_secret_value()),
            timeout=timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def left(self) -> float:
        """Seconds left of the command's budget."""
        return self.deadline - time.monotonic()

    def get(self, path: str, params: list[tuple[str, str]], *, allow: tuple[int, ...] = ()) -> Any:
        """GET ``path`` and return its JSON body; statuses in ``allow`` return ``None``."""
        import httpx

        while True:
            left = self.left()
            if left <= 0:
                raise NetworkError(f"{self.host}{path}: no answer within the timeout")
            self.requests += 1
            try:
                response = self._client.get(path, params=tuple(params), timeout=left)
            except httpx.TimeoutException:
                raise NetworkError(f"{self.host}{path}: no answer within the timeout") from None
            except httpx.HTTPError as exc:
                raise NetworkError(
                    f"cannot reach {self.host}: {type(exc).__name__}: {exc}"
                ) from None
            if response.status_code == 429:
                wait = retry_after(response)
                if wait < self.left():
                    time.sleep(wait)
                    continue
                raise ApiError(
                    f"{self.host}{path} answered 429 (rate limited) and asks to wait {wait:g} s, "
                    "beyond the timeout",
                    status=429,
                    hint="try again later, or raise --timeout",
                )
            if response.status_code in allow:
                return None
            if response.status_code in (401, 403):
                raise CredentialsError(
                    f"{self.host} rejected the API keys ({response.status_code}: "
                    f"{_message(response)})",
                    hint="check LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST",
                )
            if not response.is_success:
                raise ApiError(
                    f"{self.host}{path} answered {response.status_code}: {_message(response)}",
                    status=response.status_code,
                )
            try:
                return response.json()
            except ValueError:
                raise ApiError(
                    f"{self.host}{path} answered {response.status_code} without a JSON body",
                    status=response.status_code,
                ) from None


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait from ``Retry-After`` (1 s when absent or not a number)."""
    try:
        return max(0.0, float(response.headers.get("Retry-After", "1")))
    except ValueError:
        return 1.0


def _message(response: httpx.Response) -> str:
    """Langfuse's ``message`` field, else the start of the body, on one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    else:
        text = response.text
    return " ".join(text.split())[:200]
