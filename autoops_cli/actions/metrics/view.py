"""``autoops metrics`` on a terminal: agents, system, series as sparklines, alerts."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import RenderableType

    from autoops_cli.actions.metrics.report import MetricsReport

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """One character per value, scaled from the smallest to the largest; ``?`` for a value
    that is not a finite number (a server's odd answer)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "?" * len(values)
    low, high = min(finite), max(finite)
    # Halved: high - low overflows to infinity for 1e308 and -1e308 (NaN, an internal error).
    span = high / 2 - low / 2

    def spark(value: float) -> str:
        if not math.isfinite(value):
            return "?"
        if span == 0:
            return SPARKS[0 if high == 0 else 3]
        return SPARKS[round((value / 2 - low / 2) / span * (len(SPARKS) - 1))]

    return "".join(spark(value) for value in values)


def _ms(value: float) -> str:
    return f"{value:.1f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def render_report(report: MetricsReport, *, width: int | None = None) -> list[RenderableType]:
    """The report as Rich renderables, in reading order; the agents table fits ``width``
    (the terminal's; None: all its columns), dropping its least important columns first."""
    from rich import box
    from rich.table import Table

    from autoops_cli.output import Column, escape, fitted_table

    source = report.source
    where = "local store" if source["api"] == "local" else f"Langfuse {source['api']} metrics API"
    how = (
        " (cached)"
        if source["cached"]
        else f", {source['requests']} requests"
        if source["api"] != "local"
        else ""
    )
    window = report.window
    parts: list[RenderableType] = [
        f"[bold]Window[/bold] {window['from']} to {window['to']} from the {where}{how}"
    ]

    columns = [
        Column("agent"),
        Column("ops", justify="right"),
        Column("avg ms", priority=6, justify="right"),
        Column("p50 ms", priority=1, justify="right"),
        Column("p95 ms", priority=3, justify="right"),
        Column("success", priority=7, justify="right"),
        Column("confid.", priority=5, justify="right"),
        Column("overturned", priority=4, justify="right"),
        Column("collab.", priority=2, justify="right"),
    ]
    agent_rows = []
    for agent in report.agents.values():
        agent_rows.append([
            escape(agent.agent_id),
            str(agent.operation_count),
            _ms(agent.average_response_time),
            _ms(agent.p50_response_time),
            _ms(agent.p95_response_time),
            _rate(agent.success_rate if agent.operation_count else None),
            f"{agent.decision_accuracy:.3f}" if agent.decisions else "-",
            f"{agent.decisions_overturned}/{agent.decisions}",
            f"{agent.collaboration_score:.3f}" if agent.decisions else "-",
        ])  # fmt: skip
    parts.append(
        fitted_table(
            columns,
            agent_rows,
            width=width,
            title="Agents",
            box=box.ASCII,
            header_style="bold",
            title_justify="left",
        )
    )

    tools = [
        (a.agent_id, tool, n)
        for a in report.agents.values()
        for tool, n in a.tool_usage_stats.items()
    ]
    if tools:
        table = Table(title="Tool calls", box=box.ASCII, header_style="bold", title_justify="left")
        table.add_column("agent", no_wrap=True)
        table.add_column("tool", no_wrap=True)
        table.add_column("calls", justify="right")
        for agent_id, tool, n in tools:
            table.add_row(escape(agent_id), escape(tool), str(n))
        parts.append(table)

    s = report.system
    system = Table(
        title="System", box=box.ASCII, header_style="bold", title_justify="left", show_header=False
    )
    system.add_column("metric", no_wrap=True)
    system.add_column("value", justify="right", no_wrap=True)
    rows: list[tuple[str, str]] = [
        ("events processed", f"{s.total_events_processed} ({s.failed_events} failed)"),
        ("success rate", _rate(s.success_rate if s.total_events_processed else None)),
        ("average workflow duration", f"{_ms(s.average_workflow_duration)} ms"),
        ("throughput", _throughput(s.system_throughput)),
        ("previous window", f"{s.previous_window_events} events ({_change(s.throughput_change)})"),
        ("collaborations", str(s.collaborations)),
        ("coordination messages", str(s.coordination_messages)),
        ("conflicts resolved", f"{s.conflicts_resolved}/{s.conflicts_detected} ({_rate(s.conflict_resolution_rate if s.conflicts_detected else None)})"),
        ("coordination efficiency", _rate(s.agent_coordination_efficiency if s.agent_operations else None)),
    ]  # fmt: skip
    for name, value in rows:
        system.add_row(name, value)
    parts.append(system)

    if report.series:
        parts.extend(_series(report.series))
    if report.alerts:
        parts.extend(f"[red]ALERT[/red] {escape(a['message'])}" for a in report.alerts)
    elif not report.has_data:
        parts.append("[yellow]no data in this window: no alert checked[/yellow]")
    else:
        parts.append("[green]no alerts[/green]")
    return parts


def _throughput(per_second: float) -> str:
    """Events per second, minute or hour: whichever reads as a number above 1."""
    for unit, seconds in (("s", 1), ("min", 60)):
        if per_second * seconds >= 1:
            return f"{per_second * seconds:.2f} events/{unit}"
    return f"{per_second * 3600:.2f} events/h"


def _change(change: float | None) -> str:
    return "no earlier events" if change is None else f"{change:+.1%} now"


def _series(series: list[dict[str, Any]]) -> list[RenderableType]:
    from rich import box
    from rich.table import Table

    events = [float(point["events"]) for point in series]
    durations = [float(point["average_workflow_duration"]) for point in series]
    failed = [float(point["failed_events"]) for point in series]
    table = Table(
        title="Series",
        box=box.ASCII,
        header_style="bold",
        title_justify="left",
    )
    for column in ("", "chart", "min", "max"):
        table.add_column(
            column, no_wrap=True, justify="left" if column in ("", "chart") else "right"
        )
    table.add_row("events", sparkline(events), f"{min(events):g}", f"{max(events):g}")
    table.add_row("failed", sparkline(failed), f"{min(failed):g}", f"{max(failed):g}")
    table.add_row("duration ms", sparkline(durations), _ms(min(durations)), _ms(max(durations)))
    return [table, f"{len(series)} buckets from {series[0]['time']} to {series[-1]['time']}"]
