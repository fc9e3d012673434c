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

    python benchmarks/delivery_overhead.py [--events 10000] [--rounds 3]
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
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    config = LangfuseConfig(flush_deadline=600)  # wait for everything: zero loss is checked
    exporter = PlainExporter(config) if variant == "plain" else None
    service = LangfuseIntegrationService(
        config, DataMaskingConfig(), exporter=exporter, batch_size=COMMIT_POINTS_ONLY
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drive", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.events_file, args.run_id)
        return
    from autoops_cli.simulation.generator import generate_events, write_events

    rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    complete: dict[str, bool] = dict.fromkeys(VARIANTS, True)
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(events, generate_events(args.events, seed=13))
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
        f"replay of {args.events} events, end to end (until everything is delivered or stored), "
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
