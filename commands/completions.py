"""``autoops completions``: the shell completion scripts shipped in ``completions/``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from autoops_cli.state import AppState

app = typer.Typer(
    help="Print or regenerate the bash, zsh and fish completion scripts.",
    no_args_is_help=True,
)


class Shell(StrEnum):
    """Shells with a completion script."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


@app.command()
def show(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
    """Print the completion script of one shell.

    **Example:** autoops completions show bash > ~/.local/share/bash-completion/completions/autoops
    """
    from autoops_cli.actions.completions import completion_script
    from autoops_cli.output import writing_stdout

    with writing_stdout():
        typer.echo(completion_script(shell.value), nl=False)


@app.command()
def generate(
    ctx: typer.Context,
    output_dir: Path = typer.Option(
        Path("completions"),
        "--output-dir",
        help="Folder to write autoops.{bash,zsh,fish} to.",
        readable=False,
    ),
) -> None:
    """Write the completion scripts of every shell (what the repository ships).

    **Example:** autoops completions generate --output-dir completions
    """
    from autoops_cli.actions.completions import write_completion_scripts

    state: AppState = ctx.obj
    written = write_completion_scripts(output_dir)
    if state.output.json_mode:
        state.output.emit_json({"written": [str(p) for p in written]})
    else:
        for path in written:
            state.output.success(f"wrote {path}")
