"""GET requests to the Langfuse public API, with the error handling every read command shares.

- the whole command has one time budget (``--timeout``), and it holds for every byte: the
  client's sockets refuse to wait past the deadline (``deadline_client``), so a peer that
  trickles its answer a byte at a time is cut off when the budget ends, not after it;
- 429 is retried after ``Retry-After`` while the budget allows, then reported (exit 5);
- 401/403 are rejected credentials (exit 3), other errors are API errors (exit 5) and an
  unreachable host is a network error (exit 4);
- the answer body is JSON, else it is an API error (a proxy's HTML page is not an answer);
  JSON as the standard defines it: ``NaN``, ``Infinity`` and numbers beyond a double (which
  Python's parser would let through) make a body that is not Langfuse's.

Values in answers are read with ``number`` and ``count``, which turn whatever is not a number
into 0, so a strange answer can make a report wrong but never make it fail.
Messages name the host and the path, never the keys.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from config.errors import ApiError, CredentialsError, NetworkError
from config.http_answers import (
    AnswerTooLarge,
    request_bounded,
    retry_after_seconds,
    server_message,
)

if TYPE_CHECKING:
    import httpx

    from config.settings import LangfuseConfig

# The most of one answer a read command holds: a page of observations with large inputs and
# outputs fits many times over; a peer streaming without end is cut off here, not when memory
# runs out (parsed, an answer takes several times its bytes).
API_ANSWER_BYTES = 64 << 20


def deadline_client(
    *, base_url: str, deadline: float, auth: tuple[str, str] | None = None
) -> httpx.Client:
    """An ``httpx.Client`` none of whose socket operations waits past ``deadline``.

    ``deadline`` is a ``time.monotonic()`` instant. httpx's timeouts are per socket read, so
    an answer trickling in a byte a second never trips them; here every connect, read and
    write gets only the time left, and fails with httpx's timeout error once none is left:
    the whole exchange, headers and body, ends by the deadline.
    """
    import httpx

    from autoops_cli.langfuse_api.deadline import DeadlineBackend

    transport = httpx.HTTPTransport()
    # httpx builds its httpcore pool without a way to pass a network backend; the pool keeps
    # the backend it connects with in ``_network_backend`` (httpcore 1.x). The deadline tests
    # (a peer trickling its answer) fail if an upgrade moves it.
    pool = transport._pool
    pool._network_backend = DeadlineBackend(pool._network_backend, deadline)
    left = max(0.001, deadline - time.monotonic())
    return httpx.Client(base_url=base_url, auth=auth, transport=transport, timeout=left)


class ApiClient:
    """An authenticated client for one command; use as a context manager."""

    def __init__(self, config: LangfuseConfig, *, timeout: float) -> None:
        assert config.public_key is not None and config.secret_key is not None
        self.host = config.host
        self.deadline = time.monotonic() + timeout
        self.requests = 0
        self._client = deadline_client(
            base_url=config.host,
            deadline=self.deadline,
            auth=(config.public_key, config.secret_key.get_secret_value()),
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def left(self) -> float:
        """Seconds left of the command's budget."""
        return self.deadline - time.monotonic()

    def get(self, path: str, params: list[tuple[str, str]], *, allow: tuple[int, ...] = ()) -> Any:
        """GET ``path`` and return its JSON body; statuses in ``allow`` return ``None``.

        A body that is not JSON, or is JSON ``null``, is an ``ApiError``.
        """
        import httpx

        while True:
            left = self.left()
            if left <= 0:  # spent on earlier requests (or 429 waits), each answered
                raise NetworkError(
                    f"{self.host}{path}: the timeout ran out after {self.requests} request(s)"
                )
            self.requests += 1
            try:
                response = request_bounded(
                    self._client,
                    "GET",
                    path,
                    limit=API_ANSWER_BYTES,
                    params=tuple(params),
                    timeout=left,
                )
            except AnswerTooLarge as exc:
                raise ApiError(f"{self.host}{path}: {exc}", status=exc.status) from None
            except httpx.TimeoutException:
                raise NetworkError(f"{self.host}{path}: no answer within the timeout") from None
            except httpx.DecodingError as exc:  # it answered: a body that cannot be decoded
                raise ApiError(
                    f"{self.host}{path} answered a body that cannot be decoded: {exc}", status=0
                ) from None
            except httpx.RemoteProtocolError as exc:  # reached, but no HTTP answer came back
                raise NetworkError(
                    f"{self.host}{path}: no valid HTTP answer: {type(exc).__name__}: {exc}"
                ) from None
            except httpx.HTTPError as exc:
                raise NetworkError(
                    f"cannot reach {self.host}: {type(exc).__name__}: {exc}"
                ) from None
            if response.status_code == 429:
                wait = retry_after(response)
                if wait < self.left():
                    time.sleep(wait)
                    continue
                asked = (
                    (f"asks to wait {wait:g} s" if math.isfinite(wait) else "asks to wait for ever")
                    if retry_after_seconds(response) is not None
                    else f"says not how long to wait ({wait:g} s would be waited)"
                )
                raise ApiError(
                    f"{self.host}{path} answered 429 (rate limited) and {asked}, "
                    "beyond the timeout",
                    status=429,
                    hint="try again later, or raise --timeout",
                )
            if response.status_code in allow:
                return None
            if response.status_code in (401, 403):
                raise CredentialsError(
                    f"{self.host} rejected the API keys ({response.status_code}: "
                    f"{server_message(response)})",
                    hint="check LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and LANGFUSE_HOST",
                )
            if not response.is_success:
                raise ApiError(
                    f"{self.host}{path} answered {response.status_code}: {server_message(response)}",
                    status=response.status_code,
                )
            try:
                body = parse_json(response.content)
            except (ValueError, RecursionError):  # not JSON, or nested beyond the parser
                raise ApiError(
                    f"{self.host}{path} answered {response.status_code} without a JSON body",
                    status=response.status_code,
                ) from None
            if body is None:  # None means "a status in allow" to the caller: never an answer
                raise ApiError(
                    f"{self.host}{path} answered {response.status_code} with JSON null",
                    status=response.status_code,
                )
            return body


MAX_COUNT = 2**64 - 1  # a count in a Langfuse answer is a ClickHouse UInt64


def parse_json(content: bytes) -> Any:
    """A JSON body; ``ValueError`` for anything else, NaN, Infinity and 1e400 included."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"number {text[:20]} is out of range")
        return value

    return json.loads(content, parse_constant=refuse_constant, parse_float=finite)


def number(value: Any) -> float:
    """A numeric field as a finite float: numbers, numeric strings; anything else is 0
    (a JSON ``true`` too: it is not a number)."""
    if isinstance(value, bool):
        return 0.0
    if isinstance(value, (int, float, str)):
        try:
            parsed = float(value)
        except (ValueError, OverflowError):  # "x", or an integer beyond a float
            return 0.0
        return parsed if math.isfinite(parsed) else 0.0
    return 0.0


def count(value: Any) -> int:
    """A count field: a whole number from 0 to 2**64 - 1 (exact from a string); else 0."""
    if isinstance(value, str) and value.strip().isdigit():
        try:
            parsed = int(value)
        except ValueError:  # "²" (a digit to isdigit), or beyond the int-from-string limit
            return 0
    else:
        as_float = number(value)
        parsed = int(as_float) if as_float.is_integer() else -1
    return parsed if 0 <= parsed <= MAX_COUNT else 0


def retry_after(response: httpx.Response) -> float:
    """Seconds to wait from ``Retry-After`` (1 s when absent, unreadable or not above 0)."""
    seconds = retry_after_seconds(response)
    return 1.0 if seconds is None else seconds
