"""Trace, observation and score ids in the shapes Langfuse's OTLP ingestion expects.

Trace ids are 32 lowercase hex characters and observation (span) ids 16, as in OTel. A replay
derives them from the run id and the event id, so replaying the same file with the same run
id produces the same ids: the store and Langfuse then keep one copy, however often it is sent.
"""

from __future__ import annotations

import os
from hashlib import blake2b


def trace_id_for(*parts: str) -> str:
    """A stable 32-hex trace id derived from ``parts`` (e.g. run id and event id)."""
    return blake2b("\x1f".join(parts).encode("utf-8"), digest_size=16).hexdigest()


def span_id_for(trace_id: str, sequence: int) -> str:
    """A stable 16-hex span id: the ``sequence``-th observation of a trace."""
    digest = blake2b(f"{trace_id}:{sequence}".encode("ascii"), digest_size=8).hexdigest()
    # OTel treats an all-zero span id as invalid.
    return digest if digest != "0" * 16 else "0" * 15 + "1"


def random_trace_id() -> str:
    """A random 32-hex trace id (for traces not tied to a replay)."""
    return os.urandom(16).hex()


def random_id() -> str:
    """A random id for a score or run."""
    return os.urandom(8).hex()
