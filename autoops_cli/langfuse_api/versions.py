"""Which read API a Langfuse host has: v2 (Langfuse v4, Cloud), or only v1 (an older
self-hosted server), remembered per host for a day in the API cache.

A client must read v2 first and fall back to v1, never the other way round (API-NOTES.md
section 0): v2 observations and v2 metrics come with Langfuse v4 and are the only reads left
on Langfuse Cloud. A host that answered 404 on a v2 read is remembered as v1-only, so the
next command goes to v1 directly instead of spending a request (metrics requests are
counted by the day on Cloud's free plan). ``autoops traces`` and ``autoops metrics`` share
the memory: both v2 APIs appear together.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autoops_cli.langfuse_api.cache import cache_key

if TYPE_CHECKING:
    from autoops_cli.langfuse_api.cache import ApiCache

READ_API_TTL_S = 86_400.0


def read_api(cache: ApiCache, host: str) -> str:
    """``v2`` unless ``host`` was found without it within the last day (then ``v1``)."""
    remembered = cache.get(cache_key("read-api-version", host), READ_API_TTL_S)
    return "v1" if remembered == "v1" else "v2"


def remember_v1_only(cache: ApiCache, host: str) -> None:
    """``host`` answered 404 on a v2 read: use v1 there for the next day."""
    cache.put(cache_key("read-api-version", host), "v1")
