"""Starting and stopping a real ``autoops serve`` process (tests and benchmarks)."""

from __future__ import annotations

import json
import selectors
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


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


def start_serve(store: Path, *extra: str, timeout: float = 30) -> ServeHandle:
    """Start ``autoops --json serve --port 0`` and wait for its announcement line."""
    process = subprocess.Popen(
        [autoops_executable(), "--json", "serve", "--port", "0", "--store", str(store), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
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
    _, stderr = process.communicate(timeout=5)
    raise RuntimeError(f"autoops serve did not start: {stderr}")


def stop_serve(handle: ServeHandle) -> tuple[str, str]:
    """Stop the server; what it printed after its announcement (stdout, stderr)."""
    handle.process.terminate()
    try:
        return handle.process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        handle.process.kill()
        return handle.process.communicate(timeout=5)
