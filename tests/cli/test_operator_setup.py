"""What an operator meets while setting up: warnings that say what to do, and only once.

A host without keys, a loopback host without the noise, the real origin of a missing config
file, typos with a did-you-mean, a readable .env holding the secret, and a project whose own
``config`` package shadows the toolkit's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from autoops_cli.simulation.generator import generate_events, write_events
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.serve_process import ServeHandle, autoops_executable


def test_a_host_without_keys_warns_once_naming_the_missing_variables(cli: Cli) -> None:
    env = {"LANGFUSE_HOST": "http://127.0.0.1:3000"}
    result = cli("config", "validate", env=env)
    assert result.exit_code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not" in warnings[0]
    assert "local mode" in warnings[0]
    # health-check says it once, in its configuration check, and not again on stderr.
    health = cli("health-check", "--json", env=env)
    (check,) = [c for c in json.loads(health.stdout)["checks"] if c["name"] == "configuration"]
    assert check["message"].count("LANGFUSE_SECRET_KEY are not") == 1
    assert health.stderr.count("LANGFUSE_SECRET_KEY are not") <= 1


def test_plain_http_on_loopback_is_fine_even_with_strict(cli: Cli, served: ServeHandle) -> None:
    result = cli("health-check", "--strict", "--json", env=served.client_env())
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr
    assert "plain http" not in result.stderr


def test_a_missing_config_file_names_where_it_was_named(cli: Cli, workdir: Path) -> None:
    from_env = cli("config", "validate", env={"AUTOOPS_CONFIG": "nowhere.toml"})
    assert from_env.exit_code == 6
    assert "(from AUTOOPS_CONFIG) does not exist" in from_env.stderr
    from_flag = cli("--config", "nowhere.toml", "config", "validate")
    assert from_flag.exit_code == 6
    assert "(from --config) does not exist" in from_flag.stderr


def test_typos_get_a_did_you_mean_and_the_full_list(cli: Cli, workdir: Path) -> None:
    (workdir / "autoops.toml").write_text(
        "[samplng.severity]\ncritical = 1.0\n\n[langfuse]\nsample_rat = 0.5\n", encoding="utf-8"
    )
    result = cli("config", "validate")
    assert result.exit_code == 3
    table = next(line for line in result.stderr.splitlines() if "samplng" in line)
    assert "did you mean [sampling]?" in table
    assert "[langfuse], [masking], [sampling]" in table
    key = next(line for line in result.stderr.splitlines() if "sample_rat" in line)
    assert "did you mean langfuse.sample_rate?" in key
    assert "enable_sampling" in key and "flush_deadline" in key  # every known key listed


def test_a_readable_dotenv_holding_the_secret_is_warned_about(cli: Cli, workdir: Path) -> None:
    dotenv = workdir / ".env"
    dotenv.write_text(
        f"LANGFUSE_PUBLIC_KEY={KNOWN_PUBLIC}\nLANGFUSE_SECRET_KEY={KNOWN_SECRET}\n",
        encoding="utf-8",
    )
    dotenv.chmod(0o644)
    result = cli("config", "validate")
    assert result.exit_code == 0
    assert "readable by others (mode 644)" in result.stderr
    assert f"chmod 600 {dotenv}" in result.stderr
    assert KNOWN_SECRET not in result.stderr
    dotenv.chmod(0o600)
    assert "readable by others" not in cli("config", "validate").stderr


def run_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [autoops_executable(), *args],
        capture_output=True,
        text=True,
        cwd=directory,
        env={**os.environ, "PYTHONPATH": "."},
        timeout=60,
        check=False,
    )


def test_a_projects_own_config_or_commands_package_is_reported_not_a_traceback(
    workdir: Path,
) -> None:
    for name in ("config", "commands"):
        project = workdir / f"app_with_{name}"
        (project / name).mkdir(parents=True)
        (project / name / "__init__.py").write_text("VALUE = 1\n", encoding="utf-8")
        proc = run_in(project, "--help")
        assert proc.returncode == 1
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in proc.stderr
        assert f"the package '{name}' at {project / name}" in lines[0]
        assert "PYTHONPATH" in lines[0]
    # Without the foreign package on the path, the same directory works.
    assert run_in(workdir, "--version").returncode == 0


def test_serve_help_shows_the_three_exports(cli: Cli) -> None:
    help_text = " ".join(cli("serve", "--help").stdout.split())
    for variable in ("LANGFUSE_HOST=", "LANGFUSE_PUBLIC_KEY=", "LANGFUSE_SECRET_KEY="):
        assert variable in help_text


def test_read_commands_never_create_a_store(cli: Cli, workdir: Path) -> None:
    home = Path(os.environ["AUTOOPS_HOME"])
    for args in (("traces", "list"), ("metrics",), ("sampling", "show"), ("buffer", "status")):
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
        assert not home.exists(), args
    # Langfuse mode looks at the outbox too (health-check's outbox check, buffer flush).
    keys = {"LANGFUSE_HOST": "http://127.0.0.1:9", "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
            "LANGFUSE_SECRET_KEY": KNOWN_SECRET}  # fmt: skip
    for args in (("health-check", "--timeout", "1"), ("buffer", "flush"), ("buffer", "status")):
        result = cli(*args, env=keys)
        assert "Traceback" not in result.stderr, args
        assert not home.exists(), args
    assert json.loads(cli("buffer", "status", "--json").stdout)["pending_batches"] == 0
    listed = cli("traces", "list")
    assert f"no traces in the local store {home / 'traces.db'} (there is none yet)" in listed.stderr


def test_the_store_is_found_from_a_subdirectory_of_the_project(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOOPS_HOME")
    (workdir / "autoops.toml").write_text("", encoding="utf-8")
    events = workdir / "events.jsonl"
    write_events(events, generate_events(3, seed=1))
    assert cli("replay", str(events)).exit_code == 0
    docs = workdir / "docs"
    docs.mkdir()
    monkeypatch.chdir(docs)
    listed = json.loads(cli("traces", "list", "--json").stdout)
    assert len(listed["traces"]) == 3
    assert not (docs / ".autoops").exists()
