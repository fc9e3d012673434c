"""The metrics query language of Langfuse (``GET /api/public/metrics``, ``/api/public/v2/metrics``).

``parse_metrics_query`` turns the ``query`` parameter into a validated ``MetricsQuery`` or
raises the 400 Langfuse answers with. Validation happens in Langfuse's order, with its
messages (``web/src/features/public-api/types/metrics.ts``, ``features/query``):

1. the ``query`` parameter is JSON (``Invalid JSON in query parameter``);
2. the zod schema of the query object: every problem at once, as
   ``{"message": "Invalid request data", "error": [zod issues]}``;
3. v2 only: the high-cardinality rule of ``validateQuery`` (a grouping on ``traceId`` and the
   like needs an explicit ``config.row_limit`` and a descending ``orderBy`` on a measure);
4. the query builder: unknown dimension, metric, filter column or orderBy field, a filter
   type that does not fit its column, each as ``{"message": ..., "error": "InvalidRequestError"}``;
5. this server's own bound: a time series of more than ``MAX_TIME_BUCKETS`` buckets (every
   bucket is a row) is refused the same way.

The window is cut to ClickHouse's DateTime64 range (1900 to 2299), as Langfuse's storage does.

Which views, dimensions and measures exist is the data model in ``metrics_views``."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from autoops_cli.local_api.query.errors import ApiProblem, invalid_request
from autoops_cli.local_api.query.metrics_views import (
    ARRAY,
    BOOLEAN,
    BUCKET_US,
    DATETIME,
    NUMBER,
    PERCENTILES,
    STRING,
    VIEWS,
    WEEK_US,
    ViewDef,
    resolve_filter_column,
    views_for,
)

AGGREGATIONS = ("sum", "avg", "count", "max", "min", *PERCENTILES, "histogram", "uniq")
GRANULARITIES = ("auto", "minute", "hour", "day", "week", "month")
FILTER_OPERATORS: dict[str, tuple[str, ...]] = {
    "datetime": (">", "<", ">=", "<="),
    "string": ("=", "contains", "does not contain", "starts with", "ends with"),
    "stringOptions": ("any of", "none of"),
    "categoryOptions": ("any of", "none of"),
    "arrayOptions": ("any of", "none of", "all of"),
    "number": ("=", ">", "<", ">=", "<="),
    "stringObject": ("=", "contains", "does not contain", "starts with", "ends with"),
    "numberObject": ("=", ">", "<", ">=", "<="),
    "boolean": ("=", "<>"),
    "null": ("is null", "is not null"),
}
# Filter types that apply to a field of each kind (the metadata column takes stringObject only).
FILTER_TYPES_BY_KIND: dict[str, tuple[str, ...]] = {
    STRING: ("string", "stringOptions", "null"),
    NUMBER: ("number", "null"),
    BOOLEAN: ("boolean", "null"),
    ARRAY: ("arrayOptions", "null"),
    DATETIME: ("datetime",),
}
V2_DEFAULT_ROW_LIMIT = 100
# The range of ClickHouse's DateTime64, where Langfuse keeps every timestamp: a window reaching
# beyond it is cut to it (ClickHouse saturates the same way). This also keeps the time buckets
# inside what Python's datetime can name (years 1 to 9999).
MIN_TIME_US = -2_208_988_800_000_000  # 1900-01-01T00:00:00Z
MAX_TIME_US = 10_413_792_000_000_000 - 1  # 2299-12-31T23:59:59.999999Z
# Every bucket of a time series becomes a row (empty ones filled with zeros), so the number of
# buckets bounds the work and the answer: a century by the minute is refused, not computed.
MAX_TIME_BUCKETS = 50_000

# --- the parsed query ---------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One requested metric; its output column is ``<aggregation>_<measure>``."""

    measure: str
    aggregation: str

    @property
    def alias(self) -> str:
        """The row key of this metric."""
        return f"{self.aggregation}_{self.measure}"


@dataclass(frozen=True)
class Filter:
    """One filter, as given (validated)."""

    column: str
    operator: str
    value: Any
    type: str
    key: str | None = None


@dataclass(frozen=True)
class OrderBy:
    """One ordering term: a dimension, a metric alias or ``time_dimension``."""

    field: str
    direction: str


@dataclass(frozen=True)
class MetricsQuery:
    """A validated metrics query; ``granularity`` is resolved (never ``auto``)."""

    version: int
    view: str
    dimensions: tuple[str, ...]
    metrics: tuple[Metric, ...]
    filters: tuple[Filter, ...]
    granularity: str | None
    from_us: int
    to_us: int
    order_by: tuple[OrderBy, ...] = ()
    row_limit: int | None = None
    bins: int | None = None

    @property
    def view_def(self) -> ViewDef:
        """The view's data model."""
        return VIEWS[self.view]


# --- stage 2: the zod schema ------------------------------------------------------------------

_MISSING = object()
_ISO = re.compile(  # zod's datetime({offset: true}): seconds optional, Z or +hh:mm
    r"^(\d{4})-(\d{2})-(\d{2})T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d+))?)?"
    r"(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$"
)
_LOOSE_DATE = re.compile(  # what a filter's coerced date accepts here: a date, time optional
    r"^(\d{4})-(\d{2})-(\d{2})(?:[T ]([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d+))?)?"
    r"(Z|[+-](?:[01]\d|2[0-3]):?[0-5]\d)?)?$"
)


def _js_type(value: Any) -> str:
    """The type name zod reports for a parsed JSON value."""
    if value is _MISSING:
        return "undefined"
    if value is None or isinstance(value, bool):
        return "null" if value is None else "boolean"
    if isinstance(value, (int, float, str)):
        return "string" if isinstance(value, str) else "number"
    return "array" if isinstance(value, list) else "object"


def _options(values: tuple[str, ...]) -> str:
    return "|".join(json.dumps(v) for v in values)


def _is_number(value: Any) -> bool:
    """A finite JSON number, as JavaScript reads it (an integer beyond a double is Infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a double
        return False


class _Issues:
    """Collects zod-shaped issues: zod reports every problem, not the first.

    Paths start at ``root``, the query parameter the problem is in.
    """

    def __init__(self, root: str = "query") -> None:
        self.items: list[dict[str, Any]] = []
        self.root = root

    def add(self, path: list[Any], code: str, message: str, **extra: Any) -> None:
        self.items.append({"code": code, **extra, "path": [self.root, *path], "message": message})

    def type_error(self, path: list[Any], expected: str, value: Any) -> None:
        message = f"Invalid input: expected {expected}, received {_js_type(value)}"
        self.add(path, "invalid_type", message, expected=expected)

    def enum_error(self, path: list[Any], values: tuple[str, ...], value: Any) -> None:
        # zod does not name the value it got; naming it helps whoever reads the 400.
        received = f" (received {json.dumps(value)})" if isinstance(value, str) else ""
        message = f"Invalid option: expected one of {_options(values)}{received}"
        self.add(path, "invalid_value", message, values=list(values))

    def string(self, obj: dict[str, Any], key: str, path: list[Any]) -> str | None:
        value = obj.get(key, _MISSING)
        if isinstance(value, str):
            return value
        self.type_error([*path, key], "string", value)
        return None

    def enum(self, value: Any, values: tuple[str, ...], path: list[Any]) -> str | None:
        if isinstance(value, str) and value in values:
            return value
        self.enum_error(path, values, value)
        return None

    def objects(
        self, query: dict[str, Any], key: str, *, required: bool = False
    ) -> list[tuple[int, dict[str, Any]]]:
        """``(index, item)`` of an array of objects (optional unless ``required``; null = [])."""
        value = query.get(key, _MISSING)
        if value is None or (value is _MISSING and not required):
            return []
        if not isinstance(value, list):
            self.type_error([key], "array", value)
            return []
        found = []
        for index, item in enumerate(value):
            if isinstance(item, dict):
                found.append((index, item))
            else:
                self.type_error([key, index], "object", item)
        return found

    def integer(
        self, value: Any, path: list[Any], low: int, high: int, *, above_low: bool = False
    ) -> int | None:
        """An integer in ``[low, high]`` (``(low, high]`` with ``above_low``)."""
        if not _is_number(value):
            self.type_error(path, "number", value)
            return None
        if not float(value).is_integer():
            self.add(
                path,
                "invalid_type",
                "Invalid input: expected int, received number",
                expected="int",
                format="safeint",
            )
            return None
        if value < low or (above_low and value == low):
            relation = ">" if above_low else ">="
            self.add(
                path,
                "too_small",
                f"Too small: expected number to be {relation}{low}",
                origin="number",
                minimum=low,
                inclusive=not above_low,
            )
            return None
        if value > high:
            self.add(
                path,
                "too_big",
                f"Too big: expected number to be <={high}",
                origin="number",
                maximum=high,
                inclusive=True,
            )
            return None
        return int(value)


def _epoch_us(match: re.Match[str] | None) -> int | None:
    """Microseconds since the epoch of a date match (no offset is UTC); None if no such day."""
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=UTC,
        )
    except ValueError:  # 2025-02-30
        return None
    shift = 0
    if offset and offset != "Z":
        digits = offset[1:].replace(":", "")
        shift = (int(digits[:2]) * 3600 + int(digits[2:] or 0) * 60) * (
            -1 if offset[0] == "-" else 1
        )
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return (int(moment.timestamp()) - shift) * 1_000_000 + micros


def _timestamp(issues: _Issues, query: dict[str, Any], key: str) -> int | None:
    text = issues.string(query, key, [])
    moment = None if text is None else _epoch_us(_ISO.match(text))
    if text is not None and moment is None:
        issues.add(
            [key], "invalid_format", "Invalid ISO datetime", origin="string", format="datetime"
        )
    return moment


def _datetime_value(value: Any) -> int | None:
    """A datetime filter value (zod coerces it to a Date): ISO text or epoch milliseconds."""
    if _is_number(value):  # JavaScript dates reach 8.64e15 ms either side of the epoch
        return int(value * 1000) if abs(value) <= 8.64e15 else None
    return _epoch_us(_LOOSE_DATE.match(value)) if isinstance(value, str) else None


_SCALAR_VALUES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "string": ("string", lambda v: isinstance(v, str)),
    "stringObject": ("string", lambda v: isinstance(v, str)),
    "number": ("number", _is_number),
    "numberObject": ("number", _is_number),
    "boolean": ("boolean", lambda v: isinstance(v, bool)),
}

_KEYED_FILTERS = ("stringObject", "numberObject", "categoryOptions")  # these need a "key"


def _filter_value(issues: _Issues, item: dict[str, Any], kind: str, path: list[Any]) -> Any:
    """The value of a filter of type ``kind``, checked as Langfuse's ``singleFilter`` does.

    Returns ``_MISSING`` (after recording the issue) when the value does not fit.
    """
    value, path = item.get("value", _MISSING), [*path, "value"]
    if kind in _SCALAR_VALUES:
        expected, fits = _SCALAR_VALUES[kind]
        if isinstance(value, str) and "\x00" in value:
            # SQLite's LIKE ends a pattern at a NUL, which would widen the filter to every row.
            issues.add(path, "custom", "Invalid input: a filter value must not contain NUL")
            return _MISSING
        if fits(value):
            # JSON integers beyond 64 bits are plain numbers to JavaScript (and to SQLite).
            return float(value) if isinstance(value, int) and abs(value) >= 2**63 else value
        issues.type_error(path, expected, value)
    elif kind == "datetime":
        moment = _datetime_value(value)
        if moment is not None:
            return moment
        issues.add(
            path, "invalid_type", "Invalid input: expected date, received Date", expected="date"
        )
    elif kind == "null":
        if value == "":
            return value
        issues.add(path, "invalid_value", 'Invalid input: expected ""', values=[""])
    elif not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        issues.type_error(path, "array", value)  # the *Options types take arrays of strings
    elif value or (kind == "arrayOptions" and item.get("operator") in ("all of", "none of")):
        return tuple(value)
    else:
        issues.add(path, "custom", "Invalid input: the value array must not be empty")
    return _MISSING


def _filter(
    issues: _Issues,
    path: list[Any],
    item: dict[str, Any],
    operators: dict[str, tuple[str, ...]] = FILTER_OPERATORS,
) -> Filter | None:
    kind = item.get("type", _MISSING)
    if not isinstance(kind, str) or kind not in operators:
        named = f"unknown filter type {json.dumps(kind)}; " if isinstance(kind, str) else ""
        issues.add(
            [*path, "type"],
            "invalid_union",
            f"Invalid input: {named}expected one of {_options(tuple(operators))}",
            note="No matching discriminator",
            discriminator="type",
        )
        return None
    column = issues.string(item, "column", path)
    operator = issues.enum(item.get("operator", _MISSING), operators[kind], [*path, "operator"])
    key = issues.string(item, "key", path) if kind in _KEYED_FILTERS else None
    value = _filter_value(issues, item, kind, path)
    if (
        column is None
        or operator is None
        or value is _MISSING
        or (kind in _KEYED_FILTERS and key is None)
    ):
        return None
    return Filter(column, operator, value, kind, key)


def parse_filter_list(
    value: Any, *, parameter: str, operators: dict[str, tuple[str, ...]]
) -> tuple[Filter, ...]:
    """The conditions of a JSON filter array (the list endpoints' ``filter`` parameter).

    Each is checked as a metrics filter is, against ``operators``; every problem is
    reported at once, as ``{"message": "Invalid request data", "error": [zod issues]}``
    with paths starting at ``parameter``.
    """
    issues = _Issues(parameter)
    if not isinstance(value, list):
        issues.type_error([], "array", value)
        raise _invalid_request_data(issues)
    found = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            issues.type_error([index], "object", item)
        elif (condition := _filter(issues, [index], item, operators)) is not None:
            found.append(condition)
    if issues.items:
        raise _invalid_request_data(issues)
    return tuple(found)


def _metrics(issues: _Issues, query: dict[str, Any]) -> list[Metric]:
    items = issues.objects(query, "metrics", required=True)
    if not items and isinstance(query.get("metrics"), list) and not query["metrics"]:
        # The spec requires one metric; Langfuse itself would silently count rows.
        issues.add(
            ["metrics"],
            "too_small",
            "Too small: expected array to have >=1 items",
            origin="array",
            minimum=1,
            inclusive=True,
        )
    found = []
    for index, item in items:
        measure = issues.string(item, "measure", ["metrics", index])
        aggregation = issues.enum(
            item.get("aggregation", _MISSING), AGGREGATIONS, ["metrics", index, "aggregation"]
        )
        if measure is not None and aggregation is not None:
            found.append(Metric(measure, aggregation))
    return found


def _order_by(issues: _Issues, query: dict[str, Any]) -> list[OrderBy]:
    found = []
    for index, item in issues.objects(query, "orderBy"):
        name = issues.string(item, "field", ["orderBy", index])
        direction = issues.enum(
            item.get("direction", _MISSING), ("asc", "desc"), ["orderBy", index, "direction"]
        )
        if name is not None and direction is not None:
            found.append(OrderBy(name, direction))
    return found


def _granularity(issues: _Issues, query: dict[str, Any]) -> str | None:
    time_dimension = query.get("timeDimension")
    if time_dimension is None:
        return None
    if not isinstance(time_dimension, dict):
        issues.type_error(["timeDimension"], "object", time_dimension)
        return None
    granularity = time_dimension.get("granularity", _MISSING)
    return issues.enum(granularity, GRANULARITIES, ["timeDimension", "granularity"])


def _config(issues: _Issues, query: dict[str, Any]) -> tuple[int | None, int | None]:
    """``(row_limit, bins)`` from ``config``."""
    config = query.get("config", _MISSING)
    if config is _MISSING:
        return None, None
    if not isinstance(config, dict):
        issues.type_error(["config"], "object", config)
        return None, None
    row_limit = bins = None
    if "row_limit" in config:
        row_limit = issues.integer(
            config["row_limit"], ["config", "row_limit"], 0, 1000, above_low=True
        )
    if "bins" in config:
        bins = issues.integer(config["bins"], ["config", "bins"], 1, 100)
    return row_limit, bins


def auto_granularity(from_us: int, to_us: int) -> str:
    """Langfuse's choice for ``auto`` (about 50 buckets over the window)."""
    hours = (to_us - from_us) / 3_600_000_000
    if hours < 2:
        return "minute"
    if hours < 72:
        return "hour"
    if hours < 1440:
        return "day"
    return "week" if hours < 8760 else "month"


def _invalid_request_data(issues: _Issues) -> ApiProblem:
    return ApiProblem(400, {"message": "Invalid request data", "error": issues.items})


def _schema(query: Any, version: int) -> MetricsQuery:
    """Stage 2: the zod schema; raises ``Invalid request data`` with every issue."""
    issues = _Issues()
    if not isinstance(query, dict):
        issues.type_error([], "object", query)
        raise _invalid_request_data(issues)
    view = issues.enum(query.get("view", _MISSING), views_for(version), ["view"])
    dimensions = [
        name
        for index, item in issues.objects(query, "dimensions")
        if (name := issues.string(item, "field", ["dimensions", index])) is not None
    ]
    metrics = _metrics(issues, query)
    filters = [
        f
        for index, item in issues.objects(query, "filters")
        if (f := _filter(issues, ["filters", index], item))
    ]
    granularity = _granularity(issues, query)
    from_us = _timestamp(issues, query, "fromTimestamp")
    to_us = _timestamp(issues, query, "toTimestamp")
    order_by = _order_by(issues, query)
    row_limit, bins = _config(issues, query)
    if issues.items or view is None or from_us is None or to_us is None:
        raise _invalid_request_data(issues)
    if from_us >= to_us:  # a refinement: zod checks it once the shape is right
        issues.add([], "custom", "fromTimestamp must be before toTimestamp")
        raise _invalid_request_data(issues)
    from_us, to_us = (min(max(us, MIN_TIME_US), MAX_TIME_US) for us in (from_us, to_us))
    return MetricsQuery(
        version=version,
        view=view,
        dimensions=tuple(dimensions),
        metrics=tuple(metrics),
        filters=tuple(filters),
        granularity=auto_granularity(from_us, to_us) if granularity == "auto" else granularity,
        from_us=from_us,
        to_us=to_us,
        order_by=tuple(order_by),
        row_limit=row_limit,
        bins=bins,
    )


def time_buckets(from_us: int, to_us: int, granularity: str) -> int:
    """How many buckets of ``granularity`` the window touches (both ends included)."""
    if granularity in BUCKET_US:
        size = BUCKET_US[granularity]
        return to_us // size - from_us // size + 1
    if granularity == "week":
        return (to_us - from_us) // WEEK_US + 2
    start = datetime.fromtimestamp(from_us // 1_000_000, tz=UTC)
    end = datetime.fromtimestamp(to_us // 1_000_000, tz=UTC)
    return (end.year - start.year) * 12 + end.month - start.month + 1


def _check_time_buckets(query: MetricsQuery) -> None:
    if query.granularity is None:
        return
    buckets = time_buckets(query.from_us, query.to_us, query.granularity)
    if buckets > MAX_TIME_BUCKETS:
        raise invalid_request(
            f"timeDimension: {buckets} {query.granularity} buckets between fromTimestamp and "
            f"toTimestamp, at most {MAX_TIME_BUCKETS}; use a coarser granularity or a shorter "
            "window."
        )


# --- stage 3: v2's high-cardinality rule (Langfuse's validateQuery) -------------------------


def _check_high_cardinality(query: MetricsQuery) -> None:
    dimensions = query.view_def.dimensions_for(query.version)
    high = [d for d in query.dimensions if d in dimensions and dimensions[d].high_cardinality]
    if not high:
        return
    names = ", ".join(high)
    if query.granularity is not None:
        raise invalid_request(
            f"High cardinality dimension(s) '{names}' cannot be used with timeDimension. "
            "Time series queries with high cardinality dimensions produce unbounded result sets."
        )
    descending = [o.field for o in query.order_by if o.direction == "desc"]
    if query.row_limit is None or not descending:
        raise invalid_request(
            f"High cardinality dimension(s) '{names}' require both 'config.row_limit' and "
            "'orderBy' with direction 'desc' on a measure field."
        )
    measures = [m.measure for m in query.metrics]
    unmatched = [f for f in descending if not any(f == m or f.endswith(f"_{m}") for m in measures)]
    if unmatched:
        verb = "is" if len(unmatched) == 1 else "are"
        raise invalid_request(
            f"High cardinality dimension(s) '{names}' require 'orderBy' with direction 'desc' "
            f"on a measure field. '{', '.join(unmatched)}' {verb} not a measure in this query."
        )


# --- stage 4: the query builder's checks ------------------------------------------------------


def _check_filter(view: ViewDef, version: int, item: Filter) -> None:
    resolved = resolve_filter_column(view, version, item.column)
    if resolved is None:
        names = ",".join(view.dimensions_for(version))
        raise invalid_request(
            f"Invalid filter column {item.column}. Must be one of {names} or {view.time_fields[0]}"
        )
    kind = resolved[1].kind
    if kind == "metadata":
        if item.type != "stringObject":
            raise invalid_request(
                "Invalid filter for field 'metadata': Metadata filters require type 'stringObject' "
                f"with a 'key' property, not '{item.type}'. Example: "
                '{"column": "metadata", "type": "stringObject", "key": "environment", '
                '"operator": "=", "value": "production"}'
            )
        return
    if kind == ARRAY and item.type == "string":
        raise invalid_request(
            f"Invalid filter for field '{item.column}': Array fields require type 'arrayOptions', "
            "not 'string'. Use operators like 'any of', 'all of', or 'none of' with an array of values."
        )
    allowed = FILTER_TYPES_BY_KIND[kind]
    if item.type not in allowed:
        raise invalid_request(
            f"Invalid filter for field '{item.column}': type '{item.type}' does not apply to a "
            f"{kind} field. Use one of: {', '.join(allowed)}."
        )


def _check_metric(view: ViewDef, metric: Metric) -> None:
    if metric.measure not in view.measures:
        raise invalid_request(
            f"Invalid metric {metric.measure}. Must be one of {','.join(view.measures)}"
        )


def _check_order_by(query: MetricsQuery) -> None:
    aliases = {m.alias for m in query.metrics}
    for term in query.order_by:
        known = term.field in query.dimensions or term.field in aliases
        if not known and not (term.field == "time_dimension" and query.granularity):
            raise invalid_request(
                f"Invalid orderBy field: {term.field}. Must be one of the dimension or metric fields."
            )


def _check_builder(query: MetricsQuery) -> None:
    view = query.view_def
    dimensions = view.dimensions_for(query.version)
    for name in query.dimensions:
        if name not in dimensions:
            raise invalid_request(
                f"Invalid dimension {name}. Must be one of {','.join(dimensions)}"
            )
    for metric in query.metrics:
        _check_metric(view, metric)
    for item in query.filters:
        _check_filter(view, query.version, item)
    _check_order_by(query)


def _load_json(raw_query: str | None) -> Any:
    if raw_query is None:
        issues = _Issues()
        issues.type_error([], "string", _MISSING)
        raise _invalid_request_data(issues)

    def reject_constant(name: str) -> Any:  # NaN and Infinity are not JSON
        raise ValueError(name)

    try:
        return json.loads(raw_query, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        raise invalid_request("Invalid JSON in query parameter") from None


def parse_metrics_query(raw_query: str | None, *, version: int) -> MetricsQuery:
    """Parse and validate the ``query`` parameter (URL-decoded JSON text) of API ``version``.

    Raises ``ApiProblem`` (400) with Langfuse's body for anything Langfuse would reject.
    v2 applies its default ``row_limit`` (100) after the high-cardinality check, as Langfuse
    does, so the default never satisfies that rule.
    """
    if version not in (1, 2):
        raise ValueError(f"unknown metrics API version {version}")
    query = _schema(_load_json(raw_query), version)
    if version == 2:
        _check_high_cardinality(query)
    _check_builder(query)
    _check_time_buckets(query)
    if version == 2 and query.row_limit is None:
        query = replace(query, row_limit=V2_DEFAULT_ROW_LIMIT)
    return query
