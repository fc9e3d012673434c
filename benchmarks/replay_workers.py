"""``autoops replay --workers``: 1 worker against 2 (and ``auto``), side by side.

Each round runs the real command once per variant on the same generated file, in an order
that rotates between rounds (a fresh home each time, so every run writes a new store), in
local mode, and with ``--langfuse`` also into a fresh ``autoops serve`` (the command then
ends when the server has everything). Reports the medians of the wall time and of the
summary's ``events_per_s`` (events recorded per second of replay, delivery aside), and the
ratio of each variant's events/s to one worker's (target: at least 1.7 x with 2 workers on
2 cores), and the CPU time per event of all the run's processes together (parent and workers,
from ``RUSAGE_CHILDREN``): what the split costs, whatever else the machine is doing. The load
average is printed with the figures: on a shared machine, 2 workers get 2 cores only when
nothing else runs. The control, ``halves``, is the best any split can do on the machine at
that moment: the file cut in two by the same partition, and two independent one-process
replays of the halves run side by side into one store (no parent, no pipes). Checks that every
variant recorded every event.

    python benchmarks/replay_workers.py [--events 5000] [--rounds 3] [--langfuse]
"""

from __future__ import annotations

import argparse
import json
import os
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

VARIANTS = ("1", "2", "auto", "halves")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env.update(extra)
    return env


def run_once(events: Path, workers: str, home: Path, keys: dict[str, str]) -> dict[str, Any]:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [autoops_executable(), "-q", "--json", "replay", str(events), "--workers", workers],
        capture_output=True, text=True, env=clean_env(AUTOOPS_HOME=str(home), **keys),
        check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    per_event = 1000 * cpu / max(summary["events_processed"], 1)
    return {
        "wall_s": wall,
        "events_per_s": summary["events_per_s"],
        "cpu_ms_per_event": per_event,
        "summary": summary,
    }


def split_in_two(events: Path) -> list[Path]:
    """The file's events in two files, by the partition ``--workers 2`` uses."""
    from autoops_cli.simulation.partition import worker_of

    halves = [events.with_name(f"half-{number}.jsonl") for number in (0, 1)]
    if all(half.exists() for half in halves):
        return halves
    outputs = [half.open("w", encoding="utf-8") for half in halves]
    with events.open(encoding="utf-8") as lines:
        for line in lines:
            outputs[worker_of(json.loads(line)["product_id"], 1, 2)].write(line)
    for output in outputs:
        output.close()
    return halves


def run_halves(events: Path, home: Path, keys: dict[str, str]) -> dict[str, Any]:
    """Two one-process replays of the halves side by side, as one result."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    env = clean_env(AUTOOPS_HOME=str(home), **keys)
    processes = [
        subprocess.Popen(
            [autoops_executable(), "-q", "--json", "replay", str(half)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for half in split_in_two(events)
    ]
    outputs = [process.communicate() for process in processes]
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    processed = sum(summary["events_processed"] for summary in summaries)
    duration = max(summary["duration_s"] for summary in summaries)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_s": wall,
        "events_per_s": processed / duration,
        "cpu_ms_per_event": 1000 * cpu / max(processed, 1),
        "summary": {"events_processed": processed, "workers": 2},
    }


def measure(events: Path, count: int, rounds: int, mode: str, work: Path) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {variant: [] for variant in VARIANTS}
    for round_number in range(rounds):
        shift = round_number % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            home = work / f"{mode}-{variant}-{round_number}"
            keys: dict[str, str] = {}
            handle = None
            if mode == "langfuse":
                handle = start_serve(work / f"serve-{variant}-{round_number}" / "traces.db")
                keys = {k: v for k, v in handle.client_env().items() if v is not None}
            try:
                if variant == "halves":
                    result = run_halves(events, home, keys)
                else:
                    result = run_once(events, variant, home, keys)
            finally:
                if handle is not None:
                    stop_serve(handle)
            assert result["summary"]["events_processed"] == count, result["summary"]
            results[variant].append(result)
            print(
                f"  {mode} round {round_number + 1} workers={variant}: "
                f"{result['wall_s']:.2f} s wall, {result['events_per_s']:.0f} events/s, "
                f"{result['cpu_ms_per_event']:.2f} ms CPU/event, load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
            )
    base = statistics.median(r["events_per_s"] for r in results["1"])
    report = {}
    for variant, runs in results.items():
        rate = statistics.median(r["events_per_s"] for r in runs)
        report[variant] = {
            "workers": runs[0]["summary"]["workers"],
            "wall_s_median": round(statistics.median(r["wall_s"] for r in runs), 2),
            "events_per_s_median": round(rate, 1),
            "cpu_ms_per_event_median": round(
                statistics.median(r["cpu_ms_per_event"] for r in runs), 2
            ),
            "ratio_to_1": round(rate / base, 2) if base else None,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--langfuse", action="store_true", help="also into autoops serve")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoops-workers-bench-") as scratch:
        work = Path(scratch)
        events = work / "events.jsonl"
        subprocess.run(
            [autoops_executable(), "-q", "events", "generate", "--count", str(args.events),
             "--seed", "7", "--output", str(events)],
            check=True, env=clean_env(),
        )  # fmt: skip
        figures: dict[str, Any] = {
            "events": args.events,
            "rounds": args.rounds,
            "cpus": len(os.sched_getaffinity(0)),
            "load_average_before": os.getloadavg()[0],
            "local": measure(events, args.events, args.rounds, "local", work),
        }
        if args.langfuse:
            figures["langfuse"] = measure(events, args.events, args.rounds, "langfuse", work)
        figures["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
