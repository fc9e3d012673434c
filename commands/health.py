"""``autoops health-check``: the CI smoke check of the Langfuse integration."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from autoops_cli.state import AppState


def health_check(
    ctx: typer.Context,
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, help="Seconds the whole check may take."
    ),
    strict: bool = typer.Option(False, "--strict", help="Treat warnings as failures."),
    wait: float = typer.Option(
        0.0, "--wait", min=0.0, help="Retry until healthy or this many seconds have passed."
    ),
    junit: Path | None = typer.Option(None, "--junit", help="Also write the result as JUnit XML."),
) -> None:
    """Check configuration, endpoint, keys, latency, read path, transport, outbox and sampling.

    Exit 0 when healthy (warnings allowed unless --strict), 1 when a check failed, 3 for configuration or rejected keys, 4 when Langfuse is unreachable or times out. In local mode the store is checked instead of the network.

    **Example:** autoops health-check --strict --junit report.xml
    """
    from autoops_cli.actions.health import junit_xml, run_checks

    state: AppState = ctx.obj
    loaded = state.load_settings()
    give_up = time.monotonic() + wait
    while True:
        report = run_checks(loaded, timeout=timeout)
        if report.healthy(strict=strict) or time.monotonic() + 1.0 > give_up:
            break
        state.output.info("not healthy yet; checking again in 1 s")
        time.sleep(1.0)
    out = state.output
    if junit is not None:
        try:
            junit.write_text(junit_xml(report, strict=strict), encoding="utf-8")
        except OSError as exc:
            from config.errors import LocalFileError

            raise LocalFileError(f"cannot write {junit}: {exc.strerror}") from None
    if out.json_mode:
        out.emit_json(report.as_dict(strict=strict))
    else:
        from rich import box
        from rich.table import Table

        table = Table(box=box.ASCII, title=f"health: {report.mode} mode", header_style="bold")
        for column in ("check", "status", "value", "message"):
            table.add_column(column, overflow="fold")
        for check in report.checks:
            table.add_row(
                check.name,
                check.status,
                "-" if check.value is None else str(check.value),
                check.message,
            )
        out.render(table)
    code = report.exit_code(strict=strict)
    if code:
        raise typer.Exit(code)
