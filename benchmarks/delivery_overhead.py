"""What delivery costs: a replay into ``autoops serve`` through the outbox, through a plain
exporter, and into the local store, side by side.

Each variant replays the same generated file in its own process (a fresh ``autoops serve`` and
a fresh home per variant and round, variants interleaved, their order rotating between
rounds) and is timed **end to end**: from the first event until everything is where it goes
(a variant that finishes its events sooner but leaves a queue to drain is not faster):

- ``outbox``: the core as shipped (bounded queue, writer thread, every batch on disk before it
  is sent, sender thread, rows deleted on Langfuse's acknowledgement, backpressure);
- ``plain``: the same tracer with a plain exporter in the style of the SDK's (a background
  thread that encodes, gzips and posts each batch; no disk, no bound, nothing kept when a
  request fails);
- ``local``: no keys: the local store, written on the agents' thread.

All hand over batches at the replay's commit points, as ``autoops replay`` does. Reports the
median events/s (end to end) of each and the ratios (targets: the outbox at least 0.9 x
plain; the outbox's time at most 1.3 x the local store's), and checks zero loss: the server
(or the store) holds every observation each run recorded.

With ``--faults``, what a failing Langfuse costs the agents instead: the same file replayed
by ``autoops replay`` (the outbox path, the default 2 s flush deadline) against a loopback
peer that is healthy, answers 503 to every request, or answers only after 10 s (past the 5 s
request timeout), interleaved. Reports each variant's median events/s (the agents' rate:
processing only), its ratio to the healthy one (target: >= 0.80, the agents never wait on
the network), the median time spent at exit (the failing peers: bounded by the default 2 s
flush deadline; the healthy one may take up to 60 s to deliver everything), the exit codes
and whether every event was processed. The test suite checks the behaviour
(tests/core/test_delivery.py::test_the_agents_never_wait_on_a_failing_server); the
comparison of rates lives here, where the variants run side by side.

    python benchmarks/delivery_overhead.py [--events 10000] [--rounds 3]
    python benchmarks/delivery_overhead.py --faults [--events 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("plain", "outbox", "local")


class PlainExporter:
    """Encode, gzip and POST each batch from a background thread; nothing on disk."""

    def __init__(self, config: Any) -> None:
        import httpx

        from config.delivery.exporters import langfuse_headers, resource_attributes, sdk_version

        self.config = config
        self.resource = resource_attributes(config)
        self.version = sdk_version()
        self.client = httpx.Client(
            base_url=config.host,
            headers=langfuse_headers(config, self.version),
            timeout=config.timeout,
        )
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def export(self, spans: list[Any], scores: list[Any]) -> None:
        self.queue.put((spans, scores))

    def run(self) -> None:
        import gzip

        from config.delivery.otlp import AttributeEncoder, encode_spans
        from config.delivery.sender import GZIP_LEVEL

        encoder = AttributeEncoder()  # the same encoder the outbox's writer uses
        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            spans, scores = item
            if spans:
                body = gzip.compress(
                    encode_spans(
                        spans, resource=self.resource, scope_version=self.version, encoder=encoder
                    ),
                    compresslevel=GZIP_LEVEL,
                )
                self.client.post(
                    "/api/public/otel/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                )
            if scores:
                self.client.post(
                    "/api/public/scores",
                    content=json.dumps([s.as_request() for s in scores]).encode(),
                    headers={"Content-Type": "application/json"},
                )
            self.queue.task_done()

    def flush(self, timeout: float) -> bool:
        self.queue.join()
        return True

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        self.queue.put(None)
        self.thread.join(timeout=5)


def drive(variant: str, events: str, run_id: str) -> None:
    """One replay in this process, timed until everything is delivered; prints JSON."""
    from autoops_cli.actions.replay import COMMIT_POINTS_ONLY
    from autoops_cli.simulation.engine import ReplayEngine, ReplayOptions, load_orchestrator
    from config.langfuse_integration import (
        LangfuseIntegrationService,
        install_langfuse_integration,
    )
    from config.settings import DataMaskingConfig, LangfuseConfig

    config = LangfuseConfig(flush_deadline=600)  # wait for everything: zero loss is checked
    exporter = PlainExporter(config) if variant == "plain" else None
    # Installed as the process-wide service, as `autoops replay` does: the agents trace
    # through get_langfuse_integration().
    service = install_langfuse_integration(
        LangfuseIntegrationService(
            config, DataMaskingConfig(), exporter=exporter, batch_size=COMMIT_POINTS_ONLY
        )
    )
    started = time.perf_counter()
    summary = ReplayEngine(
        service, load_orchestrator(None), ReplayOptions(source=events, run_id=run_id)
    ).run()
    service.shutdown(600)
    total = time.perf_counter() - started
    print(json.dumps({**summary.as_dict(), "total_s": total}))


def one_round(variant: str, events: Path, round_number: int, directory: Path) -> tuple[float, bool]:
    import sqlite3

    import httpx

    from tests.support.serve_process import start_serve, stop_serve

    run_id = f"{variant}-{round_number}"
    home = directory / f"home-{variant}-{round_number}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env["AUTOOPS_HOME"] = str(home)
    handle = (
        None if variant == "local" else start_serve(directory / f"serve-{run_id}" / "traces.db")
    )
    try:
        if handle is not None:
            env.update(handle.client_env())
        done = subprocess.run(
            [sys.executable, __file__, "--drive", variant, "--events-file", str(events), "--run-id", run_id],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        if handle is None:
            with sqlite3.connect(home / "traces.db") as db:
                observations = db.execute("SELECT COUNT(*) FROM observations").fetchone()[0]
        else:
            observations = httpx.get(
                handle.url + "/api/public/observations",
                params={"limit": 1},
                auth=handle.auth,
                timeout=60,
            ).json()["meta"]["totalItems"]
        handled = summary["events_processed"] + summary["events_failed"]
        return handled / summary["total_s"], observations == summary["observations_recorded"]
    finally:
        if handle is not None:
            stop_serve(handle)


FAULT_VARIANTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "healthy": ("healthy server", {}, "60"),
    "unavailable": ("503 on every request", {"always_status": 503}, "2"),
    "slow": ("answers after 10 s", {"delay_s": 10.0}, "2"),
}


def fault_round(variant: str, events: Path, count: int, directory: Path) -> dict[str, Any]:
    """One ``autoops replay`` against the loopback peer with the variant's faults."""
    from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET
    from tests.support.fake_langfuse import FakeLangfuse, Faults
    from tests.support.serve_process import autoops_executable

    server = FakeLangfuse(faults=Faults(**FAULT_VARIANTS[variant][1]))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
        env.update(
            LANGFUSE_HOST=server.url,
            LANGFUSE_PUBLIC_KEY=KNOWN_PUBLIC,
            LANGFUSE_SECRET_KEY=KNOWN_SECRET,
            AUTOOPS_HOME=str(Path(tempfile.mkdtemp(dir=directory, prefix=f"home-{variant}-"))),
            AUTOOPS_FLUSH_DEADLINE=FAULT_VARIANTS[variant][2],
        )
        done = subprocess.run(
            [autoops_executable(), "--json", "-q", "replay", str(events)],
            capture_output=True, text=True, env=env, check=False, timeout=600,
        )  # fmt: skip
    finally:
        server.close()
    summary = json.loads(done.stdout)
    return {
        "rate": summary["events_per_s"],
        "exit_s": summary["flush_s"],
        "exit_code": done.returncode,
        "all_processed": summary["events_processed"] == count,
    }


def compare_faults(count: int, rounds: int) -> None:
    """Median agents' rate per fault variant, side by side, and its ratio to healthy."""
    from autoops_cli.simulation.generator import generate_events, write_events

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in FAULT_VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(events, generate_events(count, seed=4))
        for _ in range(rounds):
            for variant in FAULT_VARIANTS:
                results[variant].append(fault_round(variant, events, count, Path(tmp)))
    healthy = statistics.median(r["rate"] for r in results["healthy"])
    print(
        f"replay of {count} events through the outbox, median of {rounds} interleaved rounds "
        "(the agents' rate: events/s while processing; exit: time spent delivering at the end)"
    )
    for variant, (label, _, _) in FAULT_VARIANTS.items():
        runs = results[variant]
        rate = statistics.median(r["rate"] for r in runs)
        exit_s = statistics.median(r["exit_s"] for r in runs)
        codes = sorted({r["exit_code"] for r in runs})
        processed = all(r["all_processed"] for r in runs)
        print(
            f"  {label:<22} {rate:8.1f} events/s   {rate / healthy:5.2f} x healthy   "
            f"exit {exit_s:4.1f} s (codes {codes})   every event processed: {processed}"
        )
    print("  target: each >= 0.80 x healthy (the agents never wait on the network)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, help="events replayed (default 10,000; with --faults 1,500)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--faults",
        action="store_true",
        help="compare a healthy, an unavailable (503) and a slow (10 s) peer instead",
    )
    parser.add_argument("--drive", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.events_file, args.run_id)
        return
    if args.faults:
        compare_faults(args.events or 1500, args.rounds)
        return
    count = args.events or 10_000
    from autoops_cli.simulation.generator import generate_events, write_events

    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    complete: dict[str, bool] = dict.fromkeys(VARIANTS, True)
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(events, generate_events(count, seed=13))
        for round_number in range(args.rounds):
            shift = round_number % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                rate, whole = one_round(variant, events, round_number, Path(tmp))
                rates[variant].append(rate)
                complete[variant] &= whole
                print(f"  round {round_number} {variant:6} {rate:8.1f} events/s", flush=True)
    median = {variant: statistics.median(rates[variant]) for variant in VARIANTS}
    plain, outbox, local = median["plain"], median["outbox"], median["local"]
    print(
        f"replay of {count} events, end to end (until everything is delivered or stored), "
        f"median events/s of {args.rounds} interleaved rounds"
    )
    print(
        f"  plain exporter into autoops serve (no outbox)  {plain:8.1f}   all delivered: {complete['plain']}"
    )
    print(
        f"  outbox into autoops serve                      {outbox:8.1f}   all delivered: {complete['outbox']}"
    )
    print(
        f"  local store                                    {local:8.1f}   all stored: {complete['local']}"
    )
    print(f"  outbox / plain = {outbox / plain:.3f} (target >= 0.90)")
    print(f"  outbox time / local store time = {local / outbox:.3f} (target <= 1.30)")


if __name__ == "__main__":
    main()
