"""How ``autoops traces`` draws its rows: the list as a table, one trace as a tree (Rich)."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree


MIN_ID_PREFIX = 8


def short_ids(ids: list[str]) -> int:
    """The shortest prefix length (at least 8) that tells the ids apart.

    Sorted, an id shares its longest prefix with a neighbour: one past the longest shared
    prefix of neighbours tells all apart (trying each length grew with the square of the
    ids' length: a server's ids of 300,000 characters took half a minute).
    """
    distinct = sorted(set(ids))
    needed = MIN_ID_PREFIX
    for first, second in itertools.pairwise(distinct):
        needed = max(needed, _shared_prefix(first, second) + 1)
    return min(needed, max((len(i) for i in distinct), default=MIN_ID_PREFIX))


def _utc_cell(stamp: str) -> str:
    """MM-DD HH:MM:SS in UTC (the year and ms are noise here): a time with another offset
    (``07:30:00+05:30``) was shown as it was written, under "time (UTC)". What does not
    parse is shown as it came."""
    from datetime import UTC

    from autoops_cli.timespec import parse_iso

    try:
        moment = parse_iso(stamp).astimezone(UTC)  # OverflowError at the ends of the calendar
    except (ValueError, OverflowError):
        return stamp[5:19].replace("T", " ")
    return moment.strftime("%m-%d %H:%M:%S")


def _shared_prefix(first: str, second: str) -> int:
    """The length of the prefix two strings share (a binary search on slices: C speed)."""
    low, high = 0, min(len(first), len(second))
    while low < high:
        middle = (low + high + 1) // 2
        if first[:middle] == second[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def traces_table(rows: list[dict[str, Any]], *, width: int | None = None) -> Table:
    """``traces list`` as a table: an id to act on (a unique prefix ``traces show`` takes),
    then the columns in order of importance, the least important dropped first when the
    terminal is narrow (``width``; None: all)."""
    from rich import box

    from autoops_cli.output import Column, escape, fitted_table

    ids = [str(row["id"] or "") for row in rows]
    length = short_ids(ids)
    columns = [
        Column("id", min_width=length),  # the prefix traces show takes, whole
        Column("time (UTC)"),
        Column("event type"),
        Column("product", priority=5),
        Column("severity", priority=6),
        Column("agents", priority=1, justify="right"),
        Column("dec", priority=2, justify="right"),
        Column("confl", priority=3, justify="right"),
        Column("duration", priority=4, justify="right"),
        Column("level", priority=7),
    ]
    cells = []
    for trace_id, row in zip(ids, rows, strict=True):
        duration = row["duration_s"]
        stamp = str(row["timestamp"] or "-")
        cells.append(
            [
                escape(trace_id[:length] or "-"),
                escape(_utc_cell(stamp)),
                escape(str(row["event_type"] or "-")),
                escape(str(row["product_id"] or "-")),
                escape(str(row["severity"] or "-")),
                str(len(row["agents"])),
                escape(str(row["decisions"])),
                escape(str(row["conflicts"])),
                f"{duration:.3f}s" if isinstance(duration, (int, float)) else "-",
                escape(str(row["level"])),
            ]
        )
    return cast(
        "Table", fitted_table(columns, cells, width=width, box=box.ASCII, header_style="bold")
    )


def render_tree(trace: dict[str, Any], roots: list[dict[str, Any]]) -> Tree:
    """The trace as a Rich tree: conflicts in yellow, errors in red."""
    from rich.tree import Tree

    from autoops_cli.output import escape

    def shown(value: Any) -> str:
        return escape(str(value)) if value is not None else "-"  # a field the answer left out

    tree = Tree(
        f"[bold]{shown(trace.get('name'))}[/bold] {shown(trace.get('id'))} "
        f"({shown(trace.get('timestamp'))})"
    )

    def label(node: dict[str, Any]) -> str:
        text = f"{shown(node['type'])} {shown(node['name'])}"
        if node["duration_ms"] is not None:
            text += f" ({node['duration_ms']:.1f} ms)"
        decision = node.get("decision")
        resolution = node.get("resolution")
        if decision is not None:
            text += ": " + escape(decision_line(decision))
        elif resolution is not None:
            text += ": " + escape(resolution_line(resolution))
        elif node["confidence"] is not None:
            text += f" confidence {escape(str(node['confidence']))}"
        if node["level"] == "ERROR":
            return f"[red]{text} ERROR: {escape(str(node['status_message']))}[/red]"
        if node["level"] == "WARNING":
            return f"[yellow]{text} WARNING[/yellow]"
        return text

    def add(branch: Tree, node: dict[str, Any]) -> None:
        child = branch.add(label(node))
        for grandchild in node["children"]:
            add(child, grandchild)

    for root in roots:
        add(tree, root)
    return tree


def decision_line(decision: dict[str, Any]) -> str:
    """A decision on one line: what, how sure, why."""
    outputs = decision.get("outputs") or {}
    what = ", ".join(f"{key}={_short(value)}" for key, value in outputs.items())
    text = f"decided {decision.get('type') or 'something'}"
    if what:
        text += f" ({what})"
    if decision.get("confidence") is not None:
        text += f", confidence {decision['confidence']}"
    if decision.get("reasoning"):
        text += f": {decision['reasoning']}"
    return text


def resolution_line(resolution: dict[str, Any]) -> str:
    """A resolved conflict on one line: the rule, whose decision stood, whose was overturned."""
    text = f"resolved by {resolution.get('rule') or 'a rule'}"
    if resolution.get("stood"):
        text += f": {resolution['stood']}'s decision stood"
    if resolution.get("overturned"):
        text += f", {resolution['overturned']}'s was overturned"
    return text


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
