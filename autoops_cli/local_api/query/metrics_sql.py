"""The SQL of a metrics query over the local store.

The SQL expressions of the views' fields and measures come from their data model
(``metrics_views``); this module puts them together with a query's filters, groups and
aggregates. Only SQL text written in these two modules reaches SQLite: every value of a
query is a bound parameter. ``?1`` and ``?2`` are always the time bounds, so a time slice of
a query is the same SQL with two other parameters; the rest are numbered in order.

Aggregation happens in SQLite (count, sum, min, max; avg as sum and count), one row per
group. Percentiles and ``uniq`` need every value of a group, so SQLite hands them over as a
``group_concat`` text per group: integers as they are, reals as ``printf('%!.17g')``, which
round-trips a double exactly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from autoops_cli.local_api.query.metrics_views import (
    BUCKET_US,
    FIRST_MONDAY_US,
    PERCENTILES,
    STRING,
    WEEK_US,
    resolve_filter_column,
)

if TYPE_CHECKING:
    from autoops_cli.local_api.query.metrics_query import Filter, MetricsQuery

# What each aggregation needs from SQL, merged over slices.
PARTIALS_OF = {
    "count": ("count",),
    "sum": ("sum",),
    "avg": ("sum", "count"),
    "min": ("min",),
    "max": ("max",),
    "uniq": ("distinct",),
    "histogram": ("values",),
    **dict.fromkeys(PERCENTILES, ("values",)),
}
COMPARISONS = {"=": "=", ">": ">", "<": "<", ">=": ">=", "<=": "<=", "<>": "<>"}
_LIKE_PATTERNS = {
    "contains": "%{}%",
    "does not contain": "%{}%",
    "starts with": "{}%",
    "ends with": "%{}",
}


@dataclass(frozen=True)
class Partial:
    """One SQL aggregate column: ``kind`` (count, sum, min, max, values, distinct) of a measure."""

    kind: str
    measure: str


@dataclass(frozen=True)
class SqlPlan:
    """The SQL of a query and how to read its rows: group key columns, then ``partials``."""

    sql: str
    params: list[Any]
    group_width: int  # leading columns that form the group key (dimensions, time bucket)
    partials: list[Partial]

    @property
    def grouped(self) -> bool:
        """Whether the SQL has a GROUP BY."""
        return self.group_width > 0


class SqlParams(Protocol):
    """Where a condition's values go: ``add`` binds one and returns its placeholder."""

    def add(self, value: Any) -> str:
        """Bind ``value``; its placeholder in the SQL text."""

    def add_all(self, values: Iterable[Any]) -> str:
        """Bind each value; their placeholders, comma-separated."""


class _Params:
    """Numbered parameters; ``?1`` and ``?2`` are the time bounds."""

    def __init__(self, from_us: int, to_us: int) -> None:
        self.values: list[Any] = [from_us, to_us]

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"?{len(self.values)}"

    def add_all(self, values: Iterable[Any]) -> str:
        return ", ".join(self.add(v) for v in values)


def _like(value: str, pattern: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return pattern.format(escaped)


def string_condition(expr: str, operator: str, value: str, params: SqlParams) -> str:
    """String operators; ``contains`` and the like are ASCII case-insensitive, like ILIKE."""
    if operator == "=":
        return f"{expr} = {params.add(value)}"
    placeholder = params.add(_like(value, _LIKE_PATTERNS[operator]))
    if operator == "does not contain":
        return f"COALESCE({expr}, '') NOT LIKE {placeholder} ESCAPE '\\'"
    return f"{expr} LIKE {placeholder} ESCAPE '\\'"


def metadata_value(column: str, key: str, params: SqlParams) -> str:
    """The text of one metadata key ('' when absent, as a ClickHouse map answers).

    Strings come out as they are and other values as their JSON text. A key is addressed by
    a quoted JSON path (bound); keys a path cannot quote go through ``json_each``.
    """
    if any(c in '"\\' or c < " " for c in key):  # characters JSON escapes: a path misses them
        return (
            f"COALESCE((SELECT CAST(j.value AS TEXT) FROM json_each({column}) j "
            f"WHERE j.key = {params.add(key)}), '')"
        )
    path = '$."' + key + '"'  # inside the quotes, a key's dots and brackets are plain text
    return f"COALESCE(CAST({column} ->> {params.add(path)} AS TEXT), '')"


def array_condition(expr: str, operator: str, values: tuple[str, ...], params: SqlParams) -> str:
    """``any of`` / ``none of`` / ``all of`` over a JSON array column (trace tags)."""
    if not values:  # only "all of" and "none of" accept an empty list: both hold for any row
        return "1"
    if operator in ("any of", "none of"):  # values are bound only when used: ``?`` counts
        members = f"SELECT 1 FROM json_each({expr}) j WHERE j.value IN ({params.add_all(values)})"
        return f"{'EXISTS' if operator == 'any of' else 'NOT EXISTS'} ({members})"
    distinct = sorted(set(values))
    return (
        f"(SELECT COUNT(DISTINCT j.value) FROM json_each({expr}) j "
        f"WHERE j.value IN ({params.add_all(distinct)})) = {params.add(len(distinct))}"
    )


def null_condition(expr: str, operator: str, kind: str) -> str:
    """``is null`` / ``is not null``; Langfuse treats an empty string as missing too."""
    missing = f"COALESCE({expr}, '') = ''" if kind == STRING else f"{expr} IS NULL"
    return missing if operator == "is null" else f"NOT {missing}"


def _filter_condition(
    query: MetricsQuery, item: Filter, params: _Params
) -> tuple[str, frozenset[str]]:
    """The SQL condition of one filter and the tables it needs joined."""
    resolved = resolve_filter_column(query.view_def, query.version, item.column)
    if resolved is None:  # parse_metrics_query rejected it already
        raise ValueError(f"unknown filter column {item.column}")
    field_def = resolved[1]
    expr = field_def.sql
    if item.type in ("string", "stringObject"):
        if item.type == "stringObject":
            expr = metadata_value(expr, item.key or "", params)
        return string_condition(expr, item.operator, item.value, params), field_def.joins
    if item.type == "stringOptions":
        members = params.add_all(item.value)
        if item.operator == "any of":
            return f"{expr} IN ({members})", field_def.joins
        return f"({expr} IS NULL OR {expr} NOT IN ({members}))", field_def.joins
    if item.type == "arrayOptions":
        return array_condition(expr, item.operator, item.value, params), field_def.joins
    if item.type == "null":
        return null_condition(expr, item.operator, field_def.kind), field_def.joins
    value = int(item.value) if item.type == "boolean" else item.value  # datetime: microseconds
    return f"{expr} {COMPARISONS[item.operator]} {params.add(value)}", field_def.joins


def time_bucket_sql(time_sql: str, granularity: str) -> str:
    """The start (microseconds) of the bucket of ``time_sql``: UTC, weeks from Monday."""
    if granularity in BUCKET_US:
        return f"({time_sql} / {BUCKET_US[granularity]}) * {BUCKET_US[granularity]}"
    if granularity == "week":
        return f"(({time_sql} - {FIRST_MONDAY_US}) / {WEEK_US}) * {WEEK_US} + {FIRST_MONDAY_US}"
    return f"CAST(strftime('%s', {time_sql} / 1000000, 'unixepoch', 'start of month') AS INTEGER) * 1000000"


def _partials(query: MetricsQuery) -> list[Partial]:
    found: list[Partial] = []
    for metric in query.metrics:
        for kind in PARTIALS_OF[metric.aggregation]:
            partial = Partial(kind, metric.measure)
            if partial not in found:
                found.append(partial)
    return found


def _partial_sql(query: MetricsQuery, partial: Partial) -> str:
    measure = query.view_def.measures[partial.measure]
    if partial.kind in ("values", "distinct"):
        text = f"printf('%!.17g', {measure.sql})" if measure.real else measure.sql
        return f"group_concat({'DISTINCT ' if partial.kind == 'distinct' else ''}{text})"
    return f"{partial.kind.upper()}({measure.sql})"


def build_plan(query: MetricsQuery) -> SqlPlan:
    """The SQL of ``query`` over its whole window (a slice rebinds ``?1`` and ``?2``)."""
    view = query.view_def
    dimensions = view.dimensions_for(query.version)
    params = _Params(query.from_us, query.to_us)
    conditions = [f"{view.time_sql} >= ?1", f"{view.time_sql} <= ?2"]
    if view.segment:
        conditions.append(view.segment)
    joins: set[str] = set()
    for item in query.filters:
        condition, needed = _filter_condition(query, item, params)
        conditions.append(condition)
        joins |= needed
    group = [f"{dimensions[name].sql} AS d{i}" for i, name in enumerate(query.dimensions)]
    joins.update(j for name in query.dimensions for j in dimensions[name].joins)
    if query.granularity:
        group.append(f"{time_bucket_sql(view.time_sql, query.granularity)} AS td")
    partials = _partials(query)
    aggregates = [f"{_partial_sql(query, p)} AS m{i}" for i, p in enumerate(partials)]
    joins.update(j for p in partials for j in view.measures[p.measure].joins)
    sql = f"SELECT {', '.join(group + aggregates)} FROM {view.table}"
    sql += "".join(f" {view.joins[table]}" for table in sorted(joins))
    sql += f" WHERE {' AND '.join(conditions)}"
    if group:
        sql += f" GROUP BY {', '.join(column.rsplit(' AS ', 1)[1] for column in group)}"
    return SqlPlan(sql, params.values, len(group), partials)


def build_sql(query: MetricsQuery) -> tuple[str, list[Any]]:
    """The SQL and parameters of ``query`` over its whole window."""
    plan = build_plan(query)
    return plan.sql, plan.params
