"""Running ``autoops replay`` as a real process and checking what reached the server.

What a run reported as processed is read the way a user's CI job would: the complete lines of
its ``--progress-file`` (each written once its counts were on disk) and, when it printed one,
its ``--json`` summary. What the server holds is read from ``autoops serve``'s store file.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import sqlite3
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.tracing.ids import event_trace_id
from tests.support.serve_process import autoops_executable


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LANGFUSE_/AUTOOPS_ variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env.update(extra)
    return env


def start_replay(
    events: Path, run_id: str, env: dict[str, str], progress: Path, *extra: str
) -> subprocess.Popen[str]:
    """``autoops --json replay`` in the background, its progress to ``progress``."""
    return subprocess.Popen(
        [autoops_executable(), "--json", "replay", str(events), "--run-id", run_id,
         "--progress-file", str(progress), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        text=True, env=env,
    )  # fmt: skip


def progress_lines(path: Path) -> list[dict]:
    """The complete lines of a progress file (a line cut by a kill is not a report)."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not raw.endswith("\n"):
            break
        lines.append(json.loads(raw))
    return lines


def reported_processed(progress: Path, stdout: str) -> int:
    """The most events the run reported as processed, on any progress line or its summary."""
    counts = [line["events_processed"] for line in progress_lines(progress)]
    if stdout.strip():
        counts.append(json.loads(stdout)["events_processed"])
    return max(counts, default=0)


def event_ids(events: Path) -> list[str]:
    """The event ids of a file, in order."""
    with events.open(encoding="utf-8") as lines:
        return [json.loads(line)["event_id"] for line in lines if line.strip()]


@dataclass(frozen=True)
class Shape:
    """Observations and scores of one event's trace (what agents and conflicts make of it),
    and the event as the replay reads it (its trace id in a run: ``trace_of``)."""

    observations: int
    scores: int
    event: dict[str, Any]

    def trace_of(self, run_id: str) -> str:
        return event_trace_id(run_id, self.event)


def replayed_events(events: Path) -> dict[str, dict[str, Any]]:
    """Event id -> the event as a replay reads it (what its trace id is derived from)."""
    from autoops_cli.simulation.events import SimulationEvent, read_events

    return {
        item.event_id: item.as_dict()
        for item in read_events(events)
        if isinstance(item, SimulationEvent)
    }


def trace_shapes(store: Path, run_id: str, events: Path) -> dict[str, Shape]:
    """Event id -> the shape of its trace in a store file (a local reference replay)."""
    observations, scores = table_counts(store)
    shapes = {}
    for event_id, event in replayed_events(events).items():
        trace = event_trace_id(run_id, event)
        shapes[event_id] = Shape(observations[trace], scores[trace], event)
    return shapes


def table_counts(store: Path) -> tuple[Counter[str], Counter[str]]:
    """Observations and scores per trace id in a store file."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        observations = Counter(
            dict(db.execute("SELECT trace_id, COUNT(*) FROM observations GROUP BY trace_id"))
        )
        scores = Counter(
            dict(db.execute("SELECT trace_id, COUNT(*) FROM scores GROUP BY trace_id"))
        )
    return observations, scores


def ids(store: Path) -> dict[str, set[str]]:
    """Every trace, observation and score id in a store file."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        return {
            table: {row[0] for row in db.execute(f"SELECT id FROM {table}")}
            for table in ("traces", "observations", "scores")
        }


def missing_or_wrong(
    server_store: Path, run_id: str, events: list[str], shapes: dict[str, Shape]
) -> list[str]:
    """Events among ``events`` whose trace is not on the server exactly as expected."""
    observations, scores = table_counts(server_store)
    wrong = []
    for event in events:
        trace = shapes[event].trace_of(run_id)
        if (observations[trace], scores[trace]) != (
            shapes[event].observations,
            shapes[event].scores,
        ):
            wrong.append(event)
    return wrong


def outbox_status(env: dict[str, str]) -> dict:
    """``autoops buffer status --json`` as a real process (another process's view)."""
    done = subprocess.run(
        [autoops_executable(), "--json", "buffer", "status"],
        capture_output=True, text=True, env=env, check=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return dict(json.loads(done.stdout))


def run(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``autoops ARGS`` as a real process, its output captured."""
    return subprocess.run(
        [autoops_executable(), *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@contextlib.contextmanager
def small_disk(directory: Path, size_bytes: int) -> Iterator[tuple[Path, str, object]]:
    """A directory that runs out of space after ``size_bytes``: (directory, how, preexec).

    A tmpfs of that size where this process may mount one (root with CAP_SYS_ADMIN): then
    writes fail with ENOSPC. Elsewhere the file size limit of the child process
    (RLIMIT_FSIZE; Python ignores SIGXFSZ, so writes fail with EFBIG): both are what SQLite
    meets on a full disk, a real failure at the write boundary.
    """
    directory.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    mounted = False
    if mount and os.geteuid() == 0:
        done = subprocess.run(
            [mount, "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory)],
            capture_output=True, check=False,
        )  # fmt: skip
        mounted = done.returncode == 0
    try:
        if mounted:
            yield directory, "tmpfs", None
        else:

            def limit_file_size() -> None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (size_bytes, resource.RLIM_INFINITY))

            yield directory, "RLIMIT_FSIZE", limit_file_size
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def scratch_dir() -> Path:
    """A temporary directory outside any small disk (for progress files and logs)."""
    return Path(tempfile.mkdtemp(prefix="autoops-replay-"))


def child_pids(parent: int, command_part: bytes = b"") -> list[int]:
    """The running children of ``parent`` whose command line holds ``command_part``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent and (
                not command_part or command_part in (entry / "cmdline").read_bytes()
            ):
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
