"""The structured ``filter`` parameter of the list endpoints (a JSON array of conditions).

Each condition is ``{"type", "column", "operator", "value", "key"?}`` as the spec describes
it for ``GET /api/public/v2/observations`` (and v1 observations, traces and v2 scores):
types ``datetime``, ``string``, ``number``, ``stringOptions``, ``categoryOptions``,
``arrayOptions``, ``stringObject``, ``numberObject``, ``boolean``, ``null``, each with its
operators; ``matches`` (a literal substring search, case-insensitive on input and output,
case-sensitive on metadata) only on ``input``, ``output`` and metadata. The shape is checked
by the metrics query language's parser (the same zod rules, issues under ``filter``); the
columns of each endpoint are below, with the SQL they mean over the local store.

As in Langfuse (``deriveFilters``), a condition takes precedence over the simple query
parameter of the same column (``name=...`` is ignored beside a ``name`` condition); the
other simple parameters still apply. Only SQL written here reaches SQLite: column names come
from these tables, every value is a bound parameter.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from autoops_cli.local_api.query.common import Where, text_param
from autoops_cli.local_api.query.errors import QueryParams, invalid_request
from autoops_cli.local_api.query.metrics_query import (
    FILTER_OPERATORS,
    FILTER_TYPES_BY_KIND,
    Filter,
    parse_filter_list,
)
from autoops_cli.local_api.query.metrics_sql import (
    COMPARISONS,
    array_condition,
    metadata_value,
    null_condition,
    string_condition,
)
from autoops_cli.local_api.query.metrics_views import (
    ARRAY,
    BOOLEAN,
    DATETIME,
    IS_ROOT_SQL,
    NUMBER,
    STRING,
    observation_measures,
)

METADATA, TEXT = "metadata", "text"  # column kinds of their own: metadata, input/output
OPERATORS = {
    **FILTER_OPERATORS,
    "string": (*FILTER_OPERATORS["string"], "matches"),
    "stringObject": (*FILTER_OPERATORS["stringObject"], "matches"),
}
MAX_CONDITIONS = 50  # each is a clause of the SQL; SQLite bounds an expression's depth
TYPES_BY_KIND = {
    **FILTER_TYPES_BY_KIND,
    METADATA: ("stringObject", "numberObject", "categoryOptions"),
    TEXT: ("string", "null"),
}


@dataclass(frozen=True)
class FilterColumn:
    """A filterable column: its SQL and kind, and the simple parameters it overrides."""

    sql: str
    kind: str = STRING
    replaces: tuple[str, ...] = ()


class _Positional:
    """Bound values in the order their ``?`` placeholders appear (``Where``'s style).

    An expression holding a placeholder (a metadata key) must appear once in the SQL.
    """

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any) -> str:
        self.values.append(value)
        return "?"

    def add_all(self, values: Iterable[Any]) -> str:
        return ", ".join(self.add(value) for value in values)


def parse_filter_param(params: QueryParams) -> tuple[Filter, ...]:
    """The conditions of ``filter`` (none when absent or empty); a bad one is a 400."""
    raw = text_param(params, "filter")
    if raw is None:
        return ()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise invalid_request("Invalid JSON in filter parameter") from None
    conditions = parse_filter_list(value, parameter="filter", operators=OPERATORS)
    if len(conditions) > MAX_CONDITIONS:
        raise invalid_request(f"Invalid filter: at most {MAX_CONDITIONS} conditions")
    return conditions


def structured_filter(
    where: Where, params: QueryParams, columns: Mapping[str, FilterColumn]
) -> QueryParams:
    """Add the ``filter`` conditions to ``where``; the query parameters left to apply.

    The parameters returned hide the simple filters a condition overrides.
    """
    conditions = parse_filter_param(params)
    _check_text_filters(conditions, columns)
    replaced: set[str] = set()
    for condition in conditions:
        column = _column(condition, columns)
        bound = _Positional()
        where.add(_condition_sql(condition, column, bound), *bound.values)
        replaced.update(column.replaces)
    return _Without(params, frozenset(replaced)) if replaced else params


class _Without:
    """Query parameters with some names hidden (``QueryParams``)."""

    def __init__(self, params: QueryParams, hidden: frozenset[str]) -> None:
        self._params, self._hidden = params, hidden

    def get(self, key: str, default: Any = None) -> Any:
        return default if key in self._hidden else self._params.get(key, default)

    def getlist(self, key: str) -> list[str]:
        return [] if key in self._hidden else list(self._params.getlist(key))

    def __contains__(self, key: object) -> bool:
        return key not in self._hidden and key in self._params


def _column(condition: Filter, columns: Mapping[str, FilterColumn]) -> FilterColumn:
    column = columns.get(condition.column)
    if column is None:
        raise invalid_request(
            f"Invalid filter column {condition.column}. Must be one of {', '.join(columns)}"
        )
    allowed = TYPES_BY_KIND[column.kind]
    if condition.type not in allowed:
        raise invalid_request(
            f"Invalid filter for column '{condition.column}': type '{condition.type}' does "
            f"not apply to it. Use one of: {', '.join(allowed)}."
        )
    if condition.operator == "matches" and column.kind not in (TEXT, METADATA):
        raise invalid_request(
            "Invalid filter: the 'matches' operator is only supported for input, output "
            "and metadata"
        )
    return column


def _check_text_filters(
    conditions: tuple[Filter, ...], columns: Mapping[str, FilterColumn]
) -> None:
    """Langfuse's rule: a substring filter (``contains``, ``starts with``, ...) on input or
    output needs an ``=`` or ``matches`` filter on input or output beside it."""
    on_text = [
        c
        for c in conditions
        if c.type == "string" and c.column in columns and columns[c.column].kind == TEXT
    ]
    if on_text and not any(c.operator in ("=", "matches") for c in on_text):
        raise invalid_request(
            "Invalid filter: a filter on input or output needs at least one '=' or 'matches' "
            "filter on input or output"
        )


def _condition_sql(condition: Filter, column: FilterColumn, params: _Positional) -> str:
    expr, operator, value = column.sql, condition.operator, condition.value
    if condition.type == "null":
        return null_condition(expr, operator, STRING if column.kind == TEXT else column.kind)
    if column.kind == METADATA:
        expr = metadata_value(expr, condition.key or "", params)
        if condition.type == "numberObject":
            return f"CAST(NULLIF({expr}, '') AS REAL) {COMPARISONS[operator]} {params.add(value)}"
        if condition.type == "categoryOptions":
            return _options(expr, operator, value, params)
        if operator == "matches":  # case-sensitive on metadata values
            return f"instr({expr}, {params.add(value)}) > 0"
        return string_condition(expr, operator, value, params)
    if condition.type == "stringOptions":
        return _options(expr, operator, value, params)
    if condition.type == "arrayOptions":
        return array_condition(expr, operator, value, params)
    if condition.type == "string":
        if operator == "matches":  # case-insensitive on input and output, % and _ literal
            return f"instr(lower(COALESCE({expr}, '')), lower({params.add(value)})) > 0"
        return string_condition(expr, operator, value, params)
    if condition.type == "boolean":
        value = int(value)
    return f"{expr} {COMPARISONS[operator]} {params.add(value)}"  # number, datetime, boolean


def _options(expr: str, operator: str, values: tuple[str, ...], params: _Positional) -> str:
    members = params.add_all(values)
    if operator == "any of":
        return f"{expr} IN ({members})"
    return f"COALESCE({expr} NOT IN ({members}), 1)"  # a missing value is none of them


# --- the columns of each endpoint ---------------------------------------------------------

_O = observation_measures("o")
_SECONDS = "/ 1000000.0"


def _per_trace(name: str) -> str:
    """The sum of an observation measure over the trace ``t`` (0 without observations)."""
    measure = observation_measures("ob")[name].sql
    return f"(SELECT COALESCE(SUM({measure}), 0) FROM observations ob WHERE ob.trace_id = t.id)"


def _level_count(level: str) -> str:
    return (
        f"(SELECT COUNT(*) FROM observations ob WHERE ob.trace_id = t.id AND ob.level = '{level}')"
    )


# Observations (v1 and v2; ``o`` joined with its trace ``t``).
OBSERVATION_COLUMNS: dict[str, FilterColumn] = {
    "id": FilterColumn("o.id"),
    "type": FilterColumn("o.type", replaces=("type",)),
    "name": FilterColumn("o.name", replaces=("name",)),
    "traceId": FilterColumn("o.trace_id", replaces=("traceId",)),
    "startTime": FilterColumn("o.start_us", DATETIME, ("fromStartTime", "toStartTime")),
    "endTime": FilterColumn("o.end_us", DATETIME),
    "environment": FilterColumn("COALESCE(o.environment, 'default')", replaces=("environment",)),
    "level": FilterColumn("o.level", replaces=("level",)),
    "statusMessage": FilterColumn("o.status_message"),
    "version": FilterColumn("o.version", replaces=("version",)),
    "userId": FilterColumn("t.user_id", replaces=("userId",)),
    "sessionId": FilterColumn("t.session_id", replaces=("sessionId",)),
    "isRootObservation": FilterColumn(IS_ROOT_SQL, BOOLEAN, ("isRootObservation",)),
    "parentObservationId": FilterColumn(
        "o.parent_observation_id", replaces=("parentObservationId",)
    ),
    "traceName": FilterColumn("t.name"),
    "traceTags": FilterColumn("t.tags", ARRAY),
    "tags": FilterColumn("t.tags", ARRAY),
    "traceEnvironment": FilterColumn("COALESCE(t.environment, 'default')"),
    "latency": FilterColumn(f"((o.end_us - o.start_us) {_SECONDS})", NUMBER),
    "timeToFirstToken": FilterColumn(f"({_O['timeToFirstToken'].sql} {_SECONDS})", NUMBER),
    "tokensPerSecond": FilterColumn(_O["tokensPerSecond"].sql, NUMBER),
    "inputTokens": FilterColumn(_O["inputTokens"].sql, NUMBER),
    "outputTokens": FilterColumn(_O["outputTokens"].sql, NUMBER),
    "totalTokens": FilterColumn(_O["totalTokens"].sql, NUMBER),
    "tokens": FilterColumn(_O["totalTokens"].sql, NUMBER),
    "inputCost": FilterColumn(_O["inputCost"].sql, NUMBER),
    "outputCost": FilterColumn(_O["outputCost"].sql, NUMBER),
    "totalCost": FilterColumn(_O["totalCost"].sql, NUMBER),
    "model": FilterColumn("o.model"),
    "providedModelName": FilterColumn("o.model"),
    "promptName": FilterColumn("o.prompt_name"),
    "promptVersion": FilterColumn("o.prompt_version", NUMBER),
    "input": FilterColumn("o.input", TEXT),
    "output": FilterColumn("o.output", TEXT),
    "metadata": FilterColumn("o.metadata", METADATA),
}

# Traces (v1; ``t``, observation aggregates as subqueries).
TRACE_COLUMNS: dict[str, FilterColumn] = {
    "id": FilterColumn("t.id"),
    "name": FilterColumn("t.name", replaces=("name",)),
    "timestamp": FilterColumn("t.timestamp_us", DATETIME, ("fromTimestamp", "toTimestamp")),
    "userId": FilterColumn("t.user_id", replaces=("userId",)),
    "sessionId": FilterColumn("t.session_id", replaces=("sessionId",)),
    "environment": FilterColumn("COALESCE(t.environment, 'default')", replaces=("environment",)),
    "version": FilterColumn("t.version", replaces=("version",)),
    "release": FilterColumn("t.release", replaces=("release",)),
    "tags": FilterColumn("t.tags", ARRAY, ("tags",)),
    "bookmarked": FilterColumn("0", BOOLEAN),  # nothing is bookmarked locally
    "metadata": FilterColumn("t.metadata", METADATA),
    "latency": FilterColumn(
        "(SELECT (MAX(COALESCE(ob.end_us, ob.start_us)) - MIN(ob.start_us)) / 1000000.0 "
        "FROM observations ob WHERE ob.trace_id = t.id)",
        NUMBER,
    ),
    "inputTokens": FilterColumn(_per_trace("inputTokens"), NUMBER),
    "outputTokens": FilterColumn(_per_trace("outputTokens"), NUMBER),
    "totalTokens": FilterColumn(_per_trace("totalTokens"), NUMBER),
    "tokens": FilterColumn(_per_trace("totalTokens"), NUMBER),
    "inputCost": FilterColumn(_per_trace("inputCost"), NUMBER),
    "outputCost": FilterColumn(_per_trace("outputCost"), NUMBER),
    "totalCost": FilterColumn(_per_trace("totalCost"), NUMBER),
    "level": FilterColumn(
        "(SELECT CASE MAX(CASE ob.level WHEN 'ERROR' THEN 3 WHEN 'WARNING' THEN 2 "
        "WHEN 'DEFAULT' THEN 1 ELSE 0 END) WHEN 3 THEN 'ERROR' WHEN 2 THEN 'WARNING' "
        "WHEN 1 THEN 'DEFAULT' WHEN 0 THEN 'DEBUG' END "
        "FROM observations ob WHERE ob.trace_id = t.id)"
    ),
    "warningCount": FilterColumn(_level_count("WARNING"), NUMBER),
    "errorCount": FilterColumn(_level_count("ERROR"), NUMBER),
    "defaultCount": FilterColumn(_level_count("DEFAULT"), NUMBER),
    "debugCount": FilterColumn(_level_count("DEBUG"), NUMBER),
    "scores_avg": FilterColumn(
        "(SELECT AVG(sc.value) FROM scores sc WHERE sc.trace_id = t.id "
        "AND sc.data_type IN ('NUMERIC', 'BOOLEAN'))",
        NUMBER,
    ),
}
TRACE_COLUMNS["scores"] = TRACE_COLUMNS["scores_avg"]

# Scores (v2; ``s`` joined with its trace ``t``).
SCORE_COLUMNS: dict[str, FilterColumn] = {
    "id": FilterColumn("s.id"),
    "name": FilterColumn("s.name", replaces=("name",)),
    "value": FilterColumn("s.value", NUMBER, ("operator", "value")),
    "stringValue": FilterColumn("s.string_value"),
    "dataType": FilterColumn("UPPER(s.data_type)", replaces=("dataType",)),
    "source": FilterColumn("UPPER(COALESCE(s.source, 'API'))", replaces=("source",)),
    "timestamp": FilterColumn("s.timestamp_us", DATETIME, ("fromTimestamp", "toTimestamp")),
    "traceId": FilterColumn("s.trace_id", replaces=("traceId",)),
    "observationId": FilterColumn("s.observation_id", replaces=("observationId",)),
    "sessionId": FilterColumn("s.session_id", replaces=("sessionId",)),
    "environment": FilterColumn("COALESCE(s.environment, 'default')", replaces=("environment",)),
    "comment": FilterColumn("s.comment"),
    "userId": FilterColumn("t.user_id", replaces=("userId",)),
    "traceName": FilterColumn("t.name"),
    "traceTags": FilterColumn("t.tags", ARRAY, ("traceTags",)),
    "tags": FilterColumn("t.tags", ARRAY, ("traceTags",)),
    "metadata": FilterColumn("s.metadata", METADATA),
}
