#!/usr/bin/env python3
"""The integration guide's support entry point: ``python scripts/deploy_langfuse.py --health-check``.

The guide tells operators to run this script; it is a thin front over the same code as
``autoops health-check`` and ``autoops deploy``, so both give the same checks, output and
exit codes (0 healthy, 1 a check failed, 3 configuration or keys, 4 network). Options after
the mode go to the command, e.g. ``--health-check --strict --json`` or ``--deploy --dry-run``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODES = {"--health-check": "health-check", "--deploy": "deploy"}


def main(argv: list[str] | None = None) -> None:
    """Parse the mode, then run the matching ``autoops`` command with the other options."""
    parser = argparse.ArgumentParser(
        prog="deploy_langfuse.py",
        description="Check or deploy the Langfuse integration: the same checks, output and exit "
        "codes as `autoops health-check` and `autoops deploy` (0 healthy, 1 a check failed, "
        "3 configuration or keys, 4 network).",
        epilog="Other options are those of `autoops health-check --help` and `autoops deploy --help`.",
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--health-check", action="store_true", help="check the integration (CI smoke check)"
    )
    mode.add_argument(
        "--deploy", action="store_true", help="health checks, initialise, and a canary trace"
    )
    known, rest = parser.parse_known_args(argv)
    command = "health-check" if known.health_check else "deploy"
    try:
        from autoops_cli.app import app
    except ModuleNotFoundError:  # run from a clone without `pip install .`
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from autoops_cli.app import app
    app(args=[command, *rest], prog_name="autoops")


if __name__ == "__main__":
    main()
