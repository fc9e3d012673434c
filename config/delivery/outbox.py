"""The outbox: every batch bound for Langfuse, kept on disk until Langfuse accepted it.

Rows hold the request bodies exactly as they will be sent (gzipped OTLP protobuf for spans,
a JSON list for scores), in the order they were recorded, each addressed to the host it was
recorded for. A row is deleted only after Langfuse acknowledged it; a batch the server
rejects as bad (400) moves to ``dead_letters`` with the server's message, from where
``autoops buffer flush --dead-letters`` sends it again. The tables live in the local store's
SQLite file (WAL, ``busy_timeout``), next to the traces of local mode, so several threads and
processes can add, send and inspect batches of the same file.

Every write goes through one transaction and a failure of it (a full disk, a read-only
file, an I/O error) raises ``LocalFileError`` naming the file: nothing is ever reported as
kept that was not written.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.errors import LocalFileError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    items INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    body BLOB NOT NULL,
    public_key TEXT
);
-- The sender reads the oldest rows of one host: without this, rows kept for another host
-- would be scanned on every pass.
CREATE INDEX IF NOT EXISTS outbox_by_host ON outbox (host, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    host TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    failed_us INTEGER NOT NULL,
    items INTEGER NOT NULL,
    status INTEGER,
    message TEXT,
    body BLOB NOT NULL,
    public_key TEXT
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


@dataclass(frozen=True)
class NewBatch:
    """A batch to add: its kind, host, request body and how many spans or scores it holds."""

    kind: str
    host: str
    body: bytes
    items: int
    # The project it was recorded for: sent only with that project's keys (None: any).
    public_key: str | None = None


@dataclass(frozen=True)
class HostBacklog:
    """What waits for one host."""

    batches: int = 0
    spans: int = 0
    scores: int = 0

    @property
    def items(self) -> int:
        """Spans and scores together."""
        return self.spans + self.scores


# The rows a sender with one project's keys sends: that project's, and those of no known
# project (kept by an older autoops). Another project's are sent only with its own keys:
# sent with these, its scores landed in this project, and Langfuse drops spans whose scope
# names another key. None (no key given): every row.
def _of_project(public_key: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition on the rows of ``public_key``'s project, and its parameter."""
    if public_key is None:
        return "", ()
    return " AND (public_key IS NULL OR public_key = ?)", (public_key,)


# An older autoops's file gets the ``public_key`` column, and its rows their project, a page
# of rows per transaction: one transaction over a long outage's backlog held the file's write
# lock for many seconds (another autoops starting then failed, "database is locked") and
# read every body into memory at once. What is left to fill (per table: from ``next_seq`` to
# the last row the older autoops wrote) is kept in the file, so every process opening it
# fills a page in turn until none is left, and a stop loses nothing.
KEY_FILL_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS outbox_key_fill "
    "(tbl TEXT PRIMARY KEY, next_seq INTEGER NOT NULL, end_seq INTEGER NOT NULL)"
)
PAGE_ROWS = 200  # rows read at once with their bodies: a few tens of ms of work, bounded memory


def _fill_key_page(db: sqlite3.Connection) -> bool:
    """Fill in the project of the next page of rows; False when nothing is left to fill.

    A span batch names its project's key in its Langfuse scope; the scores written after it
    (for the same host) are that project's.
    """
    if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox_key_fill'").fetchone() is None:
        return False
    pending = db.execute("SELECT tbl, next_seq, end_seq FROM outbox_key_fill LIMIT 1").fetchone()
    if pending is None:
        db.execute("DROP TABLE outbox_key_fill")
        return False
    table, next_seq, end_seq = pending
    rows = db.execute(
        f"SELECT seq, kind, host, body FROM {table} WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
        (next_seq, end_seq, PAGE_ROWS),
    ).fetchall()
    last: dict[str, str | None] = {}  # host -> the key of its latest span batch naming one
    for seq, kind, host, body in rows:
        if kind == SPANS:
            key = _scope_key(body)
            if key is not None:
                last[host] = key
        else:
            if host not in last:  # the latest before this page (filled already)
                found = db.execute(
                    f"SELECT public_key FROM {table} WHERE host = ? AND kind = ? AND seq < ? "
                    "AND public_key IS NOT NULL ORDER BY seq DESC LIMIT 1",
                    (host, SPANS, seq),
                ).fetchone()
                last[host] = found[0] if found is not None else None
            key = last[host]
        if key is not None:
            db.execute(f"UPDATE {table} SET public_key = ? WHERE seq = ?", (key, seq))
    if len(rows) < PAGE_ROWS:
        db.execute("DELETE FROM outbox_key_fill WHERE tbl = ?", (table,))
    else:
        db.execute(
            "UPDATE outbox_key_fill SET next_seq = ? WHERE tbl = ?", (rows[-1][0] + 1, table)
        )
    return True


def _scope_key(body: bytes) -> str | None:
    """The public key a span batch's Langfuse scope names, or None."""
    import gzip
    import zlib

    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from config.delivery.otlp import scope_key_attributes

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(gzip.decompress(body))
    except (OSError, EOFError, zlib.error, ValueError, DecodeError):  # damaged: not known
        return None
    keys = (str(a.value.string_value) for a in scope_key_attributes(request))
    return next((key for key in keys if key), None)


BACKLOG_QUERY = (
    "SELECT kind, COUNT(*), COALESCE(SUM(items), 0) FROM outbox WHERE host = ? GROUP BY kind"
)


def _backlog(rows: list[Any]) -> HostBacklog:
    """A ``HostBacklog`` from the rows of ``BACKLOG_QUERY``."""
    found = {kind: (int(count), int(items)) for kind, count, items in rows}
    spans, scores = found.get(SPANS, (0, 0)), found.get(SCORES, (0, 0))
    return HostBacklog(spans[0] + scores[0], spans[1], scores[1])


class Outbox:
    """The outbox tables of one store file; safe to share between threads."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        from config.store.local_store import WRITER_CACHE_KIB, open_store_file

        self.path = path
        self.read_only = read_only
        # A queue: rows come and go, nothing is queried at scale; a small cache keeps a
        # long run's memory flat.
        self._db = open_store_file(
            path, SCHEMA, "the outbox in", read_only=read_only, cache_kib=WRITER_CACHE_KIB
        )
        self._lock = threading.Lock()
        if not read_only:
            self._add_key_columns()

    def _add_key_columns(self) -> None:
        """The ``public_key`` column in a file an older autoops made, filled from what its
        rows say (``_fill_key_page``). A row that says nothing keeps NULL: any keys send it,
        as before."""
        for table in ("outbox", "dead_letters"):
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if "public_key" not in columns:
                with self._transaction(f"adding the project column to {table}") as db:
                    columns = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
                    if "public_key" not in columns:  # another process may have added it
                        db.execute(f"ALTER TABLE {table} ADD COLUMN public_key TEXT")
                        db.execute(KEY_FILL_SCHEMA)
                        db.execute(  # (no HAVING without GROUP BY: SQLite before 3.39)
                            "INSERT INTO outbox_key_fill SELECT ?, low, high FROM (SELECT "
                            f"MIN(seq) AS low, MAX(seq) AS high FROM {table}) WHERE low IS NOT NULL",
                            (table,),
                        )
        if self._read("SELECT 1 FROM sqlite_master WHERE name = 'outbox_key_fill'"):
            while True:
                with self._transaction("filling in the project of the older rows") as db:
                    if not _fill_key_page(db):
                        break

    @classmethod
    def existing(cls, path: Path) -> Outbox | None:
        """The outbox of an existing store, opened read-only; None when there is no store.

        For the commands that only look (``buffer status``, ``health-check``): they create
        nothing, and they work on a store they may not write (a read-only filesystem).
        """
        try:
            return cls(path, read_only=True)
        except FileNotFoundError:
            return None

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction; any SQLite failure becomes ``LocalFileError``."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise LocalFileError(
                    f"cannot write to the outbox in {self.path} ({doing}): {exc}"
                ) from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:  # the failed write already ended it (SQLite rolls back on FULL)
            pass

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(params)).fetchall()
            except sqlite3.OperationalError as exc:
                if self.read_only and str(exc).startswith("no such table"):
                    return []  # a store of local mode: it never had an outbox
                raise LocalFileError(f"cannot read the outbox in {self.path}: {exc}") from None
            except sqlite3.Error as exc:
                raise LocalFileError(f"cannot read the outbox in {self.path}: {exc}") from None

    # --- adding and sending ---------------------------------------------------------------

    def add(self, kind: str, host: str, body: bytes, items: int) -> int:
        """Keep a batch; its sequence number."""
        return self.add_many([NewBatch(kind, host, body, items)])[-1]

    def add_many(self, batches: Sequence[NewBatch]) -> list[int]:
        """Keep batches in one transaction, in order; their sequence numbers.

        Either all are kept or none (``LocalFileError``).
        """
        created = time.time_ns() // 1000
        seqs: list[int] = []
        with self._transaction("adding batches") as db:
            for batch in batches:
                cursor = db.execute(
                    "INSERT INTO outbox (kind, host, created_us, items, body, public_key) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (batch.kind, batch.host, created, batch.items, batch.body, batch.public_key),
                )
                seqs.append(int(cursor.lastrowid or 0))
        return seqs

    def pending(
        self, host: str, limit: int = 8, after: int = 0, public_key: str | None = None
    ) -> list[OutboxEntry]:
        """The oldest batches for ``host`` (after sequence number ``after``), in order; with
        ``public_key``, those of that project (and of no known project)."""
        project, key = _of_project(public_key)
        rows = self._read(
            "SELECT seq, kind, host, created_us, items, attempts, body FROM outbox "
            f"WHERE host = ? AND seq > ?{project} ORDER BY seq LIMIT ?",
            (host, after, *key, limit),
        )
        return [OutboxEntry(*row) for row in rows]

    def delivered_many(self, seqs: Sequence[int]) -> set[int]:
        """The server accepted these batches (one request): forget them; the ones that were
        here (another process sharing the file may have removed some already)."""
        with self._transaction("removing delivered batches") as db:
            marks = ",".join("?" * len(seqs))
            here = {
                int(row[0])
                for row in db.execute(f"SELECT seq FROM outbox WHERE seq IN ({marks})", seqs)
            }
            db.executemany("DELETE FROM outbox WHERE seq = ?", [(seq,) for seq in here])
            return here

    def failed_attempt(self, seqs: int | Sequence[int], error: str) -> None:
        """Count a failed attempt of one batch or of several sent together (they stay)."""
        numbers = [seqs] if isinstance(seqs, int) else list(seqs)
        with self._transaction("counting a failed attempt") as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?",
                [(error[:500], seq) for seq in numbers],
            )

    def dead_letter(self, seq: int, status: int | None, message: str) -> bool:
        """Move a batch the server rejected as bad out of the way, with the server's message;
        False when it is no longer in the outbox (another sender delivered it meanwhile)."""
        with self._transaction("keeping a dead letter") as db:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, kind, host, created_us, failed_us, items, status, "
                "message, body, public_key) SELECT seq, kind, host, created_us, ?, items, ?, ?, body, "
                "public_key FROM outbox WHERE seq = ?",
                (time.time_ns() // 1000, status, message[:2000], seq),
            )
            removed = db.execute("DELETE FROM outbox WHERE seq = ?", (seq,)).rowcount
        return bool(removed)

    def requeue_dead_letters(self, host: str, public_key: str | None = None) -> int:
        """Put the dead letters of ``host`` back in the outbox (keeping their order); how many.
        With ``public_key``, only those of that project (another's wait for its keys)."""
        project, key = _of_project(public_key)
        with self._transaction("re-queueing dead letters") as db:
            moved = db.execute(
                "INSERT INTO outbox (kind, host, created_us, items, body, public_key) SELECT kind, host, "
                f"created_us, items, body, public_key FROM dead_letters WHERE host = ?{project} "
                "ORDER BY seq",
                (host, *key),
            ).rowcount
            db.execute(f"DELETE FROM dead_letters WHERE host = ?{project}", (host, *key))
        return int(moved)

    # --- batches of other hosts -----------------------------------------------------------

    def readdress(
        self,
        from_host: str,
        to_host: str,
        rewrite: Callable[[str, bytes], bytes] | None = None,
        public_key: str | None = None,
    ) -> HostBacklog:
        """Address the batches (and dead letters) of ``from_host`` to ``to_host``; what moved.

        ``public_key``: only that project's rows move (and those of no known project), made
        its; another project's stay where they are, for their own keys (sent with these,
        they landed in this project). ``rewrite(kind, body)`` may change a body on the way
        (the public key recorded in a span batch). One transaction: all move or none.
        """
        project, key = _of_project(public_key)
        with self._transaction(f"moving batches to {to_host}") as db:
            # Counted inside the transaction: a drop or a delivery by another process
            # between a count and the move made the count untrue.
            query = BACKLOG_QUERY.replace(" GROUP BY", f"{project} GROUP BY")
            moved = _backlog(db.execute(query, (from_host, *key)).fetchall())
            if rewrite is not None:
                for table in ("outbox", "dead_letters"):
                    after = -1
                    while rows := db.execute(  # a page at a time: a backlog can be gigabytes
                        f"SELECT seq, kind, body FROM {table} WHERE host = ? AND seq > ?"
                        f"{project} ORDER BY seq LIMIT ?",
                        (from_host, after, *key, PAGE_ROWS),
                    ).fetchall():
                        for seq, kind, body in rows:
                            new_body = rewrite(kind, body)
                            if new_body != body:
                                db.execute(
                                    f"UPDATE {table} SET body = ? WHERE seq = ?", (new_body, seq)
                                )
                        after = rows[-1][0]
            for table in ("outbox", "dead_letters"):
                db.execute(
                    f"UPDATE {table} SET host = ?, public_key = COALESCE(?, public_key) "
                    f"WHERE host = ?{project}",
                    (to_host, public_key, from_host, *key),
                )
        return moved

    def dead_letter_count(self, host: str, public_key: str | None = None) -> int:
        """Dead letters kept for ``host`` (with ``public_key``: that project's)."""
        project, key = _of_project(public_key)
        rows = self._read(
            f"SELECT COUNT(*) FROM dead_letters WHERE host = ?{project}", (host, *key)
        )
        return int(rows[0][0])

    def adopt_spellings(self, host: str) -> None:
        """Address to ``host`` (as ``canonical_host`` spells it) the batches an older autoops
        kept under another spelling of it (upper case, a default port, a trailing dot):
        this host's, to send, count and drop; else no run sent them, and each named the
        server as another host."""
        from config.settings import canonical_host

        for entry in self.status()["by_host"]:
            kept = entry["host"]
            if kept != host and canonical_host(kept) == host:
                self.readdress(kept, host)

    def drop(self, host: str) -> tuple[HostBacklog, int]:
        """Delete the batches and dead letters of ``host``; what was dropped (and dead letters)."""
        with self._transaction(f"dropping the batches of {host}") as db:
            dropped = _backlog(db.execute(BACKLOG_QUERY, (host,)).fetchall())  # see readdress
            db.execute("DELETE FROM outbox WHERE host = ?", (host,))
            dead = db.execute("DELETE FROM dead_letters WHERE host = ?", (host,)).rowcount
        return dropped, int(dead)

    # --- what waits -----------------------------------------------------------------------

    def backlog(self, host: str, public_key: str | None = None) -> HostBacklog:
        """Batches, spans and scores waiting for ``host`` (with ``public_key``: those a
        sender with that project's keys sends)."""
        project, key = _of_project(public_key)  # no condition without a key
        query = BACKLOG_QUERY.replace(" GROUP BY", f"{project} GROUP BY")
        return _backlog(self._read(query, (host, *key)))

    def count(self, host: str, up_to: int | None = None, public_key: str | None = None) -> int:
        """Batches waiting for ``host``; with ``up_to``, only those added up to that sequence
        number (what a sender was given: see ``Sender.pending``); with ``public_key``, those
        a sender with that project's keys sends."""
        limit = "" if up_to is None else " AND seq <= ?"
        bound = () if up_to is None else (up_to,)
        project, key = _of_project(public_key)
        rows = self._read(
            f"SELECT COUNT(*) FROM outbox WHERE host = ?{limit}{project}", (host, *bound, *key)
        )
        return int(rows[0][0])

    def last_seq(self, host: str, public_key: str | None = None) -> int:
        """The sequence number of the newest batch waiting for ``host`` (0: none)."""
        project, key = _of_project(public_key)
        rows = self._read(
            f"SELECT COALESCE(MAX(seq), 0) FROM outbox WHERE host = ?{project}", (host, *key)
        )
        return int(rows[0][0])

    def other_projects(self, host: str, public_key: str) -> dict[str, int]:
        """Batches waiting for ``host`` recorded for another project: key -> batches."""
        rows = self._read(
            "SELECT public_key, COUNT(*) FROM outbox WHERE host = ? AND public_key IS NOT NULL "
            "AND public_key != ? GROUP BY public_key ORDER BY public_key",
            (host, public_key),
        )
        return {str(key): int(count) for key, count in rows}

    def status(self) -> dict[str, Any]:
        """Pending batches, spans, scores, bytes, oldest age and dead letters, per host too.

        ``by_host`` lists every host with batches or dead letters: ``host``, ``batches``,
        ``spans``, ``scores``, ``bytes``, ``oldest_age_s``, ``dead_letters``; ``hosts`` maps
        each host to its pending batches (kept for older readers).
        """
        rows = self._read(
            "SELECT host, kind, COUNT(*), SUM(items), SUM(LENGTH(body)), MIN(created_us) "
            "FROM outbox GROUP BY host, kind"
        )
        dead_rows = self._read(
            "SELECT host, COUNT(*), COALESCE(SUM(items), 0) FROM dead_letters GROUP BY host"
        )
        last_message = self._read(
            "SELECT message FROM dead_letters ORDER BY failed_us DESC, seq DESC LIMIT 1"
        )
        return _status_document(rows, dead_rows, last_message)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()


def outbox_status_at(path: Path) -> dict[str, Any]:
    """``Outbox.status()`` of the store at ``path``, read without creating or changing it
    (all zero when there is no store yet)."""
    outbox = Outbox.existing(path)
    if outbox is None:
        return _status_document([], [], [])
    try:
        return outbox.status()
    finally:
        outbox.close()


def _status_document(
    rows: list[Any], dead_rows: list[Any], last_message: list[Any]
) -> dict[str, Any]:
    """The status from the grouped rows of the outbox and the dead letters."""
    now_us = time.time_ns() // 1000
    status: dict[str, Any] = {
        "pending_batches": 0,
        "pending_spans": 0,
        "pending_scores": 0,
        "pending_bytes": 0,
        "oldest_age_s": None,
        "dead_letters": sum(int(row[1]) for row in dead_rows),
        "dead_letter_items": sum(int(row[2]) for row in dead_rows),
        "last_dead_letter_message": last_message[0][0] if last_message else None,
        "hosts": {},
        "by_host": [],
    }
    hosts: dict[str, dict[str, Any]] = {}

    def entry(host: str) -> dict[str, Any]:
        return hosts.setdefault(
            host,
            {"host": host, "batches": 0, "spans": 0, "scores": 0, "bytes": 0,
             "oldest_age_s": None, "dead_letters": 0},
        )  # fmt: skip

    oldest: int | None = None
    for host, kind, batches, items, size, created in rows:
        per_host = entry(host)
        status["pending_batches"] += batches
        status["pending_spans" if kind == SPANS else "pending_scores"] += int(items or 0)
        status["pending_bytes"] += int(size or 0)
        status["hosts"][host] = status["hosts"].get(host, 0) + batches
        per_host["batches"] += batches
        per_host[SPANS if kind == SPANS else SCORES] += int(items or 0)
        per_host["bytes"] += int(size or 0)
        age = round((now_us - created) / 1e6, 1)
        if per_host["oldest_age_s"] is None or age > per_host["oldest_age_s"]:
            per_host["oldest_age_s"] = age
        oldest = created if oldest is None else min(oldest, created)
    for host, dead, _ in dead_rows:
        entry(host)["dead_letters"] = int(dead)
    if oldest is not None:
        status["oldest_age_s"] = round((now_us - oldest) / 1e6, 1)
    status["by_host"] = [hosts[host] for host in sorted(hosts)]
    return status
