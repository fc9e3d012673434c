"""How a replay ends: what was read, recorded, rejected and not read, for every way it ends.

Files that are not JSON Lines are refused before a store exists; a custom orchestrator that
is not one is a usage error; the live line shows how far the file was read.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autoops_cli.actions.replay import progress_text
from autoops_cli.simulation.engine import ReplayProgress, ReplaySummary
from autoops_cli.simulation.generator import generate_events
from tests.cli.test_replay import EXAMPLE
from tests.conftest import Cli
from tests.support.replay_runs import clean_env, progress_lines, start_replay
from tests.support.serve_process import autoops_executable


def home() -> Path:
    return Path(os.environ["AUTOOPS_HOME"])


def traces_in_store() -> int:
    with sqlite3.connect(home() / "traces.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM traces").fetchone()[0])


def event_lines(count: int, seed: int = 7) -> list[str]:
    return [json.dumps(event) for event in generate_events(count, seed=seed)]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_whole_file_was_read(cli: Cli, workdir: Path) -> None:
    path = write_lines(workdir / "events.jsonl", [*event_lines(10)[:5], "", *event_lines(10)[5:]])
    summary = json.loads(cli("replay", str(path), "--json").stdout)
    assert (summary["lines_read"], summary["lines_not_read"]) == (11, 0)
    assert summary["events_total"] == summary["events_processed"] == 10


def test_strict_says_where_it_stopped_and_what_was_not_read(cli: Cli, workdir: Path) -> None:
    lines = event_lines(100)
    path = write_lines(workdir / "strict.jsonl", [*lines[:83], "oops", *lines[83:]])
    result = cli("replay", str(path), "--strict", "--json")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert summary["lines_read"] == 84
    assert summary["lines_not_read"] == 17
    assert (summary["events_processed"], summary["events_rejected"]) == (83, 1)
    assert "line 84 rejected (--strict): the run stopped there" in result.stderr
    assert "83 event(s) recorded, 1 rejected, 17 line(s) not read" in result.stderr
    assert "the other events were recorded" not in result.stderr
    assert traces_in_store() == 83
    dry = cli("replay", str(path), "--strict", "--dry-run")
    assert dry.exit_code == 6
    assert "83 event(s) replayed, nothing recorded (--dry-run), 1 rejected" in dry.stderr
    # Sampled-out events were replayed, not recorded: the line counts the traces on disk.
    sampled = cli("--json", "replay", str(path), "--sample-rate", "0.3", "--run-id", "sampled")
    kept = json.loads(sampled.stdout)["traces_recorded"]
    assert 0 < kept < 100
    assert f"the other 100 event(s) were replayed, {kept} recorded" in sampled.stderr
    table = cli("replay", str(path), "--strict").stdout
    assert "lines_not_read" in table and "| 17 " in table


def test_limit_counts_the_lines_left(cli: Cli, workdir: Path) -> None:
    path = write_lines(workdir / "events.jsonl", event_lines(30))
    summary = json.loads(cli("replay", str(path), "--limit", "10", "--json").stdout)
    assert (summary["lines_read"], summary["lines_not_read"]) == (10, 20)
    assert summary["events_processed"] == traces_in_store() == 10


def test_a_truncated_gzip_stops_with_the_summary_of_what_was_read(cli: Cli, workdir: Path) -> None:
    whole = "".join(line + "\n" for line in event_lines(400)).encode()
    packed = gzip.compress(whole)
    path = workdir / "events.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    result = cli("replay", str(path), "--json")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)  # the summary is printed, --json too
    read = summary["lines_read"]
    assert 0 < read < 400
    assert summary["lines_not_read"] is None  # a broken stream cannot say how much is left
    assert summary["read_error"].startswith(f"cannot read events from {path} at line {read + 1}")
    assert summary["events_processed"] == traces_in_store() == read
    assert f"the run stopped after line {read}: {read} event(s) recorded" in result.stderr
    assert "Traceback" not in result.stderr


def test_stdin_to_its_end(cli: Cli) -> None:
    text = "".join(line + "\n" for line in event_lines(12))
    summary = json.loads(cli("replay", "-", "--json", input=text).stdout)
    assert (summary["lines_read"], summary["lines_not_read"]) == (12, 0)


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "no events (the file is empty)"),
        (b'[{"event_type": "demand_spike"}]\n', "a JSON array, not JSON Lines"),
        (b"event_type,product_id\ndemand_spike,P1\n", "CSV, not JSON Lines"),
    ],
)
def test_a_file_that_is_not_json_lines_creates_no_store(
    cli: Cli, workdir: Path, content: bytes, said: str
) -> None:
    path = workdir / "events.jsonl"
    path.write_bytes(content)
    result = cli("replay", str(path), "--json")
    assert result.exit_code == 6
    assert said in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not home().exists()
    # A summary of nothing for the CI step reading it (it got no document at all); the
    # terminal gets the error line alone.
    summary = json.loads(result.stdout)
    assert said in summary["read_error"]
    assert (summary["lines_read"], summary["events_total"], summary["traces_recorded"]) == (0, 0, 0)
    plain = cli("replay", str(path))
    assert (plain.exit_code, plain.stdout) == (6, "")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"event_type,product_id\ndemand_spike,P1\n", "CSV, not JSON Lines"),
        (b'[{"event_type": "demand_spike"}]\n', "a JSON array, not JSON Lines"),
    ],
)
def test_a_small_input_piped_at_once_is_refused_as_a_file_is(
    workdir: Path, content: bytes, said: str
) -> None:
    """Under 4 KB, a pipe's head was taken for part of a feed and judged line by line: the
    documented refusal and its hint were lost (a run of rejected lines instead)."""
    # The whole input and its end are in the pipe before the replay starts: no pause on a
    # busy machine can fall between them.
    read_end, write_end = os.pipe()
    os.write(write_end, content)
    os.close(write_end)
    try:
        done = subprocess.run(
            [autoops_executable(), "replay", "-"], stdin=read_end, capture_output=True,
            env=clean_env(AUTOOPS_HOME=str(workdir / "home")), timeout=60, check=False,
        )  # fmt: skip
    finally:
        os.close(read_end)
    assert done.returncode == 6, done.stderr
    assert f"standard input: {said}" in done.stderr.decode()
    assert not (workdir / "home").exists()


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("os:path", "path is a module, not a factory"),
        ("os:sep", "sep is a str value, not a factory"),
        ("json:JSONDecodeError", "calling JSONDecodeError() failed: TypeError"),
        ("os:getcwd", "the factory's result has no handle(event) method"),
        ("nowhere:build", "cannot load it"),
        ("no_colon", "expected module:factory"),
        # sys.exit() in the factory ended the replay, exit 0, nothing said.
        ("sys:exit", "calling exit() failed: SystemExit"),
    ],
)
def test_an_orchestrator_that_is_not_one_is_a_usage_error(
    cli: Cli, workdir: Path, spec: str, said: str
) -> None:
    path = write_lines(workdir / "events.jsonl", event_lines(3))
    result = cli("replay", str(path), "--orchestrator", spec)
    assert result.exit_code == 2, result.stderr
    assert said in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert not home().exists()


ODD_OUTCOMES = """
import asyncio, dataclasses, decimal, threading

@dataclasses.dataclass
class Outcome:
    decisions: dict
    conflicts_detected: int = 0
    lock: object = dataclasses.field(default_factory=threading.Lock)

class Odd:
    def __init__(self):
        self.n = 0

    def handle(self, event):
        self.n += 1
        outcomes = [
            {"decisions": {"a": {}}, "conflicts_detected": "two"},
            {"decisions": "abc"},
            {"decisions": {"a": {}}, "conflicts_resolved": float("nan")},
            {"decisions": {3: {}, None: {}, ("a", "b"): {}}},
            {"decisions": {"pricing_agent": {}}, "conflicts_detected": 1},
            {"decisions": {"x": {}}, "conflicts_detected": decimal.Decimal(2)},
            Outcome({"y": {}}, 2**53 + 1),  # exact, and its lock is no reason to fail
        ]
        return outcomes[(self.n - 1) % len(outcomes)]

def cancelled():
    raise asyncio.CancelledError("gone")
"""


def test_an_outcome_the_run_cannot_count_is_that_events_failure(workdir: Path) -> None:
    """ "two" conflicts, NaN, a string of decisions (counted letter by letter), keys that do
    not sort: the run ended with an internal error (the rest of the file never replayed),
    or at its summary, and the decisions counted were untrue."""
    (workdir / "odd_outcomes.py").write_text(ODD_OUTCOMES, encoding="utf-8")
    events = write_lines(workdir / "events.jsonl", event_lines(14))

    def replay_with(
        home: str, orchestrator: str, *options: str, output: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """A replay of ``events`` by ``orchestrator``, in a home of its own."""
        return subprocess.run(
            [autoops_executable(), *output, "replay", str(events), "--orchestrator", orchestrator,
             *options],
            check=False, capture_output=True, text=True, timeout=120, cwd=workdir,
            env=clean_env(AUTOOPS_HOME=str(workdir / home)),
        )  # fmt: skip

    replay = replay_with("home", "odd_outcomes:Odd", output=("--json",))
    assert replay.returncode == 1, replay.stderr  # events failed in the agents
    assert "internal error" not in replay.stderr and "Traceback" not in replay.stderr
    summary = json.loads(replay.stdout)
    assert (summary["events_failed"], summary["events_processed"]) == (6, 8)
    assert summary["decisions"] == {
        "3": 2, "None": 2, "('a', 'b')": 2, "pricing_agent": 2, "x": 2, "y": 2
    }  # fmt: skip
    # A Decimal and a dataclass's counts too, exactly (through float, 2**53 + 1 was not).
    assert summary["conflicts_detected"] == 2 * (1 + 2 + 2**53 + 1)
    assert traces_in_store_at(workdir / "home") == summary["traces_recorded"] == 14
    # A factory raising CancelledError: a usage error, not a traceback.
    cancelled = replay_with("cancelled", "odd_outcomes:cancelled")
    assert cancelled.returncode == 2, cancelled.stderr
    assert "calling cancelled() failed: CancelledError" in cancelled.stderr
    # A dry run records nothing: the message said the failures were ERROR traces.
    dry = replay_with("dry", "odd_outcomes:Odd", "--dry-run")
    assert "6 event(s) failed inside the agents (nothing recorded)" in dry.stderr
    # Sampled out, the failed events are no ERROR traces: the message said they all were.
    sampled = replay_with("sampled", "odd_outcomes:Odd", "--sample-rate", "0")
    assert sampled.returncode == 1, sampled.stderr
    assert "(recorded as ERROR traces, those the sample rate kept)" in sampled.stderr
    # A rejected line as well: its exit code, and the failures still said (they were not).
    with events.open("a", encoding="utf-8") as file:
        file.write("not an event\n")
    both = replay_with("both", "odd_outcomes:Odd")
    assert both.returncode == 6, both.stderr
    assert "1 line(s) rejected" in both.stderr
    assert "6 event(s) failed inside the agents (recorded as ERROR traces)" in both.stderr


def progress(done: int, elapsed: float, read: int | None, total: int | None) -> str:
    summary = ReplaySummary(run_id="run", destination="local", events_processed=done)
    return progress_text(ReplayProgress("replaying", summary, None, elapsed, read, total))


def test_the_live_line_shows_how_far_the_file_was_read_and_the_time_left() -> None:
    line = progress(2500, 10.0, 250_000, 1_000_000)
    assert line == "2,500 events recorded · 25% of 1.0 MB · 250/s · 30 s left"
    assert progress(100, 1.0, 10_000, 8_000_000).endswith("· 13 min 19 s left")
    # Standard input: no size, so a count and a rate only.
    assert progress(400, 2.0, None, None) == "400 events recorded · 200/s"


def test_the_time_left_follows_what_is_recorded_not_what_is_read() -> None:
    # --workers: the reader is 4,000 events ahead of the workers (their pipes); half of what
    # was read is recorded, so a quarter of the file is done, not half.
    summary = ReplaySummary(
        run_id="run", destination="local", events_total=8000, events_processed=4000
    )
    line = progress_text(ReplayProgress("replaying", summary, None, 10.0, 500_000, 1_000_000))
    assert line == "4,000 events recorded · 25% of 1.0 MB · 400/s · 30 s left"


def test_the_time_left_ends_at_the_limit_when_it_comes_first() -> None:
    summary = ReplaySummary(
        run_id="run", destination="local", events_total=1000, events_processed=1000
    )
    # --limit 4000 of a file that would take four times as long: 30 s left, not 3 min 10 s.
    line = progress_text(
        ReplayProgress("replaying", summary, None, 10.0, 50_000, 1_000_000, limit=4000)
    )
    assert line.endswith("· 100/s · 30 s left")
    # The file ending first (its last events) wins over a limit far away.
    summary.events_total = summary.events_processed = 3900
    line = progress_text(
        ReplayProgress("replaying", summary, None, 39.0, 975_000, 1_000_000, limit=100_000)
    )
    assert line.endswith("· 1 s left")


@pytest.mark.parametrize(("stop", "stopped_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_once_every_event_is_recorded_keeps_the_summary(
    workdir: Path, stop: signal.Signals, stopped_code: int
) -> None:
    """A signal landing after the last event (as a CI timeout may) lost the summary and the
    progress file's ``done`` line; SIGTERM killed the process outright. Whether it lands
    before the run ends (a stop, 130/143) or after (ignored, 0), the summary is printed."""
    events = workdir / "events.jsonl"
    events.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    total = sum(1 for line in events.read_text(encoding="utf-8").splitlines() if line.strip())
    progress = workdir / "progress.jsonl"
    env = clean_env(AUTOOPS_HOME=str(workdir / "home"))
    replay = start_replay(events, "late-stop", env, progress)
    while replay.poll() is None:
        lines = progress_lines(progress)
        if lines and lines[-1]["events_processed"] == total:
            break
        time.sleep(0.005)
    replay.send_signal(stop)
    stdout, stderr = replay.communicate(timeout=120)
    assert replay.returncode in (0, stopped_code), stderr
    summary = json.loads(stdout)
    assert summary["events_processed"] == total
    lines = progress_lines(progress)
    assert lines[-1]["phase"] == "done" and lines[-1]["exit_code"] == replay.returncode
    elapsed = [line["elapsed_s"] for line in lines]
    assert elapsed == sorted(elapsed), elapsed  # the done line said the run's duration


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_after_the_summary_keeps_the_runs_exit_code(
    workdir: Path, stop: signal.Signals
) -> None:
    """A signal while the interpreter shuts down, after the summary and the done line: the
    process died by the signal (-15) though it had reported exit 0."""
    events = workdir / "events.jsonl"
    events.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    progress = workdir / "progress.jsonl"
    env = clean_env(AUTOOPS_HOME=str(workdir / "home"))
    replay = start_replay(events, "after-summary", env, progress)
    while replay.poll() is None:
        lines = progress_lines(progress)
        if lines and lines[-1]["phase"] == "done":
            break
        time.sleep(0.002)
    replay.send_signal(stop)
    stdout, stderr = replay.communicate(timeout=120)
    assert replay.returncode == 0, stderr
    assert (
        json.loads(stdout)["events_processed"] == progress_lines(progress)[-1]["events_processed"]
    )


# The process stops itself at a chosen moment of its start: on the first import of a module
# (an import hook), before the console script's ``main`` is handed the command line.
# Both signals as a terminal's shell leaves them (a test runner's worker may ignore SIGINT).
STOPPED_AT_IMPORT = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
module, stop = sys.argv[1:3]
class StopAtImport:
    def find_spec(self, name, path=None, target=None):
        if name == module:
            sys.meta_path.remove(self)
            os.kill(os.getpid(), getattr(signal, stop))
        return None
sys.meta_path.insert(0, StopAtImport())
sys.argv = ["autoops", *sys.argv[3:]]
from autoops_cli.main import main
main()
"""


@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("module", ["typer", "autoops_cli.app"])
def test_a_stop_while_the_cli_starts_exits_quietly(
    workdir: Path, stop: str, code: int, module: str
) -> None:
    """Start-up is imports: a Ctrl-C there printed the traceback of the import it hit, and a
    SIGTERM killed the process by the signal (-15) instead of the documented 143."""
    events = write_lines(workdir / "events.jsonl", event_lines(5))
    replay = subprocess.run(
        [sys.executable, "-c", STOPPED_AT_IMPORT, module, stop, "replay", str(events)],
        check=False, capture_output=True, text=True, timeout=120,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    assert replay.returncode == code
    assert replay.stderr == ""
    assert not (workdir / "home" / "traces.db").exists()


def write_stopping_orchestrator(workdir: Path, stop: str) -> None:
    """``stopping_orchestrator:factory``, whose import sends the replay ``stop``."""
    (workdir / "stopping_orchestrator.py").write_text(
        "import os, signal\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        f"os.kill(os.getpid(), signal.{stop})\n\n"
        "def factory():\n"
        "    return RetailOrchestrator()\n",
        encoding="utf-8",
    )


@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_while_the_replay_sets_up_ends_it_before_its_first_event(
    workdir: Path, stop: str, code: int
) -> None:
    """A stop while the replay loads its settings, orchestrator and store (here: while the
    orchestrator's module is imported) killed it by the signal, or gave KeyboardInterrupt's
    exit with no summary. It is now held until the run exists, which ends at once: the
    summary, the documented code, nothing recorded and the whole file not read."""
    write_stopping_orchestrator(workdir, stop)
    events = write_lines(workdir / "events.jsonl", event_lines(5))
    replay = subprocess.run(
        [autoops_executable(), "--json", "replay", str(events),
         "--orchestrator", "stopping_orchestrator:factory"],
        check=False, capture_output=True, text=True, timeout=120, cwd=workdir,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    assert replay.returncode == code, replay.stderr
    summary = json.loads(replay.stdout)
    assert summary["stopped_early"] == stop
    assert (summary["events_processed"], summary["lines_not_read"]) == (0, 5)
    assert "Traceback" not in replay.stderr
    assert traces_in_store_at(workdir / "home") == 0


@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_during_set_up_ends_a_run_whose_input_would_block(
    workdir: Path, stop: str, code: int
) -> None:
    """A stop while the orchestrator loaded was held for the run, which then waited on a
    FIFO with no writer for ever (a second stop ended it with no summary)."""
    write_stopping_orchestrator(workdir, stop)
    fifo = workdir / "feed"
    os.mkfifo(fifo)
    replay = subprocess.run(
        [autoops_executable(), "--json", "replay", str(fifo),
         "--orchestrator", "stopping_orchestrator:factory"],
        check=False, capture_output=True, text=True, timeout=120, cwd=workdir,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    assert replay.returncode == code, replay.stderr
    assert json.loads(replay.stdout)["stopped_early"] == stop
    assert f"stopped by {stop} while waiting for the input's first line" in replay.stderr


def test_an_input_of_blank_lines_only_has_no_events_whatever_its_length(workdir: Path) -> None:
    """Longer than the 4 KB the format check reads, blank lines were a run of 0 events,
    exit 0 (a short file of them: "no events", exit 6)."""
    path = workdir / "blank.jsonl"
    path.write_bytes(b"\n" * 5000)
    replay = subprocess.run(
        [autoops_executable(), "--json", "replay", str(path)],
        check=False, capture_output=True, text=True, timeout=120,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    assert replay.returncode == 6, replay.stderr
    assert f"{path}: no events (only blank lines)" in replay.stderr
    assert json.loads(replay.stdout)["lines_read"] == 5000


@pytest.mark.parametrize(
    ("first", "code", "rejected"), [("\n", 0, 0), ("event_id,timestamp\n", 6, 1)]
)
def test_a_feed_that_pauses_after_its_first_line_is_read_on(
    workdir: Path, first: str, code: int, rejected: int
) -> None:
    """The format check took the first line a pipe had so far for the whole input, or for
    its head: a blank line was "no events (the file is empty)", a header line made it all
    CSV, exit 6, and the events that came next were never read. The same bytes in a file
    skip the blank line, reject the header and replay the rest."""
    replay = subprocess.Popen(
        [autoops_executable(), "--json", "replay", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    assert replay.stdin is not None
    replay.stdin.write(first)
    replay.stdin.flush()
    deadline = time.monotonic() + 60  # until it waits for more (a hang only reaches this)
    while not blocked_on_input(replay.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    stdout, stderr = replay.communicate("\n".join(event_lines(5)) + "\n", timeout=120)
    assert replay.returncode == code, stderr
    summary = json.loads(stdout)
    assert (summary["events_processed"], summary["events_rejected"]) == (5, rejected)
    assert traces_in_store_at(workdir / "home") == 5


def test_a_second_stop_while_a_plugin_loads_is_the_stops_exit_code(workdir: Path) -> None:
    """A second Ctrl-C while a slow plugin imported: the run gives up at once, as
    documented, with 130; the loader took its SystemExit for the plugin's and exited 2."""
    (workdir / "slow_plugin.py").write_text(
        "import pathlib, time\npathlib.Path('importing').touch()\ntime.sleep(60)\n",
        encoding="utf-8",
    )
    events = write_lines(workdir / "events.jsonl", event_lines(3))
    replay = subprocess.Popen(
        [autoops_executable(), "replay", str(events), "--orchestrator", "slow_plugin:make"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=workdir,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
    )  # fmt: skip
    deadline = time.monotonic() + 60  # until the plugin imports (only a hang reaches this)
    while not (workdir / "importing").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    # The first is held for the run; the next gives up. Sent until it ends: two signals
    # close together may arrive as one.
    while replay.poll() is None and time.monotonic() < deadline:
        replay.send_signal(signal.SIGINT)
        time.sleep(0.2)
    _, stderr = replay.communicate(timeout=60)
    assert replay.returncode == 130, stderr
    assert "cannot load it" not in stderr


def blocked_on_input(pid: int) -> bool:
    """Whether the process sleeps in the kernel waiting on a pipe or for a FIFO's writer."""
    try:
        channel = Path(f"/proc/{pid}/wchan").read_text(encoding="utf-8")
    except OSError:
        return False
    return any(word in channel for word in ("pipe", "partner", "fifo"))


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("source", ["fifo", "stdin"])
@pytest.mark.parametrize(("stop", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_stop_while_waiting_for_the_first_input_ends_the_run_at_once(
    workdir: Path, source: str, stop: str, code: int
) -> None:
    """A FIFO with no writer yet, or standard input of a feed that has not started: the
    replay waits in a system call Python resumes after the signal handler, so a first stop
    was ignored (docker stop then killed it) and a second ended it with no summary."""
    fifo = workdir / "feed"
    os.mkfifo(fifo)
    feed = subprocess.Popen(["sleep", "120"], stdout=subprocess.PIPE)  # writes nothing
    replay = None
    try:
        replay = subprocess.Popen(
            [autoops_executable(), "--json", "replay", str(fifo) if source == "fifo" else "-"],
            stdin=feed.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
        )  # fmt: skip
        deadline = time.monotonic() + 60  # only a hang reaches it
        while not blocked_on_input(replay.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        replay.send_signal(getattr(signal, stop))
        stdout, stderr = replay.communicate(timeout=60)
    finally:
        for process in (feed, replay):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert replay.returncode == code, stderr
    summary = json.loads(stdout)
    assert (summary["stopped_early"], summary["lines_read"]) == (stop, 0)
    assert f"stopped by {stop} while waiting for the input's first line" in stderr
    assert "Traceback" not in stderr
    assert traces_in_store_at(workdir / "home") == 0


def traces_in_store_at(directory: Path) -> int:
    if not (directory / "traces.db").exists():
        return 0
    with sqlite3.connect(directory / "traces.db") as db:
        return int(db.execute("SELECT COUNT(*) FROM traces").fetchone()[0])


def test_a_progress_file_that_names_another_file_is_refused_and_left_alone(
    cli: Cli, workdir: Path
) -> None:
    """``--progress-file`` truncated whatever it named: the store of earlier runs (every
    trace gone, exit 0), the event file being replayed (or a link to it). A file that is
    not a progress file is now refused (exit 2) and kept; an earlier progress file is
    overwritten, as before."""
    events = write_lines(workdir / "events.jsonl", event_lines(10))
    assert cli("replay", str(events)).exit_code == 0
    (workdir / "link.jsonl").symlink_to(events)
    notes = workdir / "notes.txt"
    notes.write_text("keep me\n", encoding="utf-8")
    original = events.read_bytes()
    for named in (home() / "traces.db", events, workdir / "link.jsonl", notes):
        result = cli("replay", str(events), "--progress-file", str(named))
        assert result.exit_code == 2, result.both
        assert f"--progress-file {named}: " in result.stderr
    assert events.read_bytes() == original
    assert notes.read_text(encoding="utf-8") == "keep me\n"
    assert traces_in_store() == 10
    # A store not created yet, or SQLite's files beside one: refused by name (SQLite took
    # the empty progress file for its new database, and the store was corrupt by the
    # 39,000th event).
    fresh = workdir / "fresh-home"
    for named in (fresh / "traces.db", home() / "traces.db-wal"):
        result = cli("replay", str(events), "--progress-file", str(named),
                     env={"AUTOOPS_HOME": str(named.parent)})  # fmt: skip
        assert result.exit_code == 2, result.both
        assert f"it is the store {named.parent / 'traces.db'}, which the run writes" in (
            result.stderr
        )
    assert not fresh.exists()
    progress = workdir / "progress.jsonl"
    for _ in range(2):
        assert cli("replay", str(events), "--progress-file", str(progress)).exit_code == 0
        lines = progress_lines(progress)
        assert lines[0]["phase"] != "done" and lines[-1]["phase"] == "done"
        assert sum(line["phase"] == "done" for line in lines) == 1


@pytest.mark.parametrize(
    "command",
    [
        ("health-check", "--junit", "{target}"),
        ("events", "generate", "--count", "3", "--output", "{target}"),
    ],
    ids=["junit", "events-output"],
)
def test_an_output_file_that_holds_something_else_is_refused(
    cli: Cli, workdir: Path, command: tuple[str, ...]
) -> None:
    """``health-check --junit`` and ``events generate --output`` replaced whatever they
    named: the local store (every trace, and in langfuse mode the outbox, gone; exit 0), an
    event file, a configuration. They refuse a file that is not their own (exit 2) and
    leave it alone; their own earlier output is written over, as before."""
    events = write_lines(workdir / "events.jsonl", event_lines(5))
    assert cli("replay", str(events)).exit_code == 0
    config = workdir / "autoops.toml"
    config.write_text("[langfuse]\nsample_rate = 1.0\n", encoding="utf-8")
    kept = {path: path.read_bytes() for path in (events, config)}
    package = workdir / "package.json"  # JSON, not events
    package.write_text('{"name": "pkg", "version": "1.0.0"}\n', encoding="utf-8")
    report = workdir / "pytest.xml"  # JUnit, not health-check's
    report.write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1">'
                      "</testsuite></testsuites>\n", encoding="utf-8")  # fmt: skip
    ci_step = workdir / "ci-step.sh"  # names the command: it was taken for its report
    ci_step.write_text("#!/bin/sh\nautoops health-check --strict --junit report.xml\n")
    kept |= {path: path.read_bytes() for path in (package, report, ci_step)}
    foreign = [home() / "traces.db", config, package, report, ci_step]
    if command[0] == "health-check":
        foreign.append(events)  # (an event file is events generate's own output)
    for target in foreign:
        result = cli(*(part.format(target=target) for part in command))
        assert result.exit_code == 2, result.both
        assert "the file exists and is not" in result.stderr
    assert {path: path.read_bytes() for path in kept} == kept
    assert traces_in_store() == 5
    output = workdir / "output.out"
    for _ in range(2):
        assert cli(*(part.format(target=output) for part in command)).exit_code in (0, 1)
        assert output.stat().st_size > 0


def test_outputs_into_a_pipe_are_written_in_place_or_refused_without_a_reader(
    cli: Cli, workdir: Path
) -> None:
    """``events generate -o PIPE`` renamed a regular file over the pipe (over a device too:
    as root, ``-o /dev/null`` would replace the system's); ``health-check --junit PIPE``
    with no reader hung, printing nothing. A pipe is written where it is, and one no
    process reads is refused (exit 6) as ``--progress-file`` refuses it."""
    import stat

    fifo = workdir / "out.fifo"
    os.mkfifo(fifo)
    for command in (("events", "generate", "-n", "3", "-o", str(fifo)),
                    ("health-check", "--junit", str(fifo))):  # fmt: skip
        refused = cli(*command)
        assert refused.exit_code == 6, refused.both
        assert f"{fifo}: no process reads that pipe" in refused.stderr

    def generated_into(pipe: Path) -> bytes:
        """``events generate -n 3 -o PIPE`` with a reader there; what the reader got."""
        reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)
        try:
            written = cli("events", "generate", "-n", "3", "-o", str(pipe))
            received = os.read(reader, 1 << 16)
        finally:
            os.close(reader)
        assert written.exit_code == 0, written.both
        return received

    assert len(generated_into(fifo).decode().splitlines()) == 3
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    # A pipe named *.gz gets what its name says (it got plain text).
    gz_fifo = workdir / "out.jsonl.gz"
    os.mkfifo(gz_fifo)
    assert len(gzip.decompress(generated_into(gz_fifo)).decode().splitlines()) == 3
