"""Which read API a Langfuse host has: v2 (Langfuse v4, Cloud), or only v1 (an older
self-hosted server), remembered per host for a day in the API cache.

A client must read v2 first and fall back to v1, never the other way round (API-NOTES.md
section 0): v2 observations and v2 metrics come with Langfuse v4 and are the only reads left
on Langfuse Cloud. A host whose v2 read answered 404 and whose v1 read then answered is
remembered as v1-only, so the next command goes to v1 directly instead of spending a
request (metrics requests are counted by the day on Cloud's free plan). Only an answer is
remembered: a 404 from a proxy or a rolling deploy must not send a v4 server's reads to a
v1 it no longer has for a day; and a remembered v1 that answers 404 (the host was upgraded)
sends the command back to v2. ``autoops traces`` and ``autoops metrics`` share the memory:
both v2 APIs appear together.
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


def remember_read_api(cache: ApiCache, host: str, api: str) -> None:
    """``host`` answered a read of ``api`` after the other one answered 404: use it there
    for the next day (``v2`` ends a remembered ``v1``)."""
    cache.put(cache_key("read-api-version", host), api)
