"""OTLP ingestion into ``autoops serve``: spans per second, batches made by the real SDK.

The batches are produced by the Langfuse Python SDK itself (its spans, encoded to OTLP
protobuf and gzipped exactly as its exporter does), before the clock starts; then several
client processes post them concurrently over keep-alive connections, so the client is not
the bottleneck. Each round starts a fresh server on a fresh store. Target: >= 10,000 spans/s.

    python benchmarks/serve_ingestion.py [--spans 60000] [--clients 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "1000000")

from tests.support.serve_process import start_serve, stop_serve


class CollectBatches:
    """An OTel SpanExporter that keeps each batch as the gzipped OTLP body the SDK would send."""

    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, int]] = []

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.bodies.append((gzip.compress(encode_spans(spans).SerializeToString()), len(spans)))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        return True


def sdk_batches(total_spans: int) -> list[tuple[bytes, int]]:
    """Gzipped OTLP bodies of about ``total_spans`` SDK spans (agent traces of 6 spans)."""
    from langfuse import Langfuse, propagate_attributes

    collector = CollectBatches()
    client = Langfuse(
        public_key="pk-lf-bench", secret_key="sk-lf-bench", base_url="http://127.0.0.1:9",
        span_exporter=collector, flush_at=500,  # type: ignore[arg-type]
    )  # fmt: skip
    for i in range(total_spans // 6):
        with (
            client.start_as_current_observation(
                name="orchestrator.process_event", as_type="chain", input={"i": i}
            ),
            propagate_attributes(
                session_id="bench", trace_name="simulation.demand_spike", tags=["bench"]
            ),
        ):
            for agent in ("inventory_agent", "pricing_agent"):
                with client.start_as_current_observation(
                    name=f"{agent}.run",
                    as_type="agent",
                    metadata={"agent_id": agent},
                    input={"stock": 5},
                ) as span:
                    with client.start_as_current_observation(name="tool", as_type="tool") as tool:
                        tool.update(output={"ok": True})
                    span.update(output={"decision": "hold"})
            client.start_observation(name="decision", as_type="event", output={"x": 1}).end()
    client.flush()
    client.shutdown()
    return collector.bodies


def post_all(url: str, auth: tuple[str, str], bodies: list[bytes]) -> None:
    import httpx

    headers = {
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "gzip",
        "x-langfuse-ingestion-version": "4",
    }
    with httpx.Client(base_url=url, auth=auth, timeout=60) as client:
        for body in bodies:
            response = client.post("/api/public/otel/v1/traces", content=body, headers=headers)
            response.raise_for_status()


def one_round(batches: list[tuple[bytes, int]], clients: int, directory: Path) -> float:
    """Spans per second for one fresh server receiving every batch."""
    handle = start_serve(directory / "traces.db")
    try:
        shares = [[body for body, _ in batches[i::clients]] for i in range(clients)]
        workers = [
            multiprocessing.Process(target=post_all, args=(handle.url, handle.auth, share))
            for share in shares
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - started
        if any(worker.exitcode for worker in workers):
            raise SystemExit("a client failed to post its batches")
    finally:
        stop_serve(handle)
    return sum(count for _, count in batches) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=60_000)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = sdk_batches(args.spans)
    spans = sum(count for _, count in batches)
    rates = []
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            rates.append(one_round(batches, args.clients, Path(tmp) / f"round-{round_number}"))
    print(
        f"OTLP ingestion into autoops serve: {spans} SDK spans in {len(batches)} batches, "
        f"{args.clients} client processes"
    )
    print(
        f"  median {statistics.median(rates):,.0f} spans/s over {args.rounds} rounds "
        f"(min {min(rates):,.0f}, max {max(rates):,.0f}; target >= 10,000)"
    )


if __name__ == "__main__":
    main()
