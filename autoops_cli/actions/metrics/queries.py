"""The three metrics queries behind ``autoops metrics``, and where they are answered.

Whatever the data volume, ``autoops metrics`` asks three aggregate questions and never pages
through observations (Langfuse Cloud's free plan allows 100 metrics requests a day):

1. ``operations``: observations of simulation traces in the window, grouped by name, type
   and level: count, and average, p50 and p95 latency. Agents, tools, workflows,
   collaborations, messages and conflicts are all told apart by name and type
   (docs/tracing-schema.md).
2. ``scores``: the ``decision_confidence`` and ``decision_overturned`` scores in the window,
   grouped by score name and observation name (``<agent_id>.<operation>``): count and mean.
3. ``workflows``: the workflow roots from the start of the previous window (same length) to
   the end of this one, grouped by level, and by ``--by`` bucket when asked: the previous
   window's count is this total minus the current window's (query 1), exactly, whatever the
   buckets; the buckets are the series.

Langfuse mode sends them to ``/api/public/v2/metrics``; a server without v2 answers 404, and
then ``/api/public/metrics`` (v1, same query language) is used and remembered for the host
for a day (``langfuse_api.versions``, shared with ``autoops traces``). Answers are cached in the local store for ``cache_ttl`` seconds. Local mode runs
the same queries through the engine ``autoops serve`` answers with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.deploy import CANARY_TAG
from autoops_cli.timespec import EARLIEST, iso, parse_iso, parse_moment
from config.errors import ApiError, UsageError

if TYPE_CHECKING:
    from config.settings import LangfuseConfig

WORKFLOW = "orchestrator.process_event"
TRACE_PREFIX = "simulation."
SCORE_NAMES = ("decision_confidence", "decision_overturned")
V2_PATH = "/api/public/v2/metrics"
V1_PATH = "/api/public/metrics"
ROW_LIMIT = 1000  # the API's maximum; more groups than this are reported as truncated
MAX_BUCKETS = 500  # series buckets over both windows (the row limit counts levels too)
BUCKET_SECONDS = {"hour": 3600, "day": 86_400}


@dataclass(frozen=True)
class Window:
    """The window asked about (``start`` to ``end``) and the one before it, as ISO texts."""

    start: str
    end: str
    previous_start: str

    @property
    def seconds(self) -> float:
        return (parse_iso(self.end) - parse_iso(self.start)).total_seconds()

    @property
    def last_instant(self) -> str:
        """The microsecond before ``end``: the query's ``toTimestamp``. Langfuse's bound is
        inclusive (``<=``), so a workflow at exactly the end counted in this window and in
        the next one (consecutive windows counted it twice), where traces list ends a
        window before its end. Langfuse keeps milliseconds: at its precision this is the
        end, left out."""
        moment = parse_iso(self.end) - timedelta(microseconds=1)
        return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")

    def as_dict(self) -> dict[str, str]:
        return {"from": self.start, "to": self.end}


def make_window(since: str, until: str | None, *, now: datetime | None = None) -> Window:
    """The window of ``--since`` / ``--until`` (relative to now, or ISO timestamps)."""
    now = now or datetime.now(UTC)
    end = parse_moment(until, "--until", now=now) if until else now
    start = parse_moment(since, "--since", now=now)
    if iso(start) >= iso(end):  # at the window's precision, milliseconds (as Langfuse's)
        raise UsageError(
            f"--since {since!r} is not before --until {until or 'now'!r}"
            + (" (the window is counted in milliseconds)" if start < end else "")
        )
    # Nothing is older than EARLIEST: a window reaching before it holds what the whole
    # window before would (and a long one would leave datetime's range).
    previous = start - (end - start) if start - EARLIEST >= end - start else EARLIEST
    return Window(iso(start), iso(end), iso(previous))


# The shape of the queries ``build_queries`` asks: in the cache key, so an answer cached for
# other queries (an older autoops's, without count_latency) is not read as this one's.
QUERIES_VERSION = "2"


def build_queries(window: Window, by: str | None) -> dict[str, dict[str, Any]]:
    """The three metrics queries (Langfuse's query language) for a window."""
    if by is not None:
        span = parse_iso(window.end) - parse_iso(window.previous_start)
        buckets = span.total_seconds() / BUCKET_SECONDS[by]
        if buckets > MAX_BUCKETS:
            raise UsageError(
                f"--by {by}: {buckets:.0f} buckets over this window and the previous one "
                f"(at most {MAX_BUCKETS}); use --by day or a shorter --since"
            )
    simulation = {
        "column": "traceName",
        "operator": "starts with",
        "value": TRACE_PREFIX,
        "type": "string",
    }
    # The deploy canary is a simulation trace too, but no work of the system's.
    not_canary = {
        "column": "tags",
        "operator": "none of",
        "value": [CANARY_TAG],
        "type": "arrayOptions",
    }

    def query(
        view: str, dimensions: list[str], metrics: list[tuple[str, str]], **rest: Any
    ) -> dict[str, Any]:
        return {
            "view": view,
            "dimensions": [{"field": d} for d in dimensions],
            "metrics": [{"measure": m, "aggregation": a} for m, a in metrics],
            "filters": rest.get("filters", []),
            "timeDimension": rest.get("time_dimension"),
            "fromTimestamp": rest.get("start", window.start),
            "toTimestamp": window.last_instant,
            "orderBy": [],
            "config": {"row_limit": ROW_LIMIT},
        }

    # count_latency: the operations that have a latency (an end time), the weight of their
    # mean when groups are merged (count_count counts the others too).
    latency = [("latency", "avg"), ("latency", "count"), ("latency", "p50"), ("latency", "p95")]
    return {
        "operations": query(
            "observations",
            ["name", "type", "level"],
            [("count", "count"), *latency],
            filters=[simulation, not_canary],
        ),
        "scores": query(
            "scores-numeric",
            ["name", "observationName"],
            [("count", "count"), ("value", "avg")],
            filters=[
                {
                    "column": "name",
                    "operator": "any of",
                    "value": list(SCORE_NAMES),
                    "type": "stringOptions",
                },
                not_canary,
            ],
        ),
        "workflows": query(
            "observations",
            ["level"],
            [("count", "count"), ("latency", "avg"), ("latency", "count")],
            filters=[
                simulation,
                not_canary,
                {"column": "name", "operator": "=", "value": WORKFLOW, "type": "string"},
                {"column": "type", "operator": "=", "value": "CHAIN", "type": "string"},
            ],
            time_dimension={"granularity": by} if by else None,
            start=window.previous_start,
        ),
    }


@dataclass
class Fetched:
    """The answers (rows per query), and how they were obtained."""

    window: Window
    rows: dict[str, list[dict[str, Any]]]
    api: str  # v2 | v1 | local
    requests: int = 0
    cached: bool = False
    where: str = ""  # the host, or the store file

    def source(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "where": self.where,
            "requests": self.requests,
            "cached": self.cached,
            "truncated": sorted(q for q, rows in self.rows.items() if len(rows) >= ROW_LIMIT),
        }


def fetch_local(store_path: Path, window: Window, queries: dict[str, dict[str, Any]]) -> Fetched:
    """Answer the queries from the local store, as ``autoops serve`` would."""
    from autoops_cli.local_api.query.errors import ApiProblem
    from autoops_cli.local_api.query.metrics import READ_WORKERS, run_metrics_query
    from config.store.local_store import LocalStore

    store = LocalStore.existing(store_path)
    if store is None:  # nothing recorded here yet: an empty window, and no store created
        return Fetched(window, {name: [] for name in queries}, "local", where=str(store_path))

    def answers(workers: int) -> dict[str, list[dict[str, Any]]]:
        return {
            name: run_metrics_query(store, json.dumps(query), version=2, workers=workers)["data"]
            for name, query in queries.items()
        }

    try:
        version = store.data_version()
        rows = answers(READ_WORKERS)
        if store.data_version() != version:
            # Written meanwhile (a replay): each query, each slice read its own moment, and
            # a report showed more decisions than operations. Again, all from one moment.
            with store.snapshot():
                rows = answers(1)
    except ApiProblem as problem:  # the queries are ours: a refusal is a bug, said plainly
        raise ApiError(
            f"the local metrics engine refused a query: {problem.body.get('message')}",
            status=problem.status,
        ) from None
    finally:
        store.close()
    return Fetched(window, rows, "local", where=str(store_path))


def fetch_remote(
    config: LangfuseConfig,
    window: Window,
    queries: dict[str, dict[str, Any]],
    *,
    timeout: float,
    cache_ttl: float,
    cache_parts: tuple[Any, ...],
    store_path: Path,
) -> Fetched:
    """Answer the queries from the Langfuse API (v2, else v1), through the cache.

    ``cache_parts`` say what was asked in the user's terms (``--since 24h``, not the
    instant it meant), so calls within the TTL share one answer; its window is the cached
    one.
    """
    from autoops_cli.langfuse_api.cache import ApiCache, cache_key
    from autoops_cli.langfuse_api.client import ApiClient
    from autoops_cli.langfuse_api.versions import read_api, remember_read_api

    cache = ApiCache(store_path)
    try:
        # The whole key pair: an answer the project's keys were given is no answer for a
        # wrong secret (the key is a SHA-256 digest: the secret is not in the file).
        secret = config.secret_key.get_secret_value() if config.secret_key else None
        key = cache_key(
            "metrics", QUERIES_VERSION, config.host, config.public_key, secret, *cache_parts
        )
        cached = _from_cache(cache.get(key, cache_ttl))
        if cached is not None:
            return cached
        api = read_api(cache, config.host)
        paths = {"v2": V2_PATH, "v1": V1_PATH}
        rows: dict[str, list[dict[str, Any]]] = {}
        with ApiClient(config, timeout=timeout) as client:
            for name, query in queries.items():
                params = [("query", json.dumps(query, separators=(",", ":")))]
                body = client.get(paths[api], params, allow=(404,))
                if body is None and not rows:
                    # A server without this API (v1 only, or upgraded past a remembered v1):
                    # the other one, remembered for the host once it answers.
                    api = "v1" if api == "v2" else "v2"
                    body = client.get(paths[api], params, allow=(404,))
                    if body is not None:
                        remember_read_api(cache, config.host, api)
                if body is None:
                    if rows:  # it answered the queries before this one
                        raise ApiError(f"{config.host}{paths[api]} answered 404", status=404)
                    remember_read_api(cache, config.host, "v2")  # the next call: v2 first
                    raise ApiError(
                        f"{config.host} has no metrics API ({V2_PATH} and {V1_PATH} answered 404)",
                        status=404,
                    )
                rows[name] = _rows(body, f"{config.host}{paths[api]}")
            requests = client.requests
        cache.put(
            key,
            {
                "window": {
                    "start": window.start,
                    "end": window.end,
                    "previous_start": window.previous_start,
                },
                "rows": rows,
                "api": api,
                "where": config.host,
            },
        )
        return Fetched(window, rows, api, requests, where=config.host)
    finally:
        cache.close()


def _from_cache(entry: Any) -> Fetched | None:
    """A cached answer, or None when there is none or it has another shape (an older version)."""
    try:
        window = Window(**entry["window"])
        rows = {name: list(entry["rows"][name]) for name in ("operations", "scores", "workflows")}
        return Fetched(window, rows, str(entry["api"]), 0, True, str(entry.get("where", "")))
    except (TypeError, KeyError):
        return None


def _rows(body: Any, url: str) -> list[dict[str, Any]]:
    """The rows of a metrics answer: objects of plain values; anything else is left out.

    A row's nested arrays or objects, and rows that are not objects, are garbage no query of
    ours asks for; dropping them keeps the report (and the cache) to plain values. Rows past
    the ``ROW_LIMIT`` every query asks for are too: a server sending more (a million rows
    took 1.5 GB and half a minute to report) gets the truncation warning, as at the limit.
    """
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ApiError(f"{url} answered without a list of rows in 'data'", status=200)
    return [
        {
            key: value
            for key, value in row.items()
            if value is None or isinstance(value, (str, int, float))
        }
        for row in data[:ROW_LIMIT]
        if isinstance(row, dict)
    ]
