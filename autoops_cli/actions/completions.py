"""Shell completion scripts of ``autoops``.

The scripts are thin: the shell calls ``autoops`` itself with ``_AUTOOPS_COMPLETE`` set and
Typer answers from the live command tree, so new commands complete without regenerating.
"""

from __future__ import annotations

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
    """Write ``autoops.<shell>`` for every shell into ``directory``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for shell in SHELLS:
            path = directory / f"{PROG_NAME}.{shell}"
            path.write_text(completion_script(shell), encoding="utf-8")
            written.append(path)
    except OSError as exc:
        raise LocalFileError(
            f"cannot write completion scripts to {directory}: {exc.strerror}"
        ) from None
    return written
