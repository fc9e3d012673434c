"""No command prints the secret key: every command, normal, verbose and error paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.helpers import leaf_commands
from tests.support.paths import REPO_ROOT

# Arguments that make each command do its real work. A new command must be added here,
# or test_every_command_is_covered fails.
COMMAND_ARGS: dict[str, list[list[str]]] = {
    "autoops config validate": [[]],
    "autoops config show": [[], ["--show-origin"], ["--json", "--show-origin"]],
    "autoops config init": [["--force"]],
    "autoops completions show": [["bash"], ["zsh"], ["fish"]],
    "autoops completions generate": [["--output-dir", "generated"]],
    "autoops replay": [
        [str(EXAMPLE), "--limit", "3"],
        ["missing.jsonl"],
        [str(EXAMPLE), "--limit", "2", "--dry-run"],
    ],
    "autoops events generate": [["--count", "3"], ["--count", "2", "--output", "generated.jsonl"]],
    "autoops buffer status": [[]],
    "autoops traces list": [["--local"], ["--json"]],
    "autoops traces show": [["0" * 32, "--local"], ["0" * 32]],
    "autoops metrics": [["--local", "--by", "hour"], ["--json", "--timeout", "2"]],
    "autoops health-check": [["--timeout", "2"], ["--json", "--strict", "--timeout", "2"]],
    "autoops deploy": [["--dry-run"], ["--canary-timeout", "1", "--json"]],
    "autoops buffer flush": [["--wait", "1"], ["--from", "http://127.0.0.1:9", "--yes", "--json"]],
    "autoops buffer drop": [["--host", "http://127.0.0.1:9", "--yes"]],
    "autoops sampling show": [[], ["--json"]],
    "autoops sampling set": [["0.5", "--severity", "critical"], ["0.25", "--json"], ["1.5"]],
    "autoops sampling reset": [["--severity", "critical"], ["--json", "--user"]],
    # Refused before binding (non-loopback without --allow-remote): no server is left running.
    "autoops serve": [["--host", "10.0.0.1", "--port", "0"]],
}

ENVIRONMENTS = {
    # A loopback port nothing listens on: langfuse mode, delivery refused, nothing leaves.
    "valid keys": {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": "http://127.0.0.1:9",
        "LANGFUSE_MAX_RETRIES": "1",
        # Delivery fails at once (refused): the exit deadline only adds waiting, no output.
        "AUTOOPS_FLUSH_DEADLINE": "0.5",
    },
    "keys with bad host": {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": "http://langfuse.example.com",
    },
    "secret with bad public key": {
        "LANGFUSE_PUBLIC_KEY": "nope",
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
    },
    "malformed secret": {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": "x" + KNOWN_SECRET,
    },
}


def test_every_command_is_covered() -> None:
    assert {path for path, _ in leaf_commands()} == set(COMMAND_ARGS)


@pytest.mark.parametrize("env_name", sorted(ENVIRONMENTS))
@pytest.mark.parametrize("verbose", [False, True])
def test_no_command_prints_the_secret(
    cli: Cli, workdir: Path, env_name: str, verbose: bool
) -> None:
    env = ENVIRONMENTS[env_name]
    for path, arg_sets in COMMAND_ARGS.items():
        for args in arg_sets:
            argv = [*path.split()[1:], *args] + (["--verbose"] if verbose else [])
            result = cli(*argv, env=env)
            assert KNOWN_SECRET not in result.both, (argv, env_name)
            assert KNOWN_SECRET[6:] not in result.both, (argv, env_name)
    # Every file the commands wrote (store, outbox, WAL, events, config, completion scripts),
    # and the completion scripts the repository ships. The tool writes no log files: its
    # logs go to stderr, searched above.
    written = [p for p in workdir.rglob("*") if p.is_file()]
    written += sorted((REPO_ROOT / "completions").glob("*"))
    assert written
    for path in written:
        assert KNOWN_SECRET.encode() not in path.read_bytes(), path
        assert KNOWN_SECRET[6:].encode() not in path.read_bytes(), path


def test_secret_in_project_file_is_never_printed(cli: Cli, workdir: Path) -> None:
    path = workdir / "autoops.toml"
    path.write_text(f"[langfuse]\npublic_key = '{KNOWN_PUBLIC}'\nsecret_key = '{KNOWN_SECRET}'\n")
    path.chmod(0o640)
    for argv in (
        ["config", "validate"],
        ["config", "show", "--show-origin"],
        ["-v", "config", "show"],
    ):
        result = cli(*argv)
        assert result.exit_code == 0
        assert KNOWN_SECRET not in result.both
    assert "readable by others" in cli("config", "validate").stderr
    # Overridden by a key that is malformed: the settings are invalid, and the file holding
    # a real key is named all the same (it was not, the malformed key said alone).
    invalid = cli("config", "validate", env={"LANGFUSE_SECRET_KEY": "oops"})
    assert invalid.exit_code == 3
    assert "readable by others" in invalid.stderr and "must look like" in invalid.stderr


def test_config_show_masks_a_secret_in_any_setting_and_shows_markup_as_written(
    cli: Cli, workdir: Path
) -> None:
    """The secret key as another setting's value (a release pasted from the wrong line):
    --json masked it, the table printed it; and Rich markup in a value was rendered."""
    env = {"LANGFUSE_RELEASE": KNOWN_SECRET, "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
           "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC}  # fmt: skip
    for argv in (["config", "show"], ["config", "show", "--show-origin"]):
        result = cli(*argv, env=env)
        assert result.exit_code == 0, result.both
        assert KNOWN_SECRET not in result.both
    marked = cli("config", "show", env={"LANGFUSE_RELEASE": "[bold]v1[/bold]"})
    assert "[bold]v1[/bold]" in marked.stdout


def test_real_process_error_paths_never_print_the_secret(run_autoops) -> None:  # type: ignore[no-untyped-def]
    env = dict(ENVIRONMENTS["keys with bad host"])
    for argv in (
        ["config", "validate", "-v"],
        ["-v", "config", "show"],
        ["--json", "config", "validate"],
    ):
        result = run_autoops(*argv, env=env)
        assert result.exit_code == 3, result.stderr
        assert KNOWN_SECRET not in result.both
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        [KNOWN_SECRET],
        ["health-check", f"--{KNOWN_SECRET}"],
        ["metrics", "--by", KNOWN_SECRET],
        ["completions", "show", KNOWN_SECRET],
        ["replay", "--run-id", KNOWN_SECRET, "--dry-run", "--limit", "1", str(EXAMPLE)],
    ],
    ids=["command", "option", "choice", "shell", "run-id in the summary"],
)
def test_what_a_command_echoes_back_never_shows_the_secret(run_autoops, argv: list[str]) -> None:  # type: ignore[no-untyped-def]
    """click's usage errors echo the argument given, and the replay's summary table its run
    id: a secret pasted there was printed whole (the --json documents masked it)."""
    env = {"LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC, "LANGFUSE_SECRET_KEY": KNOWN_SECRET}
    result = run_autoops(*argv, env=env)
    assert KNOWN_SECRET not in result.both
    assert "sk-lf-****cdef" in result.both  # masked, not dropped
    # Masked before the layout: in a narrow box or table, a secret cut over two lines was
    # masked line by line, and its middle showed.
    narrow = run_autoops(*argv, env={**env, "COLUMNS": "24"})
    body = KNOWN_SECRET.removeprefix("sk-lf-")
    pieces = {body[start : start + 6] for start in range(len(body) - 5)}
    assert not [piece for piece in pieces if piece in narrow.both]


def test_a_secret_as_run_id_is_masked_in_the_progress_file(run_autoops, workdir: Path) -> None:  # type: ignore[no-untyped-def]
    """The summary and the store masked it; every line of --progress-file had it whole."""
    progress = workdir / "progress.jsonl"
    result = run_autoops(
        "replay", str(EXAMPLE), "--limit", "3", "--run-id", KNOWN_SECRET,
        "--progress-file", str(progress),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = progress.read_text(encoding="utf-8")
    assert written.count("sk-lf-****cdef") >= 2 and KNOWN_SECRET not in written


def test_serve_never_prints_a_configured_secret(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.serve_process import start_serve, stop_serve

    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", KNOWN_PUBLIC)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", KNOWN_SECRET)
    handle = start_serve(workdir / "served.db")
    stdout, stderr = stop_serve(handle)
    assert handle.public_key == KNOWN_PUBLIC
    assert handle.secret_key is None  # configured, so never announced
    assert KNOWN_SECRET not in stdout + stderr


def test_a_crash_with_verbose_shows_a_redacted_traceback(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An internal error carrying the secret: one line, or with -v a traceback, never the key."""
    from autoops_cli.actions import buffer as buffer_report

    def crash() -> None:
        secret = KNOWN_SECRET  # a local variable holding the secret, and in the message
        raise RuntimeError(f"unexpected state with key {secret}")

    monkeypatch.setattr(buffer_report, "outbox_status", crash)
    env = ENVIRONMENTS["valid keys"]
    quiet = cli("buffer", "status", env=env)
    loud = cli("-v", "buffer", "status", env=env)
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.stderr and "Traceback" in loud.stderr
    for result in (quiet, loud):
        assert KNOWN_SECRET not in result.both and KNOWN_SECRET[6:] not in result.both
