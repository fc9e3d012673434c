"""``replay --workers N`` and ``--shard K/N``: real processes, real signals, real HTTP.

What a user of several processes or machines relies on: the same traces as one process
(the ids depend on the run id and the event, so the same run id gives the same ids), every
trace recorded once, the union of N shards equal to one full run, bad lines reported by their
line number, the exit codes and the summary of one process, and no worker outliving its
parent. Nothing here asserts a speed (``benchmarks/replay_workers.py`` measures it).
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from autoops_cli.simulation import partition
from autoops_cli.simulation.events import MAX_LINE_BYTES, MAX_NESTING
from autoops_cli.simulation.generator import generate_events, write_events
from autoops_cli.simulation.partition import (
    WORKERS_PER_CPU,
    available_cpus,
    cgroup_cpu_quota,
    parse_shard,
    parse_workers,
    shard_of,
    worker_of,
)
from config.errors import UsageError
from tests.conftest import Cli
from tests.support.replay_runs import (
    child_pids,
    clean_env,
    ids,
    outbox_status,
    progress_lines,
    run,
    running,
    start_replay,
)
from tests.support.serve_process import ServeHandle, autoops_executable

BAD_LINES = {5: "{not json", 17: '{"event_type": "nope", "product_id": "P"}'}


def events_file(directory: Path, count: int, seed: int, *, bad: bool = False) -> Path:
    """``count`` generated events; with ``bad``, the lines of BAD_LINES put in their place."""
    path = directory / f"events-{count}-{seed}-{'bad' if bad else 'ok'}.jsonl"
    if path.exists():
        return path
    write_events(path, generate_events(count, seed=seed))
    if bad:
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, text in BAD_LINES.items():
            lines.insert(number - 1, text)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def replay(
    home: Path, events: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict, str]:
    done = run("--json", "replay", str(events), *extra,
               env=env or clean_env(AUTOOPS_HOME=str(home)))  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stderr


def traces_by_id(store: Path) -> dict[str, tuple]:
    """Trace id -> what the trace holds, times and observation ids aside: its name, its
    observations (type, name, level) and its scores (name, value), sorted. The trace id comes
    from the run id and the event id: runs with the same run id are compared trace by trace."""
    with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        names = dict(db.execute("SELECT id, name FROM traces"))
        observations: dict[str, list] = {}
        for row in db.execute("SELECT trace_id, type, name, level FROM observations"):
            observations.setdefault(row[0], []).append(tuple(row[1:]))
        scores: dict[str, list] = {}
        for row in db.execute("SELECT trace_id, name, value, string_value FROM scores"):
            scores.setdefault(row[0], []).append(tuple(row[1:]))
    return {
        trace_id: (
            name,
            sorted(observations.get(trace_id, []), key=repr),
            sorted(scores.get(trace_id, []), key=repr),
        )
        for trace_id, name in names.items()
    }


COMPARED = (
    "lines_read",
    "lines_not_read",
    "events_total",
    "events_processed",
    "events_rejected",
    "events_failed",
    "traces_recorded",
    "observations_recorded",
    "scores_recorded",
    "decisions",
    "conflicts_detected",
    "conflicts_resolved",
    "rejected",
)


# --- the partition ------------------------------------------------------------------------


def test_the_partition_is_stable_and_documented() -> None:
    # The documented function, computed here independently: other tools can reproduce it.
    import hashlib

    for product in ("PROD_001", "PROD_042", "sku-ü-7"):
        h = int.from_bytes(hashlib.blake2b(product.encode(), digest_size=8).digest(), "big")
        assert shard_of(product, 3) == h % 3 + 1
        assert worker_of(product, 3, 2) == (h // 3) % 2
    assert shard_of("PROD_001", 1) == 1


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/3", ""])
def test_a_shard_that_is_not_k_of_n_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5"])
def test_a_worker_count_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--workers"):
        parse_workers(text)


def test_auto_is_the_cpus_available() -> None:
    quota = cgroup_cpu_quota()
    cpus = len(os.sched_getaffinity(0))
    assert parse_workers("auto") == (cpus if quota is None else min(cpus, quota))


@pytest.mark.parametrize(
    ("membership", "files", "cpus"),
    [
        # cgroup v2 (a container, Kubernetes pod or CI runner with a CPU limit)
        ("0::/\n", {"cpu.max": "200000 100000\n"}, 2),
        ("0::/\n", {"cpu.max": "150000 100000\n"}, 2),  # 1.5 CPUs: rounded up
        ("0::/\n", {"cpu.max": "50000 100000\n"}, 1),
        ("0::/pod/app\n", {"pod/app/cpu.max": "300000 100000\n"}, 3),
        ("0::/\n", {"cpu.max": "max 100000\n"}, None),  # no limit
        ("0::/\n", {}, None),  # the root cgroup has no cpu.max
        # cgroup v1 (the host's path is not mounted in the container: its root is read)
        (
            "4:cpu,cpuacct:/docker/abc\n",
            {"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"},
            3,
        ),
        (
            "4:cpu,cpuacct:/\n",
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            None,
        ),
        ("4:memory:/x\n", {"cpu.max": "100000 100000\n"}, None),  # no cpu controller line
        ("0::/\n", {"cpu.max": "garbage\n"}, None),
    ],
)
def test_a_containers_cpu_quota_is_read_from_its_cgroup(
    tmp_path: Path, membership: str, files: dict[str, str], cpus: int | None
) -> None:
    root = tmp_path / "sys-fs-cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="ascii")
    (tmp_path / "cgroup").write_text(membership, encoding="ascii")
    assert cgroup_cpu_quota(root, tmp_path / "cgroup") == cpus
    assert cgroup_cpu_quota(root, tmp_path / "missing") is None


def test_auto_is_the_cpu_quota_when_it_is_lower(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition, "cgroup_cpu_quota", lambda: 1)
    assert parse_workers("auto") == 1
    assert parse_workers("16") == 16  # a few more than the CPUs are still taken
    with pytest.raises(UsageError, match=r"at most 16 here \(1 CPU\(s\) available\)"):
        parse_workers("17")
    monkeypatch.setattr(partition, "cgroup_cpu_quota", lambda: 8)
    if available_cpus() == 8:  # a machine of at least 8 CPUs: 4 per CPU
        assert parse_workers("32") == 32


def test_a_worker_count_is_bounded_by_the_cpus() -> None:
    # A mistyped count (--workers 99999) must not start thousands of interpreters.
    most = max(16, WORKERS_PER_CPU * available_cpus())
    assert parse_workers(str(most)) == most
    with pytest.raises(UsageError, match=f"--workers '{most + 1}': at most {most} here"):
        parse_workers(str(most + 1))


def test_a_shard_count_of_zero_says_so() -> None:
    with pytest.raises(UsageError, match="--shard '1/0': N must be at least 1"):
        parse_shard("1/0")


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--shard", "4/3"], "--shard '4/3': K must be between 1 and N"),
        (["--shard", "x"], "--shard 'x': expected K/N"),
        (["--workers", "0"], "--workers '0': at least 1"),
        (["--workers", "many"], "--workers 'many': expected a number of processes or auto"),
        (["--workers", "99999"], "--workers '99999': at most"),
        (["--workers", "2", "--speed", "10"], "--speed paces one stream of events"),
    ],
)
def test_bad_workers_shard_or_speed_are_usage_errors_before_any_store(
    cli: Cli, workdir: Path, args: list[str], said: str
) -> None:
    events = events_file(workdir, 5, seed=1)
    result = cli("replay", str(events), *args)
    assert result.exit_code == 2, result.both
    assert said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (workdir / ".autoops").exists()


# --- workers: the same traces as one process ------------------------------------------------


def test_two_workers_record_what_one_process_records(tmp_path: Path) -> None:
    events = events_file(tmp_path, 400, seed=5, bad=True)
    one_code, one, _ = replay(tmp_path / "one", events, "--run-id", "same")
    progress = tmp_path / "progress.jsonl"
    two_code, two, stderr = replay(
        tmp_path / "two", events, "--run-id", "same", "--workers", "2",
        "--progress-file", str(progress),
    )  # fmt: skip
    # Bad lines: reported once each by their line number in the file, exit 6, in both.
    assert one_code == two_code == 6
    for number in BAD_LINES:
        assert stderr.count(f"{events}:{number}:") == 1
    assert {key: two[key] for key in COMPARED} == {key: one[key] for key in COMPARED}
    assert (one["workers"], two["workers"]) == (1, 2)
    assert two["tracing"]["traces_finalized"] == one["tracing"]["traces_finalized"] == 400
    # The same ids (they come from the run id and the event), and each trace the same.
    one_store, two_store = tmp_path / "one" / "traces.db", tmp_path / "two" / "traces.db"
    assert ids(two_store) == ids(one_store)
    assert traces_by_id(two_store) == traces_by_id(one_store)
    # The progress: durable sums that never go back, ending at the summary's counts.
    lines = progress_lines(progress)
    processed = [line["events_processed"] for line in lines]
    assert processed == sorted(processed)
    assert (lines[-1]["phase"], lines[-1]["events_processed"], lines[-1]["exit_code"]) == (
        "done",
        400,
        6,
    )


def test_repeated_event_ids_get_the_same_traces_with_workers_as_in_one_process(
    tmp_path: Path,
) -> None:
    """The parent renames a repeated event_id (the workers see only their products' lines, so
    a repeat on another product would otherwise collide) and hands the event on renamed."""
    events = [
        json.loads(line) for line in events_file(tmp_path, 40, seed=8).read_text().splitlines()
    ]
    repeats = [dict(event, product_id=f"OTHER_{n}") for n, event in enumerate(events[:10])]
    path = tmp_path / "repeats.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*events, *repeats, *events[:5]]))
    one_code, one, one_err = replay(tmp_path / "one", path, "--run-id", "same")
    two_code, two, two_err = replay(tmp_path / "two", path, "--run-id", "same", "--workers", "2")
    assert one_code == two_code == 0
    assert "15 event(s) repeated an earlier event_id" in one_err
    assert "15 event(s) repeated an earlier event_id" in two_err
    assert {key: two[key] for key in COMPARED} == {key: one[key] for key in COMPARED}
    assert one["traces_recorded"] == 55
    one_store, two_store = tmp_path / "one" / "traces.db", tmp_path / "two" / "traces.db"
    assert len(traces_by_id(one_store)) == 55
    assert traces_by_id(two_store) == traces_by_id(one_store)


def test_lines_the_parent_accepts_are_replayed_alike_by_the_workers(tmp_path: Path) -> None:
    """A worker is handed each event as its parent read it: nothing is judged twice. Lines
    that a worker re-reading them judged otherwise: nesting near the parser's depth (a worker
    parses lower in its stack), a line without event_id ending in "\r\r\n" (its id is the
    hash of the line), and a repeated id on a line that re-written grew past 1 MiB."""
    events = [
        json.loads(line) for line in events_file(tmp_path, 12, seed=9).read_text().splitlines()
    ]
    deep = "[" * (MAX_NESTING - 1) + "]" * (MAX_NESTING - 1)  # the event is a level too
    no_id = {key: value for key, value in events[1].items() if key != "event_id"}
    # 1e15 is re-written as 1000000000000000.0: a little under 1 MiB grows past it.
    padded = dict(events[2], data={**events[2]["data"], "x": [1e15] * 170_000})
    padding = json.dumps(padded, separators=(",", ":")).replace("1000000000000000.0", "1e15")
    assert len(padding) < MAX_LINE_BYTES < 2 * len(padding)
    lines = [
        *(json.dumps(event) for event in events),
        json.dumps(events[0])[:-1] + f', "deep": {deep}}}',
        json.dumps(no_id) + "\r",
        padding,
    ]
    path = tmp_path / "hard.jsonl"
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())
    one_code, one, one_err = replay(tmp_path / "one", path, "--run-id", "same")
    two_code, two, two_err = replay(tmp_path / "two", path, "--run-id", "same", "--workers", "2")
    assert one_code == two_code == 0, (one_err, two_err)
    assert one["events_processed"] == 15
    assert {key: two[key] for key in COMPARED} == {key: one[key] for key in COMPARED}
    one_store, two_store = tmp_path / "one" / "traces.db", tmp_path / "two" / "traces.db"
    assert traces_by_id(two_store) == traces_by_id(one_store)


def test_a_worker_that_loses_an_event_fails_the_run(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never expected, but not silent: an event a worker cannot read fails the run (the
    parent runs in this process, here handing line 3 on broken)."""
    from autoops_cli.actions import replay_workers

    real = replay_workers.worker_line
    monkeypatch.setattr(
        replay_workers,
        "worker_line",
        lambda event: b"{not json\n" if event.line_number == 3 else real(event),
    )
    result = cli("--json", "replay", str(events_file(workdir, 10, seed=3)), "--workers", "2")
    assert result.exit_code == 1, result.both
    assert "could not read 1 event(s) its parent had read" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["events_processed"] + summary["events_failed"] == 9
    assert summary["traces_recorded"] == 9


def test_strict_and_limit_with_workers_stop_where_one_process_stops(tmp_path: Path) -> None:
    events = events_file(tmp_path, 100, seed=6, bad=True)
    for extra in (["--strict"], ["--limit", "30"]):
        one_code, one, _ = replay(tmp_path / f"one{extra[0]}", events, *extra)
        two_code, two, _ = replay(tmp_path / f"two{extra[0]}", events, *extra, "--workers", "2")
        assert two_code == one_code
        assert {key: two[key] for key in COMPARED} == {key: one[key] for key in COMPARED}
        assert two["stopped_early"] == one["stopped_early"]


def test_workers_into_serve_deliver_every_trace_once(tmp_path: Path, served: ServeHandle) -> None:
    events = events_file(tmp_path, 600, seed=8)
    _, _, _ = replay(tmp_path / "reference", events, "--run-id", "lf")
    expected = ids(tmp_path / "reference" / "traces.db")
    env = clean_env(**served.client_env(), AUTOOPS_HOME=str(tmp_path / "client"))  # type: ignore[arg-type]
    code, summary, stderr = replay(
        tmp_path / "client", events, "--run-id", "lf", "--workers", "2", env=env
    )
    assert code == 0, stderr
    assert summary["events_processed"] == 600
    assert summary["delivery"]["batches_waiting"] == 0
    assert summary["delivery"]["state"] == "ok"
    assert ids(served.store) == expected
    # Once each: no row of the outbox sent twice as a second copy under another id.
    with contextlib.closing(sqlite3.connect(f"file:{served.store}?mode=ro", uri=True)) as db:
        count = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    assert count == len(expected["observations"])
    assert outbox_status(env)["pending_batches"] == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_progress_file_on_a_full_disk_ends_the_run_with_its_summary(
    tmp_path: Path, workers: str
) -> None:
    """/dev/full fails every write with ENOSPC, as a full disk does: the run goes on and
    records everything (the progress file is the operator's aid, not the job), then says
    the file stopped and exits 6, its summary complete; no traceback from the threads that
    carry the workers' progress."""
    events = events_file(tmp_path, 120, seed=3)
    code, summary, stderr = replay(
        tmp_path / f"home-{workers}", events, "--workers", workers, "--progress-file", "/dev/full"
    )
    assert code == 6
    assert summary["events_processed"] == summary["traces_recorded"] == 120
    assert len(ids(tmp_path / f"home-{workers}" / "traces.db")["traces"]) == 120
    assert "cannot write the progress file /dev/full: No space left on device" in stderr
    assert "Traceback" not in stderr
    # Said in the summary too: a job that reads only --json got exit 6 and no reason.
    assert summary["progress_file_error"] == (
        "cannot write the progress file /dev/full: No space left on device"
    )


def test_the_standard_output_as_progress_file_is_refused(tmp_path: Path) -> None:
    """--progress-file /dev/stdout with --json mixed the progress lines into the summary
    (no longer one JSON document) and exited 0."""
    events = events_file(tmp_path, 5, seed=4)
    done = run("--json", "replay", str(events), "--progress-file", "/dev/stdout", timeout=60,
               env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")))  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--progress-file /dev/stdout: it is the command's standard output" in done.stderr
    assert not (tmp_path / "home").exists()


def test_progress_to_standard_error_or_a_device_is_taken_and_to_the_input_pipe_refused(
    tmp_path: Path,
) -> None:
    """``/dev/stderr`` was refused when stderr was stdout too (``2>&1``, what the refusal
    itself advised), ``/dev/null`` when stdout was /dev/null; the standard input being
    replayed (``- --progress-file /dev/stdin``) was written to, and the run never ended."""
    events = events_file(tmp_path, 5, seed=4)
    env = clean_env(AUTOOPS_HOME=str(tmp_path / "home"))
    command = [autoops_executable(), "--json", "replay", str(events), "--progress-file"]
    both = subprocess.run([*command, "/dev/stderr"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, env=env, timeout=60, check=False)  # fmt: skip
    assert both.returncode == 0, both.stdout
    assert b'"phase": "done"' in both.stdout or b'"phase":"done"' in both.stdout
    silent = subprocess.run([*command, "/dev/null"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, timeout=60, check=False)  # fmt: skip
    assert silent.returncode == 0, silent.stderr
    piped = subprocess.run(
        [autoops_executable(), "replay", "-", "--progress-file", "/dev/stdin"],
        input=events.read_bytes(), capture_output=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert piped.returncode == 2, piped.stderr
    assert b"it is the standard input being replayed" in piped.stderr


def test_progress_to_the_terminal_replayed_from_is_taken(tmp_path: Path) -> None:
    """At a terminal, stdin and stderr are one device: ``replay - --progress-file /dev/stderr``
    typed in a shell was refused as "the standard input being replayed"."""
    events = events_file(tmp_path, 2, seed=4)
    controller, terminal = pty.openpty()
    try:
        replay = subprocess.Popen(
            [autoops_executable(), "replay", "-", "--progress-file", "/dev/stderr"],
            stdin=terminal, stdout=terminal, stderr=terminal,
            env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")),
        )  # fmt: skip
        os.close(terminal)
        os.write(controller, events.read_bytes() + b"\x04")  # the lines, then end of input
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal's other end is closed: the replay has ended
                break
            if not chunk:
                break
            seen += chunk
        assert replay.wait(timeout=60) == 0, seen
    finally:
        os.close(controller)
    assert b"standard input being replayed" not in seen
    assert b'"phase": "done"' in seen or b'"phase":"done"' in seen


def test_a_named_pipe_no_one_reads_as_progress_file_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a FIFO without a reader blocks; the replay would hang before its stop handlers
    exist. It is refused instead (exit 6, one line, no store), and works once read."""
    fifo = tmp_path / "progress.fifo"
    os.mkfifo(fifo)
    events = events_file(tmp_path, 20, seed=18)
    done = run("replay", str(events), "--progress-file", str(fifo), timeout=60,
               env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")))  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert f"cannot write the progress file {fifo}: no process reads that pipe" in done.stderr
    assert not (tmp_path / "home").exists()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # read once the run is over
    try:
        done = run("replay", str(events), "--progress-file", str(fifo), timeout=60,
                   env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")))  # fmt: skip
        lines = os.read(reader, 1 << 20).decode().splitlines()
    finally:
        os.close(reader)
    assert done.returncode == 0, done.stderr
    assert json.loads(lines[-1])["events_processed"] == 20


# --- shards ---------------------------------------------------------------------------------


def test_three_shards_make_one_full_run_none_twice(tmp_path: Path) -> None:
    events = events_file(tmp_path, 300, seed=9, bad=True)
    _, full, _ = replay(tmp_path / "full", events, "--run-id", "sharded")
    shared = tmp_path / "shared"
    parts = []
    for shard in (1, 2, 3):
        workers = ["--workers", "2"] if shard == 2 else []  # a shard may use workers too
        code, part, stderr = replay(
            shared, events, "--run-id", "sharded", "--shard", f"{shard}/3", *workers
        )
        # Every shard reports the file's bad lines: every CI job of a bad file fails.
        assert code == 6, stderr
        assert [r["line"] for r in part["rejected"]] == sorted(BAD_LINES)
        assert part["shard"] == f"{shard}/3"
        parts.append(part)
    processed = [part["events_processed"] for part in parts]
    assert all(processed), processed  # 300 events over 20-odd products: none empty
    assert sum(processed) == full["events_processed"] == 300
    for part in parts:
        assert part["events_other_shards"] == 300 - part["events_processed"]
    assert sum(p["traces_recorded"] for p in parts) == full["traces_recorded"]
    assert sum(p["observations_recorded"] for p in parts) == full["observations_recorded"]
    assert sum(p["scores_recorded"] for p in parts) == full["scores_recorded"]
    assert ids(shared / "traces.db") == ids(tmp_path / "full" / "traces.db")
    assert traces_by_id(shared / "traces.db") == traces_by_id(tmp_path / "full" / "traces.db")
    decisions: Counter[str] = Counter()
    for part in parts:
        decisions.update(part["decisions"])
    assert dict(decisions) == full["decisions"]


# --- signals and a parent that dies ---------------------------------------------------------


def wait_for_progress(progress: Path, process: subprocess.Popen[str], at_least: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        lines = progress_lines(progress)
        if lines and lines[-1]["events_processed"] >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"no progress: {process.poll()=}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_all_workers_with_one_summary(
    tmp_path: Path, served: ServeHandle, signum: int, code: int
) -> None:
    events = events_file(tmp_path, 3000, seed=12)
    total_lines = 3000
    progress = tmp_path / "progress.jsonl"
    env = clean_env(**served.client_env(), AUTOOPS_HOME=str(tmp_path / "client"))  # type: ignore[arg-type]
    process = start_replay(events, "stopped", env, progress, "--workers", "2")
    wait_for_progress(progress, process, 100)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    summary = json.loads(stdout)
    assert summary["stopped_early"] == signal.Signals(signum).name
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert 100 <= summary["events_processed"] < 3000
    assert summary["lines_read"] + summary["lines_not_read"] == total_lines
    # Events read into the workers' pipes and dropped by the stop are named, not lost silently.
    unrecorded = summary["events_total"] - summary["events_processed"] - summary["events_failed"]
    if unrecorded:
        assert f"{unrecorded} read but not recorded" in stderr
    else:
        assert "read but not recorded" not in stderr
    reported = max(line["events_processed"] for line in progress_lines(progress))
    assert reported <= summary["events_processed"]
    # Everything reported is on the server once, after a flush of what the stop left.
    flushed = run("buffer", "flush", env=env)
    assert flushed.returncode == 0, flushed.stderr
    with contextlib.closing(sqlite3.connect(f"file:{served.store}?mode=ro", uri=True)) as db:
        traces = db.execute("SELECT COUNT(*) FROM traces").fetchone()[0]
        observations = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
    assert traces == summary["traces_recorded"]
    assert observations == summary["observations_recorded"]


@pytest.mark.parametrize(
    ("workers", "pace", "fifo"),
    [("1", 0.0, False), ("2", 0.0, False), ("1", 0.25, False), ("1", 0.0, True),
     ("2", 0.0, True)],
)  # fmt: skip
def test_a_live_feed_on_stdin_or_a_named_pipe_is_recorded_as_it_comes(
    tmp_path: Path, workers: str, pace: float, fifo: bool
) -> None:
    """Lines read from a pipe that then goes quiet are replayed, made durable and reported
    at once (by the workers too: the parent hands them over), while the writer of the pipe
    still holds it open: not when the next line comes. ``pace``: the feed's seconds between
    lines (then a commit by time comes between two of them, and must be reported too).
    ``fifo``: the feed through a named pipe given by name, which was taken for a file (the
    workers got nothing until the next line, and a stop lost what was read)."""
    lines = events_file(tmp_path, 60, seed=16).read_text(encoding="utf-8").splitlines()
    progress = tmp_path / "progress.jsonl"
    source = str(tmp_path / "feed") if fifo else "-"
    if fifo:
        os.mkfifo(source)
    process = subprocess.Popen(
        [autoops_executable(), "--json", "replay", source, "--workers", workers,
         "--progress-file", str(progress)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL if fifo else subprocess.PIPE, text=True,
        env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")),
    )  # fmt: skip
    feed = open(source, "w", encoding="utf-8") if fifo else process.stdin  # noqa: SIM115
    assert feed is not None
    first = lines[:5] if pace else lines[:50]
    for line in first if pace else ["\n".join(first)]:
        feed.write(line + "\n")
        feed.flush()
        time.sleep(pace)
    wait_for_progress(progress, process, len(first))  # the pipe is open: nothing more comes
    lines = [*first, *lines[50:]] if pace else lines
    feed.write("".join(line + "\n" for line in lines[len(first) :]))
    if fifo:
        feed.close()
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert json.loads(stdout)["events_processed"] == len(lines)


def start_slow_workers(directory: Path, events: Path, start_s: float) -> subprocess.Popen[str]:
    """``replay --workers 2`` whose workers take ``start_s`` to start (their orchestrator's
    factory sleeps; the parent's does not), once both workers exist: the parent's stop
    handlers are in place by then, the workers' not yet."""
    (directory / "slow_start.py").write_text(
        "import sys, time\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "def factory():\n"
        "    if '--worker' in sys.argv:\n"
        f"        time.sleep({start_s})\n"
        "    return RetailOrchestrator()\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [autoops_executable(), "--json", "replay", str(events), "--workers", "2",
         "--orchestrator", "slow_start:factory"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        cwd=directory, env=clean_env(AUTOOPS_HOME=str(directory / "home")),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(child_pids(process.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return process


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_while_the_workers_start_is_not_lost(tmp_path: Path, signum: int, code: int) -> None:
    """The workers take 2 s to start here (their orchestrator's factory sleeps), while the
    parent fills their pipes with the whole file. A stop passed on to them then is held
    until their handlers are in place, not dropped: they stop before their first event,
    instead of replaying everything in their pipes."""
    process = start_slow_workers(tmp_path, events_file(tmp_path, 3000, seed=15), 2)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    summary = json.loads(stdout)
    assert summary["stopped_early"] == signal.Signals(signum).name
    assert summary["events_processed"] == 0
    assert "Traceback" not in stderr


def test_a_second_stop_ends_workers_that_never_got_started(tmp_path: Path) -> None:
    """The workers' orchestrator factory never returns: they hold the first stop (their
    handlers are not there yet), and a second one kills them, as a second stop gives up
    on everything else; the run ends with the signal's exit code, nothing recorded."""
    process = start_slow_workers(tmp_path, events_file(tmp_path, 300, seed=17), 3600)
    workers = child_pids(process.pid)
    deadline = time.monotonic() + 60
    # Stop after stop until it ends (two signals close together may count as one).
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert json.loads(stdout)["events_processed"] == 0
    assert not any(running(pid) for pid in workers)


def test_a_killed_parent_leaves_no_worker_behind(tmp_path: Path) -> None:
    events = events_file(tmp_path, 3000, seed=13)
    progress = tmp_path / "progress.jsonl"
    env = clean_env(AUTOOPS_HOME=str(tmp_path / "home"))
    process = start_replay(events, "killed", env, progress, "--workers", "2")
    wait_for_progress(progress, process, 50)
    workers = child_pids(process.pid)
    assert len(workers) == 2
    process.kill()
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(running(pid) for pid in workers):
        time.sleep(0.1)
    assert not any(running(pid) for pid in workers)
    # What the parent reported before it died is in the store (durable before counted).
    reported = max(line["events_processed"] for line in progress_lines(progress))
    with contextlib.closing(
        sqlite3.connect(f"file:{tmp_path / 'home' / 'traces.db'}?mode=ro", uri=True)
    ) as db:
        assert db.execute("SELECT COUNT(*) FROM traces").fetchone()[0] >= reported


def test_more_workers_than_products_is_fine(tmp_path: Path) -> None:
    # Workers given no event (one product here) end with an empty summary, not an error.
    events = tmp_path / "one-product.jsonl"
    lines = [
        json.dumps({"event_id": f"e{number}", "timestamp": "2026-11-20T08:00:00Z",
                    "event_type": "demand_spike", "product_id": "PROD_001",
                    "data": {"current_stock": 10, "forecast_demand": 20 + number,
                             "current_price": 5.0, "unit_cost": 2.0}})
        for number in range(3)
    ]  # fmt: skip
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, summary, stderr = replay(tmp_path / "home", events, "--workers", "3")
    assert code == 0, stderr
    assert (summary["workers"], summary["events_processed"]) == (3, 3)


def replay_two_workers(
    directory: Path, events: Path, orchestrator: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``autoops --json replay EVENTS --workers 2 --orchestrator SPEC`` run in ``directory``
    (where the orchestrator's module is), its store in ``directory/home``."""
    return subprocess.run(
        [autoops_executable(), "--json", "replay", str(events), "--workers", "2",
         "--orchestrator", orchestrator],
        check=False, capture_output=True, text=True, cwd=directory, timeout=300,
        stdin=subprocess.DEVNULL, env=clean_env(AUTOOPS_HOME=str(directory / "home"), **env),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("death", "said"),
    [
        ("os._exit(9)", "ended with exit code 9 before its summary (its error is above)"),
        ("os.kill(os.getpid(), 9)", "was killed by SIGKILL before its summary"),
    ],
)
def test_a_worker_that_dies_fails_the_run_with_the_others_summary(
    tmp_path: Path, death: str, said: str
) -> None:
    events = events_file(tmp_path, 200, seed=14)
    doomed = json.loads(events.read_text(encoding="utf-8").splitlines()[100])["product_id"]
    (tmp_path / "dying.py").write_text(
        "import os\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "class Dying(RetailOrchestrator):\n"
        "    def handle(self, event):\n"
        f"        if event.product_id == {doomed!r} and os.environ.get('DIE_IN_WORKER'):\n"
        f"            {death}  # no summary, as after the OOM killer\n"
        "        return super().handle(event)\n",
        encoding="utf-8",
    )
    done = replay_two_workers(tmp_path, events, "dying:Dying", DIE_IN_WORKER="1")
    assert done.returncode == 1, done.stderr
    assert "replay worker" in done.stderr
    assert said in done.stderr
    summary = json.loads(done.stdout)
    assert 0 < summary["events_processed"] < 200
    # It says why the run ended early, and the event read when the worker was found dead
    # counts (it was in no count: 200 lines added up to 199).
    assert said in summary["stopped_early"]
    assert summary["events_total"] == summary["lines_read"]
    assert summary["lines_read"] + summary["lines_not_read"] == 200


@pytest.mark.parametrize(("signal_name", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_sent_to_one_worker_stops_the_run(
    tmp_path: Path, signal_name: str, code: int
) -> None:
    """SIGTERM or SIGINT to a worker alone (``kill`` of its pid, a service manager that
    signals every process): the worker stopped and exited 0 as it does for its parent's stop,
    and the parent, fed no further, passed the rest of the file off as a clean run (exit 0,
    no stop line, ``stopped_early`` null). The run stops as if the parent had been sent it."""
    events = events_file(tmp_path, 300, seed=14)
    doomed = json.loads(events.read_text(encoding="utf-8").splitlines()[100])["product_id"]
    (tmp_path / "stopping.py").write_text(
        "import os, signal\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "class Stopping(RetailOrchestrator):\n"
        "    sent = False\n\n"
        "    def handle(self, event):\n"
        f"        if event.product_id == {doomed!r} and not Stopping.sent:\n"
        "            Stopping.sent = True\n"
        f"            os.kill(os.getpid(), signal.{signal_name})\n"
        "        return super().handle(event)\n",
        encoding="utf-8",
    )
    done = replay_two_workers(tmp_path, events, "stopping:Stopping")
    assert done.returncode == code, done.stderr
    assert f"stopped by {signal_name} at line" in done.stderr
    summary = json.loads(done.stdout)
    assert summary["stopped_early"] == signal_name
    stored = ids(tmp_path / "home" / "traces.db")
    assert len(stored["traces"]) == summary["traces_recorded"] == summary["events_processed"]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_orchestrator_that_exits_fails_its_events_not_the_run(
    tmp_path: Path, workers: str
) -> None:
    """An orchestrator calling sys.exit() (or raising KeyboardInterrupt or CancelledError)
    ended a replay with its exit code (3: "invalid configuration") and no summary; with
    workers, the worker died and the counts left disagreed with the store. Each is now that
    event's failure."""
    (tmp_path / "exiting.py").write_text(
        "import sys\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "class Exiting(RetailOrchestrator):\n"
        "    def handle(self, event):\n"
        "        if event.event_id.endswith('3'):\n"
        "            sys.exit(3)\n"
        "        if event.event_id.endswith('5'):\n"
        "            raise KeyboardInterrupt\n"
        "        if event.event_id.endswith('7'):\n"
        "            import asyncio\n"
        "            raise asyncio.CancelledError\n"
        "        return super().handle(event)\n",
        encoding="utf-8",
    )
    events = events_file(tmp_path, 40, seed=4)
    done = run("--json", "replay", str(events), "--workers", workers,
               "--orchestrator", "exiting:Exiting",
               env=clean_env(AUTOOPS_HOME=str(tmp_path / "home"), PYTHONPATH=str(tmp_path)))  # fmt: skip
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert summary["events_failed"] == 12
    assert summary["events_processed"] == 28
    assert "12 event(s) failed inside the agents" in done.stderr
    stored = ids(tmp_path / "home" / "traces.db")
    assert len(stored["traces"]) == summary["traces_recorded"] == 40
    assert len(stored["observations"]) == summary["observations_recorded"]
    assert len(stored["scores"]) == summary["scores_recorded"]


def test_a_worker_killed_after_a_commit_before_its_report_is_counted_from_the_store(
    tmp_path: Path,
) -> None:
    """SIGKILL (the OOM killer) between a worker's commit and its line about it: the group
    was on disk, but the parent counted only what the worker had reported, and called the
    rest "read but not recorded". It now asks the store about the events it sent that were
    not reported: the summary equals the store. (The worker kills itself right after its
    second group commit, before it can say so.)"""
    (tmp_path / "dies_after_commit.py").write_text(
        "import os, signal, sys\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n"
        "from config.store.local_store import LocalStore\n\n"
        "def factory():\n"
        "    if '--worker' in sys.argv and os.environ.get('DIE_IN') == str(os.getppid()):\n"
        "        real, writes = LocalStore.write, []\n"
        "        def write(self, spans, scores=()):\n"
        "            real(self, spans, scores)\n"
        "            writes.append(1)\n"
        "            if len(writes) == 2:\n"
        "                os.kill(os.getpid(), signal.SIGKILL)\n"
        "        LocalStore.write = write\n"
        "    return RetailOrchestrator()\n",
        encoding="utf-8",
    )
    events = events_file(tmp_path, 600, seed=21)
    home = tmp_path / "home"
    script = (
        "import os, sys\n"
        "os.environ['DIE_IN'] = str(os.getpid())\n"
        "from autoops_cli.main import main\n"
        "sys.argv = ['autoops', *sys.argv[1:]]\n"
        "main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "--json", "replay", str(events), "--workers", "2",
         "--orchestrator", "dies_after_commit:factory"],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
        env=clean_env(AUTOOPS_HOME=str(home), PYTHONPATH=str(tmp_path)),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "was killed by SIGKILL before its summary" in done.stderr
    summary = json.loads(done.stdout)
    stored = ids(home / "traces.db")
    assert summary["traces_recorded"] == len(stored["traces"]) < 600
    assert summary["observations_recorded"] == len(stored["observations"])
    assert summary["scores_recorded"] == len(stored["scores"])
    assert summary["events_processed"] + summary["events_failed"] == len(stored["traces"])


def test_the_workers_apply_the_settings_the_run_began_with(tmp_path: Path) -> None:
    """Each worker read the configuration files again as it started: a file changed in
    between (here by the parent's own orchestrator factory, after the parent read it) gave
    workers with tracing off, while the run announced and summed up tracing on, exit 0."""
    (tmp_path / "autoops.toml").write_text("[langfuse]\nsample_rate = 1.0\n", encoding="utf-8")
    (tmp_path / "edit_config.py").write_text(
        "import pathlib, sys\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "def factory():\n"
        "    if '--worker' not in sys.argv:\n"
        "        pathlib.Path('autoops.toml').write_text("
        "'[langfuse]\\ntracing_enabled = false\\n')\n"
        "    return RetailOrchestrator()\n",
        encoding="utf-8",
    )
    events = events_file(tmp_path, 40, seed=21)
    done = subprocess.run(
        [autoops_executable(), "--json", "replay", str(events), "--workers", "2",
         "--orchestrator", "edit_config:factory"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, stdin=subprocess.DEVNULL,
        env=clean_env(AUTOOPS_HOME=str(tmp_path / "home")), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["traces_recorded"] == summary["events_processed"] == 40
    with sqlite3.connect(tmp_path / "home" / "traces.db") as db:
        assert db.execute("SELECT count(*) FROM traces").fetchone()[0] == 40
