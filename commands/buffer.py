"""``autoops buffer status|flush|drop``: the outbox of batches waiting for Langfuse."""

from __future__ import annotations

import sys

import typer

from autoops_cli.state import AppState
from config.limits import MAX_SECONDS

app = typer.Typer(help="See and deliver the batches waiting for Langfuse.", no_args_is_help=True)


@app.command()
def status(ctx: typer.Context) -> None:
    """Show the outbox: pending batches, spans, scores, bytes, oldest age, dead letters, per host.

    In langfuse mode every batch goes to the outbox first and leaves it only when Langfuse acknowledged it; batches Langfuse refused as bad are kept as dead letters. Each batch is addressed to the host it was recorded for; the configured host is marked.

    **Example:** autoops buffer status --json
    """
    from autoops_cli.actions.buffer import hosts_table, outbox_status, status_table

    state: AppState = ctx.obj
    report = outbox_status(_configured_host(state))
    if state.output.json_mode:
        state.output.emit_json(report)
        return
    state.output.render(status_table(report))
    if report["by_host"]:
        state.output.render(hosts_table(report))


@app.command()
def flush(
    ctx: typer.Context,
    wait: float | None = typer.Option(
        None,
        "--wait",
        min=0.1,
        max=MAX_SECONDS,
        help="Seconds to wait without progress (e.g. for a server that is starting); "
        "default AUTOOPS_FLUSH_DEADLINE.",
    ),
    timeout: float | None = typer.Option(None, "--timeout", min=0.1, max=MAX_SECONDS, hidden=True),
    dead_letters: bool = typer.Option(
        False, "--dead-letters", help="Also send the dead letters again (after fixing their cause)."
    ),
    from_host: str | None = typer.Option(
        None,
        "--from",
        help="Send the batches recorded for this other host to the configured host.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before sending --from."),
) -> None:
    """Deliver the outbox to the configured Langfuse host, oldest batch first.

    Keeps delivering while the host accepts batches, with progress on a terminal; gives up after --wait seconds without progress (a refused connection fails after AUTOOPS_FLUSH_DEADLINE, 2 s). Exit 0 when nothing waits for the host afterwards, 3 when the keys are rejected, 4 when the host is unreachable (the batches stay), 5 when Langfuse refused a batch (it becomes a dead letter) or the host is not Langfuse's API. Batches kept for other hosts are listed; --from HOST sends them here.

    **Example:** autoops buffer flush --wait 60
    """
    from autoops_cli.actions.buffer import (
        flush_outbox,
        flush_progress_text,
        host_backlog,
        kept_host,
        nothing_to_move,
        other_hosts_note,
        other_projects_note,
    )

    state: AppState = ctx.obj
    config, _ = state.settings()
    out = state.output
    if from_host is not None:
        from_host = kept_host(from_host, "--from")
    if from_host is not None and from_host != config.host:
        backlog = host_backlog(from_host, config.public_key)  # this project's: what moves
        if not backlog["batches"] and not backlog["dead_letters"]:
            # Said before asking to send nothing (flush_outbox says the same, with --yes).
            every = host_backlog(from_host)
            raise nothing_to_move(
                from_host, others_kept=bool(every["batches"] or every["dead_letters"])
            )
        dead = backlog["dead_letters"]
        sent_too = "send" if dead_letters else "move (sent with --dead-letters)"
        _confirm(
            state,
            yes,
            f"send {backlog['batches']} batch(es) recorded for {from_host} to {config.host}"
            + (f", and {sent_too} its {dead} dead letter(s)" if dead else "")
            + "?",
        )
    patience = (
        wait if wait is not None else timeout if timeout is not None else config.flush_deadline
    )
    with out.status_line() as show:
        result, exit_code = flush_outbox(
            config,
            wait=patience,
            dead_letters=dead_letters,
            from_host=from_host,
            on_progress=(lambda progress: show(flush_progress_text(progress))) if show else None,
        )
    notes = [
        other_hosts_note(result["other_hosts"], config.host),
        other_projects_note(result["other_projects"], config.host),
    ]
    if out.json_mode:
        out.emit_json(result)
    elif exit_code == 0:
        out.success(result["message"])
    for note in notes:
        if note and not out.json_mode:
            out.warning(note)
    if exit_code:
        out.error(result["message"])
        raise typer.Exit(exit_code)


@app.command()
def drop(
    ctx: typer.Context,
    host: str = typer.Option(..., "--host", help="The host whose batches are dropped."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask first."),
) -> None:
    """Delete the batches and dead letters kept for a host, without sending them.

    For batches recorded for a host that will never take them (a wrong LANGFUSE_HOST, a retired instance). Asks first on a terminal; elsewhere --yes is required.

    **Example:** autoops buffer drop --host https://old.example.com --yes
    """
    from autoops_cli.actions.buffer import drop_batches, host_backlog, kept_host

    state: AppState = ctx.obj
    host = kept_host(host, "--host")
    backlog = host_backlog(host)
    if not backlog["batches"] and not backlog["dead_letters"]:
        # Nothing to drop is done (a clean-up script may run twice), but a mistyped host
        # must not pass for a dropped backlog: say which hosts the outbox does keep.
        kept = backlog.get("kept_for") or []
        state.output.warning(
            f"nothing is kept for {host}"
            + (f"; the outbox keeps batches for {', '.join(kept)}" if kept else "")
        )
    else:
        _confirm(
            state,
            yes,
            f"drop {backlog['batches']} batch(es) ({backlog['spans']} spans, "
            f"{backlog['scores']} scores) and {backlog['dead_letters']} dead letter(s) kept "
            f"for {host}?",
        )
    result = drop_batches(host)
    if state.output.json_mode:
        state.output.emit_json(result)
    else:
        state.output.success(
            f"dropped {result['dropped_batches']} batch(es) and "
            f"{result['dropped_dead_letters']} dead letter(s) kept for {host}"
        )


def _configured_host(state: AppState) -> str | None:
    loaded = state.load_settings()
    return (
        loaded.langfuse.host if loaded.langfuse is not None and loaded.mode == "langfuse" else None
    )


def _confirm(state: AppState, yes: bool, question: str) -> None:
    """Ask on a terminal; elsewhere only --yes goes on (exit 2 without it)."""
    from config.errors import UsageError

    if yes:
        return
    if sys.stdin is None or not sys.stdin.isatty() or state.output.json_mode:  # None: closed
        raise UsageError(f"{question[:-1]}: give --yes to confirm (not asked: no terminal)")
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort as abort:
        if isinstance(abort.__context__, KeyboardInterrupt):  # Ctrl-C: 130, as anywhere
            raise KeyboardInterrupt from None
        raise  # end of input (Ctrl-D): not confirmed
    if not confirmed:
        state.output.error("not confirmed: nothing was changed")
        raise typer.Exit(1)
