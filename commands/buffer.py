"""``autoops buffer status|flush``: the outbox of batches waiting for Langfuse."""

from __future__ import annotations

import typer

from autoops_cli.state import AppState

app = typer.Typer(help="See and deliver the batches waiting for Langfuse.", no_args_is_help=True)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the outbox: pending batches, spans, scores, bytes, oldest age, dead letters.

    In langfuse mode every batch goes to the outbox first and leaves it only when Langfuse acknowledged it; batches Langfuse refused as bad are kept as dead letters.

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
    wait: float | None = typer.Option(
        None,
        "--wait",
        min=0.1,
        help="Seconds to wait without progress (e.g. for a server that is starting); "
        "default AUTOOPS_FLUSH_DEADLINE.",
    ),
    timeout: float | None = typer.Option(None, "--timeout", min=0.1, hidden=True),
    dead_letters: bool = typer.Option(
        False, "--dead-letters", help="Also send the dead letters again (after fixing their cause)."
    ),
) -> None:
    """Deliver the outbox to the configured Langfuse host, oldest batch first.

    Keeps delivering while the host accepts batches, with progress on a terminal; gives up after --wait seconds without progress (a refused connection fails after AUTOOPS_FLUSH_DEADLINE, 2 s). Exit 0 when nothing waits for the host afterwards, 3 when the keys are rejected, 4 when the host is unreachable (the batches stay), 5 when Langfuse refused a batch (it becomes a dead letter) or the host is not Langfuse's API.

    **Example:** autoops buffer flush --wait 60
    """
    from autoops_cli.actions.buffer import flush_outbox, flush_progress_text

    state: AppState = ctx.obj
    config, _ = state.settings()
    out = state.output
    # --timeout: the name before --wait, when it bounded the whole flush; now the same as --wait.
    patience = (
        wait if wait is not None else timeout if timeout is not None else config.flush_deadline
    )
    with out.status_line() as show:
        result, exit_code = flush_outbox(
            config,
            wait=patience,
            dead_letters=dead_letters,
            on_progress=(lambda progress: show(flush_progress_text(progress))) if show else None,
        )
    if out.json_mode:
        out.emit_json(result)
    elif exit_code == 0:
        out.success(result["message"])
    if exit_code:
        out.error(result["message"])
        raise typer.Exit(exit_code)
