"""A replay in local mode with its store writer process (a second CPU): Ctrl-C at a terminal
reaches the whole process group, and the writer still writes every batch the replay reported;
a replay killed outright leaves no writer behind, and what it reported is on disk."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from autoops_cli.simulation.generator import generate_events, write_events
from autoops_cli.simulation.partition import available_cpus
from tests.support.replay_runs import child_pids, clean_env, ids, progress_lines, running
from tests.support.serve_process import autoops_executable

pytestmark = pytest.mark.skipif(
    available_cpus() < 2, reason="the writer process runs only with a second CPU"
)


def writer_pids(parent: int) -> list[int]:
    """The parent's children running ``config.store.writer_process``."""
    return child_pids(parent, b"config.store.writer_process")


def start(
    tmp_path: Path, events: int, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], Path, Path]:
    """A replay of ``events`` generated events in its own process group (as at a terminal)."""
    path = tmp_path / "events.jsonl"
    write_events(path, generate_events(events, seed=21))
    progress = tmp_path / "progress.jsonl"
    home = tmp_path / "home"
    process = subprocess.Popen(
        [autoops_executable(), "--json", "replay", str(path), "--progress-file", str(progress)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        env=clean_env(AUTOOPS_HOME=str(home)), start_new_session=True, cwd=cwd,
    )  # fmt: skip
    return process, progress, home / "traces.db"


def wait_for_progress(process: subprocess.Popen[str], progress: Path, at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        lines = progress_lines(progress)
        if lines and lines[-1]["events_processed"] >= at_least:
            return
        time.sleep(0.02)
    raise AssertionError(f"no progress: {process.poll()=}")


def counts(store: Path) -> dict[str, int]:
    return {table: len(found) for table, found in ids(store).items()}


def test_ctrl_c_at_a_terminal_keeps_every_batch_the_replay_reported(tmp_path: Path) -> None:
    process, progress, store = start(tmp_path, 20_000)
    wait_for_progress(process, progress, 200)
    (writer,) = writer_pids(process.pid)
    # A group of its own from its start: no signal to the replay's group can cut it short.
    assert os.getpgid(writer) == writer != os.getpgid(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # the terminal signals the whole group
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["stopped_early"] == "SIGINT"
    assert 200 <= summary["events_processed"] < 20_000
    assert counts(store) == {
        "traces": summary["traces_recorded"],
        "observations": summary["observations_recorded"],
        "scores": summary["scores_recorded"],
    }
    assert "Traceback" not in stderr
    assert "store writer process ended" not in stderr  # it was not touched by the Ctrl-C


def test_a_killed_replay_leaves_no_writer_behind(tmp_path: Path) -> None:
    process, progress, store = start(tmp_path, 20_000)
    wait_for_progress(process, progress, 200)
    writers = writer_pids(process.pid)
    assert len(writers) == 1
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and running(writers[0]):
        time.sleep(0.05)
    assert not running(writers[0])
    # What the replay reported before it died is on disk (durable before counted).
    reported = max(line["events_processed"] for line in progress_lines(progress))
    assert counts(store)["traces"] >= reported
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_second_stop_does_not_wait_for_a_writer_that_no_longer_answers(tmp_path: Path) -> None:
    """A stopped (or stuck) writer: the second Ctrl-C ends it, and the replay writes what it
    had not answered itself; nothing reported is missing."""
    process, progress, store = start(tmp_path, 20_000)
    wait_for_progress(process, progress, 200)
    (writer,) = writer_pids(process.pid)
    os.kill(writer, signal.SIGSTOP)
    time.sleep(1.0)  # the replay goes on until the pipe is full, then waits on it
    # Ctrl-C again until it ends: two signals close together may be handled as one.
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        os.killpg(process.pid, signal.SIGINT)
        time.sleep(0.5)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    summary = json.loads(stdout)
    assert "store writer process ended" in stderr
    assert counts(store) == {
        "traces": summary["traces_recorded"],
        "observations": summary["observations_recorded"],
        "scores": summary["scores_recorded"],
    }
    assert not running(writer)


def test_the_writer_imports_nothing_from_the_working_directory(tmp_path: Path) -> None:
    """Python puts the working directory first on a ``-m`` module's path: a ``config.py``
    there ran inside the writer (and broke it)."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "config.py").write_text(
        "open('imported', 'w').write('yes')\nraise SystemExit(3)\n", encoding="utf-8"
    )
    process, _, store = start(tmp_path, 300, cwd=project)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert not (project / "imported").exists()
    assert "store writer process" not in stderr
    assert counts(store)["traces"] == json.loads(stdout)["traces_recorded"] == 300
