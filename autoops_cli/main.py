"""Console-script entry point of ``autoops``."""

from __future__ import annotations

import os
import signal
import sys
from typing import TextIO, cast

from autoops_cli.stop_signals import exit_quietly_on_stops

# Top-level packages of this distribution that another project may also have: the AutoOps
# application has its own ``config``, and with ``PYTHONPATH=.`` in it, Python finds that one.
SHADOWABLE_PACKAGES = ("config", "commands")


def foreign_package() -> str | None:
    """A one-line explanation when ``config`` or ``commands`` is not this toolkit's own."""
    from importlib.util import find_spec
    from pathlib import Path

    home = Path(__file__).resolve().parent.parent  # where autoops_cli, config, commands live
    for name in SHADOWABLE_PACKAGES:
        spec = find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        found = Path(spec.origin).parent if spec is not None and spec.origin else None
        if found is None and locations:
            found = Path(locations[0])
        if found is not None and found.resolve() == home / name:
            continue
        where = f"the package '{name}' at {found}" if found else f"no package '{name}'"
        return (
            f"{where} is not autoops's own ({home / name}): a directory on PYTHONPATH or the "
            "working directory shadows it; run autoops without PYTHONPATH=. or from elsewhere"
        )
    return None


def main() -> None:
    """Run the CLI."""
    exit_quietly_on_stops()
    problem = foreign_package()
    if problem is not None:
        sys.stderr.write(f"error: {problem}\n")
        sys.exit(1)
    if any(key == "_AUTOOPS_COMPLETE" for key in os.environ):
        # Shell completion asks the program itself; the shipped scripts use Typer's protocol.
        from typer._completion_classes import completion_init

        completion_init()
    from autoops_cli.app import app
    from autoops_cli.output import (
        ClosedStdout,
        GuardedStdout,
        QuietStderr,
        StdoutError,
        discard_stdout,
    )

    sys.stdout = GuardedStdout(sys.stdout if sys.stdout is not None else ClosedStdout())
    # Started with stderr closed (``2>&-``), Python has none: messages go nowhere, quietly
    # (its isatty() was an internal error, exit 1, for a replay that recorded everything).
    stderr = sys.stderr if sys.stderr is not None else open(os.devnull, "w")  # noqa: SIM115
    sys.stderr = cast("TextIO", QuietStderr(stderr))

    try:
        app(prog_name="autoops")
    except StdoutError as exc:  # --help, before the commands' error boundary
        discard_stdout()
        sys.stderr.write(f"error: cannot write to standard output: {exc.strerror or exc}\n")
        sys.exit(6)
    finally:
        # The command has printed its last word and chosen its exit code: a stop signal
        # during the interpreter's teardown (a CI timeout just after a replay's summary) must
        # not turn that into a death by signal. Only daemon threads are left to stop.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
