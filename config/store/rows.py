"""How the local store's rows look: its column lists and its timestamp format.

Kept apart from ``otel_mapping`` (which needs the Langfuse SDK's attribute names, an import
of about a second on a slow machine) so that reading the store, as ``autoops metrics`` and
``autoops traces --local`` do, never imports the SDK.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

TRACE_COLUMNS = (
    "id", "timestamp_us", "name", "user_id", "session_id", "release", "version",
    "environment", "tags", "metadata", "input", "output", "public",
)  # fmt: skip
OBSERVATION_COLUMNS = (
    "id", "trace_id", "parent_observation_id", "type", "name", "start_us", "end_us", "level", "status_message", "input", "output", "metadata",
    "environment", "release", "version", "model", "model_parameters", "usage_details",
    "cost_details", "completion_start_time", "prompt_name", "prompt_version",
)  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _iso_second(second: int) -> str:
    # Not strftime: glibc's %Y does not pad a year below 1000 ("999-01-01", which the SDK's
    # models refuse, and with them the whole page); JavaScript's toISOString pads to four.
    moment = datetime.fromtimestamp(second, tz=UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )


def iso_from_ns(ns: int) -> str:
    """Langfuse's timestamp format: UTC, millisecond precision, ``Z``.

    The seconds part is cached: a batch's spans share a handful of seconds, and formatting
    a datetime twice per observation was a tenth of the store's write cost.
    """
    second, rest = divmod(ns, 1_000_000_000)
    return f"{_iso_second(second)}.{rest // 1_000_000:03d}Z"
