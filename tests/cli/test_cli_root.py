"""The root app: help, version, global options, the error boundary, third-party loggers."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from autoops_cli import __version__
from autoops_cli.app import AutoopsGroup, hoist_output_flags, root
from config.errors import EXIT_CODE_MEANINGS, NetworkError
from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_SECRET, Cli
from tests.support.helpers import leaf_commands
from tests.support.paths import REPO_ROOT
from tests.support.serve_process import autoops_executable

README = REPO_ROOT / "README.md"


def test_help_lists_groups_with_summaries_and_exit_codes(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    assert "config" in result.stdout and "Validate, show and initialise" in result.stdout
    assert "completions" in result.stdout
    for code, meaning in EXIT_CODE_MEANINGS.items():
        assert f"{int(code)} {meaning}" in result.stdout
    assert cli().exit_code in (0, 2)  # no args prints help


def test_every_command_has_help_with_an_example(cli: Cli) -> None:
    commands = leaf_commands()
    assert len(commands) >= 5
    for path, command in commands:
        help_text = command.help or ""
        summary = help_text.strip().splitlines()[0] if help_text.strip() else ""
        assert summary, f"{path} has no help"
        assert "**Example:**" in help_text, f"{path} help has no example"
        result = cli(*path.split()[1:], "--help")
        assert result.exit_code == 0, path
        assert "Example:" in result.stdout, path


def test_every_command_is_in_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    for path, _ in leaf_commands():
        assert f"`{path}" in readme, f"{path} is missing from the README's command reference"


def test_readme_documents_every_exit_code() -> None:
    readme = README.read_text(encoding="utf-8")
    for code in EXIT_CODE_MEANINGS:
        assert re.search(rf"^\|\s*{int(code)}\s*\|", readme, re.M), f"exit code {int(code)}"


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"autoops {__version__} (langfuse SDK 5.")
    # With --json, a JSON document (it was the plain line, a JSON reader's error).
    for args in (("--json", "--version"), ("--version", "--json")):
        document = json.loads(cli(*args).stdout)
        assert document["autoops"] == __version__ and document["langfuse_sdk"].startswith("5.")


@pytest.mark.parametrize("group", [(), ("traces",), ("config",), ("buffer",)])
def test_a_group_run_bare_prints_its_help_and_no_empty_error(
    cli: Cli, group: tuple[str, ...]
) -> None:
    result = cli(*group)
    assert result.exit_code == 2
    assert "Usage" in result.stdout + result.stderr
    assert "error:" not in result.stderr


COMMANDS_OF = {"buffer": "status, flush, drop", "sampling": "show, set, reset"}


@pytest.mark.parametrize("args", [("buffer", "--json"), ("--json", "sampling")])
def test_a_group_run_bare_with_json_is_a_usage_error_not_a_help_text_on_stdout(
    cli: Cli, args: tuple[str, ...]
) -> None:
    """A job reading stdout as JSON got the group's help text there (exit 2, no error)."""
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    group = next(arg for arg in args if arg != "--json")
    assert result.stderr.splitlines() == [
        f"error: a command is needed: {COMMANDS_OF[group]}",
        f"hint: `autoops {group} --help` shows the usage",
    ]


def test_a_confirmation_with_standard_input_closed_is_refused_as_without_a_terminal(
    workdir: Path,
) -> None:
    """``buffer drop`` with stdin closed (``<&-``: ``sys.stdin`` is None) was an internal
    error (exit 1)."""
    done = subprocess.run(
        [autoops_executable(), "buffer", "drop", "--host", "http://127.0.0.1:9"],
        capture_output=True, text=True, check=False, timeout=60,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # nothing kept: nothing to confirm
    assert "nothing is kept" in done.stderr
    from config.delivery.outbox import SPANS, Outbox

    outbox = Outbox(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    outbox.add(SPANS, "http://127.0.0.1:9", b"batch", 1)
    outbox.close()
    done = subprocess.run(
        [autoops_executable(), "buffer", "drop", "--host", "http://127.0.0.1:9"],
        capture_output=True, text=True, check=False, timeout=60,
        preexec_fn=lambda: os.close(0),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "give --yes to confirm (not asked: no terminal)" in done.stderr


def test_a_host_that_is_not_utf8_is_a_usage_error(cli: Cli) -> None:
    """``buffer drop --host $'h\\xff'`` reached SQLite: an internal error (exit 1)."""
    for args in (("buffer", "drop", "--yes", "--host", "h\udcff"),
                 ("buffer", "flush", "--from", "h\udcff")):  # fmt: skip
        result = cli(
            *args, env={"LANGFUSE_PUBLIC_KEY": "pk-lf-1", "LANGFUSE_SECRET_KEY": "sk-lf-1"}
        )
        assert result.exit_code == 2, result.both
        assert "not UTF-8 text" in result.stderr


def test_events_that_cannot_be_written_say_why_even_where_nothing_can_be_removed(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only filesystem removing the temporary file that was never made failed too
    (EROFS, not "not found"): an internal error hid the reason (exit 1)."""
    import errno

    from autoops_cli.simulation import generator

    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(generator.os, "open", read_only)
    monkeypatch.setattr(generator.Path, "unlink", read_only)
    result = cli("events", "generate", "--count", "2", "--output", "out.jsonl")
    assert result.exit_code == 6, result.both
    assert "cannot write events to out.jsonl: Read-only file system" in result.stderr


@pytest.mark.parametrize(
    ("args", "said", "usage_of"),
    [
        (("config", "validate", "--no-such-flag"), "No such option: --no-such-flag",
         "autoops config validate"),
        (("nope",), "No such command 'nope'.", "autoops"),
        (("--json", "traces", "list", "--limit", "0"), "Invalid value for '--limit'",
         "autoops traces list"),
        (("replay", "events.jsonl", "--limit", "abc"), "Invalid value for '--limit'",
         "autoops replay"),
        (("buffer", "drop"), "Missing option '--host'", "autoops buffer drop"),
        # click's message over several lines, shown as escapes (\x0a\x09): one line
        (("completions", "show"), "Missing argument 'shell'. Choose from: bash, zsh, fish",
         "autoops completions show"),
        (("metrics", "--by", "hour  "), "'hour  ' is not one of", "autoops metrics"),
    ],
)  # fmt: skip
def test_a_usage_error_is_one_error_line_and_a_hint_exit_2(
    cli: Cli, args: tuple[str, ...], said: str, usage_of: str
) -> None:
    """As every expected error: Typer printed a usage block and a boxed message (5 lines
    and more, wrapped further on a narrow terminal), piped and with --json too."""
    result = cli(*args, env={"COLUMNS": "20"})
    assert result.exit_code == 2
    assert result.stdout == ""
    error, hint = result.stderr.splitlines()
    assert error.startswith("error: ") and said in error
    assert hint == f"hint: `{usage_of} --help` shows the usage"


def test_output_flags_work_after_the_command() -> None:
    assert hoist_output_flags(["config", "show", "--json", "-q"]) == [
        "--json",
        "-q",
        "config",
        "show",
    ]
    assert hoist_output_flags(["x", "--", "--json"]) == ["x", "--", "--json"]


def test_short_output_flags_together_work_after_the_command(cli: Cli) -> None:
    """``autoops -qv config validate`` worked, ``autoops config validate -qv`` said "No such
    option: -q" (exit 2): only the flags one by one were moved to the front."""
    assert hoist_output_flags(["config", "validate", "-qv"]) == ["-qv", "config", "validate"]
    assert hoist_output_flags(["replay", "-n", "-qx"]) == ["replay", "-n", "-qx"]  # not ours
    for flags in ("-qv", "-vq", "-qq"):
        assert cli("config", "validate", flags).exit_code == 0


def _boundary_app() -> typer.Typer:
    """A root app with the real callback and boundary, and commands that misbehave."""
    test_app = typer.Typer(cls=AutoopsGroup)
    test_app.callback()(root)

    @test_app.command()
    def crash() -> None:
        raise RuntimeError(f"boom with {KNOWN_SECRET} inside")

    @test_app.command()
    def offline() -> None:
        raise NetworkError("cannot reach http://127.0.0.1:9", hint="is the server running?")

    @test_app.command()
    def chatty() -> None:
        logging.getLogger("langfuse").warning("SDK WARNING LINE")
        logging.getLogger("opentelemetry.sdk").error("OTEL ERROR LINE")
        typer.echo("done")

    return test_app


def test_expected_error_is_one_line_with_its_exit_code(workdir: Path) -> None:
    result = CliRunner().invoke(_boundary_app(), ["offline"])
    assert result.exit_code == 4
    assert result.stderr.splitlines()[0] == "error: cannot reach http://127.0.0.1:9"
    assert "Traceback" not in result.stderr


def test_unexpected_error_exits_1_and_traceback_only_when_verbose(workdir: Path) -> None:
    quiet = CliRunner().invoke(_boundary_app(), ["crash"])
    assert quiet.exit_code == 1
    assert "internal error: RuntimeError" in quiet.stderr
    assert "Traceback" not in quiet.stderr
    assert KNOWN_SECRET not in quiet.stderr
    loud = CliRunner().invoke(_boundary_app(), ["--verbose", "crash"])
    assert loud.exit_code == 1
    assert "Traceback (most recent call last)" in loud.stderr
    assert KNOWN_SECRET not in loud.stderr
    assert "sk-lf-****cdef" in loud.stderr


def test_third_party_loggers_silent_unless_verbose(workdir: Path) -> None:
    quiet = CliRunner().invoke(_boundary_app(), ["chatty"])
    assert quiet.exit_code == 0
    assert quiet.stdout == "done\n"
    assert "SDK WARNING LINE" not in quiet.stderr and "OTEL ERROR LINE" not in quiet.stderr
    loud = CliRunner().invoke(_boundary_app(), ["-v", "chatty"])
    assert "SDK WARNING LINE" in loud.stderr and "OTEL ERROR LINE" in loud.stderr
    CliRunner().invoke(_boundary_app(), ["chatty"])  # leave the loggers silenced


def test_langfuse_debug_turns_on_debug_logging(run_autoops) -> None:  # type: ignore[no-untyped-def]
    """LANGFUSE_DEBUG=true logs what --verbose logs (redacted), without a traceback."""
    from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET

    keys = {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": "http://127.0.0.1:9",  # nothing listens: the client logs its attempt
    }
    quiet = run_autoops("health-check", "--timeout", "1", env=keys)
    loud = run_autoops("health-check", "--timeout", "1", env={**keys, "LANGFUSE_DEBUG": "true"})
    assert quiet.exit_code == loud.exit_code == 4
    assert "DEBUG" not in quiet.stderr
    assert "DEBUG httpcore" in loud.stderr
    assert KNOWN_SECRET not in loud.both and "Traceback" not in loud.both


@pytest.mark.parametrize("args", [("--help",), ("config", "show"), ("sampling", "show")])
def test_an_ascii_only_stdout_gets_question_marks_not_a_traceback(
    workdir: Path, args: tuple[str, ...]
) -> None:
    """With stdout's encoding ASCII (LC_ALL=C and PYTHONUTF8=0), ``autoops --help`` was a
    traceback (the bullets of its exit codes)."""
    done = subprocess.run(
        [autoops_executable(), *args], capture_output=True, timeout=60, check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0", "LC_ALL": "C"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr
    assert done.stdout.isascii() and done.stdout


@pytest.mark.parametrize("stdout", ["> /dev/full", ">&-"])
@pytest.mark.parametrize(
    "command",
    [
        "--json replay {events}",
        "replay {events}",
        "--version",
        "events generate --count 5",
        "completions show bash",
        "config show",
        "--json config show",
        "--help",
        "replay --help",
    ],
)
def test_a_stdout_that_cannot_be_written_is_one_line_and_exit_6(
    run_autoops, workdir: Path, command: str, stdout: str
) -> None:  # type: ignore[no-untyped-def]
    """stdout on a full disk (/dev/full), or closed: an internal error (exit 1, "report
    it"), a traceback for --version, and a replay's own exit code lost. Now the one line of
    a local file that failed (6); a replay's traces are on disk all the same."""
    events = workdir / "events.jsonl"
    events.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    line = f"exec autoops {command.format(events=events)} {stdout}"
    done = subprocess.run(
        ["sh", "-c", line], capture_output=True, text=True, timeout=120, check=False,
        env={  # as bare as a CI step's (what Python's own flush at exit failed in)
            "PATH": f"{Path(autoops_executable()).parent}:/usr/bin:/bin",
            "HOME": os.environ["HOME"],
            "AUTOOPS_HOME": os.environ["AUTOOPS_HOME"],
        },
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "cannot write" in done.stderr and "standard output" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert "Exception ignored" not in done.stderr  # the interpreter's flush at exit (code 120)
    if "{events}" in command:
        store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 200


@pytest.mark.parametrize(
    ("command", "exit_code"),
    [
        ("replay {events}", 0),
        ("--json replay {events}", 0),
        ("events generate --count 50000", 0),
        ("config show", 0),
        ("--help", 0),
        ("replay --help", 0),
        ("completions show bash", 0),
        ("health-check --timeout 1", 4),  # a failed check keeps its own code
    ],
)
def test_a_reader_that_left_ends_the_output_and_the_command_keeps_its_exit_code(
    workdir: Path, command: str, exit_code: int
) -> None:
    """``autoops ... | head``: Rich and click answered the broken pipe with a silent exit 1,
    the same code as a failed check. The rest of the output is discarded, quietly, and the
    command ends as it would have (a replay's traces all on disk)."""
    events = workdir / "events.jsonl"
    events.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    env = {
        "PATH": f"{Path(autoops_executable()).parent}:/usr/bin:/bin",
        "HOME": os.environ["HOME"],
        "AUTOOPS_HOME": os.environ["AUTOOPS_HOME"],
    }
    if command.startswith("health-check"):  # nothing listens at port 9
        env |= {
            "LANGFUSE_PUBLIC_KEY": "pk-lf-pipe",
            "LANGFUSE_SECRET_KEY": "sk-lf-pipe",
            "LANGFUSE_HOST": "http://127.0.0.1:9",
        }
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first byte: every write breaks the pipe
    try:
        done = subprocess.run(
            [autoops_executable(), *command.format(events=events).split()],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120, check=False,
            env=env,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == exit_code, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    assert "internal error" not in done.stderr and "cannot write" not in done.stderr
    if "{events}" in command:
        store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
        with sqlite3.connect(store) as db:
            assert db.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 200


@pytest.mark.parametrize("stderr", ["reader left", "closed"])
def test_a_stderr_no_one_reads_costs_the_replay_nothing(workdir: Path, stderr: str) -> None:
    """``autoops replay ... 2>&1 | head -1``: the broken pipe at the first bad line's message
    ended the replay before its first event, nothing recorded, exit 1; with stderr closed
    (``2>&-``) its isatty() was an internal error. Messages are now dropped and the run is
    the same: its events recorded, its own exit code (6: a bad line)."""
    good = EXAMPLE.read_text(encoding="utf-8").splitlines()
    events = workdir / "events.jsonl"
    events.write_text("\n".join([good[0], *["bad"] * 300, *good[1:]]) + "\n", encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"],
           "AUTOOPS_HOME": os.environ["AUTOOPS_HOME"]}  # fmt: skip
    read_end, write_end = os.pipe()
    os.close(read_end)
    # Closed: the child closes its fd 2 before it runs autoops (what ``2>&-`` does).
    where: dict[str, Any] = (
        {"stderr": write_end} if stderr == "reader left" else {"preexec_fn": lambda: os.close(2)}
    )
    try:
        done = subprocess.run(
            [autoops_executable(), "replay", str(events)],
            stdout=subprocess.DEVNULL, timeout=120, check=False, env=env, **where,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert done.returncode == 6
    store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT COUNT(*) FROM traces").fetchone()[0] == 200
