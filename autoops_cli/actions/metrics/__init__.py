"""``autoops metrics``: the three metrics queries, the report built from them, its view.

``queries`` asks (v2, v1 or the local store, through the cache), ``report`` computes the
seed's metrics and alerts from the answers, ``view`` draws them; ``collect_metrics`` is the
command's one call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autoops_cli.actions.metrics.report import MetricsReport
    from config.settings import LangfuseConfig


def collect_metrics(
    config: LangfuseConfig,
    *,
    agent: str | None,
    since: str,
    until: str | None,
    bucket: str | None,
    local: bool,
    refresh: bool,
    cache_ttl: float,
    timeout: float,
) -> MetricsReport:
    """The metrics of the window from Langfuse (cached) or, locally, from the store."""
    from autoops_cli.actions.metrics.queries import (
        build_queries,
        fetch_local,
        fetch_remote,
        make_window,
    )
    from autoops_cli.actions.metrics.report import build_report
    from config.store.local_store import default_store_path

    window = make_window(since, until)
    queries = build_queries(window, bucket)
    if local or config.mode != "langfuse":
        fetched = fetch_local(default_store_path(), window, queries)
    else:
        fetched = fetch_remote(
            config,
            window,
            queries,
            timeout=timeout,
            cache_ttl=0.0 if refresh else cache_ttl,
            cache_parts=(since, until, bucket),
            store_path=default_store_path(),
        )
    return build_report(fetched, by=bucket, agent=agent, max_latency_ms=config.max_latency_ms)
