"""``autoops replay`` into ``autoops serve`` vs into the local store, as a user runs it.

Each round runs the real command twice on the same generated file (the order alternating
between rounds, a fresh home each time):

- ``local``: no keys, the traces go to the embedded local store;
- ``langfuse``: keys of a fresh ``autoops serve``: the outbox, streamed to the server while the
  replay runs; the command ends when the server has everything (exit 0) or it gave up.

Reports, as medians: the wall time of each command and their ratio (target: langfuse mode at
most 1.3 x the local store), how long after the command started the first trace was readable
on the server's API, and after the first event was reported (target: 2 s), and the most spans
and scores the outbox held during the run (the bound: ``LANGFUSE_BUFFER_SIZE`` while the
server takes batches). Checks that every observation reached the server.

    python benchmarks/replay_delivery.py [--events 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.serve_process import autoops_executable, start_serve, stop_serve  # noqa: E402

VARIANTS = ("local", "langfuse")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env.update(extra)
    return env


def run_local(events: Path, home: Path) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [autoops_executable(), "-q", "--json", "replay", str(events)],
        capture_output=True, text=True, env=clean_env(AUTOOPS_HOME=str(home)), check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    return {"wall_s": wall, "summary": json.loads(done.stdout)}


def outbox_items(store: Path) -> int:
    with contextlib.suppress(sqlite3.Error):
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
        with contextlib.closing(db):
            return int(db.execute("SELECT COALESCE(SUM(items), 0) FROM outbox").fetchone()[0])
    return 0


def first_progress_line(progress: Path) -> bool:
    with contextlib.suppress(OSError):
        return progress.read_text(encoding="utf-8").count("\n") > 0
    return False


def run_langfuse(events: Path, home: Path, directory: Path) -> dict[str, Any]:
    import httpx

    handle = start_serve(directory / "traces.db")
    try:
        env = clean_env(**handle.client_env(), AUTOOPS_HOME=str(home))  # type: ignore[arg-type]
        progress = home.parent / f"{home.name}-progress.jsonl"
        started = time.perf_counter()
        replay = subprocess.Popen(
            [autoops_executable(), "-q", "--json", "replay", str(events),
             "--progress-file", str(progress)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        first_event: float | None = None
        first_trace: float | None = None
        largest = 0
        with httpx.Client(base_url=handle.url, auth=handle.auth, timeout=30) as api:
            while replay.poll() is None:
                now = time.perf_counter() - started
                if first_event is None and first_progress_line(progress):
                    first_event = now
                if first_trace is None:
                    answer = api.get("/api/public/traces", params={"limit": 1})
                    if answer.status_code == 200 and answer.json()["meta"]["totalItems"]:
                        first_trace = time.perf_counter() - started
                largest = max(largest, outbox_items(home / "traces.db"))
                time.sleep(0.05)
            stdout, stderr = replay.communicate()
            wall = time.perf_counter() - started
            assert replay.returncode == 0, stderr
            summary = json.loads(stdout)
            held = api.get("/api/public/observations", params={"limit": 1}).json()
        return {
            "wall_s": wall,
            "summary": summary,
            "first_trace_s": first_trace,
            "first_trace_after_first_event_s": (
                first_trace - first_event if first_trace and first_event else None
            ),
            "largest_outbox_items": largest,
            "complete": held["meta"]["totalItems"] == summary["observations_recorded"],
        }
    finally:
        stop_serve(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from autoops_cli.simulation.generator import generate_events, write_events

    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(events, generate_events(args.events, seed=29))
        for round_number in range(args.rounds):
            order = VARIANTS if round_number % 2 == 0 else VARIANTS[::-1]
            for variant in order:
                home = Path(tmp) / f"home-{variant}-{round_number}"
                if variant == "local":
                    result = run_local(events, home)
                else:
                    result = run_langfuse(events, home, Path(tmp) / f"serve-{round_number}")
                results[variant].append(result)
                print(f"  round {round_number} {variant:8} {result['wall_s']:7.2f} s", flush=True)

    def median(variant: str, key: str) -> float:
        values = [r[key] for r in results[variant] if r.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    local, langfuse = median("local", "wall_s"), median("langfuse", "wall_s")
    print(
        f"autoops replay of {args.events} events, median of {args.rounds} interleaved rounds, "
        "wall time of the command"
    )
    print(f"  local store                        {local:7.2f} s")
    print(
        f"  langfuse mode into autoops serve   {langfuse:7.2f} s   (until the server holds "
        f"everything; all delivered: {all(r['complete'] for r in results['langfuse'])})"
    )
    print(f"  langfuse / local = {langfuse / local:.3f} (target <= 1.3)")
    print(
        f"  first trace readable on the server: {median('langfuse', 'first_trace_s'):.2f} s "
        f"after the command started, {median('langfuse', 'first_trace_after_first_event_s'):.2f} s "
        "after the first events were reported (target 2 s)"
    )
    print(
        "  most spans and scores in the outbox during a run: "
        f"{max(r['largest_outbox_items'] for r in results['langfuse'])} "
        f"(of {results['langfuse'][0]['summary']['observations_recorded'] + results['langfuse'][0]['summary']['scores_recorded']} recorded)"
    )


if __name__ == "__main__":
    main()
