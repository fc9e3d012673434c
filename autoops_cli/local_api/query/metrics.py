"""``GET /api/public/metrics`` (v1) and ``GET /api/public/v2/metrics`` over the local store.

``metrics_views`` holds the views' data model, ``metrics_query`` parses and validates the
query (with Langfuse's error answers), ``metrics_sql`` builds its SQL; this module runs it
and shapes Langfuse's rows.

Why it runs the way it does (the target: a million observations in under a second):

- SQLite groups by sorting, and one sort of a million rows costs it more than a second. A
  grouped query therefore runs in time slices of ``SLICE_ROWS`` rows (the same SQL, other
  time bounds, found by walking the time index), whose small sorts stay in the CPU cache;
  Python merges the per-slice groups (count and sum add, min and max compare).
- Many slices run on two read-only connections of their own: WAL lets readers run beside
  the store's writer, so they neither wait for nor hold the store's lock, and sqlite3 releases
  the GIL while a statement runs, so two connections use two cores.
- Percentiles sort each group's values in Python and interpolate linearly between the two
  nearest ranks (``x[floor(h)]`` to ``x[floor(h) + 1]`` with ``h = (n - 1) * q``): what
  ClickHouse's ``quantile`` computes for up to 8,192 values (beyond that it samples; this
  stays exact).

Differences from Langfuse, all deliberate:

- numbers are plain JSON numbers (Langfuse returns 64-bit integers as strings; readers
  accept both);
- ``histogram`` has ``config.bins`` (default 10) bins of equal width from the group's
  minimum to its maximum, each ``[lower, upper, count]`` (ClickHouse's ``histogram`` is
  adaptive: its bins are neither equal nor exact, but the shape of a row is the same);
- ``metrics: []`` is a 400 (the spec requires one metric; Langfuse would count rows);
- relations are left joins without a time condition (Langfuse inner-joins traces and scores
  within the window, which drops observations whose trace started before it);
- string filters other than ``=`` are case-insensitive for ASCII only (ClickHouse's ILIKE
  folds every letter).
"""

from __future__ import annotations

import calendar
import json
import math
import os
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.local_api.query.metrics_query import MetricsQuery, parse_metrics_query
from autoops_cli.local_api.query.metrics_sql import Partial, SqlPlan, build_plan, build_sql
from autoops_cli.local_api.query.metrics_views import (
    ARRAY,
    BOOLEAN,
    BUCKET_US,
    FIRST_MONDAY_US,
    PERCENTILES,
    WEEK_US,
)

if TYPE_CHECKING:
    from config.store.local_store import LocalStore

__all__ = ["MetricsQuery", "build_sql", "parse_metrics_query", "run", "run_metrics_query"]

DEFAULT_BINS = 10  # histogram bins without config.bins, as Langfuse's query builder
SLICE_ROWS = 5_000  # rows per slice of a grouped query (measured: 2k to 10k are all close)
PARALLEL_MIN_SLICES = 8  # below ~40,000 rows one connection is as fast
READ_WORKERS = min(2, os.cpu_count() or 1)


def run_metrics_query(
    store: LocalStore, raw_query: str | None, *, version: int, workers: int = READ_WORKERS
) -> dict[str, Any]:
    """GET /api/public/metrics (version=1) and /api/public/v2/metrics (version=2).

    Parses and validates the ``query`` parameter (URL-decoded JSON text), runs it and returns
    ``{"data": [rows...]}``; raises ``ApiProblem`` (400) with Langfuse's message for an
    invalid query.
    """
    query = parse_metrics_query(raw_query, version=version)
    return {"data": run(store, query, workers=workers)}


# --- running: slices, merging -----------------------------------------------------------------


def _slices(store: LocalStore, query: MetricsQuery, plan: SqlPlan) -> list[tuple[int, int]]:
    """Time slices of ``SLICE_ROWS`` base rows each (the last one fewer).

    The bounds come from walking the time index ``SLICE_ROWS`` entries at a time (as cheap
    as counting the window), so bursts of rows (a replay writes thousands a second) get as
    many slices as they need. One slice when the query does not group, or when no index
    leads with the view's time column (each slice would then scan the whole table).
    """
    view = query.view_def
    if not plan.grouped or not view.time_indexed:
        return [(query.from_us, query.to_us)]
    step = (
        f"SELECT {view.time_sql} FROM {view.table} WHERE {view.time_sql} >= ?1 "
        f"AND {view.time_sql} <= ?2 ORDER BY {view.time_sql} LIMIT 1 OFFSET ?3"
    )
    bounds = [query.from_us]
    while True:
        found = store.query(step, [bounds[-1], query.to_us, SLICE_ROWS])
        if not found:
            break
        # Rows sharing one timestamp stay in one slice; more than SLICE_ROWS of them move on.
        bounds.append(max(found[0][0], bounds[-1] + 1))
    ends = [b - 1 for b in bounds[1:]] + [query.to_us]
    return list(zip(bounds, ends, strict=True))


def _merge_partial(kind: str, old: Any, new: Any) -> Any:
    if new is None:
        return old
    if old is None:
        return [new] if kind == "values" else set(new.split(",")) if kind == "distinct" else new
    if kind in ("count", "sum"):
        return old + new
    if kind == "min":
        return min(old, new)
    if kind == "max":
        return max(old, new)
    if kind == "values":
        old.append(new)
    else:
        old.update(new.split(","))
    return old


def _database_file(store: LocalStore) -> Path:
    """The store's file, as its own connection resolved it (whatever the working directory)."""
    main = [row[2] for row in store.query("PRAGMA database_list") if row[1] == "main"]
    return Path(main[0] if main and main[0] else store.path).resolve()


def _read_share(path: Path, plan: SqlPlan, share: list[tuple[int, int]]) -> list[list[Any]]:
    """Run ``plan`` over some slices on a read-only connection of its own."""
    db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=10000")
        return [
            db.execute(plan.sql, [start, end, *plan.params[2:]]).fetchall() for start, end in share
        ]
    finally:
        db.close()


def _slice_rows(
    store: LocalStore, plan: SqlPlan, slices: list[tuple[int, int]], workers: int
) -> Iterable[list[Any]]:
    """The rows of every slice: on ``workers`` read-only connections when there are many.

    WAL lets readers run beside the store's writer, so parallel slices neither wait for nor
    hold the store's lock; sqlite3 releases the GIL while a statement runs, so two workers
    use two cores. Any trouble opening a connection falls back to ``store.query``. Each slice
    reads the store as committed when it starts: a query over a store being written may
    count a batch written meanwhile in its later slices.
    """
    if workers > 1 and len(slices) >= PARALLEL_MIN_SLICES:
        shares = [slices[i::workers] for i in range(workers)]
        path = _database_file(store)
        try:
            with ThreadPoolExecutor(workers) as pool:
                parts = list(pool.map(lambda share: _read_share(path, plan, share), shares))
            return [rows for part in parts for rows in part]
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc):
                raise
    return (store.query(plan.sql, [start, end, *plan.params[2:]]) for start, end in slices)


def aggregate(
    store: LocalStore, query: MetricsQuery, plan: SqlPlan, *, workers: int = READ_WORKERS
) -> dict[tuple[Any, ...], list[Any]]:
    """Group key -> merged partials, over every slice of the window."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    width = plan.group_width
    kinds = [p.kind for p in plan.partials]
    for rows in _slice_rows(store, plan, _slices(store, query, plan), workers):
        for row in rows:
            values = tuple(row)
            key = values[:width]
            merged = groups.get(key)
            if merged is None:
                merged = groups[key] = [0 if k == "count" else None for k in kinds]
            for i, kind in enumerate(kinds):
                merged[i] = _merge_partial(kind, merged[i], values[width + i])
    return groups


# --- shaping rows -----------------------------------------------------------------------------


def iso_from_us(micros: int) -> str:
    """Langfuse's timestamp format: UTC, milliseconds, ``Z``."""
    moment = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{micros % 1_000_000 // 1000:03d}Z"


def percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between the nearest ranks (ClickHouse's ``quantile``)."""
    position = (len(ordered) - 1) * q
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (position - lower) * (ordered[upper] - ordered[lower])


def histogram(ordered: list[float], bins: int, divisor: int) -> list[list[float]]:
    """``bins`` equal-width bins over the sorted values: ``[lower, upper, count]`` each.

    Empty for no values; one bin when every value is the same. Bounds are scaled like the
    measure (latencies in milliseconds); a value on a bound counts in the bin above it,
    the maximum in the last bin.
    """
    if not ordered:
        return []
    low, high = ordered[0], ordered[-1]
    # Halved: high - low overflows to infinity for 1.7e308 and -1.7e308 (NaN bins, a 500),
    # and the width of two neighbouring floats divided by the bins is 0 (ZeroDivisionError).
    width = (high / 2 - low / 2) / bins * 2
    if low == high or width == 0 or not math.isfinite(width):
        return [[low / divisor, high / divisor, len(ordered)]]
    counts = [0] * bins
    for value in ordered:
        counts[min(int((value / 2 - low / 2) / width * 2), bins - 1)] += 1
    bounds = [low + i * width for i in range(bins + 1)]
    if not math.isfinite(bounds[-1]):  # past the float range: low and high weighed instead
        bounds = [low * (1 - i / bins) + high * (i / bins) for i in range(bins + 1)]
    return [[bounds[i] / divisor, bounds[i + 1] / divisor, count] for i, count in enumerate(counts)]


def _scaled(value: Any, divisor: int) -> Any:
    if value is None or divisor == 1:
        return value
    return value / divisor


def _sorted_numbers(chunks: list[str]) -> list[float]:
    """The numbers of ``group_concat`` texts, sorted (JSON's parser is the fast one)."""
    text = ",".join(chunks)
    numbers: list[float]
    try:
        numbers = json.loads(f"[{text}]")
    except ValueError:  # "Inf" from an infinite real
        numbers = [float(v) for v in text.split(",")]
    numbers.sort()
    return numbers


def _metric_values(query: MetricsQuery, plan: SqlPlan, merged: list[Any]) -> dict[str, Any]:
    """``<aggregation>_<measure>`` -> value, from a group's merged partials."""
    by_partial = dict(zip(plan.partials, merged, strict=True))
    sorted_values: dict[str, list[float]] = {}
    out: dict[str, Any] = {}
    for metric in query.metrics:
        divisor = query.view_def.measures[metric.measure].divisor

        def get(kind: str, measure: str = metric.measure) -> Any:
            return by_partial[Partial(kind, measure)]

        aggregation = metric.aggregation
        if aggregation == "count":
            value: Any = int(get("count"))
        elif aggregation == "avg":
            total, count = get("sum"), get("count")
            value = total / count / divisor if count else None
        elif aggregation == "uniq":
            value = len(get("distinct") or ())
        elif aggregation == "histogram":
            if metric.measure not in sorted_values:
                sorted_values[metric.measure] = _sorted_numbers(get("values") or [])
            value = histogram(sorted_values[metric.measure], query.bins or DEFAULT_BINS, divisor)
        elif aggregation in PERCENTILES:
            if metric.measure not in sorted_values:
                sorted_values[metric.measure] = _sorted_numbers(get("values") or [])
            ordered = sorted_values[metric.measure]
            value = (
                _scaled(percentile(ordered, PERCENTILES[aggregation]), divisor) if ordered else None
            )
        else:  # sum, min, max
            value = _scaled(get(aggregation), divisor)
        out[metric.alias] = value
    return out


def _dimension_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == ARRAY:
        return json.loads(value) if isinstance(value, str) else value
    return bool(value) if kind == BOOLEAN else value


def shape_rows(
    query: MetricsQuery, plan: SqlPlan, groups: dict[tuple[Any, ...], list[Any]]
) -> list[dict[str, Any]]:
    """Langfuse rows: dimensions by field name, metrics by alias, ``time_dimension``."""
    dimensions = query.view_def.dimensions_for(query.version)
    rows = []
    for key, merged in groups.items():
        row = {
            name: _dimension_value(dimensions[name].kind, key[i])
            for i, name in enumerate(query.dimensions)
        }
        if query.granularity:
            row["time_dimension"] = iso_from_us(key[-1])
        row.update(_metric_values(query, plan, merged))
        rows.append(row)
    return rows


def _next_bucket(start: int, granularity: str) -> int:
    if granularity == "week":
        return start + WEEK_US
    if granularity != "month":
        return start + BUCKET_US[granularity]
    moment = datetime.fromtimestamp(start // 1_000_000, tz=UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return calendar.timegm((year, month, 1, 0, 0, 0)) * 1_000_000


def bucket_start(micros: int, granularity: str) -> int:
    """The bucket of ``micros`` (the Python twin of ``time_bucket_sql``)."""
    if granularity in BUCKET_US:
        return micros // BUCKET_US[granularity] * BUCKET_US[granularity]
    if granularity == "week":
        return (micros - FIRST_MONDAY_US) // WEEK_US * WEEK_US + FIRST_MONDAY_US
    moment = datetime.fromtimestamp(micros // 1_000_000, tz=UTC)
    return calendar.timegm((moment.year, moment.month, 1, 0, 0, 0)) * 1_000_000


def fill_time_gaps(query: MetricsQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add a zero row for every empty bucket, as Langfuse's ``WITH FILL`` does.

    From the bucket of ``fromTimestamp`` up to, not including, the bucket of ``toTimestamp``
    (ClickHouse's ``TO`` is exclusive); dimensions of a filled row are null, metrics 0.
    """
    granularity = query.granularity
    if granularity is None:
        return rows
    present = {row["time_dimension"] for row in rows}
    template = dict.fromkeys(query.dimensions)
    filled = list(rows)
    bucket, last = bucket_start(query.from_us, granularity), bucket_start(query.to_us, granularity)
    while bucket < last:
        stamp = iso_from_us(bucket)
        if stamp not in present:
            empty: dict[str, Any] = {
                m.alias: [] if m.aggregation == "histogram" else 0 for m in query.metrics
            }
            filled.append({**template, "time_dimension": stamp, **empty})
        bucket = _next_bucket(bucket, granularity)
    return filled


def _sort_key(descending: bool) -> Callable[[Any], tuple[Any, ...]]:
    """Nulls last in both directions; numbers before text before anything else."""

    def key(value: Any) -> tuple[Any, ...]:
        if value is None:
            return (not descending, 0, 0)
        if isinstance(value, (int, float)):
            return (descending, 0, value)
        if isinstance(value, str):
            return (descending, 1, value)
        return (descending, 2, json.dumps(value))

    return key


def _row_key(name: str, descending: bool) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    value_key = _sort_key(descending)
    return lambda row: value_key(row.get(name))


def order_rows(query: MetricsQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Langfuse's order: the query's ``orderBy``, else time ascending, else first metric descending.

    Ties are broken by the dimensions, ascending, so the order is always the same.
    """
    terms = [(o.field, o.direction == "desc") for o in query.order_by]
    if not terms:
        if query.granularity:
            terms = [("time_dimension", False)]
        elif query.metrics:
            terms = [(query.metrics[0].alias, True)]
    terms += [(name, False) for name in query.dimensions]
    ordered = list(rows)
    for name, descending in reversed(terms):  # stable sorts, least significant term first
        ordered.sort(key=_row_key(name, descending), reverse=descending)
    return ordered


def run(
    store: LocalStore, query: MetricsQuery, *, workers: int = READ_WORKERS
) -> list[dict[str, Any]]:
    """The rows of ``query``: aggregated, gaps filled, ordered and limited."""
    plan = build_plan(query)
    rows = shape_rows(query, plan, aggregate(store, query, plan, workers=workers))
    if query.granularity and not query.order_by:
        rows = fill_time_gaps(query, rows)
    rows = order_rows(query, rows)
    return rows if query.row_limit is None else rows[: query.row_limit]
