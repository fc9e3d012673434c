"""Trace, observation and score ids in the shapes Langfuse's OTLP ingestion expects.

Trace ids are 32 lowercase hex characters and observation (span) ids 16, as in OTel. A replay
derives them from the run id, the event id and the event's content, so replaying the same file
with the same run id produces the same ids: the store and Langfuse then keep one copy, however
often it is sent. Another event under the same id and run id (tomorrow's file replayed with a
fixed ``--run-id``) gets a trace of its own: with the id alone, its observations were written
over the first one's, and the two events' traces mixed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from hashlib import blake2b
from typing import Any


def trace_id_for(*parts: str) -> str:
    """A stable 32-hex trace id derived from ``parts`` (e.g. run id and event id)."""
    return blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def event_trace_id(session_id: str, event: Mapping[str, Any]) -> str:
    """The trace id of an event (a mapping with an ``event_id``) in a session (a run)."""
    try:
        content = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    except (TypeError, ValueError, RecursionError):  # keys that do not sort, a cycle
        content = ""  # the run id and the event id alone
    return trace_id_for(session_id, str(event.get("event_id")), content)


def span_id_for(trace_id: str, sequence: int) -> str:
    """A stable 16-hex span id: the ``sequence``-th observation of a trace."""
    digest = blake2b(f"{trace_id}:{sequence}".encode("ascii"), digest_size=8).hexdigest()
    # OTel treats an all-zero span id as invalid.
    return digest if digest != "0" * 16 else "0" * 15 + "1"


_HEX = frozenset("0123456789abcdef")
_NO_TRACE_ID = "0" * 32  # OTel's invalid trace id


def usable_trace_id(trace_id: object) -> str:
    """``trace_id`` as OTLP and Langfuse take it: 32 lowercase hex characters, not all zero.

    A caller's id in another case is lowered (Langfuse stored it lowered: the id returned
    found nothing); any other (``"order-42"``, an int) is the seed of a stable id, as the
    Langfuse SDK's ``create_trace_id(seed=...)`` makes one: it could not be encoded, and the
    whole batch it was in was lost with it. None or empty: a random one.
    """
    if trace_id is None or trace_id == "":
        return random_trace_id()
    text = str(trace_id)
    lowered = text.lower()
    if len(lowered) == 32 and _HEX.issuperset(lowered) and lowered != _NO_TRACE_ID:
        return lowered
    return trace_id_for("trace id", text)


def trace_key(trace_id: object) -> str:
    """The id a trace a caller names is kept under: ``usable_trace_id`` of it (the caller's
    own id, as given, found nothing once it was lowered or seeded); "" for none."""
    if (
        type(trace_id) is str
        and len(trace_id) == 32
        and _HEX.issuperset(trace_id)
        and trace_id != _NO_TRACE_ID
    ):
        return trace_id  # the usual case: an id this process returned
    return "" if trace_id is None or trace_id == "" else usable_trace_id(trace_id)


def random_trace_id() -> str:
    """A random 32-hex trace id (for traces not tied to a replay)."""
    return os.urandom(16).hex()


def random_id() -> str:
    """A random id for a score or run."""
    return os.urandom(8).hex()
