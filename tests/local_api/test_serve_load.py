"""``autoops serve`` under a bounded loopback load: exporters and readers at once.

Three ``autoops replay`` processes (the real OTLP exporter path, each with its own outbox
and run id) write while two reader threads poll traces, observations, scores and metrics.
Every read must be answered 200 and every trace, observation and score each replay
reports must be in the store afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_replay import EXAMPLE
from tests.conftest import Figures
from tests.support.serve_process import ServeHandle, autoops_executable

RUNS = ("load-a", "load-b", "load-c")
EVENTS_PER_RUN = 60


def _metrics_query() -> str:
    now = time.time()
    return json.dumps(
        {
            "view": "observations",
            "dimensions": [{"field": "name"}],
            "metrics": [{"measure": "count", "aggregation": "count"}],
            "filters": [],
            "fromTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400)),
            "toTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 3600)),
        }
    )


READS: tuple[tuple[tuple[str, dict[str, Any]], ...], ...] = (
    (
        ("/api/public/traces", {"limit": 50}),
        ("/api/public/v2/observations", {"limit": 100, "fields": "core,basic,io"}),
    ),
    (
        ("/api/public/v2/metrics", {"query": _metrics_query()}),
        ("/api/public/v3/scores", {"limit": 50}),
        ("/api/public/observations", {"limit": 50}),
    ),
)


def _stored(store: Path, session: str) -> dict[str, int]:
    """Rows of one session (run id) in the served store."""
    with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
        traces = "SELECT id FROM traces WHERE session_id = ?"
        return {
            "traces": db.execute(f"SELECT COUNT(*) FROM ({traces})", (session,)).fetchone()[0],
            "observations": db.execute(
                f"SELECT COUNT(*) FROM observations WHERE trace_id IN ({traces})", (session,)
            ).fetchone()[0],
            "scores": db.execute(
                f"SELECT COUNT(*) FROM scores WHERE trace_id IN ({traces})", (session,)
            ).fetchone()[0],
        }


@pytest.mark.slow
def test_concurrent_exporters_and_readers_lose_nothing(
    served: ServeHandle, workdir: Path, reliability: Figures
) -> None:
    began = time.monotonic()
    replays = {}
    for run in RUNS:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
        env.update(served.client_env())
        env["AUTOOPS_HOME"] = str(workdir / run)  # each exporter has its own outbox
        env["AUTOOPS_FLUSH_DEADLINE"] = "60"  # deliver everything before exiting
        replays[run] = subprocess.Popen(
            [autoops_executable(), "-q", "--json", "replay", str(EXAMPLE),
             "--run-id", run, "--limit", str(EVENTS_PER_RUN)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=workdir,
        )  # fmt: skip

    statuses: Counter[int] = Counter()
    failures: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def reader(reads: tuple[tuple[str, dict[str, Any]], ...]) -> None:
        with httpx.Client(base_url=served.url, auth=served.auth, timeout=30) as client:
            while writing.is_set():
                for path, params in reads:
                    started = time.monotonic()
                    try:
                        status = client.get(path, params=params).status_code
                    except httpx.HTTPError as exc:
                        with lock:
                            failures.append(f"{path}: {exc!r}")
                        continue
                    with lock:
                        statuses[status] += 1
                        latencies.append(time.monotonic() - started)
                        if status != 200:
                            failures.append(f"{path}: {status}")
                time.sleep(0.02)

    readers = [threading.Thread(target=reader, args=(reads,)) for reads in READS]
    for thread in readers:
        thread.start()
    summaries: dict[str, dict[str, Any]] = {}
    try:
        for run, process in replays.items():
            stdout, stderr = process.communicate(timeout=120)
            reliability.exited(process.returncode)
            assert process.returncode == 0, stderr
            summaries[run] = json.loads(stdout)
    finally:
        writing.clear()
        for thread in readers:
            thread.join()
        for process in replays.values():
            if process.poll() is None:
                process.kill()
                process.communicate()
    elapsed = time.monotonic() - began

    lost = 0
    for run, summary in summaries.items():
        tracing = summary["tracing"]
        assert (tracing["delivery_state"], tracing["batches_pending"]) == ("ok", 0), tracing
        assert tracing["dead_letters"] == 0 and tracing["spans_failed"] == 0, tracing
        sent = {
            "traces": summary["traces_recorded"],
            "observations": summary["observations_recorded"],
            "scores": summary["scores_recorded"],
        }
        assert sent["traces"] == EVENTS_PER_RUN, summary
        stored = _stored(served.store, run)
        lost += sum(max(0, sent[kind] - stored[kind]) for kind in sent)
        assert stored == sent, (run, stored, sent)
        listed = httpx.get(
            served.url + "/api/public/traces",
            params={"sessionId": run, "limit": 1},
            auth=served.auth,
            timeout=30,
        ).json()
        assert listed["meta"]["totalItems"] == sent["traces"]

    requests = sum(statuses.values())
    reliability.tried(requests + len(RUNS))
    for status, count in statuses.items():
        for _ in range(count):
            reliability.answered(status)
    reliability.missing(lost)
    written = {
        run: (s["traces_recorded"], s["observations_recorded"]) for run, s in summaries.items()
    }
    latencies.sort()
    p50, slowest = latencies[len(latencies) // 2] * 1000, latencies[-1] * 1000
    print(
        f"load: {len(RUNS)} replays {written} and {requests} reads in {elapsed:.1f} s; "
        f"statuses {dict(statuses)}; read latency p50 {p50:.0f} ms, max {slowest:.0f} ms"
    )
    assert not failures, failures[:5]
    assert requests >= 20  # the readers really ran beside the writers
    assert lost == 0
