"""A short-lived cache of API answers in the local store file.

Langfuse Cloud's free plan allows 100 metrics requests a day, so a script calling
``autoops metrics`` every few seconds must not spend one per call. Entries are keyed by a
hash of what was asked (host, project key, query), hold JSON, and expire after a TTL the
caller chooses per read. Nothing secret is stored: the secret key is never part of a key,
and the answers are aggregates the API returned.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from config.errors import LocalFileError
from config.redaction import redact_secrets

logger = logging.getLogger("autoops.cache")

DAY_US = 86_400_000_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS api_cache (
    key TEXT PRIMARY KEY,
    stored_us INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


def cache_key(*parts: Any) -> str:
    """A stable key for JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _redacted(value: Any) -> Any:
    """``value`` with every string (keys too) passed through ``redact_secrets``."""
    if isinstance(value, str):
        return redact_secrets(value)
    if isinstance(value, dict):
        return {_redacted(key): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


class ApiCache:
    """Reads and writes cached answers; a cache that cannot be opened is simply empty."""

    def __init__(self, path: Path) -> None:
        from config.store.local_store import open_store_file

        self._db: sqlite3.Connection | None
        try:
            self._db = open_store_file(path, SCHEMA, "the API cache in")
        except LocalFileError as exc:
            logger.warning("%s; answers are not cached", exc)
            self._db = None

    def get(self, key: str, ttl_s: float) -> Any:
        """The value stored under ``key`` less than ``ttl_s`` seconds ago, else ``None``."""
        if self._db is None or ttl_s <= 0:
            return None
        row = self._db.execute(
            "SELECT stored_us, body FROM api_cache WHERE key = ?", (key,)
        ).fetchone()
        if row is None or time.time() - row[0] / 1e6 >= ttl_s:
            return None
        try:
            return json.loads(row[1])
        except ValueError:  # a row another version wrote, a damaged file: asked anew
            return None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` under ``key`` (replacing an older one)."""
        if self._db is None:
            return
        now_us = time.time_ns() // 1000
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO api_cache (key, stored_us, body) VALUES (?, ?, ?)",
                # The server's rows may echo the keys (a name holding the Authorization
                # header): never on disk. The strings are masked, not the JSON text: a
                # secret of digits would be masked inside a number, and the JSON broken.
                (key, now_us, json.dumps(_redacted(value), separators=(",", ":"))),
            )
            # Nothing is read back after a day: keep the table small.
            self._db.execute("DELETE FROM api_cache WHERE stored_us < ?", (now_us - DAY_US,))
        except sqlite3.Error as exc:  # a full disk must not fail a read command
            logger.warning("cannot cache the answer: %s", exc)

    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()
