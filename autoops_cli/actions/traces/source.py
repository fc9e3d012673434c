"""Where ``autoops traces`` reads traces, and how.

Langfuse v4 (Langfuse Cloud, API 4.35.0) has no trace read left: ``GET /api/public/traces``
is deprecated and gone from Cloud. A trace is read as Langfuse says to: its root observation
(``GET /api/public/v2/observations?isRootObservation=true``, cursor pages) for the list, its
observations and its scores (``/api/public/v3/scores``) for the tree. Servers without the v2
API (self-hosted Langfuse before v4) answer 404 there; then the v1 traces are read, and the
host is remembered as v1-only for a day (``langfuse_api.versions``, as ``autoops metrics``
does). The local store is read through the same functions ``autoops serve`` answers with,
in the same (v2) shapes, so every source gives the same output.

All requests of a command share one time budget (``--timeout``, ``ApiClient``). An answer
whose frame is wrong (not an object, no list in ``data``) is an API error; inside it, the
rows are built leniently (``rows``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.traces.rows import json_or_text
from autoops_cli.timespec import moment_order
from config.errors import ApiError, CheckFailedError, UsageError

if TYPE_CHECKING:
    from autoops_cli.langfuse_api.cache import ApiCache
    from autoops_cli.langfuse_api.client import ApiClient
    from config.settings import LangfuseConfig
    from config.store.local_store import LocalStore

V2_OBSERVATIONS = "/api/public/v2/observations"
V3_SCORES = "/api/public/v3/scores"
V1_TRACES = "/api/public/traces"
V2_PAGE_MAX = 1000  # the v2 observations API's largest page
# The most observations ``traces show`` holds for one tree: past that a tree is no use on a
# terminal, and a server paging without end must not fill memory before the timeout.
MAX_TREE_OBSERVATIONS = 100_000
V1_PAGE_MAX = 100  # the v1 traces API's largest page
SCORES_PAGE_MAX = 100  # the v3 scores API's largest page
# The v2 field groups both the list and the tree read (``metrics``: the latency, to the
# microsecond, where the start and end times come to the millisecond).
FIELDS = "core,basic,io,metadata,metrics,trace_context"
TRACE_PREFIX = "simulation."
CONFIDENCE_SCORE = "decision_confidence"


@dataclass(frozen=True)
class TraceFilters:
    """What ``traces list`` narrows to: ISO times, an event type, tags (all), a session."""

    since: str | None = None
    until: str | None = None
    event_type: str | None = None
    tags: tuple[str, ...] = ()
    session: str | None = None


class _Params(dict[str, list[str]]):
    """Query parameters for the local read functions (``get`` / ``getlist``)."""

    def get(self, key: str, default: Any = None) -> Any:
        values = super().get(key)
        return values[-1] if values else default

    def getlist(self, key: str) -> list[str]:
        return list(super().get(key) or [])


class TraceSource:
    """The Langfuse API (v2, else v1) or the local store; one budget, one connection.

    Use as a context manager.
    """

    def __init__(self, config: LangfuseConfig, *, local: bool, timeout: float) -> None:
        self.config = config
        self.local = local or config.mode != "langfuse"
        self.timeout = timeout
        self._client: ApiClient | None = None
        self._cache: ApiCache | None = None
        self._store: LocalStore | None = None
        self._no_store = False  # local mode and nothing recorded here yet
        self.api = "v2"
        self._answered_404: set[str] = set()  # the read APIs that answered 404 in this run
        self._switched = False  # remember ``api`` for the host once it answers
        if not self.local:
            from autoops_cli.langfuse_api.cache import ApiCache
            from autoops_cli.langfuse_api.versions import read_api
            from config.store.local_store import default_store_path

            self._cache = ApiCache(default_store_path())
            self.api = read_api(self._cache, config.host)

    def __enter__(self) -> TraceSource:
        return self

    def __exit__(self, *_: object) -> None:
        for resource in (self._client, self._cache, self._store):
            if resource is not None:
                resource.close()

    @property
    def where(self) -> str:
        """The host read, or the local store's file."""
        if self.local:
            from config.store.local_store import default_store_path

            if self._no_store:
                return f"the local store {default_store_path()} (there is none yet)"
            return f"the local store {default_store_path()}"
        return self.config.host

    def switch_api(self) -> bool:
        """The read API in use answered 404: use the other one (remembered for the host
        once it answers), unless it answered 404 in this run too (False)."""
        self._answered_404.add(self.api)
        other = "v1" if self.api == "v2" else "v2"
        if other in self._answered_404:
            return False
        self.api = other
        self._switched = True
        return True

    def forget_api(self) -> None:
        """Neither API answered: the next command starts from v2 again (a remembered v1
        would be asked first for a day)."""
        if self._cache is not None:
            from autoops_cli.langfuse_api.versions import remember_read_api

            remember_read_api(self._cache, self.config.host, "v2")

    def get(self, path: str, params: list[tuple[str, str]], *, allow_404: bool = False) -> Any:
        """GET a read path: a JSON object; None for a 404 when ``allow_404``."""
        if self.local:
            return self._local(path, params)
        if self._client is None:
            from autoops_cli.langfuse_api.client import ApiClient

            self._client = ApiClient(self.config, timeout=self.timeout)
        body = self._client.get(path, params, allow=(404,) if allow_404 else ())
        if body is not None and not isinstance(body, dict):
            raise ApiError(
                f"{self.config.host}{path} answered JSON that is not an object", status=200
            )
        if body is not None and self._switched and self._cache is not None:
            from autoops_cli.langfuse_api.versions import remember_read_api

            remember_read_api(self._cache, self.config.host, self.api)
            self._switched = False
        return body

    def local_store(self) -> LocalStore | None:
        """The local store, opened read-only (never created); None when there is none."""
        from config.store.local_store import LocalStore, default_store_path

        if self._store is None and not self._no_store:
            self._store = LocalStore.existing(default_store_path())
            self._no_store = self._store is None
        return self._store

    def _local(self, path: str, params: list[tuple[str, str]]) -> Any:
        from autoops_cli.local_api.query.errors import ApiProblem
        from autoops_cli.local_api.query.observations import list_observations_v2
        from autoops_cli.local_api.query.scores import list_scores_v3
        from autoops_cli.local_api.query.traces import get_trace, list_traces

        store = self.local_store()  # read-only: reading never creates a store, nor changes one
        if store is None:
            return {"data": [], "meta": {}}
        query = _Params()
        for key, value in params:
            query.setdefault(key, []).append(value)
        reads = {V2_OBSERVATIONS: list_observations_v2, V3_SCORES: list_scores_v3}
        try:
            if path in reads:
                return reads[path](store, query)
            if path == V1_TRACES:
                return list_traces(store, query)
            return get_trace(store, path.rsplit("/", 1)[1], query)
        except ApiProblem as problem:
            if problem.status == 404:
                raise CheckFailedError(str(problem.body.get("message"))) from None
            raise UsageError(str(problem.body.get("message"))) from None


def _data(source: TraceSource, body: dict[str, Any], path: str, what: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list):
        raise ApiError(
            f"{source.where}{path} answered without a list of {what} in 'data'", status=200
        )
    return [item for item in data if isinstance(item, dict)]


def _remember(source: TraceSource, path: str, data: list[dict[str, Any]], ids: set[str]) -> None:
    """Add the ids of a page's items to ``ids``; an ``ApiError`` for a page whose every item
    was on an earlier page (a server that repeats its pages under new cursors or page
    numbers would be read until the timeout, and blamed on the network). An item without
    an id is known by its whole content."""
    found = {item["id"] if isinstance(item.get("id"), str) else _content_key(item) for item in data}
    if found and found <= ids:
        raise ApiError(
            f"{source.where}{path} answered a page of items it gave before: its pages repeat",
            status=200,
        )
    ids |= found


def _content_key(item: dict[str, Any]) -> str:
    return "\0" + json.dumps(item, sort_keys=True, default=str)  # never equal to an id


def _cursor(body: dict[str, Any], seen: set[str], source: TraceSource, path: str) -> str | None:
    """The next page's cursor, or None at the last page; an ``ApiError`` for a cursor the
    server gave before (its pages would loop for ever, the same rows again and again)."""
    meta = body.get("meta")
    cursor = meta.get("cursor") if isinstance(meta, dict) else None
    if not isinstance(cursor, str) or not cursor:
        return None
    if cursor in seen:
        raise ApiError(
            f"{source.where}{path} answered a cursor it gave before: its pages loop", status=200
        )
    seen.add(cursor)
    return cursor


# --- traces list ----------------------------------------------------------------------------


def list_traces(
    source: TraceSource, filters: TraceFilters, *, wanted: int, page: int, size: int
) -> tuple[list[dict[str, Any]], dict[str, int] | None]:
    """Up to ``wanted`` traces, newest first, from the ``page`` of ``size`` traces on, and
    where the ones not shown start (``{"page", "limit"}``, in pages of ``size``) or None.

    Each trace is a dict of the v1 trace fields the rows use (``rows.trace_row``).
    """
    while True:
        if source.api == "v2":
            found = _roots(source, filters, skip=(page - 1) * size, wanted=wanted)
            if found is not None:
                roots, more = found
                following = None
                if more:  # the page (of ``size``) the next trace is on
                    following = {
                        "page": ((page - 1) * size + len(roots)) // size + 1,
                        "limit": size,
                    }
                return [root_as_trace(root) for root in roots], following
        else:
            listed = _v1_traces(
                source, filters, wanted=wanted, page=page, size=min(size, V1_PAGE_MAX)
            )
            if listed is not None:
                return listed
        if not source.switch_api():
            source.forget_api()
            raise ApiError(
                f"{source.where} has no traces API ({V2_OBSERVATIONS} and {V1_TRACES} "
                "answered 404)",
                status=404,
            )


def v2_query(filters: TraceFilters) -> list[tuple[str, str]]:
    """The v2 observations query of the root observations the filters select.

    The trace name and tags are trace fields: they go into ``filter`` (conditions that
    replace only the simple parameters of their own columns).
    """
    params = [("isRootObservation", "true"), ("fields", FIELDS)]
    if filters.since:
        params.append(("fromStartTime", filters.since))
    if filters.until:
        params.append(("toStartTime", filters.until))
    if filters.session:
        params.append(("sessionId", filters.session))
    conditions: list[dict[str, Any]] = []
    if filters.event_type:
        name = TRACE_PREFIX + filters.event_type
        conditions.append({"type": "string", "column": "traceName", "operator": "=", "value": name})
    if filters.tags:
        conditions.append(
            {
                "type": "arrayOptions",
                "column": "traceTags",
                "operator": "all of",
                "value": list(filters.tags),
            }
        )
    if conditions:
        params.append(("filter", json.dumps(conditions, separators=(",", ":"))))
    return params


def _roots(
    source: TraceSource, filters: TraceFilters, *, skip: int, wanted: int
) -> tuple[list[dict[str, Any]], bool] | None:
    """Root observations ``skip`` to ``skip + wanted`` and whether more follow; None when
    the server has no v2 observations API (404)."""
    params = v2_query(filters)
    need = skip + wanted + 1  # one more tells whether more follow
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    traces: set[Any] = set()
    roots: set[str] = set()
    while len(found) < need:
        page = [("limit", str(min(V2_PAGE_MAX, need - len(found))))]
        if cursor:
            page.append(("cursor", cursor))
        body = source.get(V2_OBSERVATIONS, [*params, *page], allow_404=not found and not cursor)
        if body is None:
            return None
        data = _data(source, body, V2_OBSERVATIONS, "observations")
        cursor = _cursor(body, seen, source, V2_OBSERVATIONS)  # a loop said as one first
        _remember(source, V2_OBSERVATIONS, data, roots)
        for root in data:
            # A trace may have several roots (an SDK's spans opened with the same trace id):
            # one row per trace, its newest root.
            trace_id = root.get("traceId")
            key = trace_id if isinstance(trace_id, str) else id(root)
            if key not in traces:
                traces.add(key)
                found.append(root)
        if not cursor or not data:
            break
    return found[skip : skip + wanted], len(found) > skip + wanted


def root_as_trace(root: dict[str, Any]) -> dict[str, Any]:
    """The v1 trace fields a list row needs, from the trace's root observation (v2)."""
    return {
        "id": root.get("traceId"),
        "timestamp": root.get("startTime"),
        "name": root.get("traceName"),
        "metadata": root.get("metadata"),
        "output": json_or_text(root.get("output")),
        "latency": root.get("latency"),
        "sessionId": root.get("sessionId"),
        "level": root.get("level"),
    }


def v1_query(filters: TraceFilters) -> list[tuple[str, str]]:
    """The v1 traces query for the filters (newest first)."""
    params = [("orderBy", "timestamp.desc")]
    if filters.since:
        params.append(("fromTimestamp", filters.since))
    if filters.until:
        params.append(("toTimestamp", filters.until))
    if filters.event_type:
        params.append(("name", TRACE_PREFIX + filters.event_type))
    params.extend(("tags", tag) for tag in filters.tags)
    if filters.session:
        params.append(("sessionId", filters.session))
    return params


V1_STALE_PAGES = 3  # v1 pages in a row with nothing new: the server repeats its pages


def _v1_traces(
    source: TraceSource, filters: TraceFilters, *, wanted: int, page: int, size: int
) -> tuple[list[dict[str, Any]], dict[str, int] | None] | None:
    """The v1 pages (a server without v2): pages of one size, so page numbers stay offsets;
    when ``wanted`` ended inside a page, ``next`` is that page (its first traces again).
    None when the server has no v1 traces API (404)."""
    from autoops_cli.langfuse_api.client import count

    params = v1_query(filters)
    traces: list[dict[str, Any]] = []
    ids: set[str] = set()
    stale = 0  # pages in a row that brought no trace not listed already
    first = True
    while True:
        query = [*params, ("page", str(page)), ("limit", str(size))]
        body = source.get(V1_TRACES, query, allow_404=first)
        if body is None:
            return None
        first = False
        page_items = _data(source, body, V1_TRACES, "traces")
        # Offset pages shift when traces arrive meanwhile: a trace listed already is not again.
        # A page may then hold only traces listed already, even a page's worth of arrivals
        # later; several such pages in a row are a server repeating its pages.
        data = []
        for trace in page_items:
            trace_id = trace.get("id")
            if isinstance(trace_id, str):
                if trace_id in ids:
                    continue
                ids.add(trace_id)
            data.append(trace)
        stale = stale + 1 if page_items and not data else 0
        if stale >= V1_STALE_PAGES:
            raise ApiError(
                f"{source.where}{V1_TRACES} answered a page of items it gave before: "
                "its pages repeat",
                status=200,
            )
        room = wanted - len(traces)
        traces.extend(data[:room])
        meta = body.get("meta")
        total_pages = count(meta.get("totalPages")) if isinstance(meta, dict) else 0
        if len(data) > room:  # stopped inside this page: the next call shows it again
            return traces, {"page": page, "limit": size}
        if not page_items or page >= total_pages:
            return traces, None
        if len(traces) >= wanted:
            return traces, {"page": page + 1, "limit": size}
        page += 1


# --- traces show ----------------------------------------------------------------------------


FULL_ID_LENGTH = 32  # an OTel trace id, as hex
MIN_PREFIX = 6
PREFIX_SCAN = 1000  # the most recent traces a prefix is looked for among (Langfuse API)


def resolve_trace_id(source: TraceSource, given: str) -> str:
    """The full trace id for ``given``: itself, or the one trace its prefix starts.

    As ``traces list`` shows ids: a prefix of at least 6 characters is looked for in the
    local store, or among the most recent traces of the Langfuse API. None, or more than
    one, is a usage error saying which.
    """
    wanted = given.strip().lower()
    if len(wanted) >= FULL_ID_LENGTH:
        return given.strip()
    if not wanted:  # no filter at all: every trace's observations, shown as one tree
        raise UsageError("trace id '': give the full id, or a prefix as traces list shows it")
    if len(wanted) < MIN_PREFIX:
        # A whole id of another client (ids need not be 32 hex characters): asked as it is;
        # "not found" says to give more of an id that was meant as a prefix.
        return given.strip()
    if source.local:
        store = source.local_store()
        # A range on the primary key: the ids starting with the prefix, any characters in it
        # taken literally.
        rows = (
            store.query(
                "SELECT id FROM traces WHERE id >= ? AND id < ? ORDER BY timestamp_us DESC LIMIT 3",
                (wanted, wanted + "\U0010ffff"),
            )
            if store is not None
            else []
        )
        found = [str(row[0]) for row in rows]
        scanned = "in"
    else:
        roots, _ = list_traces(source, TraceFilters(), wanted=PREFIX_SCAN, page=1, size=100)
        ids = (str(r["id"]) for r in roots if str(r.get("id") or "").startswith(wanted))
        found = list(dict.fromkeys(ids))[:3]
        scanned = f"among the {PREFIX_SCAN} most recent traces of"
    if len(found) == 1:
        return found[0]
    if not found:
        raise CheckFailedError(f"no trace id starts with {wanted} {scanned} {source.where}")
    raise UsageError(
        f"trace id prefix {wanted} is ambiguous {scanned} {source.where}: "
        f"{', '.join(found[:2])}{' ...' if len(found) > 2 else ''}; give more characters"
    )


def fetch_trace(source: TraceSource, trace_id: str) -> dict[str, Any]:
    """One trace with its observations (``id``, ``name``, ``timestamp``, ``observations``).

    v2: the trace's observations, and the decision confidence of those whose metadata does
    not carry it from their ``decision_confidence`` scores; v1: the trace itself.
    ``trace_id`` may be a unique prefix (``resolve_trace_id``).
    """
    trace_id = resolve_trace_id(source, trace_id)
    path = f"{V1_TRACES}/{trace_id}"
    while True:
        if source.api == "v2":
            found = _trace_v2(source, trace_id)
            if found is not None:
                return found
        else:
            body = source.get(path, [], allow_404=True)
            if body is not None:
                break
        # v1's 404 is also what a missing trace gets: v2, when not asked yet, tells which.
        if not source.switch_api():
            raise _not_found(source, trace_id)
    if not isinstance(body.get("id"), str) or not body["id"]:
        raise ApiError(f"{source.where}{path} answered a trace without an id", status=200)
    observations = body.get("observations")
    if observations is not None:
        if not isinstance(observations, list):
            raise ApiError(
                f"{source.where}{path} answered without a list of observations", status=200
            )
        _check_ids(source, path, observations)
    return dict(body)


def _not_found(source: TraceSource, trace_id: str) -> CheckFailedError:
    short = len(trace_id) < MIN_PREFIX
    hint = f" (a prefix of an id needs at least {MIN_PREFIX} characters)" if short else ""
    return CheckFailedError(f"trace {trace_id} not found at {source.where}{hint}")


def _check_ids(source: TraceSource, path: str, observations: list[Any]) -> None:
    """An ``ApiError`` unless every observation is an object with an id (a tree needs them)."""
    for observation in observations:
        if not isinstance(observation, dict) or not isinstance(observation.get("id"), str):
            raise ApiError(
                f"{source.where}{path} answered an observation without an id", status=200
            )


def _trace_v2(source: TraceSource, trace_id: str) -> dict[str, Any] | None:
    observations: list[dict[str, Any]] = []
    cursor: str | None = None
    seen: set[str] = set()
    ids: set[str] = set()
    while True:
        params = [("traceId", trace_id), ("fields", FIELDS), ("limit", str(V2_PAGE_MAX))]
        if cursor:
            params.append(("cursor", cursor))
        body = source.get(V2_OBSERVATIONS, params, allow_404=not observations and not cursor)
        if body is None:
            return None
        data = _data(source, body, V2_OBSERVATIONS, "observations")
        _check_ids(source, V2_OBSERVATIONS, data)
        cursor = _cursor(body, seen, source, V2_OBSERVATIONS)
        _remember(source, V2_OBSERVATIONS, data, ids)
        observations.extend(data)
        if len(observations) > MAX_TREE_OBSERVATIONS:
            raise ApiError(
                f"trace {trace_id} at {source.where} has more than {MAX_TREE_OBSERVATIONS} "
                "observations: too many to show as a tree",
                status=200,
            )
        if not cursor or not data:
            break
    if not observations:
        raise _not_found(source, trace_id)
    confidence = _confidence_scores(source, trace_id)
    for observation in observations:
        metadata = observation.get("metadata")
        metadata = dict(metadata) if isinstance(metadata, dict) else {}
        score = confidence.get(str(observation.get("id")))
        if score is not None and metadata.get("confidence") is None:
            metadata["confidence"] = score
        observation["metadata"] = metadata
    names = [o["traceName"] for o in observations if isinstance(o.get("traceName"), str)]
    starts = [str(o["startTime"]) for o in observations if isinstance(o.get("startTime"), str)]
    return {
        "id": trace_id,
        "name": names[0] if names else None,
        "timestamp": min(starts, key=moment_order) if starts else None,
        "observations": observations,
    }


def _confidence_scores(source: TraceSource, trace_id: str) -> dict[str, Any]:
    """Observation id -> its ``decision_confidence`` score (v3); {} without the v3 API."""
    found: dict[str, Any] = {}
    cursor: str | None = None
    seen: set[str] = set()
    ids: set[str] = set()
    while True:
        params = [
            ("traceId", trace_id),
            ("name", CONFIDENCE_SCORE),
            ("fields", "core,subject"),
            ("limit", str(SCORES_PAGE_MAX)),
        ]
        if cursor:
            params.append(("cursor", cursor))
        body = source.get(V3_SCORES, params, allow_404=True)
        if body is None:
            return found
        scores = _data(source, body, V3_SCORES, "scores")
        cursor = _cursor(body, seen, source, V3_SCORES)
        _remember(source, V3_SCORES, scores, ids)
        for score in scores:
            subject = score.get("subject")
            value = score.get("value")
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            # A confidence is a number: a BOOLEAN or CATEGORICAL score of that name is not one.
            if (
                isinstance(subject, dict)
                and subject.get("kind") == "observation"
                and numeric
                and score.get("dataType", "NUMERIC") == "NUMERIC"
            ):
                found.setdefault(str(subject.get("id")), value)
        if not cursor or not scores:  # an empty page is the last, whatever its cursor says
            return found
