"""The outbox: every batch bound for Langfuse, kept on disk until Langfuse accepted it.

Rows hold the request bodies exactly as they will be sent (gzipped OTLP protobuf for spans,
a gzipped JSON list for scores), in the order they were recorded. A row is deleted only after
a 2xx answer; a batch the server rejects as bad (400) moves to ``dead_letters`` with the
server's message, from where ``autoops buffer flush --dead-letters`` sends it again. The
tables live in the local store's SQLite file (WAL), next to the traces of local mode.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    items INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    failed_us INTEGER NOT NULL,
    items INTEGER NOT NULL,
    status INTEGER,
    message TEXT,
    body BLOB NOT NULL
);
"""

SPANS = "spans"
SCORES = "scores"


@dataclass(frozen=True)
class OutboxEntry:
    """One batch waiting to be sent."""

    seq: int
    kind: str  # spans | scores
    host: str
    created_us: int
    items: int
    attempts: int
    body: bytes


class Outbox:
    """The outbox tables of one store file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        from config.store.local_store import open_store_file

        self.path = path
        self._db = open_store_file(path, SCHEMA, "the outbox in")
        self._lock = threading.Lock()

    def add(self, kind: str, host: str, body: bytes, items: int) -> int:
        """Keep a batch; its sequence number."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (kind, host, created_us, items, body) VALUES (?, ?, ?, ?, ?)",
                (kind, host, time.time_ns() // 1000, items, body),
            )
            return int(cursor.lastrowid or 0)

    def pending(self, host: str, limit: int = 64) -> list[OutboxEntry]:
        """The oldest batches for ``host``, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, host, created_us, items, attempts, body FROM outbox "
                "WHERE host = ? ORDER BY seq LIMIT ?",
                (host, limit),
            ).fetchall()
        return [OutboxEntry(*row) for row in rows]

    def delivered(self, seq: int) -> None:
        """The server accepted the batch: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def failed_attempt(self, seq: int, error: str) -> None:
        """Count a failed attempt (the batch stays)."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                (error[:500], seq),
            )

    def dead_letter(self, seq: int, status: int | None, message: str) -> None:
        """Move a batch the server rejected as bad out of the way, with the server's message."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, kind, host, created_us, failed_us, items, status, "
                "message, body) SELECT seq, kind, host, created_us, ?, items, ?, ?, body FROM outbox WHERE seq = ?",
                (time.time_ns() // 1000, status, message[:2000], seq),
            )
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._db.execute("COMMIT")

    def requeue_dead_letters(self, host: str) -> int:
        """Put the dead letters of ``host`` back in the outbox (keeping their order); how many."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            moved = self._db.execute(
                "INSERT INTO outbox (kind, host, created_us, items, body) SELECT kind, host, created_us, "
                "items, body FROM dead_letters WHERE host = ? ORDER BY seq",
                (host,),
            ).rowcount
            self._db.execute("DELETE FROM dead_letters WHERE host = ?", (host,))
            self._db.execute("COMMIT")
        return int(moved)

    def status(self) -> dict[str, Any]:
        """Pending batches, spans, scores, bytes, oldest age and dead letters, per host too."""
        now_us = time.time_ns() // 1000
        with self._lock:
            rows = self._db.execute(
                "SELECT host, kind, COUNT(*), SUM(items), SUM(LENGTH(body)), MIN(created_us) "
                "FROM outbox GROUP BY host, kind"
            ).fetchall()
            dead = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(items), 0), MAX(message) FROM dead_letters"
            ).fetchone()
        status: dict[str, Any] = {
            "pending_batches": 0,
            "pending_spans": 0,
            "pending_scores": 0,
            "pending_bytes": 0,
            "oldest_age_s": None,
            "dead_letters": int(dead[0]),
            "dead_letter_items": int(dead[1]),
            "last_dead_letter_message": dead[2],
            "hosts": {},
        }
        oldest: int | None = None
        for host, kind, batches, items, size, created in rows:
            status["pending_batches"] += batches
            status["pending_spans" if kind == SPANS else "pending_scores"] += int(items or 0)
            status["pending_bytes"] += int(size or 0)
            status["hosts"][host] = status["hosts"].get(host, 0) + batches
            oldest = created if oldest is None else min(oldest, created)
        if oldest is not None:
            status["oldest_age_s"] = round((now_us - oldest) / 1e6, 1)
        return status

    def count(self, host: str) -> int:
        """Batches waiting for ``host``."""
        with self._lock:
            return int(
                self._db.execute("SELECT COUNT(*) FROM outbox WHERE host = ?", (host,)).fetchone()[
                    0
                ]
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
