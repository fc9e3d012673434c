"""``autoops health-check``: the CI smoke check of the Langfuse integration."""

from __future__ import annotations

from pathlib import Path

import typer

from autoops_cli.state import AppState
from config.limits import MAX_SECONDS


def health_check(
    ctx: typer.Context,
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, max=MAX_SECONDS, help="Seconds the whole check may take."
    ),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as failures."),
    wait: float = typer.Option(
        0.0,
        "--wait",
        min=0.0,
        max=MAX_SECONDS,
        help="Retry until healthy or this many seconds have passed.",
    ),
    junit: Path | None = typer.Option(
        None, "--junit", help="Also write the result as JUnit XML.", readable=False
    ),
) -> None:
    """Check configuration, endpoint, keys, latency, read path, transport, outbox and sampling.

    Exit 0 when healthy (warnings allowed unless --strict), 1 when a check failed, 3 for configuration or rejected keys, 4 when Langfuse is unreachable or times out. In local mode the store is checked instead of the network.

    **Example:** autoops health-check --strict --junit report.xml
    """
    from autoops_cli.actions.health import check_health, health_table

    state: AppState = ctx.obj
    out = state.output
    report = check_health(
        state.load_settings(),
        timeout=timeout,
        strict=strict,
        wait=wait,
        junit=junit,
        on_retry=lambda: out.info("not healthy yet; checking again in 1 s"),
    )
    if out.json_mode:
        out.emit_json(report.as_dict(strict=strict))
    else:
        out.render(health_table(report))
    code = report.exit_code(strict=strict)
    if code:
        # One line on stderr, as every failure is said (the table or JSON has the detail).
        failed = report.failed(strict=strict)
        out.error(f"not healthy: {'; '.join(f'{c.name}: {c.message}' for c in failed)}")
        raise typer.Exit(code)
