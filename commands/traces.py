"""``autoops traces list|show``: recent simulation traces and one trace as a tree."""

from __future__ import annotations

import typer

from autoops_cli.state import AppState
from config.limits import MAX_SECONDS

app = typer.Typer(
    help="List recent simulation traces, or show one as a tree.", no_args_is_help=True
)

LOCAL_OPTION = typer.Option(
    False, "--local", help="Read the local store even when Langfuse keys are set."
)
TIMEOUT_OPTION = typer.Option(
    30.0,
    "--timeout",
    min=0.1,
    max=MAX_SECONDS,
    help="Seconds for all requests of the command, 429 waits included.",
)


@app.command("list")
def list_traces(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="1h, 30m, 2d, or an ISO timestamp."),
    until: str | None = typer.Option(None, "--until", help="1h, 30m, 2d, or an ISO timestamp."),
    event_type: str | None = typer.Option(None, "--event-type", help="Only this event type."),
    tag: list[str] = typer.Option(
        [], "--tag", help="Only traces with this tag (repeatable: all of them)."
    ),
    session: str | None = typer.Option(
        None, "--session", help="Only this session (replay run id)."
    ),
    limit: int = typer.Option(
        20, "--limit", min=1, max=100, help="How many traces (a page; the API's maximum is 100)."
    ),
    page: int = typer.Option(1, "--page", min=1, help="Start at this page of --limit traces."),
    all_pages: bool = typer.Option(
        False, "--all", help="Page through everything (up to --max-items)."
    ),
    max_items: int = typer.Option(10_000, "--max-items", min=1, help="Upper bound for --all."),
    local: bool = LOCAL_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """List simulation traces, newest first: event type, product, agents, decisions, conflicts.

    Reads Langfuse when keys are configured (its v2 observations API: the traces' root observations; v1 traces on servers without it), or the local store with --local or without keys.

    **Example:** autoops traces list --since 1h --event-type demand_spike
    """
    from autoops_cli.actions.traces import list_traces
    from autoops_cli.actions.traces.view import traces_table

    state: AppState = ctx.obj
    config, _ = state.settings()
    rows, following, where = list_traces(
        config,
        local=local,
        since=since,
        until=until,
        event_type=event_type,
        tags=tag,
        session=session,
        limit=limit,
        page=page,
        all_pages=all_pages,
        max_items=max_items,
        timeout=timeout,
    )
    if not rows:  # say why, on stderr: the data stays what it is
        narrowed = any((since, until, event_type, tag, session))
        if page > 1 and not all_pages:
            state.output.info(f"no traces on page {page}: the listing ends before it ({where})")
        else:
            state.output.info(
                f"no traces{' matching these filters' if narrowed else ''} in {where}"
            )
    if state.output.json_mode:
        state.output.emit_json({"traces": rows, "next": following})
    else:
        state.output.render(traces_table(rows, width=state.output.table_width()))
        if following:
            state.output.info(
                f"more traces: --page {following['page']} --limit {following['limit']}"
            )


@app.command()
def show(
    ctx: typer.Context,
    trace_id: str = typer.Argument(
        ..., help="The trace id (32 hex characters), or a unique prefix of 6 or more."
    ),
    local: bool = LOCAL_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Show one trace as a tree: workflow, agents, tools, collaboration, conflicts, decisions.

    Each observation with its duration; decisions with their confidence; conflicts in yellow, errors in red. --json gives the same tree as nested JSON.

    **Example:** autoops traces show 0af7651916cd43dd8448eb211c80319c
    """
    from autoops_cli.actions.traces import show_trace
    from autoops_cli.actions.traces.rows import trace_document
    from autoops_cli.actions.traces.view import render_tree

    state: AppState = ctx.obj
    config, _ = state.settings()
    trace, roots = show_trace(config, trace_id, local=local, timeout=timeout)
    if state.output.json_mode:
        state.output.emit_json(trace_document(trace, roots))
    else:
        state.output.render(render_tree(trace, roots))
