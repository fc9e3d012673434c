"""How ``autoops traces`` draws its rows: the list as a table, one trace as a tree (Rich)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree


def traces_table(rows: list[dict[str, Any]]) -> Table:
    """``traces list`` as a table."""
    from rich import box
    from rich.table import Table

    # No cell padding: nine columns fit 100 characters without truncating an event type.
    table = Table(box=box.ASCII, header_style="bold", padding=(0, 0))
    for column in (
        "time (UTC)",
        "event type",
        "product",
        "severity",
        "agents",
        "dec",
        "confl",
        "duration",
        "level",
    ):
        table.add_column(column, no_wrap=True)
    for row in rows:
        duration = row["duration_s"]
        stamp = str(row["timestamp"] or "-")
        table.add_row(
            stamp[5:19].replace(
                "T", " "
            ),  # MM-DD HH:MM:SS: the year and the milliseconds are noise here
            str(row["event_type"] or "-"),
            str(row["product_id"] or "-"),
            str(row["severity"] or "-"),
            str(len(row["agents"])),
            str(row["decisions"]),
            str(row["conflicts"]),
            f"{duration:.3f}s" if isinstance(duration, (int, float)) else "-",
            row["level"],
        )
    return table


def render_tree(trace: dict[str, Any], roots: list[dict[str, Any]]) -> Tree:
    """The trace as a Rich tree: conflicts in yellow, errors in red."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(
        f"[bold]{escape(str(trace.get('name')))}[/bold] {escape(str(trace.get('id')))} "
        f"({escape(str(trace.get('timestamp')))})"
    )

    def label(node: dict[str, Any]) -> str:
        text = f"{escape(str(node['type']))} {escape(str(node['name']))}"
        if node["duration_ms"] is not None:
            text += f" ({node['duration_ms']:.1f} ms)"
        if node["confidence"] is not None:
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
