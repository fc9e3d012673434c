"""``autoops metrics`` end to end over a large store: requests made and time per call.

The store is the one ``benchmarks/metrics_query.py`` builds (replayed traces copied with
fresh ids over one day, 2026-01-01). ``autoops serve`` answers for it behind a counting
proxy; each round runs, as real processes and interleaved (the machine is noisy):

- ``langfuse``: ``autoops metrics --json --refresh`` against the server (three metrics
  queries over HTTP, the cache bypassed);
- ``cached``: the same call without ``--refresh`` within the TTL (no request);
- ``local``: ``autoops metrics --json --local`` on the same store file.

Prints the median wall time of each, the requests per call, and the ratios.

    python benchmarks/metrics_command.py [--db PATH] [--observations 100000] [--rounds 5]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from metrics_query import ensure_store  # noqa: E402

from tests.support.counting_proxy import CountingProxy  # noqa: E402
from tests.support.serve_process import autoops_executable, start_serve, stop_serve  # noqa: E402

WINDOW = ["--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [autoops_executable(), "--json", "metrics", *WINDOW, *args],
        capture_output=True, text=True, env=env, check=True, timeout=600,
    )  # fmt: skip
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="keep (and reuse) the generated store here")
    parser.add_argument("--observations", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = options.db or Path(tmp) / "store" / "traces.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        ensure_store(db, options.observations)
        server = start_serve(db)
        proxy = CountingProxy(server.url)
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
        remote_env = {**clean, **server.client_env(), "LANGFUSE_HOST": proxy.url,
                      "AUTOOPS_HOME": str(Path(tmp) / "client")}  # fmt: skip
        local_env = {**clean, "AUTOOPS_HOME": str(db.parent)}
        times: dict[str, list[float]] = {"langfuse": [], "cached": [], "local": []}
        requests: list[int] = []
        try:
            for _ in range(options.rounds):
                before = proxy.seen.count()
                elapsed, remote = timed(["--refresh"], remote_env)
                times["langfuse"].append(elapsed)
                requests.append(proxy.seen.count() - before)
                elapsed, cached = timed([], remote_env)
                times["cached"].append(elapsed)
                assert cached["source"]["cached"] and proxy.seen.count() - before == requests[-1]
                elapsed, local = timed(["--local"], local_env)
                times["local"].append(elapsed)
                keep = ("agents", "system", "alerts")
                assert {k: remote[k] for k in keep} == {k: local[k] for k in keep}
        finally:
            proxy.close()
            stop_serve(server)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"observations: {options.observations}, rounds: {options.rounds}")
    print(f"events in the window: {remote['system']['total_events_processed']}")
    print(f"requests per call: {sorted(set(requests))} (cached calls: 0)")
    for name, value in medians.items():
        print(f"  {name:9} median {value:.2f} s")
    print(f"ratios: langfuse/local {medians['langfuse'] / medians['local']:.2f}, "
          f"cached/langfuse {medians['cached'] / medians['langfuse']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
