"""``autoops traces``: what happened to recent simulation events, from Langfuse or the store.

Both sources answer in Langfuse's v1 trace shapes: the Langfuse API over HTTP, or the local
store through the same read functions ``autoops serve`` uses, so the output is the same.
An answer of another shape is an API error if its frame is wrong (not an object, no list of
traces); inside the frame, a field of the wrong type is left out (shown as empty), so a
strange answer never makes the command fail.
"""

from __future__ import annotations

import math
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from autoops_cli.langfuse_api.client import count
from config.errors import ApiError, CheckFailedError, UsageError

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

    from config.settings import LangfuseConfig

PAGE_LIMIT = 100
# Deeper observations are listed flat under their ancestor at this depth: the traces of this
# system are 4 levels deep, and an answer nesting hundreds could not be written as JSON.
MAX_TREE_DEPTH = 64


def parse_when(value: str, option: str) -> str:
    """``1h`` / ``30m`` / ``2d`` (ago) or an ISO timestamp -> ISO 8601 with ``Z``."""
    from autoops_cli.timespec import parse_moment

    moment = parse_moment(value, option)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


class _Params(dict[str, list[str]]):
    """Query parameters for the local read functions (``get`` / ``getlist``)."""

    def get(self, key: str, default: Any = None) -> Any:
        values = super().get(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(super().get(key) or [])


class TraceSource:
    """Where traces are read from: the Langfuse API, or the local store."""

    def __init__(self, config: LangfuseConfig, *, local: bool, timeout: float = 30.0) -> None:
        self.config = config
        self.local = local or config.mode != "langfuse"
        # One budget for the command: every request gets what is left of it.
        self.deadline = time.monotonic() + timeout

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        """GET a v1 read path (``/api/public/traces`` or ``/api/public/traces/{id}``)."""
        if self.local:
            return self._local(path, params)
        return self._remote(path, params)

    def _local(self, path: str, params: list[tuple[str, str]]) -> Any:
        from autoops_cli.local_api.query.errors import ApiProblem
        from autoops_cli.local_api.query.traces import get_trace, list_traces
        from config.store.local_store import LocalStore, default_store_path

        query = _Params()
        for key, value in params:
            query.setdefault(key, []).append(value)
        store = LocalStore(default_store_path())
        try:
            if path == "/api/public/traces":
                return list_traces(store, query)
            return get_trace(store, path.rsplit("/", 1)[1], query)
        except ApiProblem as problem:
            if problem.status == 404:
                raise CheckFailedError(str(problem.body.get("message"))) from None
            raise UsageError(str(problem.body.get("message"))) from None
        finally:
            store.close()

    def _remote(self, path: str, params: list[tuple[str, str]]) -> Any:
        from autoops_cli.langfuse_api.client import ApiClient

        with ApiClient(self.config, timeout=self.deadline - time.monotonic()) as client:
            body = client.get(path, params, allow=(404,))
        if body is None:
            if path == "/api/public/traces":
                raise ApiError(f"{self.config.host}{path} answered 404", status=404)
            raise CheckFailedError(
                f"trace {path.rsplit('/', 1)[1]} not found at {self.config.host}"
            )
        if not isinstance(body, dict):
            raise ApiError(
                f"{self.config.host}{path} answered JSON that is not an object", status=200
            )
        if path == "/api/public/traces" and not isinstance(body.get("data"), list):
            raise ApiError(
                f"{self.config.host}{path} answered without a list of traces in 'data'", status=200
            )
        return body


def list_query(
    *,
    since: str | None,
    until: str | None,
    event_type: str | None,
    tags: list[str],
    session: str | None,
) -> list[tuple[str, str]]:
    """The v1 traces query for the command's filters (newest first)."""
    params = [("orderBy", "timestamp.desc")]
    if since:
        params.append(("fromTimestamp", parse_when(since, "--since")))
    if until:
        params.append(("toTimestamp", parse_when(until, "--until")))
    if event_type:
        params.append(("name", f"simulation.{event_type}"))
    params.extend(("tags", tag) for tag in tags)
    if session:
        params.append(("sessionId", session))
    return params


def fetch_traces(
    source: TraceSource,
    params: list[tuple[str, str]],
    *,
    wanted: int,
    page: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """Up to ``wanted`` traces from ``page`` on, and where the next ones start (or None).

    Pages keep one size (at most the API's 100), so page numbers stay offsets of that size;
    ``next`` is ``{"page", "limit"}`` for ``--page`` / ``--limit`` when more traces exist
    (when ``wanted`` ended inside a page, that page: its first traces are shown again).
    """
    size = min(PAGE_LIMIT, wanted)
    traces: list[dict[str, Any]] = []
    while True:
        body = source.get(
            "/api/public/traces", [*params, ("page", str(page)), ("limit", str(size))]
        )
        data = [t for t in body.get("data") or [] if isinstance(t, dict)]
        room = wanted - len(traces)
        traces.extend(data[:room])
        total_pages = count(_mapping(body.get("meta")).get("totalPages"))
        if len(data) > room:  # stopped inside this page: the next call shows it again
            return traces, {"page": page, "limit": size}
        if not data or page >= total_pages:
            return traces, None
        if len(traces) >= wanted:
            return traces, {"page": page + 1, "limit": size}
        page += 1


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
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """``autoops traces list``: the rows to show, and where the next page starts (or None).

    ``all_pages`` reads whole pages of the API's maximum, up to ``max_items`` traces.
    """
    source = TraceSource(config, local=local, timeout=timeout)
    params = list_query(since=since, until=until, event_type=event_type, tags=tags, session=session)
    if all_pages:
        traces, following = fetch_traces(source, params, wanted=max_items)
    else:
        traces, following = fetch_traces(source, params, wanted=limit, page=page)
    return [trace_row(t) for t in traces], following


def show_trace(
    config: LangfuseConfig, trace_id: str, *, local: bool, timeout: float = 30.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``autoops traces show``: the trace and its observations as a tree (roots first)."""
    trace = TraceSource(config, local=local, timeout=timeout).get(
        f"/api/public/traces/{trace_id}", []
    )
    return trace, observation_tree(trace)


def trace_document(trace: dict[str, Any], roots: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``traces show --json`` document: the trace's id, name, time and nested tree."""
    return {
        "id": trace.get("id"),
        "name": trace.get("name"),
        "timestamp": trace.get("timestamp"),
        "observations": roots,
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scalar(value: Any) -> str | int | float | bool | None:
    """A field shown as it is: a string, a finite number, a boolean; anything else is None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, (str, int, float, bool)) else None


def _seconds(value: Any) -> float | None:
    """A duration: a finite number (never a boolean), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


def trace_row(trace: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``traces list`` from a v1 trace."""
    metadata = _mapping(trace.get("metadata"))
    output = _mapping(trace.get("output"))
    decisions = _mapping(output.get("decisions"))
    conflicts = count(output.get("conflicts_detected"))
    raw_name = trace.get("name")
    name = raw_name if isinstance(raw_name, str) else ""
    level = "ERROR" if not output else ("WARNING" if conflicts else "DEFAULT")
    agents = output.get("agents")
    return {
        "id": _scalar(trace.get("id")),
        "timestamp": _scalar(trace.get("timestamp")),
        "event_type": _scalar(metadata.get("event_type")) or name.removeprefix("simulation."),
        "product_id": _scalar(metadata.get("product_id")),
        "severity": _scalar(metadata.get("severity")),
        "agents": [a for a in agents if isinstance(a, str)] if isinstance(agents, list) else [],
        "decisions": len(decisions),
        "conflicts": conflicts,
        "duration_s": _seconds(trace.get("latency")),
        "level": level,
        "session_id": _scalar(trace.get("sessionId")),
    }


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


def _duration_ms(start: Any, end: Any) -> float | None:
    """Milliseconds between two ISO timestamps; None unless both are (and comparable)."""
    if not (isinstance(start, str) and isinstance(end, str) and start and end):
        return None
    try:
        begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
        finish = datetime.fromisoformat(end.replace("Z", "+00:00"))
        return round((finish - begin).total_seconds() * 1000, 3)
    except (ValueError, TypeError, OverflowError):  # not ISO, or one naive and one aware
        return None


def _reached(starts: list[dict[str, Any]]) -> set[int]:
    """The nodes (by identity) in the subtrees of ``starts``."""
    seen: set[int] = set()
    stack = list(starts)
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            stack.extend(node["children"])
    return seen


def observation_tree(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's observations as nested nodes (children by start time).

    Observations without a string id are left out. A parent chain that loops back on itself
    (only a broken answer has one) is cut at its earliest observation, which becomes a root:
    every observation is shown, and the result stays a tree, at most ``MAX_TREE_DEPTH`` deep.
    """
    nodes: dict[str, dict[str, Any]] = {}
    observations = trace.get("observations")
    for observation in observations if isinstance(observations, list) else []:
        if not isinstance(observation, dict) or not isinstance(observation.get("id"), str):
            continue
        start = _scalar(observation.get("startTime"))
        metadata = _mapping(observation.get("metadata"))
        nodes[observation["id"]] = {
            "id": observation["id"],
            "name": _scalar(observation.get("name")),
            "type": _scalar(observation.get("type")),
            "level": _scalar(observation.get("level")),
            "status_message": _scalar(observation.get("statusMessage")),
            "start_time": start,
            "duration_ms": _duration_ms(start, observation.get("endTime")),
            "confidence": _scalar(metadata.get("confidence")),
            "parent": observation.get("parentObservationId"),
            "children": [],
        }
    ordered = sorted(nodes.values(), key=lambda n: (str(n["start_time"]), n["id"]))
    roots: list[dict[str, Any]] = []
    for node in ordered:
        parent = nodes.get(node["parent"]) if isinstance(node["parent"], str) else None
        (parent["children"] if parent is not None and parent is not node else roots).append(node)
    reached = _reached(roots)
    for node in ordered:
        if id(node) not in reached:  # on a loop: detach it from its parent, make it a root
            parent = nodes[node["parent"]]
            parent["children"] = [child for child in parent["children"] if child is not node]
            roots.append(node)
            reached |= _reached([node])
    for node in nodes.values():
        del node["parent"]
    _flatten_below(roots, MAX_TREE_DEPTH)
    return roots


def _flatten_below(roots: list[dict[str, Any]], depth: int) -> None:
    """Nodes at ``depth`` get all their descendants as direct children, in tree order."""
    stack = [(node, 1) for node in roots]
    while stack:
        node, level = stack.pop()
        if level < depth:
            stack.extend((child, level + 1) for child in node["children"])
            continue
        descendants: list[dict[str, Any]] = []
        pending = list(reversed(node["children"]))
        while pending:
            child = pending.pop()
            descendants.append(child)
            pending.extend(reversed(child["children"]))
            child["children"] = []
        node["children"] = descendants


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
