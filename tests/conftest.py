"""Shared fixtures: an isolated CLI runner that never sees the developer's configuration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tests.support.property_budget  # noqa: F401  (loads the hypothesis budget profile)
from autoops_cli.app import app
from tests.support.serve_process import ServeHandle, autoops_executable, start_serve, stop_serve

KNOWN_SECRET = "sk-lf-TESTSECRET-0123456789abcdef"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every hypothesis test ``property`` (``pytest -m property`` runs them alone)."""
    for item in items:
        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            item.add_marker(pytest.mark.property)


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


def _build_command_once() -> None:
    """Typer rebuilds the click command of ``app`` on every ``invoke`` (~30 ms of signature
    inspection); the suite runs thousands of in-process commands, so build it once. Other
    apps (test-made ones) still get a fresh build."""
    import typer.testing

    build = getattr(typer.testing, "_get_command", None)
    if build is None or getattr(build, "autoops_cached", False):
        return  # another typer: no cache, only slower
    command = build(app)

    def cached(typer_app: object) -> object:
        return command if typer_app is app else build(typer_app)

    cached.autoops_cached = True  # type: ignore[attr-defined]
    typer.testing._get_command = cached


def _share_the_ca_bundle() -> None:
    """Every ``httpx.Client`` loads the CA bundle into a new SSL context (45-80 ms), even for
    the suite's plain-http loopback servers; share one verifying context per bundle in this
    process (an SSL context is safe to share between clients)."""
    import functools

    import httpx._transports.default as transport

    create = getattr(transport, "create_ssl_context", None)
    if create is None or getattr(create, "autoops_cached", False):
        return  # another httpx: no sharing, only slower

    @functools.lru_cache(maxsize=4)
    def default_context(cert_file: str | None, cert_dir: str | None) -> object:
        return create()  # reads the same two variables

    def shared(verify: object = True, cert: object = None, trust_env: bool = True) -> object:
        if verify is True and cert is None and trust_env:
            return default_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
        return create(verify=verify, cert=cert, trust_env=trust_env)

    shared.autoops_cached = True  # type: ignore[attr-defined]
    transport.create_ssl_context = shared


_build_command_once()
_share_the_ca_bundle()


class Cli:
    """Runs ``autoops`` in-process through Typer's CliRunner."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> CliResult:
        # A replay leaves SIGINT and SIGTERM ignored after its run (its process ends right
        # after): in this process the next test must find them as they were.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            result = self.runner.invoke(
                app, list(args), env=env, input=input, catch_exceptions=False
            )
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
            _end_the_process_service()
        return CliResult(result.exit_code, result.stdout, result.stderr)


def _end_the_process_service() -> None:
    """End the process-wide integration service a command left behind, as a process exit
    would: each ``autoops`` command is its own process for a user. Left open (a command that
    stopped on an error), the next in-process command's ``initialize_langfuse_integration``
    would shut it down with a 5 s flush timeout, waiting for a host that is down."""
    from config import langfuse_integration as integration

    lock = getattr(integration, "_service_lock", None)
    if lock is None or not hasattr(integration, "_service"):
        return  # the accessors changed: nothing to end here, only slower
    with lock:
        service, integration._service = integration._service, None
    if service is not None:
        service.shutdown(timeout=0)


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
    """A minimal Langfuse ingestion peer on 127.0.0.1 (see tests/support/fake_langfuse.py)."""
    from tests.support.fake_langfuse import FakeLangfuse

    server = FakeLangfuse()
    yield server
    server.close()


@pytest.fixture
def served(workdir: Path) -> Iterator[ServeHandle]:
    """``autoops serve`` on 127.0.0.1, port 0, with its own store; stopped afterwards."""
    handle = start_serve(workdir / "served" / "traces.db")
    yield handle
    stop_serve(handle)


# Read once: the workdir fixture clears AUTOOPS_* variables for the commands under test.
RELIABILITY_LOG = os.environ.get("AUTOOPS_RELIABILITY_LOG")


@dataclass
class Figures:
    """What a reliability test tried and saw (docs/reliability.md is generated from these).

    ``benchmarks/reliability_report.py`` sets ``AUTOOPS_RELIABILITY_LOG``; each test using
    the ``reliability`` fixture then appends one JSON line with its figures.
    """

    inputs: int = 0
    lost: int | None = None  # None: this test does not count lost records
    exit_codes: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    def tried(self, count: int = 1) -> None:
        """Count bad inputs (or faults) tried."""
        self.inputs += count

    def exited(self, code: int) -> None:
        """Record a process exit code seen."""
        self.exit_codes[code] += 1

    def answered(self, status: int) -> None:
        """Record an HTTP status seen."""
        self.statuses[status] += 1

    def missing(self, count: int) -> None:
        """Record records lost (expected 0; the test asserts it too)."""
        self.lost = (self.lost or 0) + count


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Figures]:
    """Figures of a reliability test, logged when a report is being generated."""
    figures = Figures()
    yield figures
    log = RELIABILITY_LOG
    if log:
        line = {
            "test": request.node.nodeid,
            "inputs": figures.inputs,
            "lost": figures.lost,
            "exit_codes": dict(sorted(figures.exit_codes.items())),
            "statuses": dict(sorted(figures.statuses.items())),
        }
        append_line(Path(log), json.dumps(line))


def append_line(path: Path, text: str) -> None:
    """Append one line to a file that several test processes (xdist workers) append to.

    One ``write`` on an ``O_APPEND`` descriptor under an exclusive lock: lines never
    interleave, whatever their length.
    """
    import fcntl

    data = (text + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)  # closing releases the lock
