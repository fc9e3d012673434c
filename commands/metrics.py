"""``autoops metrics``: how the agents and the workflow are doing, from at most 3 requests."""

from __future__ import annotations

from enum import StrEnum

import typer

from autoops_cli.state import AppState
from config.limits import MAX_SECONDS


class Bucket(StrEnum):
    hour = "hour"
    day = "day"


def metrics(
    ctx: typer.Context,
    agent: str | None = typer.Option(
        None, "--agent", help="Only this agent (e.g. pricing_agent); the system stays whole."
    ),
    since: str = typer.Option("24h", "--since", help="Window start: 1h, 30m, 2d, or ISO time."),
    until: str | None = typer.Option(None, "--until", help="Window end (default now)."),
    by: Bucket | None = typer.Option(
        None, "--by", help="Add a series by hour or day (UTC buckets)."
    ),
    fail_on_alert: bool = typer.Option(
        False, "--fail-on-alert", help="Exit 1 when an alert fires (for CI and cron)."
    ),
    fail_on_no_data: bool = typer.Option(
        False,
        "--fail-on-no-data",
        help="Exit 1 when the window holds no simulation trace (an empty window is no alert).",
    ),
    local: bool = typer.Option(
        False, "--local", help="Read the local store even when Langfuse keys are set."
    ),
    refresh: bool = typer.Option(False, "--refresh", help="Ask the API again, skip the cache."),
    cache_ttl: float = typer.Option(
        60.0, "--cache-ttl", min=0, help="Seconds a cached answer is reused (0: never)."
    ),
    timeout: float = typer.Option(
        30.0,
        "--timeout",
        min=0.1,
        max=MAX_SECONDS,
        help="Seconds for all requests, 429 waits included.",
    ),
) -> None:
    """Agent and workflow metrics: operations, latency, success, tools, decisions, conflicts.

    Per agent the seed's AgentPerformanceMetrics, for the system SystemWorkflowMetrics, and the seed's alerts (latency over LANGFUSE_MAX_LATENCY_MS, trace success under 95%, throughput down more than 10% on the previous window). A window with no simulation trace says so and fires no alert; --fail-on-no-data makes it exit 1. Langfuse mode makes at most 3 metrics requests (v2, v1 on servers without it) and caches the answer; --local or no keys reads the local store. Definitions: docs/metrics.md.

    **Example:** autoops metrics --agent pricing_agent --since 24h --by hour
    """
    from autoops_cli.actions.metrics import collect_metrics
    from autoops_cli.actions.metrics.view import render_report

    state: AppState = ctx.obj
    config, _ = state.settings()
    report = collect_metrics(
        config,
        agent=agent,
        since=since,
        until=until,
        bucket=by.value if by else None,
        local=local,
        refresh=refresh,
        cache_ttl=cache_ttl,
        timeout=timeout,
    )
    if state.output.json_mode:
        state.output.emit_json(report.as_dict())
    else:
        for part in render_report(report, width=state.output.table_width()):
            state.output.render(part)
    for note in report.notes:
        state.output.warning(note)
    if (fail_on_alert and report.alerts) or (fail_on_no_data and not report.has_data):
        raise typer.Exit(1)
