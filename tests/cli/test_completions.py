"""The shipped completion scripts are current, and completion answers from the live app."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from autoops_cli.actions.completions import SHELLS, completion_script
from tests.conftest import Cli, autoops_executable
from tests.support.paths import REPO_ROOT

SHIPPED = REPO_ROOT / "completions"


@pytest.mark.parametrize("shell", SHELLS)
def test_shipped_scripts_are_current(shell: str) -> None:
    shipped = (SHIPPED / f"autoops.{shell}").read_text(encoding="utf-8")
    assert shipped == completion_script(shell), (
        f"completions/autoops.{shell} is stale: run `autoops completions generate`"
    )


def test_generate_writes_what_show_prints(cli: Cli, workdir: Path) -> None:
    result = cli("completions", "generate", "--output-dir", "out")
    assert result.exit_code == 0
    for shell in SHELLS:
        shown = cli("completions", "show", shell).stdout
        assert (workdir / "out" / f"autoops.{shell}").read_text() == shown


def test_generate_never_overwrites_another_file(cli: Cli, workdir: Path) -> None:
    """A user's own autoops.bash, or autoops.zsh linked to another file, was overwritten
    (the link's target too); they are refused before anything is written, and scripts
    written before are replaced."""
    out = workdir / "out"
    out.mkdir()
    # A user's own, which only mentions the variable: it was taken for one of ours.
    own = 'alias ao=autoops\neval "$(_AUTOOPS_COMPLETE=bash_source autoops)"\n'
    (out / "autoops.bash").write_text(own, encoding="utf-8")
    precious = workdir / "precious.txt"
    precious.write_text("precious\n", encoding="utf-8")
    (out / "autoops.zsh").symlink_to(precious)
    refused = cli("completions", "generate", "--output-dir", "out")
    assert refused.exit_code == 2, refused.both
    assert "is not an autoops completion script" in refused.stderr
    assert (out / "autoops.bash").read_text(encoding="utf-8") == own
    assert precious.read_text(encoding="utf-8") == "precious\n"
    assert not (out / "autoops.fish").exists()
    (out / "autoops.zsh").unlink()
    assert cli("completions", "generate", "--output-dir", "out").exit_code == 2
    assert (out / "autoops.bash").read_text(encoding="utf-8") == own
    (out / "autoops.bash").unlink()
    assert cli("completions", "generate", "--output-dir", "out").exit_code == 0
    again = cli("completions", "generate", "--output-dir", "out")
    assert again.exit_code == 0, again.both


def test_bash_completion_answers_from_the_live_command_tree(workdir: Path) -> None:
    env = dict(
        os.environ, _AUTOOPS_COMPLETE="complete_bash", COMP_WORDS="autoops con", COMP_CWORD="1"
    )
    proc = subprocess.run(
        [autoops_executable()], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["config"]
    env.update(COMP_WORDS="autoops config ", COMP_CWORD="2")
    proc = subprocess.run(
        [autoops_executable()], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert set(proc.stdout.split()) == {"init", "show", "validate"}


def test_a_users_own_zsh_completion_file_is_not_taken_for_ours(cli: Cli, workdir: Path) -> None:
    """Every zsh completion file of autoops starts ``#compdef autoops``: a user's own, with
    its aliases and an eval of ours, was replaced with exit 0."""
    out = workdir / "out"
    out.mkdir()
    own = '#compdef autoops\nalias ao=autoops\neval "$(_AUTOOPS_COMPLETE=zsh_source autoops)"\n'
    (out / "autoops.zsh").write_text(own, encoding="utf-8")
    refused = cli("completions", "generate", "--output-dir", "out")
    assert refused.exit_code == 2, refused.both
    assert (out / "autoops.zsh").read_text(encoding="utf-8") == own
