"""How much request body ``autoops serve`` decodes at once: a memory budget, first come first
served.

Decoding a body costs a few times its size at its peak (the inflated bytes, the parsed
message, the span records, the JSON text the store writes and SQLite's copy of it), and
requests run in parallel. Without a bound, four requests of a 100 MB inflated body each took
1.9 GB. Two budgets bound it, held in this order (so nothing waits while holding what another
waits for):

- ``raw``: the bytes of bodies being received, ``max_body_bytes`` in all; a request reserves
  its ``Content-Length`` (the limit when it has none) before its body is read, so bodies that
  must wait are not read yet: their bytes stay in the client's socket. Bodies announced at
  most ``SMALL_BODY_BYTES`` have a raw budget of their own, of the same size: a large body
  trickling in over a slow link holds its reservation until it has arrived, and the SDKs'
  small exports must not queue behind it;
- ``decoded``: the bytes of bodies being decoded and stored, ``max_decompressed_bytes`` in
  all; a request reserves its inflated size (what the gzip trailer says, capped at the limit)
  before inflating, and gives it back once its rows are written.

A request never needs more of a budget than the budget holds, so every request is served in
turn; the waiting ones hold nothing but their place in the queue. After a large body the
server returns freed memory to the system (``release_memory``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import AsyncIterator
from typing import Any

LARGE_BODY_BYTES = 8 * 1024 * 1024  # after a body this large, memory is given back
SMALL_BODY_BYTES = 1024 * 1024  # bodies announced at most this large have a raw budget apart


class MemoryBudget:
    """A FIFO budget of bytes shared by the requests of one event loop."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    @contextlib.asynccontextmanager
    async def hold(self, size: int) -> AsyncIterator[int]:
        """Reserve ``size`` bytes (at most the capacity) until the block ends; yields it."""
        size = max(0, min(size, self.capacity))
        await self._acquire(size)
        try:
            yield size
        finally:
            self._release(size)

    async def _acquire(self, size: int) -> None:
        if not self._waiting and self.used + size <= self.capacity:
            self.used += size
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, waiter)
        self._waiting.append(entry)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release(size)  # granted as it was cancelled: give it back
            else:
                self._waiting.remove(entry)
                self._grant()
            raise

    def _release(self, size: int) -> None:
        self.used -= size
        self._grant()

    def _grant(self) -> None:
        """Wake waiters in order while the first of them fits."""
        while self._waiting and self.used + self._waiting[0][0] <= self.capacity:
            size, waiter = self._waiting.popleft()
            if waiter.done():
                continue
            self.used += size
            waiter.set_result(None)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None on another C library."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return getattr(libc, "malloc_trim", None)
    except OSError:
        return None


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it in its arenas otherwise:
    the threads that decoded a large body leave megabytes of free pages behind)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
