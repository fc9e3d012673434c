"""Console-script entry point of ``autoops``."""

from __future__ import annotations

import os


def main() -> None:
    """Run the CLI."""
    if any(key == "_AUTOOPS_COMPLETE" for key in os.environ):
        # Shell completion asks the program itself; the shipped scripts use Typer's protocol.
        from typer._completion_classes import completion_init

        completion_init()
    from autoops_cli.app import app

    app(prog_name="autoops")
