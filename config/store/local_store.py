"""The embedded local store: traces, observations and scores in one SQLite file (WAL).

Times are stored once, as integer microseconds since the epoch (``timestamp_us``,
``start_us``, ``end_us``); readers format them (``store_rows.iso_from_ns``). Formatting two
ISO strings per observation on the write path cost a fifth of the store's throughput.

The schema keeps what Langfuse keeps, so the same data can be pushed to Langfuse later and
served by ``autoops serve``. Writes come in batches, one transaction each; rows are keyed by
their Langfuse ids, so writing a batch twice stores it once. WAL lets other processes read
while a replay writes.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from config.errors import LocalFileError
from config.json_values import unicode_text
from config.store.rows import OBSERVATION_COLUMNS, TRACE_COLUMNS
from config.tracing.attributes import to_json
from config.tracing.span_records import ScoreRecord, SpanRecord

STORE_FILE_NAME = "traces.db"
STORE_DIR_NAME = ".autoops"
PROJECT_FILE_NAME = "autoops.toml"  # also config.settings_layers'; the store must not import it
HOME_ENV = "AUTOOPS_HOME"
# PRAGMA user_version of a store this autoops writes. 0 is a file no store was created in yet
# (new, or holding only the outbox); anything else is refused, for reading and writing: a
# newer autoops may store things this one would misread or overwrite.
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS traces (
    id TEXT PRIMARY KEY,
    timestamp_us INTEGER NOT NULL,
    name TEXT,
    user_id TEXT,
    session_id TEXT,
    release TEXT,
    version TEXT,
    environment TEXT,
    tags TEXT,
    metadata TEXT,
    input TEXT,
    output TEXT,
    public INTEGER,
    updated_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS traces_by_time ON traces (timestamp_us);
CREATE INDEX IF NOT EXISTS traces_by_session ON traces (session_id);
CREATE TABLE IF NOT EXISTS observations (
    id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    parent_observation_id TEXT,
    type TEXT NOT NULL,
    name TEXT,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    level TEXT NOT NULL,
    status_message TEXT,
    input TEXT,
    output TEXT,
    metadata TEXT,
    environment TEXT,
    release TEXT,
    version TEXT,
    model TEXT,
    model_parameters TEXT,
    usage_details TEXT,
    cost_details TEXT,
    completion_start_time TEXT,
    prompt_name TEXT,
    prompt_version INTEGER
);
CREATE INDEX IF NOT EXISTS observations_by_trace ON observations (trace_id);
-- Covering the metrics API's usual columns: a time-window aggregate reads only this index.
CREATE INDEX IF NOT EXISTS observations_by_time_covering
    ON observations (start_us, end_us, name, type, level, environment);
CREATE TABLE IF NOT EXISTS scores (
    id TEXT PRIMARY KEY,
    trace_id TEXT,
    observation_id TEXT,
    session_id TEXT,
    name TEXT NOT NULL,
    value REAL,
    string_value TEXT,
    data_type TEXT NOT NULL,
    comment TEXT,
    metadata TEXT,
    source TEXT NOT NULL DEFAULT 'API',
    environment TEXT,
    timestamp_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS scores_by_trace ON scores (trace_id);
CREATE INDEX IF NOT EXISTS scores_by_name_time ON scores (name, timestamp_us);
CREATE INDEX IF NOT EXISTS scores_by_time ON scores (timestamp_us);
"""

_TRACE_MERGE = ", ".join(
    f"{c} = COALESCE(excluded.{c}, traces.{c})"
    for c in TRACE_COLUMNS
    if c not in ("id", "timestamp_us", "metadata", "tags")
)
# Tags add up, as Langfuse merges them: the two lists' union, sorted (a span tagged "a" and
# one tagged "b" made a trace tagged "b" only, not found by a filter on "a").
_TAGS_MERGE = (
    "tags = CASE WHEN excluded.tags IS NULL THEN traces.tags "
    "WHEN traces.tags IS NULL OR NOT json_valid(traces.tags) "
    "OR NOT json_valid(excluded.tags) THEN excluded.tags "  # not a list: replaced, as before
    "ELSE (SELECT json_group_array(value) FROM (SELECT value FROM json_each(traces.tags) "
    "UNION SELECT value FROM json_each(excluded.tags) ORDER BY value)) END"
)
TRACE_UPSERT = (
    f"INSERT INTO traces ({', '.join(TRACE_COLUMNS)}, updated_us) "
    f"VALUES ({', '.join('?' * len(TRACE_COLUMNS))}, ?) "
    "ON CONFLICT(id) DO UPDATE SET "
    # The root span may arrive after its children: the earliest start is the trace's time.
    "timestamp_us = MIN(excluded.timestamp_us, traces.timestamp_us), "
    "metadata = CASE WHEN excluded.metadata IS NULL THEN traces.metadata "
    "WHEN traces.metadata IS NULL THEN excluded.metadata "
    "ELSE trace_metadata_merged(traces.metadata, excluded.metadata) END, "
    f"{_TAGS_MERGE}, {_TRACE_MERGE}, updated_us = excluded.updated_us"
)
OBSERVATION_UPSERT = (
    f"INSERT OR REPLACE INTO observations ({', '.join(OBSERVATION_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(OBSERVATION_COLUMNS))})"
)
SCORE_COLUMNS = (
    "id", "trace_id", "observation_id", "session_id", "name", "value", "string_value",
    "data_type", "comment", "metadata", "environment", "timestamp_us", "source",
)  # fmt: skip
SCORE_UPSERT = (
    f"INSERT OR REPLACE INTO scores ({', '.join(SCORE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SCORE_COLUMNS))})"
)


def trace_metadata_merged(stored: str, update: str) -> str:
    """A trace's metadata with a later batch's: its keys replace those stored, the others
    stay, a null too. As the spans of one batch are merged (``otel_mapping``), so a trace
    reads the same however its spans were cut into batches (SQLite's ``json_patch`` merged
    nested objects and dropped nulls), and as Langfuse merges a trace's metadata."""
    try:
        old, new = json.loads(stored), json.loads(update)
    except (TypeError, ValueError, RecursionError):  # a failure here would fail the batch
        return update
    if type(old) is not dict or type(new) is not dict:
        return update
    return to_json({**old, **new})


def add_store_functions(db: sqlite3.Connection) -> None:
    """The SQL functions the store's statements call (``TRACE_UPSERT``), on a connection
    that writes them."""
    db.create_function("trace_metadata_merged", 2, trace_metadata_merged, deterministic=True)


_trace_values = operator.itemgetter(*TRACE_COLUMNS)
_observation_values = operator.itemgetter(*OBSERVATION_COLUMNS)


def default_store_path(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> Path:
    """Where the store is: ``$AUTOOPS_HOME/traces.db``, else in the project's ``.autoops/``.

    The project is found as ``autoops.toml`` is, walking up from the working directory: the
    nearest directory holding ``autoops.toml`` or an existing ``.autoops/``. Outside any
    project it is ``.autoops/`` in the working directory (created only by a writer).
    """
    environ = os.environ if environ is None else environ
    home = environ.get(HOME_ENV)
    if home:
        return Path(home).expanduser() / STORE_FILE_NAME
    here = cwd or Path.cwd()
    return (project_directory(here) or here) / STORE_DIR_NAME / STORE_FILE_NAME


def project_directory(cwd: Path) -> Path | None:
    """The project's folder: the nearest, from ``cwd`` up, holding ``autoops.toml`` or an
    existing ``.autoops/``; None outside any project."""
    for directory in (cwd, *cwd.parents):
        if (directory / STORE_DIR_NAME).is_dir() or (directory / PROJECT_FILE_NAME).is_file():
            return directory
    return None


def _score_row(score: ScoreRecord) -> tuple[Any, ...]:
    from config.tracing.attributes import to_json

    numeric = isinstance(score.value, (int, float)) and not isinstance(score.value, bool)
    return (
        score.id,
        score.trace_id,
        score.observation_id,
        score.session_id,
        score.name,
        float(score.value) if numeric else None,
        None if numeric else str(score.value),
        score.data_type,
        score.comment,
        to_json(score.metadata) if score.metadata else None,
        score.environment,
        score.timestamp_ns // 1000,
        score.source,
    )


def _nearest_existing(folder: Path) -> Path:
    """``folder``, or its nearest ancestor that exists (a broken or looping link counts: it is
    in the way of a folder there)."""
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    return folder


def creation_problem(path: Path) -> str | None:
    """Why the store could not be created at ``path``, or None: the nearest existing folder
    on its way must be a folder the user may write in (``AUTOOPS_HOME`` naming a file gave
    "[Errno 17] File exists")."""
    folder = _nearest_existing(path.parent)
    if not folder.is_dir():
        return f"cannot create the store {path}: {folder} is not a directory"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot create the store {path}: {folder} is not writable"
    return None


def _open_failure(path: Path, exc: Exception, read_only: bool) -> str:
    """Why a store would not open, in words: SQLite says "unable to open database file" of
    a file or folder this user may not read or write (``chmod 000``)."""
    if "unable to open" in str(exc):
        needed = os.R_OK if read_only else os.R_OK | os.W_OK
        for target in (path, path.parent):
            if target.exists() and not os.access(
                target, needed | (os.X_OK if target.is_dir() else 0)
            ):
                return f"permission denied ({target})"
    return str(exc)


def _create_private(path: Path) -> None:
    """Create the store's folder (0700) and file (0600) if missing: traces are nobody else's.

    SQLite gives the ``-wal`` and ``-shm`` files the mode of the database file.
    """
    if not path.parent.is_dir():
        problem = creation_problem(path)
        if problem is not None:
            raise LocalFileError(problem)
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    if not path.exists():
        with contextlib.suppress(FileExistsError):  # another process created it meanwhile
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


# SQLite's answers for a file another connection holds (busy: a write lock; locked: a
# conflict within one process's shared cache).
_LOCKED_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open an existing store without writing to it (a read-only file or file system too)."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db
    except sqlite3.OperationalError as exc:
        # The extended code's low byte is the primary one (SQLITE_BUSY_SNAPSHOT: 517 & 0xFF).
        if (getattr(exc, "sqlite_errorcode", -1) & 0xFF) in _LOCKED_CODES:
            # Held by another process (an exclusive lock): read as immutable, the file would
            # be read without its WAL's latest changes, stale counts passed off as current.
            raise LocalFileError(
                f"cannot read the store {path}: {exc} (another process holds it); "
                "run again once it is done"
            ) from None
        # A WAL file whose -shm cannot be created (a read-only folder): read it as it is.
        db = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False)
        db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return db


def check_schema_version(db: sqlite3.Connection, path: Path) -> int:
    """The file's schema version; ``LocalFileError`` (exit 6) for one this autoops does not write."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    _check_not_foreign(db, path)
    if version not in (0, SCHEMA_VERSION):
        newer = "newer than" if version > SCHEMA_VERSION else "unknown to"
        raise LocalFileError(
            f"the store {path} has schema version {version}, {newer} this autoops's "
            f"({SCHEMA_VERSION}); it was left untouched: use the autoops that wrote it, or "
            "another store (AUTOOPS_HOME)"
        )
    return version


# The tables of a store file (the outbox and the read commands' API cache live in it too);
# a file with tables and none of these is another program's database.
STORE_TABLES = frozenset(
    {"traces", "observations", "scores", "outbox", "dead_letters", "api_cache"}
)


def _check_not_foreign(db: sqlite3.Connection, path: Path) -> None:
    """``LocalFileError`` (exit 6) for a database with tables of its own and none of a
    store's: it was taken over (the store's tables added to it), and read as "no traces
    yet"."""
    rows = db.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') "
        "AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    tables = {str(row[0]) for row in rows}
    if tables and not tables & STORE_TABLES:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise LocalFileError(
            f"{path} is another program's SQLite database (tables {shown}), not an autoops "
            "store; it was left untouched: use another store file"
        )


# SQLite's page cache of a connection that only writes (a replay's, the core's in local
# mode): the cache grows with the file up to its size, so a replay's memory grew with the
# event file (+40 MB from 2,000 to 20,000 events with 64 MB). Inserts touch the index pages
# on their way down and one leaf each; 8 MB keeps the upper levels, the rest comes from the
# OS's file cache, and writes were as fast over 200,000 rows (benchmarks/replay_scale.py).
WRITER_CACHE_KIB = 8 * 1024
READER_CACHE_KIB = 64 * 1024  # queries over millions of rows: index pages stay in memory


def open_store_file(
    path: Path,
    schema: str,
    what: str,
    *,
    read_only: bool = False,
    cache_kib: int = READER_CACHE_KIB,
) -> sqlite3.Connection:
    """A connection to the store file (created with ``schema``), set up for WAL and batches.

    Shared by the store's tables and the outbox's, which live in the same file. ``what``
    names the file in the error (exit 6) when it cannot be opened. The schema version is
    checked before anything is written. ``read_only`` opens an existing file without
    creating or changing anything (``FileNotFoundError`` when there is none). ``cache_kib``
    bounds the page cache of a connection that writes (its memory).
    """
    if read_only and not path.is_file():
        # Nothing there is "no store yet"; anything else in the way (a folder named like the
        # file, AUTOOPS_HOME naming a file) is an error: "no traces" or "0 batches" hid it.
        if os.path.lexists(path):
            raise LocalFileError(f"cannot open {what} {path}: it is not a file")
        folder = _nearest_existing(path.parent)
        if not folder.is_dir():
            raise LocalFileError(f"cannot open {what} {path}: {folder} is not a directory")
        raise FileNotFoundError(path)
    if not read_only and os.path.isdir(path):  # SQLite says "unable to open database file"
        raise LocalFileError(f"cannot open {what} {path}: it is a directory, not a file")
    try:
        if read_only:
            db = _connect_read_only(path)
            check_schema_version(db, path)
            return db
        _create_private(path)
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        add_store_functions(db)
        check_schema_version(db, path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint (and fsync) every 64 MB of WAL rather than every 4 MB: at replay rates
        # the default made checkpoints cost as much as the inserts themselves.
        db.execute("PRAGMA wal_autocheckpoint=16384")
        db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")
        db.execute("PRAGMA busy_timeout=10000")
        db.executescript(schema)
    except (OSError, sqlite3.Error) as exc:
        raise LocalFileError(
            f"cannot open {what} {path}: {_open_failure(path, exc, read_only)}"
        ) from None
    return db


def _open_for_writing(path: Path, cache_kib: int) -> sqlite3.Connection:
    """Open (or create) the store for writing; its tables are checked before any is added."""
    if path.is_file():
        try:  # a quick look first: a file of another schema must stay untouched
            probe = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            try:
                check_schema_version(probe, path)
                check_store_tables(probe, path)
            finally:
                probe.close()
        except sqlite3.Error as exc:
            reason = _open_failure(path, exc, read_only=False)
            raise LocalFileError(f"cannot open the local store {path}: {reason}") from None
    db = open_store_file(path, SCHEMA, "the local store", cache_kib=cache_kib)
    try:
        if int(db.execute("PRAGMA user_version").fetchone()[0]) == 0:
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        db.close()
        raise LocalFileError(f"cannot write to the local store {path}: {exc}") from None
    return db


def _table_columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


# What a store of this schema version holds: checked, so a file changed under the tool (a
# renamed or missing column) is refused with its name instead of failing somewhere later.
EXPECTED_COLUMNS = {
    "traces": (*TRACE_COLUMNS, "updated_us"),
    "observations": OBSERVATION_COLUMNS,
    "scores": SCORE_COLUMNS,
}


def check_store_tables(db: sqlite3.Connection, path: Path) -> None:
    """``LocalFileError`` (exit 6) when a table of the store is not the schema's."""
    for table, expected in EXPECTED_COLUMNS.items():
        found = _table_columns(db, table)
        if found and sorted(found) != sorted(expected):
            missing = sorted(set(expected) - set(found))
            unknown = sorted(set(found) - set(expected))
            details = "; ".join(
                part
                for part in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unknown {', '.join(unknown)}" if unknown else "",
                )
                if part
            )
            raise LocalFileError(
                f"the store {path} is not in this autoops's schema (version {SCHEMA_VERSION}): "
                f"table {table}: {details}; it was left untouched"
            )


def _unicode_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(unicode_text(value) if type(value) is str else value for value in row)


def write_error(path: Path, exc: Exception) -> LocalFileError:
    """What a failed write to the store at ``path`` is: its ``LocalFileError``, or any other
    exception (a closed connection, a value SQLite cannot bind) said as one."""
    if isinstance(exc, LocalFileError):
        return exc
    return LocalFileError(f"cannot write to the local store {path}: {type(exc).__name__}: {exc}")


class LocalStore:
    """One SQLite store file; safe to share between threads of one process.

    ``read_only`` opens an existing store for the read commands: nothing is created or
    changed, and a store on a read-only file system can still be read.
    """

    def __init__(
        self, path: Path, *, read_only: bool = False, cache_kib: int = READER_CACHE_KIB
    ) -> None:
        """Open the store (created unless ``read_only``); ``cache_kib`` bounds SQLite's page
        cache (``WRITER_CACHE_KIB`` for a connection that only writes)."""
        self.path = path
        self.read_only = read_only
        self._cache_kib = cache_kib
        if read_only:
            self._db = open_store_file(path, SCHEMA, "the local store", read_only=True)
            if not _table_columns(self._db, "traces"):
                # The file holds only the outbox or the API cache (langfuse mode, the read
                # commands): no store was created in it yet, as if there were no file.
                self._db.close()
                raise FileNotFoundError(path)
        else:
            self._db = _open_for_writing(path, cache_kib)
        try:
            check_store_tables(self._db, path)
        except LocalFileError:
            self._db.close()
            raise
        self._lock = threading.Lock()

    @classmethod
    def existing(cls, path: Path) -> LocalStore | None:
        """The store at ``path`` opened for reading, or None when there is none
        (``LocalFileError`` when there can be none: ``AUTOOPS_HOME`` names a file, and "no
        traces yet" would hide it)."""
        try:
            return cls(path, read_only=True)
        except FileNotFoundError:
            return None

    def write(self, spans: Iterable[SpanRecord], scores: Iterable[ScoreRecord] = ()) -> None:
        """Write a batch of spans and scores in one transaction (idempotent on ids)."""
        from config.store.otel_mapping import map_spans  # only writers need the mapping

        mapped = map_spans(spans)
        self.write_rows(mapped.traces.values(), mapped.observations, scores)

    def write_rows(
        self,
        traces: Iterable[Mapping[str, Any]],
        observations: Iterable[Mapping[str, Any]],
        scores: Iterable[ScoreRecord] = (),
    ) -> None:
        """Write rows already mapped (``TRACE_COLUMNS`` / ``OBSERVATION_COLUMNS`` keys) and
        scores in one transaction: a trace row merges into the stored one (non-null values
        win, metadata is patched), an observation row replaces the stored one."""
        now_us = time.time_ns() // 1000
        tables = (
            (TRACE_UPSERT, [(*_trace_values(row), now_us) for row in traces]),
            (OBSERVATION_UPSERT, [_observation_values(row) for row in observations]),
            (SCORE_UPSERT, [_score_row(score) for score in scores]),
        )
        try:
            self._write_tables(tables)
        except UnicodeEncodeError:
            # Text that is not Unicode (a lone surrogate: a file name from os.fsdecode, a
            # JSON escape) cannot be bound; it failed the whole batch, and every batch after
            # it. Checked only then: the batch again, such text as U+FFFD, as OTLP sends it.
            self._write_tables(
                tuple((sql, [_unicode_row(row) for row in rows]) for sql, rows in tables)
            )

    def _write_tables(self, tables: tuple[tuple[str, list[tuple[Any, ...]]], ...]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, rows in tables:
                    self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise LocalFileError(
                    f"cannot write to the local store {self.path}: {exc}"
                ) from None
            except BaseException:
                # Any other failure mid-batch (a value SQLite cannot bind, an interrupt) must
                # not leave the connection inside BEGIN IMMEDIATE: every later write would
                # fail and other processes would see the store locked.
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def data_version(self) -> int:
        """A number that changes whenever another connection commits to the store."""
        return int(self.query("PRAGMA data_version")[0][0])

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see the store as committed at the first of them (one read
        transaction): the answers of several queries from one moment while a replay writes."""
        self.query("BEGIN")
        try:
            yield
        finally:
            self.query("COMMIT")

    def query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query (parameters always bound, never formatted into the SQL)."""
        values = tuple(params)
        with self._lock:
            try:
                cursor = self._db.execute(sql, values)
            except UnicodeEncodeError:
                # Text that is not Unicode (``--session $'\xff'``): as the store keeps such
                # text, U+FFFD (``write_rows``); it was an internal error.
                cursor = self._db.execute(sql, _unicode_row(values))
            cursor.row_factory = sqlite3.Row
            return cursor.fetchall()

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        return {
            table: int(self.query(f"SELECT COUNT(*) FROM {table}")[0][0])
            for table in ("traces", "observations", "scores")
        }

    def delete_traces(self, trace_ids: Iterable[str]) -> int:
        """Delete traces with their observations and scores; how many traces there were."""
        ids = list(dict.fromkeys(trace_ids))
        deleted = 0
        with self._lock:
            try:  # BEGIN too: another process writing ("database is locked") was a 500 in serve
                self._db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(ids), 500):  # within SQLite's bound on parameters
                    chunk = ids[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    self._db.execute(f"DELETE FROM observations WHERE trace_id IN ({marks})", chunk)
                    self._db.execute(f"DELETE FROM scores WHERE trace_id IN ({marks})", chunk)
                    deleted += self._db.execute(
                        f"DELETE FROM traces WHERE id IN ({marks})", chunk
                    ).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise LocalFileError(
                    f"cannot write to the local store {self.path}: {exc}"
                ) from None
            except BaseException:
                self._rollback()
                raise
        return deleted

    def delete_scores(self, score_ids: Iterable[str]) -> int:
        """Delete scores by id; how many there were."""
        ids = list(dict.fromkeys(score_ids))
        deleted = 0
        with self._lock:
            try:
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    deleted += self._db.execute(
                        f"DELETE FROM scores WHERE id IN ({marks})", chunk
                    ).rowcount
            except sqlite3.Error as exc:
                raise LocalFileError(
                    f"cannot write to the local store {self.path}: {exc}"
                ) from None
        return deleted

    def release_memory(self) -> None:
        """Give back what the connection holds after a large write: SQLite's page cache, and
        the copies of the last values bound to each cached statement (Python's sqlite3
        never clears them, so a 100 MB value stayed in memory until the next write of that
        statement). The connection is reopened, under the lock, with the same settings."""
        with self._lock:
            self._db.close()
            self._db = open_store_file(
                self.path,
                SCHEMA,
                "the local store",
                read_only=self.read_only,
                cache_kib=self._cache_kib,
            )

    def prune(self, retention_days: int) -> int:
        """Delete traces (with their observations and scores) older than the retention."""
        cutoff_us = (time.time_ns() // 1000) - retention_days * 86_400 * 1_000_000
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                old = "SELECT id FROM traces WHERE timestamp_us < ?"
                self._db.execute(
                    f"DELETE FROM observations WHERE trace_id IN ({old})", (cutoff_us,)
                )
                self._db.execute(f"DELETE FROM scores WHERE trace_id IN ({old})", (cutoff_us,))
                deleted = self._db.execute(
                    "DELETE FROM traces WHERE timestamp_us < ?", (cutoff_us,)
                ).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise LocalFileError(
                    f"cannot write to the local store {self.path}: {exc}"
                ) from None
            except BaseException:
                self._rollback()
                raise
        return int(deleted)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
