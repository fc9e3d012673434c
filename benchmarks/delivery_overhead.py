"""What the outbox costs: replay to ``autoops serve`` through the outbox vs a plain exporter.

Both variants replay the same generated file into one ``autoops serve`` (fresh process per
variant and round, interleaved), in separate processes:

- ``outbox``: the core as shipped (every batch written to the outbox, then sent, deleted on
  2xx; the flush at the end waits until the server has everything);
- ``plain``: the same tracer with a plain exporter in the style of the SDK's
  (a background thread that encodes, gzips and posts each batch, no disk, nothing kept
  when a request fails).

Reports the median events/s of each and their ratio (target: the outbox at most 10 %
slower), and checks zero loss: the server holds every observation each run recorded.

    python benchmarks/delivery_overhead.py [--events 1500] [--rounds 3]
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
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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

        from config.delivery.otlp import encode_spans

        while True:
            item = self.queue.get()
            if item is None:
                self.queue.task_done()
                return
            spans, scores = item
            if spans:
                body = gzip.compress(
                    encode_spans(spans, resource=self.resource, scope_version=self.version)
                )
                self.client.post(
                    "/api/public/otel/v1/traces",
                    content=body,
                    headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
                )
            if scores:
                self.client.post("/api/public/scores", json=[s.as_request() for s in scores])
            self.queue.task_done()

    def flush(self, timeout: float) -> bool:
        self.queue.join()
        return True

    def shutdown(self, timeout: float) -> None:
        self.flush(timeout)
        self.queue.put(None)
        self.thread.join(timeout=5)


def drive(variant: str, events: str, run_id: str) -> None:
    """One replay in this process; prints the summary as JSON."""
    from autoops_cli.simulation.engine import ReplayEngine, ReplayOptions, load_orchestrator
    from config.langfuse_integration import initialize_langfuse_integration
    from config.settings import DataMaskingConfig, LangfuseConfig

    config = LangfuseConfig(flush_deadline=600)  # wait for everything: zero loss is checked
    exporter = PlainExporter(config) if variant == "plain" else None
    service = initialize_langfuse_integration(config, DataMaskingConfig(), exporter=exporter)
    summary = ReplayEngine(
        service, load_orchestrator(None), ReplayOptions(source=events, run_id=run_id)
    ).run()
    service.shutdown(600)
    print(json.dumps(summary.as_dict()))


def one_round(variant: str, events: Path, round_number: int, directory: Path) -> tuple[float, bool]:
    import httpx

    from tests.support.serve_process import start_serve, stop_serve

    handle = start_serve(directory / f"serve-{variant}-{round_number}" / "traces.db")
    try:
        run_id = f"{variant}-{round_number}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
        env.update(
            handle.client_env(), AUTOOPS_HOME=str(directory / f"home-{variant}-{round_number}")
        )
        done = subprocess.run(
            [sys.executable, __file__, "--drive", variant, "--events-file", str(events), "--run-id", run_id],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        observations = httpx.get(
            handle.url + "/api/public/observations",
            params={"limit": 1},
            auth=handle.auth,
            timeout=60,
        ).json()["meta"]["totalItems"]
        return summary["events_per_s"], observations == summary["observations_recorded"]
    finally:
        stop_serve(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--drive", choices=("outbox", "plain"), help=argparse.SUPPRESS)
    parser.add_argument("--events-file", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        drive(args.drive, args.events_file, args.run_id)
        return
    from autoops_cli.simulation.generator import generate_events, write_events

    rates: dict[str, list[float]] = {"plain": [], "outbox": []}
    complete: dict[str, bool] = {"plain": True, "outbox": True}
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_events(events, generate_events(args.events, seed=13))
        for round_number in range(args.rounds):
            for variant in ("plain", "outbox"):
                rate, whole = one_round(variant, events, round_number, Path(tmp))
                rates[variant].append(rate)
                complete[variant] &= whole
    plain, outbox = statistics.median(rates["plain"]), statistics.median(rates["outbox"])
    print(
        f"replay of {args.events} events into autoops serve, median events/s of {args.rounds} rounds"
    )
    print(f"  plain exporter (no outbox)  {plain:8.1f}   all delivered: {complete['plain']}")
    print(f"  outbox                      {outbox:8.1f}   all delivered: {complete['outbox']}")
    print(f"  outbox / plain = {outbox / plain:.3f} (target >= 0.90)")


if __name__ == "__main__":
    main()
