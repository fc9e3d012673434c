"""``python scripts/deploy_langfuse.py --health-check``: the integration guide's support step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.paths import REPO_ROOT
from tests.support.serve_process import ServeHandle

SCRIPT = REPO_ROOT / "scripts" / "deploy_langfuse.py"


def run_script(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_health_check_in_local_mode_is_healthy(workdir: Path) -> None:
    proc = run_script(workdir, "--health-check", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["healthy"] is True and report["mode"] == "local"


def test_health_check_against_a_server_and_with_rejected_keys(
    workdir: Path, served: ServeHandle
) -> None:
    env = {"LANGFUSE_HOST": served.url, "LANGFUSE_PUBLIC_KEY": served.public_key,
           "LANGFUSE_SECRET_KEY": served.secret_key or ""}  # fmt: skip
    proc = run_script(workdir, "--health-check", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "langfuse"
    wrong = {**env, "LANGFUSE_SECRET_KEY": "sk-lf-wrong-0000"}
    proc = run_script(workdir, "--health-check", env=wrong)
    assert proc.returncode == 3
    assert "Traceback" not in proc.stderr


def test_deploy_dry_run_and_usage(workdir: Path) -> None:
    proc = run_script(workdir, "--deploy", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [step["step"] for step in json.loads(proc.stdout)["steps"]][:2] == [
        "health-check",
        "initialize",
    ]
    proc = run_script(workdir)  # no mode: a usage error
    assert proc.returncode == 2
    assert "--health-check" in proc.stderr
