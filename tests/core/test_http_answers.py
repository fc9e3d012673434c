"""Reading Langfuse's answers: Retry-After and the error message (config.http_answers)."""

from __future__ import annotations

import base64
import json

import httpx
from hypothesis import given
from hypothesis import strategies as st

from config.http_answers import retry_after_seconds, server_message


def answer(
    status: int, body: bytes | str | object, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = (
        body
        if isinstance(body, bytes)
        else (body if isinstance(body, str) else json.dumps(body)).encode()
    )
    return httpx.Response(status, content=content, headers=headers)


def test_retry_after_is_seconds_or_an_http_date_or_none() -> None:
    def asked(value: str) -> float | None:
        return retry_after_seconds(answer(429, b"", {"Retry-After": value}))

    assert asked("2.5") == 2.5
    # No wait asked at all (to every attempt, from a hostile peer): the caller's backoff.
    assert asked("0") is None and asked("-3") is None and asked("nan") is None
    assert asked("soon") is None
    assert retry_after_seconds(answer(429, b"")) is None
    later = asked("Fri, 31 Dec 2100 23:59:59 GMT")
    assert later is not None and later > 86_400
    assert asked("Thu, 01 Jan 1970 00:00:00 GMT") is None  # a date past


def test_credentials_the_peer_echoes_are_masked_in_its_message() -> None:
    from config.redaction import register_credentials

    secret = "not-shaped-like-a-key-42"  # masked because it is configured, whatever its form
    register_credentials("pk-lf-1", secret)  # as a LangfuseConfig with these keys does
    basic = base64.b64encode(f"pk-lf-1:{secret}".encode()).decode()
    request = httpx.Request("POST", "http://x/api", headers={"Authorization": f"Basic {basic}"})
    echoed = f"denied pk-lf-1:{secret} (Basic {basic}); {secret}; basic {basic}; sk-lf-other1"
    response = httpx.Response(401, json={"message": echoed}, request=request)
    message = server_message(response, limit=500)
    assert secret not in message and basic not in message
    assert "sk-lf-other1" not in message
    assert message.startswith("denied ****")


def test_the_message_field_wins_then_the_error_field_then_the_body() -> None:
    both = {"message": "Not found", "error": "LangfuseNotFoundError"}
    assert server_message(answer(404, both)) == "Not found"
    assert server_message(answer(400, {"error": "Invalid content type"})) == "Invalid content type"
    assert server_message(answer(400, {"message": "", "error": "Bad"})) == "Bad"
    assert (
        server_message(answer(502, "<html>\n  Bad gateway\n</html>"))
        == "<html> Bad gateway </html>"
    )
    assert server_message(answer(400, {"detail": "x"})) == '{"detail": "x"}'


def test_an_answer_without_a_body_says_where_it_redirects_or_that_it_is_empty() -> None:
    """A 302 to a login page gave "answered 302:" and nothing after the colon."""
    moved = answer(302, b"", {"Location": "https://elsewhere.example/login"})
    assert server_message(moved) == "a redirect to https://elsewhere.example/login"
    assert server_message(answer(500, b"  \n")) == "an empty answer"


def test_the_message_is_cut_to_the_limit() -> None:
    assert server_message(answer(400, {"message": "m" * 900})) == "m" * 200
    assert server_message(answer(400, {"message": "m" * 900}), limit=500) == "m" * 500


def test_json_nested_beyond_the_parser_is_read_as_text() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    assert server_message(answer(400, deep), limit=10) == "[" * 10


@given(body=st.binary(max_size=300), limit=st.integers(min_value=1, max_value=600))
def test_property_any_body_gives_one_short_line(body: bytes, limit: int) -> None:
    message = server_message(answer(400, body), limit=limit)
    assert len(message) <= limit
    assert "\n" not in message and "\r" not in message


@given(value=st.text(max_size=40), limit=st.integers(min_value=50, max_value=600))
def test_property_a_message_field_is_given_back_on_one_line(value: str, limit: int) -> None:
    message = server_message(answer(400, {"message": value, "error": "fallback"}), limit=limit)
    expected = " ".join(value.split())
    assert message == (expected if expected else "fallback")
