"""Metrics queries over one million observations: the local server's /api/public/metrics.

The store is built from a real replay: ``autoops replay examples/events.jsonl`` writes 200
traces (about 2,900 observations, 500 scores) through ``LocalStore.write`` into a scratch
store; those rows are then copied, trace by trace, with fresh random ids and start times
spread over one day, into the benchmark store with the store's own upsert statements, until
it holds exactly ``--observations`` observations (70,000 traces for a million). Every row is
therefore a row ``LocalStore.write`` produced, except for its ids and times; copying is about
ten times faster than replaying.

Then each query runs ``--rounds`` times (queries interleaved round by round; the machine is
shared and noisy) and the median is printed, in two set-ups:

- ``2 read conns``: the indexes ``LocalStore`` creates, two read connections (the default);
- ``1 conn``: the same on a single connection (``workers=1``).

Target: each query under one second.

    python benchmarks/metrics_query.py [--db PATH] [--observations 1000000] [--rounds 5]

``--db`` keeps the generated store (reused when it matches); without it the store lives in
a temporary directory that is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autoops_cli.local_api.query import metrics as metrics_engine  # noqa: E402
from autoops_cli.local_api.query.metrics import parse_metrics_query  # noqa: E402
from config.store.local_store import (  # noqa: E402
    OBSERVATION_UPSERT,
    SCORE_COLUMNS,
    SCORE_UPSERT,
    TRACE_UPSERT,
    LocalStore,
    add_store_functions,
)
from config.store.rows import OBSERVATION_COLUMNS, TRACE_COLUMNS  # noqa: E402

GENERATOR_VERSION = 1
DAY_US = 86_400_000_000
DAY_START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
Template = tuple[tuple[Any, ...], list[tuple[Any, ...]], list[tuple[Any, ...]]]


def replay_templates(workdir: Path) -> list[Template]:
    """Trace, observation and score rows of a real replay, per trace."""
    home = workdir / "replay-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env["AUTOOPS_HOME"] = str(home)
    events = REPO / "examples" / "events.jsonl"
    subprocess.run(
        [sys.executable, "-m", "autoops_cli", "-q", "replay", str(events), "--run-id", "bench"],
        check=True,
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
    )
    db = sqlite3.connect(home / "traces.db")
    try:
        traces = db.execute(
            f"SELECT {', '.join(TRACE_COLUMNS)}, updated_us FROM traces ORDER BY id"
        )
        trace_rows = traces.fetchall()
        observations: dict[str, list[tuple[Any, ...]]] = {}
        query = f"SELECT {', '.join(OBSERVATION_COLUMNS)} FROM observations ORDER BY start_us"
        for row in db.execute(query):
            observations.setdefault(row[1], []).append(row)
        scores: dict[str, list[tuple[Any, ...]]] = {}
        for row in db.execute(f"SELECT {', '.join(SCORE_COLUMNS)} FROM scores ORDER BY id"):
            scores.setdefault(row[1], []).append(row)
    finally:
        db.close()
    return [(t, observations.get(t[0], []), scores.get(t[0], [])) for t in trace_rows]


def _copy_trace(
    template: Template, start_us: int, rnd: random.Random, keep: int
) -> tuple[Any, ...]:
    """One template trace with new ids and times; ``keep`` observations of it."""
    trace, observations, scores = template
    shift = start_us - trace[1]
    trace_id = f"{rnd.getrandbits(128):032x}"
    ids = {row[0]: f"{rnd.getrandbits(64):016x}" for row in observations}
    trace_row = (trace_id, start_us, *trace[2:-1], trace[-1] + shift)
    # OBSERVATION_COLUMNS: id, trace_id, parent_observation_id, type, name, start_us, end_us, ...
    observation_rows = [
        (ids[o[0]], trace_id, ids.get(o[2]), o[3], o[4], o[5] + shift, o[6] + shift, *o[7:])
        for o in observations[:keep]
    ]
    # SCORE_COLUMNS: id, trace_id, observation_id, ..., timestamp_us (by name: more follow)
    stamp = SCORE_COLUMNS.index("timestamp_us")
    score_rows = [
        (f"{rnd.getrandbits(128):032x}", trace_id, ids.get(s[2]), *s[3:stamp], s[stamp] + shift,
         *s[stamp + 1 :])
        for s in scores
    ]  # fmt: skip
    return trace_row, observation_rows, score_rows


def generate(path: Path, observations: int) -> None:
    """Write a store of exactly ``observations`` observations at ``path``."""
    with tempfile.TemporaryDirectory() as tmp:
        templates = replay_templates(Path(tmp))
    LocalStore(path).close()  # the store's own schema
    per_trace = sum(len(t[1]) for t in templates) / len(templates)
    traces = int(observations / per_trace) + 1
    step = DAY_US // traces
    rnd = random.Random(42)
    db = sqlite3.connect(path, isolation_level=None)
    add_store_functions(db)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")  # random ids: keep the id indexes in memory
    written = index = 0
    batch: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    started = time.perf_counter()
    while written < observations:
        start_us = DAY_START_US + index * step + rnd.randrange(step)
        keep = observations - written
        trace_row, observation_rows, score_rows = _copy_trace(
            templates[index % len(templates)], start_us, rnd, keep
        )
        batch[0].append(trace_row)
        batch[1].extend(observation_rows)
        batch[2].extend(score_rows)
        written += len(observation_rows)
        index += 1
        if len(batch[1]) >= 100_000 or written >= observations:
            db.execute("BEGIN")
            db.executemany(TRACE_UPSERT, batch[0])
            db.executemany(OBSERVATION_UPSERT, batch[1])
            db.executemany(SCORE_UPSERT, batch[2])
            db.execute("COMMIT")
            batch = ([], [], [])
            print(f"\r  {written:,} observations", end="", file=sys.stderr, flush=True)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    elapsed = time.perf_counter() - started
    print(f"\r  {written:,} observations, {index:,} traces in {elapsed:.0f} s", file=sys.stderr)


def ensure_store(path: Path, observations: int) -> None:
    """Generate the store unless ``path`` already holds this benchmark's store."""
    marker = path.with_suffix(path.suffix + ".json")
    expected = {"generator": GENERATOR_VERSION, "observations": observations}
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == expected:
        print(f"reusing {path}", file=sys.stderr)
        return
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), marker):
        stale.unlink(missing_ok=True)
    print(f"generating {path}", file=sys.stderr)
    generate(path, observations)
    marker.write_text(json.dumps(expected))


def _iso(micros: int) -> str:
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def queries() -> dict[str, tuple[int, dict[str, Any]]]:
    """The timed queries: name -> (API version, query object) over the generated day."""
    window = {"fromTimestamp": _iso(DAY_START_US), "toTimestamp": _iso(DAY_START_US + DAY_US)}
    count, latency = "count", "latency"
    return {
        "count, avg latency by name+level": (
            2,
            {
                "view": "observations",
                "dimensions": [{"field": "name"}, {"field": "level"}],
                "metrics": [
                    {"measure": count, "aggregation": "count"},
                    {"measure": latency, "aggregation": "avg"},
                ],
                **window,
            },
        ),
        "avg, p50, p95 latency by name": (
            2,
            {
                "view": "observations",
                "dimensions": [{"field": "name"}],
                "metrics": [
                    {"measure": latency, "aggregation": agg} for agg in ("avg", "p50", "p95")
                ],
                **window,
            },
        ),
        "count by hour (time_dimension)": (
            1,
            {
                "view": "observations",
                "metrics": [{"measure": count, "aggregation": "count"}],
                "timeDimension": {"granularity": "hour"},
                **window,
            },
        ),
        "scores avg value, agent_id filter": (
            2,
            {
                "view": "scores-numeric",
                "dimensions": [{"field": "name"}],
                "metrics": [
                    {"measure": "value", "aggregation": "avg"},
                    {"measure": count, "aggregation": "count"},
                ],
                "filters": [
                    {
                        "column": "metadata",
                        "operator": "=",
                        "key": "agent_id",
                        "value": "pricing_agent",
                        "type": "stringObject",
                    }
                ],
                **window,
            },
        ),
    }


def time_queries(store: LocalStore, rounds: int, workers: int) -> dict[str, float]:
    """Median seconds per query (parse included), queries interleaved round by round."""
    raw_queries = {name: (version, json.dumps(body)) for name, (version, body) in queries().items()}

    def run(version: int, raw: str) -> None:
        metrics_engine.run(store, parse_metrics_query(raw, version=version), workers=workers)

    for version, raw in raw_queries.values():
        run(version, raw)  # warm the page cache and the statement cache
    timings: dict[str, list[float]] = {name: [] for name in raw_queries}
    for _ in range(rounds):
        for name, (version, raw) in raw_queries.items():
            started = time.perf_counter()
            run(version, raw)
            timings[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="keep (and reuse) the generated store here")
    parser.add_argument("--observations", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "traces.db"
        ensure_store(path, args.observations)
        store = LocalStore(path)
        try:
            counts = store.counts()
            print(
                f"store: {counts['observations']:,} observations, {counts['traces']:,} traces, "
                f"{counts['scores']:,} scores; medians of {args.rounds} rounds, seconds"
            )
            results = {
                f"{metrics_engine.READ_WORKERS} read conns": time_queries(
                    store, args.rounds, metrics_engine.READ_WORKERS
                ),
                "1 conn": time_queries(store, args.rounds, 1),
            }
        finally:
            store.close()
    setups = list(results)
    print(f"{'query':<36}" + "".join(f"{s:>18}" for s in setups))
    for name in queries():
        print(f"{name:<36}" + "".join(f"{results[s][name]:>18.3f}" for s in setups))


if __name__ == "__main__":
    main()
