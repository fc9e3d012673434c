"""Helpers shared by several test modules."""

from __future__ import annotations

from typing import Any

import typer

from autoops_cli.app import app


def leaf_commands() -> list[tuple[str, Any]]:
    """Every runnable command as ("autoops group command", click command)."""
    found: list[tuple[str, Any]] = []

    def walk(command: Any, path: str) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk(sub, f"{path} {name}")
        else:
            found.append((path, command))

    walk(typer.main.get_command(app), "autoops")
    return found
