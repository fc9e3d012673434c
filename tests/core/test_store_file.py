"""The store file: where it is found, who may read it, and a file that changed under the tool."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.delivery.outbox import outbox_status_at
from config.errors import LocalFileError
from config.store.local_store import SCHEMA_VERSION, LocalStore, default_store_path
from config.tracing.span_records import SpanRecord


def span(trace: str = "a" * 32, span_id: str = "b" * 16) -> SpanRecord:
    return SpanRecord(
        trace_id=trace,
        span_id=span_id,
        parent_span_id=None,
        name="orchestrator.process_event",
        start_ns=1_700_000_000_000_000_000,
        end_ns=1_700_000_000_100_000_000,
        attributes={"langfuse.trace.name": "simulation.demand_spike"},
    )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_store_is_found_like_the_project_file(tmp_path: Path) -> None:
    project = tmp_path / "project"
    deep = project / "docs" / "api"
    deep.mkdir(parents=True)
    environ: dict[str, str] = {}
    # Outside any project: the working directory's .autoops/ (unless a folder above the
    # test's own is a project, as a developer's home may be).
    above = [
        d for d in tmp_path.parents if (d / ".autoops").is_dir() or (d / "autoops.toml").is_file()
    ]
    if not above:
        assert default_store_path(environ, deep) == deep / ".autoops" / "traces.db"
    # A project file above: its directory is the project root.
    (project / "autoops.toml").write_text("", encoding="utf-8")
    assert default_store_path(environ, deep) == project / ".autoops" / "traces.db"
    # An existing .autoops/ nearer down wins (a store already there).
    (project / "docs" / ".autoops").mkdir()
    assert default_store_path(environ, deep) == project / "docs" / ".autoops" / "traces.db"
    # AUTOOPS_HOME wins over everything.
    environ["AUTOOPS_HOME"] = str(tmp_path / "elsewhere")
    assert default_store_path(environ, deep) == tmp_path / "elsewhere" / "traces.db"


def test_a_new_store_is_private_to_its_user(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / ".autoops" / "traces.db"
    store = LocalStore(path)
    store.write([span()])
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
    store.close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert modes["traces.db"] == 0o600
    for sidecar in ("traces.db-wal", "traces.db-shm"):
        if sidecar in modes:  # WAL files, while the store was open
            assert modes[sidecar] == 0o600


def test_a_newer_schema_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    LocalStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version=7")
        db.execute("ALTER TABLE traces ADD COLUMN cost_center TEXT")
    before = digest(path)
    for read_only in (False, True):
        with pytest.raises(LocalFileError) as info:
            LocalStore(path, read_only=read_only)
        assert info.value.message == (
            f"the store {path} has schema version 7, newer than this autoops's "
            f"({SCHEMA_VERSION}); it was left untouched: use the autoops that wrote it, or "
            "another store (AUTOOPS_HOME)"
        )
        assert int(info.value.exit_code) == 6
    assert digest(path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 7


def test_a_renamed_column_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    LocalStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE observations RENAME COLUMN level TO severity")
    before = digest(path)
    for read_only in (False, True):
        with pytest.raises(LocalFileError) as info:
            LocalStore(path, read_only=read_only)
        assert "table observations: missing level; unknown severity" in info.value.message
    assert digest(path) == before


def test_another_programs_database_is_refused_not_taken_over(tmp_path: Path) -> None:
    """A SQLite file of its own at the store's path got the store's tables added to it by a
    replay, and read as "no traces yet". It is refused and left as it was; a store with a
    table of the user's added beside its own is still a store."""
    path = tmp_path / "traces.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE inventory (sku TEXT)")
    before = digest(path)
    for read_only in (False, True):
        with pytest.raises(LocalFileError) as info:
            LocalStore(path, read_only=read_only)
        assert info.value.message.startswith(
            f"{path} is another program's SQLite database (tables inventory)"
        )
    with pytest.raises(LocalFileError, match="another program's SQLite database"):
        outbox_status_at(path)  # the outbox lives in the store's file
    assert digest(path) == before
    # A view alone, or tables under a schema version of another program's: its own still.
    for name, version in (("view", 0), ("versioned", 42)):
        other = tmp_path / f"{name}.db"
        with sqlite3.connect(other) as db:
            db.execute("CREATE VIEW answer AS SELECT 42")
            db.execute(f"PRAGMA user_version={version}")
        with pytest.raises(LocalFileError, match="another program's SQLite database"):
            LocalStore(other)
    mine = tmp_path / "mine.db"
    LocalStore(mine).close()
    with sqlite3.connect(mine) as db:
        db.execute("CREATE TABLE notes (text TEXT)")
    LocalStore(mine, read_only=True).close()


def test_reading_never_creates_a_store(tmp_path: Path) -> None:
    path = tmp_path / "nothing" / "traces.db"
    assert LocalStore.existing(path) is None
    assert not path.parent.exists()


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A real read-only file system (a tmpfs remounted read-only), where the machine allows."""
    folder = tmp_path / f"ro-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: a read-only file system cannot be made here")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_store_on_a_read_only_file_system_is_read_and_a_write_refused(
    read_only_folder: Path,
) -> None:
    path = read_only_folder / "traces.db"
    store = LocalStore(path)
    store.write([span()])
    store.close()
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_folder)], check=True)
    reader = LocalStore.existing(path)
    assert reader is not None
    assert reader.counts() == {"traces": 1, "observations": 1, "scores": 0}
    reader.close()
    # The outbox's status (a local-mode store has no outbox tables) is read the same way.
    assert outbox_status_at(path)["pending_batches"] == 0
    with pytest.raises(LocalFileError) as info:
        LocalStore(path)
    assert str(path) in info.value.message and int(info.value.exit_code) == 6


def test_deleting_while_another_writer_holds_the_store_is_a_local_file_error(
    tmp_path: Path,
) -> None:
    """Deleting traces (serve's DELETE routes) or pruning while another process held the
    write lock raised sqlite3's error from BEGIN: serve answered 500 ("unexpected error")
    where a write of the same moment gets 503 with Retry-After."""
    import sqlite3

    path = tmp_path / "traces.db"
    store = LocalStore(path)
    store.write([span()])
    store._db.execute("PRAGMA busy_timeout = 50")  # the wait before "locked", shortened
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        for delete in (lambda: store.delete_traces(["ab" * 16]), lambda: store.prune(1)):
            with pytest.raises(LocalFileError, match="locked"):
                delete()
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert store.delete_traces([span().trace_id]) == 1  # and it works once the lock is gone
    store.close()


def test_a_store_another_process_holds_locked_is_an_error_not_stale_counts(
    tmp_path: Path,
) -> None:
    """A process holding the store in an exclusive lock, with changes in its WAL: the
    reader fell back to reading the file as immutable, which leaves the WAL out, and
    answered the old counts (``buffer status`` exit 0 with batches already gone)."""
    import sys

    path = tmp_path / "traces.db"
    store = LocalStore(path)
    store.write([span()])
    store.close()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys\n"
         f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
         "db.execute('PRAGMA wal_autocheckpoint=0')\n"
         "db.execute('PRAGMA locking_mode=exclusive')\n"
         "db.execute('DELETE FROM observations')\n"
         "print('held', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(LocalFileError) as info:
            LocalStore.existing(path)
        assert "locked" in info.value.message and int(info.value.exit_code) == 6
    finally:
        holder.communicate("")
    reader = LocalStore.existing(path)
    assert reader is not None
    assert reader.counts()["observations"] == 0  # what the holder left, not the old count
    reader.close()


def test_a_folder_where_the_store_should_be_is_named_so_by_the_writers(tmp_path: Path) -> None:
    """`serve --store DIR`, a replay into an AUTOOPS_HOME whose traces.db is a folder: the
    writers said SQLite's "unable to open database file" where the readers said why."""
    from config.delivery.outbox import Outbox

    folder = tmp_path / "traces.db"
    folder.mkdir()
    for opener in (LocalStore, Outbox):
        with pytest.raises(LocalFileError) as info:
            opener(folder)
        assert info.value.message.endswith(f"{folder}: it is a directory, not a file")
