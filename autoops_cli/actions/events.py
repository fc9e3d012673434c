"""``autoops events generate``: a realistic, reproducible event file from ``TestDataGenerator``."""

from __future__ import annotations

from autoops_cli.output import discard_stdout
from config.errors import LocalFileError, UsageError


def generate_event_file(output: str, count: int, *, seed: int, types: str | None) -> int:
    """Write ``count`` events to ``output`` (``-`` for stdout, ``.gz`` compressed); the count.

    ``types`` is the comma-separated list of ``--types``; an unknown type is a usage error.
    """
    from pathlib import Path

    from autoops_cli.actions.files import is_event_file, refuse_foreign_file
    from autoops_cli.simulation.generator import TestDataGenerator, write_events

    if output != "-":
        refuse_foreign_file(Path(output), "--output", ours=is_event_file, what="an event file")
    chosen = [t.strip() for t in types.split(",") if t.strip()] if types else None
    try:
        events = TestDataGenerator(seed).generate_events(count, chosen)
    except ValueError as exc:
        raise UsageError(f"--types: {exc}") from None
    try:
        return write_events(output, events)
    except LocalFileError:
        if output == "-":
            discard_stdout()  # what failed is not flushed again at exit
        raise
