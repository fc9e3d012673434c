"""``autoops traces``: what happened to recent simulation events, from Langfuse or the store.

``source`` reads (Langfuse's v2 observations and v3 scores, v1 traces on servers without
them, or the local store), ``rows`` builds the rows and the tree (also the ``--json``
documents), ``view`` draws them; ``list_traces`` and ``show_trace`` are the commands' calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.settings import LangfuseConfig


def parse_when(value: str, option: str) -> str:
    """``1h`` / ``30m`` / ``2d`` (ago) or an ISO timestamp -> ISO 8601 with ``Z``."""
    from autoops_cli.timespec import iso, parse_moment

    return iso(parse_moment(value, option))  # milliseconds kept, as Langfuse keeps them


def list_traces(
    config: LangfuseConfig,
    *,
    local: bool,
    since: str | None,
    until: str | None,
    event_type: str | None,
    tags: list[str],
    session: str | None,
    limit: int,
    page: int,
    all_pages: bool,
    max_items: int,
    timeout: float = 30.0,
) -> tuple[list[dict[str, Any]], dict[str, int] | None, str]:
    """``autoops traces list``: the rows, where the next page starts (or None), and what
    was read (the host, or the local store's file), for an empty result to name.

    ``all_pages`` reads up to ``max_items`` traces (``next`` in pages of at most 100). A
    window whose start is not before its end is a usage error: it can hold nothing.
    """
    from autoops_cli.actions.traces.rows import trace_row
    from autoops_cli.actions.traces.source import TraceFilters, TraceSource
    from autoops_cli.actions.traces.source import list_traces as fetch

    start = parse_when(since, "--since") if since else None
    end = parse_when(until, "--until") if until else None
    if start and end and start >= end:
        from config.errors import UsageError

        raise UsageError(f"--since {since!r} is not before --until {until!r}: the window is empty")
    filters = TraceFilters(
        since=start,
        until=end,
        event_type=event_type,
        tags=tuple(tags),
        session=session,
    )
    with TraceSource(config, local=local, timeout=timeout) as source:
        if all_pages:
            size = min(100, max_items)
            traces, following = fetch(source, filters, wanted=max_items, page=1, size=size)
        else:
            traces, following = fetch(source, filters, wanted=limit, page=page, size=limit)
        where = source.where
    return [trace_row(trace) for trace in traces], following, where


def show_trace(
    config: LangfuseConfig, trace_id: str, *, local: bool, timeout: float = 30.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``autoops traces show``: the trace and its observations as a tree (roots first)."""
    from autoops_cli.actions.traces.rows import observation_tree
    from autoops_cli.actions.traces.source import TraceSource, fetch_trace

    with TraceSource(config, local=local, timeout=timeout) as source:
        trace = fetch_trace(source, trace_id)
    return trace, observation_tree(trace)
