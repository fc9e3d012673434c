"""Request bodies of the write routes: inflating gzip within limits, text SQLite can store.

Shared by the OTLP route, the scores route and the batch ingestion route.
"""

from __future__ import annotations

import math
import re
import zlib
from datetime import UTC, datetime
from typing import Any

from autoops_cli.local_api.query.errors import ApiProblem
from config.json_values import unicode_text

INFLATE_CHUNK = 1024 * 1024
GZIP_MIN_SIZE = 18  # a 10-byte header and an 8-byte trailer
GZIP_MAGIC = b"\x1f\x8b"
INT64 = (-(2**63), 2**63 - 1)  # OTLP's intValue; SQLite's integers


class InflatedPastReservation(Exception):
    """A body inflated past the size its gzip trailer announced (a multi-member body, or a
    lying trailer): the caller reserved too little memory for it and must retry with more."""


def error(message: str) -> ApiProblem:
    """400 with Langfuse's OTLP error body (``{"error": ...}``)."""
    return ApiProblem(400, {"error": message})


def decompressed_too_large(limit: int) -> ApiProblem:
    """413 for a body that inflates past ``limit`` bytes."""
    return ApiProblem(
        413,
        {"message": f"Decompressed body exceeds {limit} bytes", "error": "PayloadTooLargeError"},
    )


def is_gzip(encoding: str | None) -> bool:
    """Whether ``Content-Encoding`` asks for gzip (anything but gzip/identity is refused later)."""
    return bool(encoding) and str(encoding).strip().lower() == "gzip"


def inflated_size(body: bytes | bytearray) -> int:
    """What a gzip body's trailer says it inflates to (the last member's size, mod 4 GiB);
    0 for a body that does not start as gzip does (plain JSON sent as gzip has no trailer:
    its last bytes claimed gigabytes, a 413 where inflating fails with a 400)."""
    if len(body) < GZIP_MIN_SIZE or body[:2] != GZIP_MAGIC:
        return 0
    return int.from_bytes(body[-4:], "little")


def decompress(
    body: bytes | bytearray, encoding: str | None, *, limit: int, reserved: int | None = None
) -> bytes | bytearray:
    """Undo ``Content-Encoding: gzip``, refusing to inflate past ``limit`` bytes (413).

    A gzip bomb is refused early: a trailer announcing more than ``limit`` bytes before
    anything is inflated (its size field is the true size modulo 4 GiB, so a larger claim is
    never a false alarm), and a trailer that lies once the output passes ``limit``:
    inflation runs in chunks of at most ``INFLATE_CHUNK`` bytes and never produces more than
    ``limit + 1``, so memory grows by the limit at most. The output grows in place (one
    buffer, no joined copy). Concatenated gzip members are one body, as ``gzip -d`` reads
    them. ``reserved``: the memory the caller set aside; inflating past it raises
    ``InflatedPastReservation`` (only when below ``limit``).
    """
    if not encoding or encoding.strip().lower() == "identity":
        return body
    if not is_gzip(encoding):
        raise error(f"Unsupported content encoding: {encoding}")
    if inflated_size(body) > limit:
        raise decompressed_too_large(limit)
    cap = limit if reserved is None else min(limit, reserved)
    output = bytearray()
    pending: bytes | bytearray = body
    while pending:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        while not inflater.eof:
            try:
                # max_length bounds each step: a bomb stops one byte past the cap.
                chunk = inflater.decompress(pending, min(INFLATE_CHUNK, cap + 1 - len(output)))
            except zlib.error:
                raise error("Failed to decompress request body") from None
            pending = inflater.unconsumed_tail
            output += chunk
            if len(output) > cap:
                if cap < limit:
                    raise InflatedPastReservation
                raise decompressed_too_large(limit)
            if not chunk and not pending:  # the input ended inside a member
                raise error("Failed to decompress request body")
        pending = inflater.unused_data
    if not output:
        raise error("Failed to decompress request body")
    return output


# Deeper JSON is refused (400): storing it recursed past Python's stack (a 500 at about 500
# levels, and an SDK retries a 500 for ever).
MAX_JSON_DEPTH = 300


class TooDeep(ValueError):
    """A JSON value nested deeper than ``MAX_JSON_DEPTH``."""

    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def storable(value: Any, depth: int = 0) -> Any:
    """A parsed JSON value whose text is Unicode and whose numbers SQLite and JSON can hold.

    An integer beyond 64 bits becomes a float (what it is to JavaScript), or None past the
    float range; a float past it (``1e400`` reads as infinity) None, as JavaScript writes
    it: the store could not bind the integer, and wrote the infinity as ``Infinity``, which
    is no JSON (every metadata filter of the store failed on it). ``TooDeep`` past
    ``MAX_JSON_DEPTH``.
    """
    if isinstance(value, str):
        return unicode_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value if INT64[0] <= value <= INT64[1] else _as_float(value)
    if depth >= MAX_JSON_DEPTH:
        raise TooDeep
    if isinstance(value, list):
        return [storable(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {unicode_text(str(key)): storable(item, depth + 1) for key, item in value.items()}
    return value


def metadata_object(value: Any) -> dict[str, Any] | None:
    """Metadata as an object: anything else (a list, a text) is kept under ``metadata``, as
    Langfuse keeps it, for observations, traces and scores alike."""
    if value is None:
        return None
    return value if isinstance(value, dict) else {"metadata": value}


def _as_float(value: int) -> float | None:
    try:
        return float(value)
    except OverflowError:
        return None


# An ISO 8601 date-time with an offset, as Langfuse's schemas take it (zod's
# ``datetime({offset: true})``).
_ISO_OFFSET = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})$"
)
_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


def iso_micros(value: Any) -> int:
    """Microseconds since the epoch of an ISO 8601 date-time with an offset; ValueError for
    anything else (not text, another format, a time that does not exist)."""
    if not isinstance(value, str) or not _ISO_OFFSET.match(value):
        raise ValueError(f"not an ISO 8601 date-time with an offset: {value!r:.40}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        # In UTC too, or the reads cannot show it again (9999-12-31T23:59:59-01:00 is in
        # year 10000 there: every later listing of scores answered 500).
        moment.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(str(exc)) from None
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
