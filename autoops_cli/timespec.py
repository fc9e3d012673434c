"""Times on the command line: ``1h`` / ``30m`` / ``2d`` / ``1w`` ago, or an ISO timestamp."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from config.errors import UsageError

_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# What a trace's time can be: Unix time, up to the last day datetime holds (a window and the
# one before it are computed from these without leaving datetime's range).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


def parse_moment(value: str, option: str, *, now: datetime | None = None) -> datetime:
    """The instant ``value`` means (naive ISO timestamps are UTC); exit 2 when it means none."""
    value = value.strip()
    match = _RELATIVE.match(value)
    try:
        if match:
            now = now or datetime.now(UTC)
            moment = now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except ValueError:
        raise UsageError(
            f"{option} {value!r}: expected 1h, 30m, 2d, 1w or an ISO timestamp"
        ) from None
    except OverflowError:  # before year 1 or after 9999: out of range too
        moment = None
    if moment is None or not EARLIEST <= moment <= LATEST:
        raise UsageError(f"{option} {value!r}: not between {iso(EARLIEST)} and {iso(LATEST)}")
    return moment


def iso(moment: datetime) -> str:
    """UTC with milliseconds and ``Z``, as Langfuse writes timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    """An ISO timestamp as an aware datetime; one without an offset is UTC (ClickHouse's
    DateTime text, ``2026-12-03 14:00:00``, in Langfuse's metrics rows), not the machine's
    time zone."""
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def moment_order(value: object) -> tuple[int, int, str]:
    """A sort key putting ISO timestamps in the order of their instants (``05:00:02-05:00``
    after ``10:00:01Z``, which their text sorts before), anything else after them by text."""
    if isinstance(value, str):
        try:
            return 0, (parse_iso(value) - EARLIEST) // timedelta(microseconds=1), value
        except (ValueError, OverflowError):
            pass
    return 1, 0, str(value)
