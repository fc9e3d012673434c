"""Starting and stopping a real ``autoops serve`` process (tests and benchmarks)."""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO


def autoops_executable() -> str:
    """The installed ``autoops`` console script next to this interpreter."""
    candidate = Path(sys.executable).parent / "autoops"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("autoops")
    if found is None:
        raise RuntimeError("the autoops console script is not installed (pip install -e '.[test]')")
    return found


@dataclass
class ServeHandle:
    """A running ``autoops serve`` subprocess."""

    url: str
    public_key: str
    secret_key: str | None  # None when the server uses the configured pair
    store: Path
    process: subprocess.Popen[str]

    @property
    def auth(self) -> tuple[str, str]:
        return (self.public_key, self.secret_key or "")

    def client_env(self) -> dict[str, str]:
        """Environment for a client (the SDK, ``autoops replay``) pointed at this server."""
        return {
            "LANGFUSE_HOST": self.url,
            "LANGFUSE_PUBLIC_KEY": self.public_key,
            "LANGFUSE_SECRET_KEY": self.secret_key,
        }


def start_serve(
    store: Path,
    *extra: str,
    timeout: float = 30,
    preexec_fn: Callable[[], None] | None = None,
) -> ServeHandle:
    """Start ``autoops --json serve --port 0`` and wait for its announcement line.

    Its stderr goes to an unnamed temporary file, not a pipe: nobody reads a pipe while the
    server runs, and a server logging a lot would block on a full one. ``preexec_fn`` runs
    in the server process before it starts (a resource limit, for instance).
    """
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed by stop_serve)
    process = subprocess.Popen(
        [autoops_executable(), "--json", "serve", "--port", "0", "--store", str(store), *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=preexec_fn,  # noqa: PLW1509  (a resource limit; the tests start no threads here)
    )
    _LOGS[process.pid] = log
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if selector.select(timeout=0.5):
            line = process.stdout.readline()
            if line:
                info = json.loads(line)
                return ServeHandle(
                    url=info["LANGFUSE_HOST"],
                    public_key=info["LANGFUSE_PUBLIC_KEY"],
                    secret_key=info["LANGFUSE_SECRET_KEY"],
                    store=store,
                    process=process,
                )
        if process.poll() is not None:
            break
    process.kill()
    process.communicate(timeout=5)
    raise RuntimeError(f"autoops serve did not start: {_stderr(process)}")


def stop_serve(handle: ServeHandle) -> tuple[str, str]:
    """Stop the server; what it printed after its announcement (stdout, stderr)."""
    handle.process.terminate()
    try:
        stdout, _ = handle.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        stdout, _ = handle.process.communicate(timeout=5)
    return stdout, _stderr(handle.process)


_LOGS: dict[int, IO[str]] = {}


def _stderr(process: subprocess.Popen[str]) -> str:
    """What the server wrote to stderr (its temporary file, closed and dropped after)."""
    log = _LOGS.pop(process.pid, None)
    if log is None:
        return ""
    with log:
        log.seek(0)
        return log.read()
