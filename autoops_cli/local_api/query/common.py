"""What the read endpoints share: the conventions of Langfuse's public read API.

Query parameter parsing that answers bad values with Langfuse's 400, the SQL ``WHERE``
builder, JSON and time formatting, page-based and cursor pagination, and the constants
the answers share (the project id, the default environment). The endpoints live in one
module per resource (``traces``, ``observations``, ``scores``; ``projects`` for projects and
health), each importing this one.

Every SQL value is bound as a parameter: only column names written in this package's code
are ever put into SQL text, never anything that came with a request.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from autoops_cli.local_api.query.errors import QueryParams, invalid_request
from config.store.rows import iso_from_ns

PROJECT_ID = "local"
DEFAULT_ENVIRONMENT = "default"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- query parameters ----------------------------------------------------------------


def text_param(params: QueryParams, name: str) -> str | None:
    """The value of ``name``; an empty value counts as absent, as Langfuse's parsers do."""
    value = params.get(name)
    return str(value) if value else None


def list_param(params: QueryParams, name: str) -> list[str]:
    """Every non-empty value of a repeatable parameter (``environment=a&environment=b``)."""
    return [str(value) for value in params.getlist(name) if value]


def csv_param(params: QueryParams, name: str) -> list[str]:
    """A comma-separated list parameter (every occurrence), items trimmed, empties dropped."""
    items = (part.strip() for value in params.getlist(name) for part in str(value).split(","))
    return [item for item in items if item]


def int_param(params: QueryParams, name: str, default: int, low: int, high: int | None) -> int:
    """An integer in ``[low, high]`` (``high`` None: unbounded), ``default`` when absent."""
    value = text_param(params, name)
    if value is None:
        return default
    bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
    try:
        number = int(value)
    except ValueError:
        raise invalid_request(f"Invalid {name}: must be an integer {bounds}") from None
    if number < low or (high is not None and number > high):
        raise invalid_request(f"Invalid {name}: must be an integer {bounds}")
    return number


def page_params(params: QueryParams) -> tuple[int, int]:
    """``page`` (from 1, default 1) and ``limit`` (1 to 100, default 50) of a v1/v2 list."""
    # The page bound only keeps OFFSET inside SQLite's integers.
    return int_param(params, "page", 1, 1, 2**31 - 1), int_param(params, "limit", 50, 1, 100)


def float_param(params: QueryParams, name: str) -> float | None:
    """A finite number, or None when absent."""
    value = text_param(params, name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise invalid_request(f"Invalid {name}: must be a finite number")
    return number


def bool_param(params: QueryParams, name: str) -> bool | None:
    """``true`` or ``false`` (as Langfuse accepts them), None when absent."""
    value = text_param(params, name)
    if value is None:
        return None
    if value not in ("true", "false"):
        raise invalid_request(f"Invalid {name}: must be true or false")
    return value == "true"


def choice_param(params: QueryParams, name: str, allowed: Sequence[str]) -> str | None:
    """One of ``allowed`` (an enum of the API), None when absent."""
    value = text_param(params, name)
    if value is not None and value not in allowed:
        raise invalid_request(f"Invalid {name}: must be one of {', '.join(allowed)}")
    return value


def parse_iso_us(value: str) -> int | None:
    """Microseconds since the epoch of an ISO 8601 date-time (naive = UTC), None if invalid."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def time_param(params: QueryParams, name: str) -> int | None:
    """An ISO 8601 date-time parameter as epoch microseconds, None when absent."""
    value = text_param(params, name)
    if value is None:
        return None
    micros = parse_iso_us(value)
    if micros is None:
        raise invalid_request(
            f"Invalid {name}: must be an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z"
        )
    return micros


def field_groups(params: QueryParams, known: Sequence[str]) -> set[str] | None:
    """The ``fields`` groups asked for, None when not given.

    Unknown names are dropped rather than refused: that is what Langfuse's traces and v2
    observations endpoints do (the v3 scores endpoint is stricter and checks itself).
    """
    chosen = {group for group in csv_param(params, "fields") if group in known}
    return chosen or None


# --- SQL -------------------------------------------------------------------------------


@dataclass
class Where:
    """A ``WHERE`` clause built from code-written conditions and bound arguments."""

    clauses: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def add(self, clause: str, *args: Any) -> None:
        """Add a condition; ``clause`` is SQL written in code, ``args`` its bound values."""
        self.clauses.append(clause)
        self.args.extend(args)

    def equal(self, column: str, value: Any) -> None:
        """``column = value`` when a value was given."""
        if value is not None:
            self.add(f"{column} = ?", value)

    def one_of(self, column: str, values: Sequence[Any]) -> None:
        """``column IN (values)`` when values were given."""
        if values:
            self.add(f"{column} IN ({placeholders(len(values))})", *values)

    def time_range(self, column: str, start_us: int | None, end_us: int | None) -> None:
        """``start <= column < end`` (either bound optional)."""
        if start_us is not None:
            self.add(f"{column} >= ?", start_us)
        if end_us is not None:
            self.add(f"{column} < ?", end_us)

    def never(self) -> None:
        """Match nothing: a filter on something the local store never records."""
        self.add("0")

    def sql(self) -> str:
        """`` WHERE ...`` or an empty string."""
        return " WHERE " + " AND ".join(self.clauses) if self.clauses else ""


def placeholders(count: int) -> str:
    """``?, ?, ?`` for ``count`` bound values."""
    return ", ".join("?" * count)


def tags_contain_all(column: str, where: Where, tags: Sequence[str]) -> None:
    """Require every tag in the JSON array text ``column`` (a missing array has none).

    One condition however many tags (SQLite bounds how deep an expression may nest, so one
    clause per tag failed a request with thousands of them).
    """
    wanted = sorted(set(tags))
    if not wanted:
        return
    # CASE keeps json_each away from text that is not JSON (it would fail the query).
    where.add(
        f"CASE WHEN json_valid({column}) THEN (SELECT COUNT(DISTINCT json_each.value) "
        f"FROM json_each({column}) WHERE json_each.value IN ({placeholders(len(wanted))})) "
        "= ? ELSE 0 END",
        *wanted,
        len(wanted),
    )


# --- values ----------------------------------------------------------------------------


def iso(micros: int) -> str:
    """Langfuse's timestamp format of epoch microseconds."""
    return iso_from_ns(micros * 1000)


def iso_or_none(micros: int | None) -> str | None:
    """``iso`` for a value that may be missing."""
    return None if micros is None else iso(micros)


def precise_iso(micros: int) -> str:
    """ISO 8601 with microseconds: cursors must not lose the store's precision."""
    return (_EPOCH + timedelta(microseconds=micros)).isoformat().replace("+00:00", "Z")


def json_value(text: str | None) -> Any:
    """Stored JSON text parsed; text that is not JSON is returned as it is.

    A number a JavaScript client would round (``12345678901234567890``, an id of 20 digits
    a client sent as text) is answered as its text, as Langfuse's reads answer it
    (``parseJsonPrioritised``): the official clients showed 12345678901234567000.
    """
    if text is None:
        return None
    try:
        if _MAYBE_UNSAFE_NUMBER.search(text) is None:  # the common case: no hook per number
            return json.loads(text)
        return json.loads(text, parse_int=_lossless_number, parse_float=_lossless_number)
    except ValueError:
        return text


# A number of 16 or more digits, or one with an exponent, may not survive a JavaScript
# double; shorter ones always do.
_MAYBE_UNSAFE_NUMBER = re.compile(r"[0-9.]{16,}|[0-9][eE]")


def _lossless_number(text: str) -> int | float | str:
    """A JSON number as a double represents it, or its text when a double would change its
    digits (lossless-json's ``isSafeNumber``: the significant digits compared)."""
    number = float(text)
    if not math.isfinite(number) or _significant_digits(text) != _significant_digits(repr(number)):
        return text
    return int(text) if text.lstrip("-").isdigit() else number


def _significant_digits(text: str) -> str:
    """``-0.01230e5`` -> ``123``: the digits without sign, point, exponent, leading zeros and
    trailing zeros."""
    mantissa = text.lower().split("e", 1)[0]
    return mantissa.lstrip("-").replace(".", "").strip("0")


def json_object(text: str | None) -> dict[str, Any] | None:
    """Stored JSON text parsed as an object; anything else is wrapped under ``metadata``."""
    value = json_value(text)
    if value is None or isinstance(value, dict):
        return value
    return {"metadata": value}


def json_list(text: str | None) -> list[str]:
    """Stored tags: a JSON array of strings, ``[]`` when none."""
    value = json_value(text)
    return [str(item) for item in value] if isinstance(value, list) else []


def page_meta(page: int, limit: int, total: int) -> dict[str, int]:
    """Langfuse's page-based ``meta``."""
    return {
        "page": page,
        "limit": limit,
        "totalItems": total,
        "totalPages": math.ceil(total / limit) if limit else 0,
    }


def encode_cursor(payload: dict[str, Any], *, url_safe: bool = False) -> str:
    """An opaque cursor: base64 of JSON (base64url without padding when ``url_safe``)."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    if url_safe:
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return base64.b64encode(raw).decode()


def decode_cursor(value: str, keys: Sequence[str]) -> dict[str, str]:
    """The JSON object of a cursor with string ``keys``; anything else is a 400."""
    try:
        # Either alphabet, padded or not; a '+' left unescaped in a URL arrives as a space.
        text = value.replace(" ", "+").replace("-", "+").replace("_", "/")
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid_request("Invalid cursor format") from None
    if not isinstance(payload, dict) or not all(isinstance(payload.get(key), str) for key in keys):
        raise invalid_request("Invalid cursor format")
    return {key: payload[key] for key in keys}
