"""Running the official Langfuse JS clients of ``tests/js`` (the CLI and the JS SDK).

``npm ci --prefix tests/js`` installs them, from the lock file: ``.ci/run`` does, and so does
the first test that needs them when they are missing (once, under a lock shared by the
test workers), so the README's test command runs them on a fresh clone too. Tests that
need them skip, with the reason, when node or npm is not on the machine, and fail in CI
(``CI`` set) or when the install fails: a silent skip would hide that the acceptance tests
of the official clients never ran.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.paths import REPO_ROOT
from tests.support.serve_process import ServeHandle

JS_DIR = REPO_ROOT / "tests" / "js"
CLI_BIN = JS_DIR / "node_modules" / "langfuse-cli" / "bin" / "langfuse.mjs"


def node() -> str:
    """The node executable; skips (fails in CI) without node and npm."""
    found, npm = shutil.which("node"), shutil.which("npm")
    if found is None or npm is None:
        reason = "node and npm are needed to run the official Langfuse JS clients (tests/js)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must have them")
        pytest.skip(reason)
    if not _installed():
        _install(npm)
    return found


def _installed() -> bool:
    return CLI_BIN.exists() and (JS_DIR / "node_modules" / "@langfuse" / "client").exists()


def _install(npm: str) -> None:
    """``npm ci`` in tests/js, once for all test workers (the lock file pins every version)."""
    import fcntl

    with open(JS_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be installing: wait for it
        if _installed():
            return
        done = subprocess.run(
            [npm, "ci", "--prefix", str(JS_DIR), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0 or not _installed():
        pytest.fail(
            "could not install the official Langfuse JS clients (npm ci --prefix tests/js): "
            + done.stderr[-2000:]
        )


def client_env(served: ServeHandle, **extra: str) -> dict[str, str]:
    """An environment pointing the JS clients at ``served`` (and nothing else of ours)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("LANGFUSE_", "OTEL_"))
    }
    env.update(
        LANGFUSE_PUBLIC_KEY=served.public_key,
        LANGFUSE_SECRET_KEY=served.secret_key or "",
        LANGFUSE_BASE_URL=served.url,
        LANGFUSE_HOST=served.url,
        **extra,
    )
    return env


def langfuse_cli(
    served: ServeHandle, *args: str, api_version: str | None = None
) -> tuple[int, Any, str]:
    """Run ``langfuse [--api-version V] api <args> --json``: exit code, the JSON envelope
    (``{"status", "headers", "body"}``) or the raw stdout, and stderr."""
    version = ("--api-version", api_version) if api_version else ()
    done = subprocess.run(
        [node(), str(CLI_BIN), "--host", served.url, *version, "api", *args, "--json"],
        capture_output=True,
        text=True,
        env=client_env(served),
        cwd=JS_DIR,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    try:
        output: Any = json.loads(done.stdout)
    except ValueError:
        output = done.stdout
    return done.returncode, output, done.stderr


def run_script(served: ServeHandle, script: str, **extra_env: str) -> tuple[dict[str, Any], str]:
    """Run a script of ``tests/js`` against ``served``: its JSON document and its stderr."""
    done = subprocess.run(
        [node(), script],
        capture_output=True,
        text=True,
        env=client_env(served, **extra_env),
        cwd=JS_DIR,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout[-2000:] + done.stderr[-2000:]
    document: dict[str, Any] = json.loads(lines[-1])
    return document, done.stderr
