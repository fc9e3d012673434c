"""Times on the command line: ``1h`` / ``30m`` / ``2d`` / ``1w`` ago, or an ISO timestamp."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from config.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_moment(value: str, option: str, *, now: datetime | None = None) -> datetime:
    """The instant ``value`` means (naive ISO timestamps are UTC); exit 2 when it means none."""
    value = value.strip()
    match = _RELATIVE.match(value)
    if match:
        now = now or datetime.now(UTC)
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: expected 1h, 30m, 2d, 1w or an ISO timestamp"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def iso(moment: datetime) -> str:
    """UTC with milliseconds and ``Z``, as Langfuse writes timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """An ISO timestamp (``Z`` or an offset) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
