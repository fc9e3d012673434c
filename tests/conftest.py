"""Shared fixtures: an isolated CLI runner that never sees the developer's configuration."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoops_cli.app import app
from tests.serve_process import ServeHandle, autoops_executable, start_serve, stop_serve

KNOWN_SECRET = "sk-lf-TESTSECRET-0123456789abcdef"
KNOWN_PUBLIC = "pk-lf-test-public-0123"


@dataclass
class CliResult:
    """What a user sees: exit code, stdout and stderr kept apart."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def both(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory, home and environment: no LANGFUSE_/AUTOOPS_ variables."""
    for name in list(os.environ):
        if name.startswith(("LANGFUSE_", "AUTOOPS_", "OTEL_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("AUTOOPS_HOME", str(work / ".autoops"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(work)
    return work


class Cli:
    """Runs ``autoops`` in-process through Typer's CliRunner."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> CliResult:
        result = self.runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def cli(workdir: Path) -> Cli:
    """The CLI, run in the isolated working directory."""
    return Cli()


@pytest.fixture
def run_autoops(workdir: Path) -> Iterator[object]:
    """Run the real ``autoops`` command as a subprocess in the isolated environment."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> CliResult:
        full_env = dict(os.environ)
        full_env.update(env or {})
        proc = subprocess.run(
            [autoops_executable(), *args],
            check=False,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=workdir,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    yield run


@pytest.fixture
def fake_langfuse() -> Iterator[object]:
    """A minimal Langfuse ingestion peer on 127.0.0.1 (see tests/fake_langfuse.py)."""
    from tests.fake_langfuse import FakeLangfuse

    server = FakeLangfuse()
    yield server
    server.close()


@pytest.fixture
def served(workdir: Path) -> Iterator[ServeHandle]:
    """``autoops serve`` on 127.0.0.1, port 0, with its own store; stopped afterwards."""
    handle = start_serve(workdir / "served" / "traces.db")
    yield handle
    stop_serve(handle)
