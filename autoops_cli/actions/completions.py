"""Shell completion scripts of ``autoops``.

The scripts are thin: the shell calls ``autoops`` itself with ``_AUTOOPS_COMPLETE`` set and
Typer answers from the live command tree, so new commands complete without regenerating.
"""

from __future__ import annotations

import functools
from pathlib import Path

from config.errors import LocalFileError

PROG_NAME = "autoops"
COMPLETE_VAR = "_AUTOOPS_COMPLETE"
SHELLS = ("bash", "zsh", "fish")


def completion_script(shell: str) -> str:
    """The completion script of ``shell`` (bash, zsh or fish)."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell) + "\n"


def write_completion_scripts(directory: Path) -> list[Path]:
    """Write ``autoops.<shell>`` for every shell into ``directory``, each replaced atomically;
    a file of that name that is not a completion script of ours (a user's own script, a link
    to another file) is refused before anything is written (exit 2)."""
    from autoops_cli.actions.files import refuse_foreign_file, replace_file

    scripts = {directory / f"{PROG_NAME}.{shell}": completion_script(shell) for shell in SHELLS}
    for path, script in scripts.items():
        # A script of ours starts as the one generated now does; one that only mentions the
        # variable (a user's own, eval-ing ``_AUTOOPS_COMPLETE=bash_source autoops``) was
        # replaced, and so was a user's zsh file, which starts ``#compdef autoops`` too.
        opening = _opening(script.encode())
        refuse_foreign_file(
            path,
            "--output-dir",
            ours=functools.partial(_is_completion_script, opening),
            what="an autoops completion script",
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for path, script in scripts.items():
            replace_file(path, script, mode=0o644)
            written.append(path)
    except OSError as exc:
        raise LocalFileError(
            f"cannot write completion scripts to {directory}: {exc.strerror}"
        ) from None
    return written


def _opening(script: bytes) -> list[bytes]:
    """A script's first two lines that are not blank, as they tell ours from others."""
    return [line.strip() for line in script.splitlines() if line.strip()][:2]


def _is_completion_script(opening: list[bytes], head: bytes) -> bool:
    """Whether a file's first bytes start one of our completion scripts."""
    return _opening(head) == opening and COMPLETE_VAR.encode() in head
