"""``autoops traces``: what happened to recent simulation events, from Langfuse or the store.

Both sources answer in Langfuse's v1 trace shapes: the Langfuse API over HTTP, or the local
store through the same read functions ``autoops serve`` uses, so the output is the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from config.errors import ApiError, CheckFailedError, UsageError

if TYPE_CHECKING:
    from rich.table import Table
    from rich.tree import Tree

    from config.settings import LangfuseConfig

PAGE_LIMIT = 100


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
        self.timeout = timeout

    def get(self, path: str, params: list[tuple[str, str]]) -> Any:
        """GET a v1 read path (``/api/public/traces`` or ``/api/public/traces/{id}``)."""
        if self.local:
            return self._local(path, params)
        return self._remote(path, params)

    def _local(self, path: str, params: list[tuple[str, str]]) -> Any:
        from autoops_cli.local_api import reads
        from autoops_cli.local_api.errors import ApiProblem
        from config.local_store import LocalStore, default_store_path

        query = _Params()
        for key, value in params:
            query.setdefault(key, []).append(value)
        store = LocalStore(default_store_path())
        try:
            if path == "/api/public/traces":
                return reads.list_traces(store, query)
            return reads.get_trace(store, path.rsplit("/", 1)[1], query)
        except ApiProblem as problem:
            if problem.status == 404:
                raise CheckFailedError(str(problem.body.get("message"))) from None
            raise UsageError(str(problem.body.get("message"))) from None
        finally:
            store.close()

    def _remote(self, path: str, params: list[tuple[str, str]]) -> Any:
        from autoops_cli.api_client import ApiClient

        with ApiClient(self.config, timeout=self.timeout) as client:
            body = client.get(path, params, allow=(404,))
        if body is None:
            if path == "/api/public/traces":
                raise ApiError(f"{self.config.host}{path} answered 404", status=404)
            raise CheckFailedError(
                f"trace {path.rsplit('/', 1)[1]} not found at {self.config.host}"
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
        total_pages = int(_mapping(body.get("meta")).get("totalPages") or 0)
        if len(data) > room:  # stopped inside this page: the next call shows it again
            return traces, {"page": page, "limit": size}
        if not data or page >= total_pages:
            return traces, None
        if len(traces) >= wanted:
            return traces, {"page": page + 1, "limit": size}
        page += 1


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def trace_row(trace: dict[str, Any]) -> dict[str, Any]:
    """The columns of ``traces list`` from a v1 trace."""
    metadata = _mapping(trace.get("metadata"))
    output = _mapping(trace.get("output"))
    decisions = _mapping(output.get("decisions"))
    conflicts = int(output.get("conflicts_detected") or 0)
    name = str(trace.get("name") or "")
    level = "ERROR" if not output else ("WARNING" if conflicts else "DEFAULT")
    return {
        "id": trace.get("id"),
        "timestamp": trace.get("timestamp"),
        "event_type": metadata.get("event_type") or name.removeprefix("simulation."),
        "product_id": metadata.get("product_id"),
        "severity": metadata.get("severity"),
        "agents": list(output.get("agents") or []),
        "decisions": len(decisions),
        "conflicts": conflicts,
        "duration_s": trace.get("latency"),
        "level": level,
        "session_id": trace.get("sessionId"),
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


def observation_tree(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace's observations as nested nodes (children by start time)."""
    nodes: dict[str, dict[str, Any]] = {}
    for observation in trace.get("observations") or []:
        start, end = observation.get("startTime"), observation.get("endTime")
        duration_ms = None
        if start and end:
            begin = datetime.fromisoformat(str(start).replace("Z", "+00:00"))
            finish = datetime.fromisoformat(str(end).replace("Z", "+00:00"))
            duration_ms = round((finish - begin).total_seconds() * 1000, 3)
        metadata = (
            observation.get("metadata") if isinstance(observation.get("metadata"), dict) else {}
        )
        nodes[observation["id"]] = {
            "id": observation["id"],
            "name": observation.get("name"),
            "type": observation.get("type"),
            "level": observation.get("level"),
            "status_message": observation.get("statusMessage"),
            "start_time": start,
            "duration_ms": duration_ms,
            "confidence": metadata.get("confidence"),
            "parent": observation.get("parentObservationId"),
            "children": [],
        }
    roots: list[dict[str, Any]] = []
    for node in sorted(nodes.values(), key=lambda n: (str(n["start_time"]), n["id"])):
        parent = nodes.get(node["parent"] or "")
        (parent["children"] if parent else roots).append(node)
    for node in nodes.values():
        del node["parent"]
    return roots


def render_tree(trace: dict[str, Any], roots: list[dict[str, Any]]) -> Tree:
    """The trace as a Rich tree: conflicts in yellow, errors in red."""
    from rich.markup import escape
    from rich.tree import Tree

    tree = Tree(
        f"[bold]{escape(str(trace.get('name')))}[/bold] {trace.get('id')} ({trace.get('timestamp')})"
    )

    def label(node: dict[str, Any]) -> str:
        text = f"{node['type']} {escape(str(node['name']))}"
        if node["duration_ms"] is not None:
            text += f" ({node['duration_ms']:.1f} ms)"
        if node["confidence"] is not None:
            text += f" confidence {node['confidence']}"
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
