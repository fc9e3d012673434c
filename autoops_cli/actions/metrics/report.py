"""Agent and workflow metrics, and the seed's alerts, from the three metrics answers.

Pure functions over the rows of ``metrics_fetch``'s queries; every definition is in
docs/metrics.md. Numbers may arrive as strings (Langfuse returns 64-bit counts that way)
and are parsed here, once; a value that is not a number (or a count that is not a count) is
0, a name that is not a string is empty, so no answer can make the report fail or hold a
non-finite number.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoops_cli.actions.metrics.queries import WORKFLOW, Fetched
from autoops_cli.langfuse_api.client import count, number
from autoops_cli.simulation.catalog import AGENT_IDS
from autoops_cli.timespec import iso, parse_iso
from config.errors import UsageError
from config.models import AgentPerformanceMetrics, SystemWorkflowMetrics

SUCCESS_RATE_FLOOR = 0.95  # the seed's alert: trace success rate under 95 %
THROUGHPUT_DROP = 0.10  # the seed's alert: throughput down more than 10 % on the window before


def _text(value: Any, default: str = "") -> str:
    """A name field: a string; anything else is ``default``."""
    return value if isinstance(value, str) else default


def unit(value: float) -> float:
    """``value`` kept in [0, 1], where every rate and confidence is (docs/metrics.md)."""
    return min(max(value, 0.0), 1.0)


def fraction(part: float, whole: float, empty: float) -> float:
    """``part / whole`` as a rate, ``empty`` without a whole. Kept in [0, 1]: an answer's
    counts can disagree (a conflict detected in the window before and resolved in this one),
    and a server's can be anything."""
    return unit(part / whole) if whole else empty


def weighted_sum(pairs: list[tuple[float, int]]) -> float:
    """The sum of values times counts; 0 if that overflows (only garbage can get there)."""
    total = float(sum(value * weight for value, weight in pairs))
    return total if math.isfinite(total) else 0.0


def weighted_mean(pairs: list[tuple[float, int]]) -> float:
    """The mean of values weighted by counts; 0 without counts. Finite whatever the inputs."""
    total = sum(weight for _, weight in pairs)
    if not total:
        return 0.0
    mean = float(sum(value * weight for value, weight in pairs)) / total
    if not math.isfinite(mean):  # huge values times huge counts: weights summing to 1 instead
        mean = sum(value * (weight / total) for value, weight in pairs)
    return mean if math.isfinite(mean) else 0.0


@dataclass
class _Group:
    """One (name, type, level) row of the operations answer."""

    name: str
    type: str
    level: str
    count: int
    avg: float
    p50: float
    p95: float
    # Whether its latency was measured: a group of observations without an end time has
    # none (null), and read as 0 with its count it dragged every mean down.
    measured: bool = True
    # Of ``count``, those with a latency: the weight of ``avg`` (the others, weighed in
    # too, pulled a mean of groups at several levels off).
    timed: int = 0


def _groups(rows: list[dict[str, Any]]) -> list[_Group]:
    return [
        _Group(
            _text(row.get("name")),
            _text(row.get("type")).upper(),
            (_text(row.get("level")) or "DEFAULT").upper(),
            count(row.get("count_count")),
            number(row.get("avg_latency")),
            number(row.get("p50_latency")),
            number(row.get("p95_latency")),
            _measured(row.get("avg_latency")),
            _measured_count(row),
        )
        for row in rows
    ]


def _measured_count(row: dict[str, Any]) -> int:
    """How many of a group's rows have a latency (the weight of its mean): ``count_latency``,
    or all of them from a server that does not answer it."""
    measured = row.get("count_latency")
    return count(measured if measured is not None else row.get("count_count"))


def _measured(value: Any) -> bool:
    return value is not None and not isinstance(value, bool)


def _weighted(groups: list[_Group], attribute: str) -> float:
    return weighted_mean([(getattr(g, attribute), g.timed) for g in groups if g.measured])


def _percentile(groups: list[_Group], attribute: str) -> float:
    """An agent's p50/p95: exact for one group; the count-weighted mean of several.

    Percentiles of different groups cannot be merged exactly; the successful operations
    of an agent with one operation name are one group (docs/metrics.md).
    """
    counted = [g for g in groups if g.timed and g.measured]  # the groups that measured
    succeeded = [g for g in counted if g.level != "ERROR"] or counted
    if not succeeded:
        return 0.0
    return (
        getattr(succeeded[0], attribute) if len(succeeded) == 1 else _weighted(succeeded, attribute)
    )


@dataclass
class AgentReport(AgentPerformanceMetrics):
    """The seed's ``AgentPerformanceMetrics``, plus percentiles and the counts behind them."""

    p50_response_time: float = 0.0  # ms
    p95_response_time: float = 0.0
    decisions_overturned: int = 0
    errors: int = 0
    decisions: int = 0
    conflicts_involved: int = 0
    overturn_rate: float | None = None


def empty_agent_report(agent_id: str) -> AgentReport:
    """An agent with no operation in the window."""
    return AgentReport(
        agent_id=agent_id,
        operation_count=0,
        average_response_time=0.0,
        success_rate=1.0,
        tool_usage_stats={},
        decision_accuracy=0.0,
        collaboration_score=0.0,
    )


@dataclass
class SystemReport(SystemWorkflowMetrics):
    """The seed's ``SystemWorkflowMetrics``, plus the counts they are computed from."""

    success_rate: float = 1.0
    failed_events: int = 0
    collaborations: int = 0
    coordination_messages: int = 0
    conflicts_detected: int = 0
    conflicts_resolved: int = 0
    agent_operations: int = 0
    decisions_overturned: int = 0
    previous_window_events: int = 0
    throughput_change: float | None = None


@dataclass
class MetricsReport:
    """Everything ``autoops metrics`` shows."""

    window: dict[str, str]
    agents: dict[str, AgentReport]
    system: SystemReport
    alerts: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def has_data(self) -> bool:
        """False when the window holds no simulation trace and no agent operation."""
        return bool(self.system.total_events_processed) or any(
            agent.operation_count for agent in self.agents.values()
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window,
            "has_data": self.has_data,
            "agents": {agent_id: asdict(report) for agent_id, report in self.agents.items()},
            "system": asdict(self.system),
            "alerts": self.alerts,
            "series": self.series,
            "source": self.source,
            "notes": self.notes,
        }


def _agents(groups: list[_Group], scores: list[dict[str, Any]]) -> dict[str, AgentReport]:
    operations: dict[str, list[_Group]] = defaultdict(list)
    tools: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for group in groups:
        agent, _, rest = group.name.partition(".")
        if group.type == "AGENT" and rest:
            operations[agent].append(group)
        elif group.type == "TOOL" and rest:
            tools[agent][rest] += group.count
    # (agent, score name) -> [(mean, count)] of each row
    score_rows: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
    for row in scores:
        agent = _text(row.get("observationName")).partition(".")[0]
        key = (agent, _text(row.get("name")))
        score_rows[key].append((number(row.get("avg_value")), count(row.get("count_count"))))
    score_counts = {key: sum(n for _, n in rows) for key, rows in score_rows.items()}
    reports: dict[str, AgentReport] = {}
    for agent in sorted((set(operations) | {a for a, _ in score_counts}) - {""}):
        ops = operations.get(agent, [])
        total = sum(g.count for g in ops)
        errors = sum(g.count for g in ops if g.level == "ERROR")
        decisions = score_counts.get((agent, "decision_confidence"), 0)
        involved = score_counts.get((agent, "decision_overturned"), 0)
        # Each decision_overturned score is 0 or 1: never more overturned than scored.
        overturned = round(weighted_sum(score_rows.get((agent, "decision_overturned"), [])))
        overturned = max(0, min(overturned, involved))
        reports[agent] = AgentReport(
            agent_id=agent,
            operation_count=total,
            average_response_time=_weighted(ops, "avg"),
            p50_response_time=_percentile(ops, "p50") if ops else 0.0,
            p95_response_time=_percentile(ops, "p95") if ops else 0.0,
            success_rate=fraction(total - errors, total, 1.0),
            tool_usage_stats=dict(sorted(tools.get(agent, {}).items())),
            decision_accuracy=(
                unit(weighted_mean(score_rows.get((agent, "decision_confidence"), [])))
                if decisions
                else 0.0
            ),
            decisions_overturned=overturned,
            collaboration_score=1.0 - fraction(involved, decisions, 1.0) if decisions else 0.0,
            errors=errors,
            decisions=decisions,
            conflicts_involved=involved,
            overturn_rate=fraction(overturned, decisions, 0.0) if decisions else None,
        )
    return reports


def _count(groups: list[_Group], type_: str, prefix: str) -> int:
    return sum(g.count for g in groups if g.type == type_ and g.name.startswith(prefix))


def _system(
    groups: list[_Group],
    agents: dict[str, AgentReport],
    workflow_rows: list[tuple[str, float, dict[str, Any]]],
    seconds: float,
) -> SystemReport:
    workflows = [g for g in groups if g.type == "CHAIN" and g.name == WORKFLOW]
    events = sum(g.count for g in workflows)
    failed = sum(g.count for g in workflows if g.level == "ERROR")
    detected = _count(groups, "EVENT", "conflict.")
    resolved = _count(groups, "EVENT", "conflict_resolution.")
    operations = sum(a.operation_count for a in agents.values())
    decisions = sum(a.decisions for a in agents.values())
    overturned = sum(a.decisions_overturned for a in agents.values())
    both_windows = sum(count(row.get("count_count")) for _, _, row in workflow_rows)
    previous = max(both_windows - events, 0)
    return SystemReport(
        total_events_processed=events,
        average_workflow_duration=_weighted(workflows, "avg"),
        agent_coordination_efficiency=fraction(decisions - overturned, operations, 0.0),
        conflict_resolution_rate=fraction(resolved, detected, 1.0),
        system_throughput=events / seconds if seconds > 0 else 0.0,
        success_rate=fraction(events - failed, events, 1.0),
        failed_events=failed,
        collaborations=_count(groups, "CHAIN", "collaboration."),
        coordination_messages=_count(groups, "EVENT", "coordination."),
        conflicts_detected=detected,
        conflicts_resolved=resolved,
        agent_operations=operations,
        decisions_overturned=overturned,
        previous_window_events=previous,
        throughput_change=(events - previous) / previous if previous else None,
    )


def _workflow_rows(fetched: Fetched, by: str | None) -> list[tuple[str, float, dict[str, Any]]]:
    """The workflows answer's rows in the two windows: (bucket time, its epoch, row).

    Without ``--by`` the answer has no buckets and every row counts (bucket ""). With it, a
    bucket that ends before the previous window starts, that starts at or after this window
    ends, or whose time is not a timestamp is in neither: a server's stray rows must not show
    in the series nor count as the previous window's events.
    """
    rows = fetched.rows["workflows"]
    if by is None:
        return [("", 0.0, row) for row in rows]
    from autoops_cli.actions.metrics.queries import BUCKET_SECONDS

    first = parse_iso(fetched.window.previous_start).timestamp() - BUCKET_SECONDS[by]
    end = parse_iso(fetched.window.end).timestamp()
    kept = []
    for row in rows:
        stamp = row.get("time_dimension")
        if not isinstance(stamp, str):
            continue
        try:
            moment = parse_iso(stamp)
            bucket, epoch = iso(moment), moment.timestamp()
        except (ValueError, OverflowError):  # not a timestamp, or beyond year 1 or 9999 in UTC
            continue
        if first < epoch < end:
            kept.append((bucket, epoch, row))
    return kept


def _series(
    workflow_rows: list[tuple[str, float, dict[str, Any]]], fetched: Fetched, by: str | None
) -> list[dict[str, Any]]:
    """Buckets that overlap the window: events, failed events, mean workflow duration."""
    if by is None:
        return []
    from autoops_cli.actions.metrics.queries import BUCKET_SECONDS

    start = parse_iso(fetched.window.start).timestamp()
    # (level, workflows, (mean latency, how many have one) or None)
    buckets: dict[str, list[tuple[str, int, tuple[float, int] | None]]] = defaultdict(list)
    for bucket, epoch, row in workflow_rows:
        if epoch + BUCKET_SECONDS[by] <= start:
            continue  # wholly in the previous window
        level = (_text(row.get("level")) or "DEFAULT").upper()
        latency = row.get("avg_latency")
        buckets[bucket].append(
            (
                level,
                count(row.get("count_count")),
                (number(latency), _measured_count(row)) if _measured(latency) else None,
            )
        )
    # Every bucket overlapping the window, an empty one too: the server fills the gaps only
    # up to the bucket its toTimestamp falls in (the one before --until on a boundary, and
    # the current bucket was left out when it had no workflow yet).
    size = BUCKET_SECONDS[by]
    end = parse_iso(fetched.window.end).timestamp()
    moment = math.floor(start / size) * size
    while moment < end:
        buckets.setdefault(iso(datetime.fromtimestamp(moment, UTC)), [])
        moment += size
    series = []
    for stamp in sorted(buckets):
        rows = buckets[stamp]
        measured = [timed for _, _, timed in rows if timed is not None]
        series.append(
            {
                "time": stamp,
                "events": sum(n for _, n, _ in rows),
                "failed_events": sum(n for level, n, _ in rows if level == "ERROR"),
                "average_workflow_duration": weighted_mean(measured),
            }
        )
    return series


def _alerts(
    agents: dict[str, AgentReport], system: SystemReport, max_latency_ms: float
) -> list[dict[str, Any]]:
    """The seed's three alert conditions, for the system and each agent shown."""
    alerts: list[dict[str, Any]] = []

    def alert(name: str, scope: str, value: float, threshold: float, message: str) -> None:
        alerts.append(
            {
                "alert": name,
                "scope": scope,
                "value": value,
                "threshold": threshold,
                "message": message,
            }
        )

    if system.total_events_processed and system.average_workflow_duration > max_latency_ms:
        alert(
            "latency", "system", system.average_workflow_duration, max_latency_ms,
            f"average workflow duration {system.average_workflow_duration:.1f} ms is over "
            f"LANGFUSE_MAX_LATENCY_MS ({max_latency_ms:g} ms)",
        )  # fmt: skip
    for agent in agents.values():
        if agent.operation_count and agent.average_response_time > max_latency_ms:
            alert(
                "latency", agent.agent_id, agent.average_response_time, max_latency_ms,
                f"{agent.agent_id}: average response time {agent.average_response_time:.1f} ms "
                f"is over LANGFUSE_MAX_LATENCY_MS ({max_latency_ms:g} ms)",
            )  # fmt: skip
    if system.total_events_processed and system.success_rate < SUCCESS_RATE_FLOOR:
        alert(
            "success_rate", "system", system.success_rate, SUCCESS_RATE_FLOOR,
            f"trace success rate {system.success_rate:.1%} is under {SUCCESS_RATE_FLOOR:.0%} "
            f"({system.failed_events} of {system.total_events_processed} events failed)",
        )  # fmt: skip
    for agent in agents.values():
        if agent.operation_count and agent.success_rate < SUCCESS_RATE_FLOOR:
            alert(
                "success_rate", agent.agent_id, agent.success_rate, SUCCESS_RATE_FLOOR,
                f"{agent.agent_id}: success rate {agent.success_rate:.1%} is under "
                f"{SUCCESS_RATE_FLOOR:.0%} ({agent.errors} of {agent.operation_count} failed)",
            )  # fmt: skip
    change = system.throughput_change
    if change is not None and change < -THROUGHPUT_DROP:
        alert(
            "throughput", "system", change, -THROUGHPUT_DROP,
            f"throughput down {-change:.0%} on the previous window "
            f"({system.total_events_processed} events against {system.previous_window_events})",
        )  # fmt: skip
    return alerts


def build_report(
    fetched: Fetched, *, by: str | None, agent: str | None, max_latency_ms: float
) -> MetricsReport:
    """The report of the answers; ``agent`` keeps only that agent (the system stays whole)."""
    groups = _groups(fetched.rows["operations"])
    agents = _agents(groups, fetched.rows["scores"])
    workflow_rows = _workflow_rows(fetched, by)
    system = _system(groups, agents, workflow_rows, fetched.window.seconds)
    # On stderr with the other notes: with --json a script got no word that its totals
    # may be low.
    source = fetched.source()
    notes = [
        f"the {query} answer hit the row limit; totals may be low" for query in source["truncated"]
    ]
    if agent is not None:
        if agent not in agents:
            seen = ", ".join(agents) or "none"
            if agent not in AGENT_IDS:  # not a typo of the built-in ones: a usage error
                raise UsageError(
                    f"--agent {agent}: no such agent in the window (agents seen: {seen}; "
                    f"built in: {', '.join(AGENT_IDS)})"
                )
            notes.append(f"no operations of agent {agent!r} in the window (agents seen: {seen})")
        agents = {agent: agents.get(agent) or empty_agent_report(agent)}
    report = MetricsReport(
        window=fetched.window.as_dict(),
        agents=agents,
        system=system,
        series=_series(workflow_rows, fetched, by),
        source=source,
        notes=notes,
    )
    if report.has_data:
        report.alerts = _alerts(agents, system, max_latency_ms)
    else:
        # An empty window is reported as such; it is not an alert (a throughput drop to
        # nothing, a success rate of nothing), whatever the previous window held.
        window = fetched.window
        report.notes.insert(
            0,
            f"no simulation traces from {window.start} to {window.end} in the "
            f"{describe_source(report.source)}: nothing to measure, no alert checked",
        )
    return report


def describe_source(source: dict[str, Any]) -> str:
    """Where the answers came from, in words: the local store or the Langfuse metrics API."""
    where = source.get("where") or ""
    if source.get("api") == "local":
        return f"local store {where}".strip()
    return f"Langfuse {source.get('api')} metrics API at {where or 'the host'}"
