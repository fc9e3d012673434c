"""``autoops deploy``: the integration brought up as the application will, with a canary."""

from __future__ import annotations

import typer

from autoops_cli.state import AppState
from config.limits import MAX_SECONDS


def deploy(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the plan and the canary; send nothing."
    ),
    canary: bool = typer.Option(
        True, "--canary/--no-canary", help="Send a canary trace and wait for it."
    ),
    canary_timeout: float = typer.Option(
        30.0,
        "--canary-timeout",
        min=0.5,
        max=MAX_SECONDS,
        help="Seconds the canary may take to become visible.",
    ),
) -> None:
    """Run the health checks, initialise the integration, and prove it with a canary trace.

    The canary is one simulation event traced through the same core the agents use; deploy polls the read API until the trace and its observations are visible and reports the ingestion delay. Exit 1 when it does not appear within --canary-timeout; a failed health check gives its own exit code.

    **Example:** autoops deploy --canary-timeout 60 --json
    """
    from autoops_cli.actions.deploy import deploy as run_deploy
    from autoops_cli.actions.deploy import deploy_table

    state: AppState = ctx.obj
    result = run_deploy(
        state.load_settings(), canary=canary, canary_timeout=canary_timeout, dry_run=dry_run
    )
    out = state.output
    if out.json_mode:
        out.emit_json(result.as_dict())
    else:
        out.render(deploy_table(result, dry_run=dry_run))
    if result.exit_code:
        # The table (or JSON) has it too; stderr says it in one line, as every failure is
        # said (a CI log with --json showed no error at all).
        failed = [step for step in result.steps if step["status"] == "fail"]
        if failed:
            out.error(f"deploy failed at {failed[-1]['step']}: {failed[-1]['detail']}")
        raise typer.Exit(result.exit_code)
