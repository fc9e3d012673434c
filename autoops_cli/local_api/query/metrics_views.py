"""The data model of the metrics views over the local store.

The data model is Langfuse's (``web/src/features/query/dataModel.ts``): which views exist,
which dimensions and measures each has, and here the SQL expression of each over the local
store's tables (``traces t``, ``observations o``, ``scores s``). With ``metrics_sql``, which
puts these expressions together into a query's SQL, it is the only source of SQL text:
column and table names come from these tables, and every value of a query is a bound
parameter.

It also names what the query language, the SQL and the run share: the percentiles an
aggregation may ask for and the sizes of the time buckets (UTC, weeks from Monday).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Kinds of fields, deciding which filter types apply.
STRING, NUMBER, BOOLEAN, ARRAY, DATETIME = "string", "number", "boolean", "array", "datetime"
TRACES, OBSERVATIONS = "traces", "observations"  # tables a field may need joined

# A root observation (``isRootObservation``): one without a parent, or whose parent is not
# stored in its trace (a span started with ``trace_context`` under another trace's span).
# The parent id is kept as sent, as Langfuse keeps it: a span the Langfuse SDK starts in a
# chosen trace or under a framework's span has a parent that never arrives, and a service
# continuing another's trace one that does (svcB under svcA's span).
IS_ROOT_SQL = (
    "(o.parent_observation_id IS NULL OR NOT EXISTS (SELECT 1 FROM observations AS parent "
    "WHERE parent.id = o.parent_observation_id AND parent.trace_id = o.trace_id))"
)


def _iso_text_us(column: str) -> str:
    """Microseconds since the epoch of an ISO text column, exactly: SQLite's date functions
    keep milliseconds only (and ``julianday`` a float: 250 ms came out as 250.101), so the
    whole seconds come from ``strftime('%s')`` (offsets applied) and the fraction from the
    text's digits after the seconds."""
    fraction = f"substr({column}, 21)"
    digits = f"substr({fraction}, 1, length({fraction}) - length(ltrim({fraction}, '0123456789')))"
    return (
        f"(CAST(strftime('%s', {column}) AS INTEGER) * 1000000 + CASE WHEN substr({column}, 20, 1)"
        f" = '.' THEN CAST(substr({digits} || '000000', 1, 6) AS INTEGER) ELSE 0 END)"
    )


# completion_start_time is stored as text.
_COMPLETION_START_US = _iso_text_us("o.completion_start_time")


@dataclass(frozen=True)
class FieldDef:
    """A dimension (or filter column): its SQL expression and kind."""

    sql: str
    kind: str = STRING
    joins: frozenset[str] = frozenset()
    high_cardinality: bool = False
    versions: frozenset[int] = frozenset({1, 2})


@dataclass(frozen=True)
class MeasureDef:
    """A measure: a per-row SQL expression, aggregated as the query asks.

    ``real`` marks expressions that may be fractional (their values travel as exact text for
    percentiles); ``divisor`` scales the aggregated value in Python (latencies are computed
    in integer microseconds, exact, and reported in milliseconds).
    """

    sql: str
    real: bool = False
    divisor: int = 1
    joins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ViewDef:
    """A view: base table (with alias), time column, constant condition and fields."""

    name: str
    table: str
    time_sql: str
    time_fields: tuple[str, ...]  # filter column names of the time column
    metadata_sql: str
    segment: str | None
    dimensions: dict[str, FieldDef]
    measures: dict[str, MeasureDef]
    versions: frozenset[int] = frozenset({1, 2})
    joins: dict[str, str] = field(default_factory=dict)  # table -> LEFT JOIN clause
    time_indexed: bool = True  # an index leads with the time column (slicing is cheap)

    def dimensions_for(self, version: int) -> dict[str, FieldDef]:
        """The dimensions this API version offers."""
        return {name: f for name, f in self.dimensions.items() if version in f.versions}


def _f(
    sql: str,
    kind: str = STRING,
    *,
    joins: tuple[str, ...] = (),
    high: bool = False,
    versions: tuple[int, ...] = (1, 2),
) -> FieldDef:
    return FieldDef(sql, kind, frozenset(joins), high, frozenset(versions))


def _json_sum(column: str, key_pattern: str | None) -> str:
    """Sum of the numeric values of a JSON object column whose key contains ``key_pattern``.

    Langfuse sums every usage (cost) entry whose key contains ``input`` (``output``),
    case-insensitively: ``input``, ``input_cached_tokens``, ... . 0 when absent.
    """
    where = f" WHERE j.key LIKE '%{key_pattern}%'" if key_pattern else ""
    return (
        f"(CASE WHEN json_valid({column}) THEN "
        f"COALESCE((SELECT SUM(j.value) FROM json_each({column}) j{where}), 0) ELSE 0 END)"
    )


def _json_total(column: str) -> str:
    """The ``total`` entry of a usage (cost) object; the sum of its entries without one."""
    return (
        f"(CASE WHEN json_valid({column}) THEN COALESCE(json_extract({column}, '$.total'), "
        f"(SELECT SUM(j.value) FROM json_each({column}) j), 0) ELSE 0 END)"
    )


def observation_measures(alias: str) -> dict[str, MeasureDef]:
    """Measures of one observation row (alias ``o``); the traces view sums them per trace."""
    usage, cost = f"{alias}.usage_details", f"{alias}.cost_details"
    output_tokens, total_tokens = _json_sum(usage, "output"), _json_total(usage)
    return {
        "count": MeasureDef("1"),
        "latency": MeasureDef(f"({alias}.end_us - {alias}.start_us)", divisor=1000),
        "streamingLatency": MeasureDef(f"({alias}.end_us - {_COMPLETION_START_US})", divisor=1000),
        "timeToFirstToken": MeasureDef(
            f"({_COMPLETION_START_US} - {alias}.start_us)", divisor=1000
        ),
        "inputTokens": MeasureDef(_json_sum(usage, "input"), real=True),
        "outputTokens": MeasureDef(output_tokens, real=True),
        "totalTokens": MeasureDef(total_tokens, real=True),
        "outputTokensPerSecond": MeasureDef(
            f"({output_tokens} * 1000000.0 / NULLIF({alias}.end_us - {_COMPLETION_START_US}, 0))",
            real=True,
        ),
        "tokensPerSecond": MeasureDef(
            f"({total_tokens} * 1000000.0 / NULLIF({alias}.end_us - {alias}.start_us, 0))",
            real=True,
        ),
        "inputCost": MeasureDef(_json_sum(cost, "input"), real=True),
        "outputCost": MeasureDef(_json_sum(cost, "output"), real=True),
        "totalCost": MeasureDef(_json_total(cost), real=True),
        # Through scores_by_trace: an observation's scores share its trace.
        "countScores": MeasureDef(
            f"(SELECT COUNT(*) FROM scores sc WHERE sc.trace_id = {alias}.trace_id "
            f"AND sc.observation_id = {alias}.id)"
        ),
    }


def _month(time_sql: str) -> str:
    return f"strftime('%Y-%m', {time_sql} / 1000000, 'unixepoch')"


_TRACE_DIMENSIONS = {
    "id": _f("t.id", high=True),
    "name": _f("t.name"),
    "tags": _f("t.tags", ARRAY),
    "userId": _f("t.user_id", high=True),
    "sessionId": _f("t.session_id", high=True),
    "release": _f("t.release"),
    "version": _f("t.version"),
    "environment": _f("t.environment"),
    "timestampMonth": _f(_month("t.timestamp_us")),
}

_OBSERVATION_DIMENSIONS = {
    "id": _f("o.id", high=True),
    "traceId": _f("o.trace_id", high=True),
    "traceName": _f("t.name", joins=(TRACES,)),
    "environment": _f("o.environment"),
    "parentObservationId": _f("o.parent_observation_id", high=True),
    "type": _f("o.type"),
    "name": _f("o.name"),
    "level": _f("o.level"),
    "version": _f("o.version"),
    "release": _f("o.release"),
    "tags": _f("t.tags", ARRAY, joins=(TRACES,)),
    "providedModelName": _f("o.model"),
    "promptName": _f("o.prompt_name"),
    "promptVersion": _f("o.prompt_version", NUMBER),
    "userId": _f("t.user_id", joins=(TRACES,), high=True),
    "sessionId": _f("t.session_id", joins=(TRACES,), high=True),
    "traceRelease": _f("t.release", joins=(TRACES,)),
    "traceVersion": _f("t.version", joins=(TRACES,)),
    "startTimeMonth": _f(_month("o.start_us")),
    "isRootObservation": _f(IS_ROOT_SQL, BOOLEAN, versions=(2,)),
}

# Boolean scores are stored by the local store as string_value "True"/"False" (value NULL);
# Langfuse keeps them as 1/0, which is what the views aggregate.
SCORE_VALUE_SQL = (
    "COALESCE(s.value, CASE WHEN s.data_type = 'BOOLEAN' THEN "
    "(CASE WHEN lower(s.string_value) IN ('true', '1') THEN 1.0 ELSE 0.0 END) END)"
)

_SCORE_DIMENSIONS = {
    "id": _f("s.id", high=True),
    "environment": _f("s.environment"),
    "name": _f("s.name"),
    "source": _f("s.source"),
    "dataType": _f("s.data_type"),
    "traceId": _f("s.trace_id", high=True),
    "observationId": _f("s.observation_id", high=True),
    "timestampMonth": _f(_month("s.timestamp_us")),
    "timestampDay": _f("strftime('%Y-%m-%d', s.timestamp_us / 1000000, 'unixepoch')"),
    "traceName": _f("t.name", joins=(TRACES,)),
    "tags": _f("t.tags", ARRAY, joins=(TRACES,)),
    "userId": _f("t.user_id", joins=(TRACES,), high=True),
    # A session score carries its session; a trace score has its trace's.
    "sessionId": _f("COALESCE(s.session_id, t.session_id)", joins=(TRACES,), high=True),
    "release": _f("t.release", joins=(TRACES,)),
    "traceRelease": _f("t.release", joins=(TRACES,)),
    "traceVersion": _f("t.version", joins=(TRACES,)),
    "observationName": _f("o.name", joins=(OBSERVATIONS,)),
    "observationModelName": _f("o.model", joins=(OBSERVATIONS,)),
    "observationPromptName": _f("o.prompt_name", joins=(OBSERVATIONS,)),
    "observationPromptVersion": _f("o.prompt_version", NUMBER, joins=(OBSERVATIONS,)),
}


def _score_view(
    name: str,
    segment: str,
    extra: dict[str, FieldDef],
    value: bool,
    versions: tuple[int, ...] = (1, 2),
) -> ViewDef:
    measures = {"count": MeasureDef("1")}
    if value:
        measures["value"] = MeasureDef(SCORE_VALUE_SQL, real=True)
    return ViewDef(
        name=name,
        table="scores s",
        time_sql="s.timestamp_us",
        time_fields=("timestamp",),
        metadata_sql="s.metadata",
        segment=segment,
        dimensions={**_SCORE_DIMENSIONS, **extra},
        measures=measures,
        versions=frozenset(versions),
        time_indexed=False,  # scores_by_name_time leads with the name
        joins={
            TRACES: "LEFT JOIN traces t ON t.id = s.trace_id",
            OBSERVATIONS: "LEFT JOIN observations o ON o.id = s.observation_id",
        },
    )


def _trace_measures() -> dict[str, MeasureDef]:
    per_observation = observation_measures("ob")

    def summed(name: str) -> str:
        return f"(SELECT SUM({per_observation[name].sql}) FROM observations ob WHERE ob.trace_id = t.id)"

    return {
        "count": MeasureDef("1"),
        "observationsCount": MeasureDef(
            "(SELECT COUNT(*) FROM observations ob WHERE ob.trace_id = t.id)"
        ),
        "scoresCount": MeasureDef("(SELECT COUNT(*) FROM scores sc WHERE sc.trace_id = t.id)"),
        "latency": MeasureDef(
            "(SELECT MAX(ob.end_us) - MIN(ob.start_us) FROM observations ob WHERE ob.trace_id = t.id)",
            divisor=1000,
        ),
        "totalTokens": MeasureDef(summed("totalTokens"), real=True),
        "totalCost": MeasureDef(summed("totalCost"), real=True),
    }


VIEWS: dict[str, ViewDef] = {
    "traces": ViewDef(
        name="traces",
        table="traces t",
        time_sql="t.timestamp_us",
        time_fields=("timestamp",),
        metadata_sql="t.metadata",
        segment=None,
        dimensions=_TRACE_DIMENSIONS,
        measures=_trace_measures(),
        versions=frozenset({1}),
    ),
    "observations": ViewDef(
        name="observations",
        table="observations o",
        time_sql="o.start_us",
        time_fields=("start_time", "startTime"),
        metadata_sql="o.metadata",
        segment=None,
        dimensions=_OBSERVATION_DIMENSIONS,
        measures=observation_measures("o"),
        joins={TRACES: "LEFT JOIN traces t ON t.id = o.trace_id"},
    ),
    "scores-numeric": _score_view(
        "scores-numeric",
        "s.data_type IN ('NUMERIC', 'BOOLEAN')",  # not TEXT, CORRECTION: "numeric and boolean"
        {"value": _f(SCORE_VALUE_SQL, NUMBER)},
        True,
    ),
    "scores-boolean": _score_view(
        "scores-boolean",
        "s.data_type = 'BOOLEAN'",
        {"booleanValue": _f(f"({SCORE_VALUE_SQL} = 1.0)", BOOLEAN)},
        True,
        versions=(2,),
    ),
    "scores-categorical": _score_view(
        "scores-categorical",
        "s.data_type = 'CATEGORICAL'",
        {"stringValue": _f("s.string_value")},
        False,
    ),
}


def views_for(version: int) -> tuple[str, ...]:
    """The view names an API version accepts."""
    return tuple(name for name, view in VIEWS.items() if version in view.versions)


def resolve_filter_column(view: ViewDef, version: int, column: str) -> tuple[str, FieldDef] | None:
    """The field a filter column means: a dimension, the time column or ``metadata``.

    Like Langfuse, a column ending in ``Name`` that is not a dimension means ``name``
    (clients send ``scoreName`` for a score's name).
    """
    dimensions = view.dimensions_for(version)
    if column in dimensions:
        return column, dimensions[column]
    if column in view.time_fields:
        return column, FieldDef(view.time_sql, DATETIME)
    if column == "metadata":
        return column, FieldDef(view.metadata_sql, "metadata")
    if column.endswith("Name") and "name" in dimensions:
        return "name", dimensions["name"]
    return None


# --- aggregations and time buckets --------------------------------------------------------------

PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
BUCKET_US = {"minute": 60_000_000, "hour": 3_600_000_000, "day": 86_400_000_000}
WEEK_US = 7 * BUCKET_US["day"]
FIRST_MONDAY_US = 4 * BUCKET_US["day"]  # 1970-01-05, the first Monday after the epoch
