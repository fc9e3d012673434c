"""``autoops buffer status|flush``: the outbox of batches waiting for Langfuse."""

from __future__ import annotations

import typer

from autoops_cli.state import AppState

app = typer.Typer(help="See and deliver the batches waiting for Langfuse.", no_args_is_help=True)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the outbox: pending batches, spans, scores, bytes, oldest age, dead letters.

    In langfuse mode every batch goes to the outbox first and leaves it only when Langfuse accepted it; batches Langfuse refused as bad are kept as dead letters.

    **Example:** autoops buffer status --json
    """
    from autoops_cli.actions.buffer import outbox_status, status_table

    state: AppState = ctx.obj
    report = outbox_status()
    if state.output.json_mode:
        state.output.emit_json(report)
    else:
        state.output.render(status_table(report))


@app.command()
def flush(
    ctx: typer.Context,
    timeout: float = typer.Option(30.0, "--timeout", min=0.1, help="Seconds to keep trying."),
    dead_letters: bool = typer.Option(
        False, "--dead-letters", help="Also send the dead letters again (after fixing their cause)."
    ),
) -> None:
    """Deliver the outbox to the configured Langfuse host, oldest batch first.

    Exit 0 when the outbox is empty afterwards, 3 when the keys are rejected, 4 when the host is unreachable (the batches stay), 5 when Langfuse refused a batch (it becomes a dead letter).

    **Example:** autoops buffer flush --timeout 60
    """
    from autoops_cli.actions.buffer import flush_outbox

    state: AppState = ctx.obj
    config, _ = state.settings()
    result, exit_code = flush_outbox(config, timeout=timeout, dead_letters=dead_letters)
    if state.output.json_mode:
        state.output.emit_json(result)
    elif exit_code == 0:
        state.output.success(
            f"outbox empty: {result['delivered_batches']} batch(es) delivered to {config.host}"
        )
    if exit_code:
        state.output.error(result["message"])
        raise typer.Exit(exit_code)
