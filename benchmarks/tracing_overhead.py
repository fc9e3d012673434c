"""Cost of tracing one observation: the core against the Langfuse SDK and raw OpenTelemetry.

All variants record the same workload in one process, interleaved round by round (the
machine is shared and noisy, so medians over rounds and ratios are what count):

- ``otel_floor``: the raw OpenTelemetry SDK (TracerProvider + BatchSpanProcessor) setting
  the same attributes, spans encoded to OTLP protobuf and discarded: the floor.
- ``langfuse_sdk``: the Langfuse Python SDK 5 (``start_as_current_observation``,
  ``propagate_attributes``), its span exporter replaced by one that encodes the batch to OTLP
  protobuf and discards it (the SDK's own export path minus gzip and the network).
- ``core_otlp``: the core's tracer, batches encoded to the same OTLP protobuf and discarded
  (what langfuse mode does before the network).
- ``core_local_store``: the core's tracer writing to the local SQLite store (local mode).
- ``core_local_store_masked``: the same with data masking on (the default settings).

Then the replay itself: ``autoops replay`` throughput (events/s) with tracing off and with
tracing to the local store, on a generated file, in one run.

    python benchmarks/tracing_overhead.py [--traces 300] [--rounds 5] [--replay-events 2000]
"""

from __future__ import annotations

import argparse
import json
import os

# The SDK's and OTel's batch queues drop spans when full ("Queue full, dropping Span"); a
# benchmark that drops work would flatter them, so the queues are made large enough.
os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", "1000000")
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# The repository's root: the shared test exporter (tests/support) is imported from it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EVENT = {
    "event_id": "evt-000042",
    "timestamp": "2026-11-20T08:15:00Z",
    "event_type": "demand_spike",
    "trigger_source": "iot_sensor",
    "product_id": "PROD_123",
    "severity": "high",
    "data": {
        "current_stock": 50,
        "forecast_demand": 150,
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
}
DECISION = {"action": "increase", "current_price": 29.99, "new_price": 31.49, "change_pct": 5.0}
DETAILS = {"decision_type": "price_increase", "confidence": 0.82, "reasoning": "demand above stock"}
AGENTS = (
    ("inventory_agent", "assess_inventory", ("stock_lookup", "forecast_model")),
    ("pricing_agent", "optimize_price", ("competitor_feed", "elasticity_model")),
    ("promotion_agent", "plan_promotion", ("promotion_history", "elasticity_model")),
)
OBSERVATIONS_PER_TRACE = (
    1 + 3 * 4 + 1 + 4
)  # root, 3 x (agent, 2 tools, decision), collaboration, 4 events


class EncodeAndDiscard:
    """An OTel SpanExporter that encodes each batch to OTLP protobuf, then drops it."""

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
        from opentelemetry.sdk.trace.export import SpanExportResult

        encode_spans(spans).SerializeToString()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing to release."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Nothing buffered."""
        return True


# --- the workload, once per API -------------------------------------------------------


def run_core(traces: int, exporter: Any, masked: bool) -> int:
    from config.settings import DataMaskingConfig
    from config.tracing.attributes import to_json  # noqa: F401  (warm import)
    from config.tracing.masking import DataMasker
    from config.tracing.sampling import TraceSampler
    from config.tracing.tracer import Tracer

    masker = DataMasker(DataMaskingConfig()) if masked else None
    tracer = Tracer(exporter, sampler=TraceSampler(1.0), mask=masker.mask if masker else None)
    for i in range(traces):
        root = tracer.start_trace(
            "simulation.demand_spike",
            root_name="orchestrator.process_event",
            session_id="bench-run",
            tags=("demand_spike", "iot_sensor", "high"),
            metadata={"event_id": f"evt-{i}", "product_id": "PROD_123"},
            input=EVENT,
        )
        with tracer.use(root):
            _core_agent(tracer, *AGENTS[0])
            with tracer.observe(
                "collaboration.pricing_and_promotion", as_type="chain"
            ) as collaboration:
                collaboration.event(
                    "coordination.stock_status", input=DECISION, metadata={"from_agent": "a"}
                )
                _core_agent(tracer, *AGENTS[1])
                _core_agent(tracer, *AGENTS[2])
                collaboration.event(
                    "coordination.price_proposal", input=DECISION, metadata={"from_agent": "b"}
                )
                collaboration.event("conflict.price_vs_discount", input=DECISION, level="WARNING")
                collaboration.event("conflict_resolution.price_vs_discount", output=DECISION)
        root.end(output={"decisions": 3, "conflicts": 1})
    tracer.shutdown(30)
    return traces * OBSERVATIONS_PER_TRACE


def _core_agent(tracer: Any, agent_id: str, operation: str, tools: Sequence[str]) -> None:
    metadata = {"agent_id": agent_id, "operation": operation}
    with tracer.observe(
        f"{agent_id}.{operation}", as_type="agent", input=EVENT, metadata=metadata
    ) as agent:
        for tool in tools:
            with tracer.observe(tool, as_type="tool", input={"product_id": "PROD_123"}) as span:
                span.update(output={"value": 42})
        agent.update(metadata=DETAILS)
        agent.event(f"{agent_id}.decision", output=DECISION, metadata=DETAILS)
        agent.update(output=DECISION)


def run_sdk(traces: int) -> int:
    from langfuse import Langfuse, propagate_attributes

    client = Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        base_url="http://127.0.0.1:9",
        span_exporter=EncodeAndDiscard(),  # type: ignore[arg-type]
        flush_at=512,
    )
    for i in range(traces):
        with client.start_as_current_observation(
            name="orchestrator.process_event", as_type="chain", input=EVENT
        ) as root:
            with propagate_attributes(
                session_id="bench-run",
                tags=["demand_spike", "iot_sensor", "high"],
                trace_name="simulation.demand_spike",
                metadata={"event_id": f"evt-{i}", "product_id": "PROD_123"},
            ):
                _sdk_agent(client, *AGENTS[0])
                with client.start_as_current_observation(
                    name="collaboration.pricing_and_promotion", as_type="chain"
                ):
                    _sdk_event(
                        client,
                        "coordination.stock_status",
                        input=DECISION,
                        metadata={"from_agent": "a"},
                    )
                    _sdk_agent(client, *AGENTS[1])
                    _sdk_agent(client, *AGENTS[2])
                    _sdk_event(
                        client,
                        "coordination.price_proposal",
                        input=DECISION,
                        metadata={"from_agent": "b"},
                    )
                    _sdk_event(
                        client, "conflict.price_vs_discount", input=DECISION, level="WARNING"
                    )
                    _sdk_event(client, "conflict_resolution.price_vs_discount", output=DECISION)
            root.update(output={"decisions": 3, "conflicts": 1})
    client.flush()
    client.shutdown()
    return traces * OBSERVATIONS_PER_TRACE


def _sdk_event(client: Any, name: str, **kwargs: Any) -> None:
    client.start_observation(name=name, as_type="event", **kwargs).end()


def _sdk_agent(client: Any, agent_id: str, operation: str, tools: Sequence[str]) -> None:
    metadata = {"agent_id": agent_id, "operation": operation}
    with client.start_as_current_observation(
        name=f"{agent_id}.{operation}", as_type="agent", input=EVENT, metadata=metadata
    ) as agent:
        for tool in tools:
            with client.start_as_current_observation(
                name=tool, as_type="tool", input={"product_id": "PROD_123"}
            ) as span:
                span.update(output={"value": 42})
        agent.update(metadata=DETAILS)
        _sdk_event(client, f"{agent_id}.decision", output=DECISION, metadata=DETAILS)
        agent.update(output=DECISION)


def run_otel_floor(traces: int) -> int:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(EncodeAndDiscard(), max_export_batch_size=512))  # type: ignore[arg-type]
    tracer = provider.get_tracer("bench")
    encoded_event = json.dumps(EVENT)
    encoded_decision = json.dumps(DECISION)
    for _ in range(traces):
        with tracer.start_as_current_span("orchestrator.process_event") as root:
            root.set_attribute("input", encoded_event)
            for _agent in range(3):
                with tracer.start_as_current_span("agent") as agent:
                    agent.set_attribute("input", encoded_event)
                    for _tool in range(2):
                        with tracer.start_as_current_span("tool") as tool:
                            tool.set_attribute("output", '{"value":42}')
                    with tracer.start_as_current_span("decision") as decision:
                        decision.set_attribute("output", encoded_decision)
            with tracer.start_as_current_span("collaboration"):
                for _event in range(4):
                    with tracer.start_as_current_span("event") as event:
                        event.set_attribute("output", encoded_decision)
    provider.force_flush()
    provider.shutdown()
    return traces * OBSERVATIONS_PER_TRACE


def core_otlp_exporter() -> Any:
    from config.delivery.otlp import encode_spans

    class Exporter:
        stats = None

        def export(self, spans: list[Any], scores: list[Any]) -> None:
            encode_spans(spans, resource={"service.name": "bench"}, scope_version="5").__len__()

        def flush(self, timeout: float) -> bool:
            return True

        def shutdown(self, timeout: float) -> None:
            pass

    return Exporter()


def store_write_rates(traces: int, rounds: int, directory: Path) -> list[float]:
    """Observations per second ``LocalStore.write`` takes, batches recorded beforehand."""
    from config.store.local_store import LocalStore
    from tests.support.exporters import KeptBatches

    capture = KeptBatches()
    run_core(traces, capture, masked=True)
    count = sum(len(spans) for spans, _ in capture.batches)
    rates = []
    for round_number in range(rounds):
        store = LocalStore(directory / f"rate-{round_number}.db")
        started = time.perf_counter()
        for spans, scores in capture.batches:
            store.write(spans, scores)
        rates.append(count / (time.perf_counter() - started))
        store.close()
    return rates


def core_store_exporter(path: Path) -> Any:
    from config.delivery.exporters import LocalStoreExporter
    from config.store.local_store import LocalStore

    return LocalStoreExporter(LocalStore(path))


# --- measurement ------------------------------------------------------------------------


def measure(variants: dict[str, Callable[[], int]], rounds: int) -> dict[str, list[float]]:
    """Microseconds per observation of each variant, per round (variants interleaved)."""
    results: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up: imports, caches
        run()
    for _ in range(rounds):
        for name, run in variants.items():
            started = time.perf_counter()
            observations = run()
            results[name].append((time.perf_counter() - started) / observations * 1e6)
    return results


def replay_throughput(events: int, rounds: int) -> dict[str, list[float]]:
    """``autoops replay`` events/s with tracing off and to the local store (subprocesses)."""
    results: dict[str, list[float]] = {"replay_tracing_off": [], "replay_local_store": []}
    with tempfile.TemporaryDirectory() as tmp:
        events_file = Path(tmp) / "events.jsonl"
        autoops = [sys.executable, "-m", "autoops_cli"]
        subprocess.run(
            [
                *autoops,
                "events",
                "generate",
                "--count",
                str(events),
                "--seed",
                "7",
                "--output",
                str(events_file),
            ],
            check=True,
            capture_output=True,
        )
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))
        }
        for round_number in range(rounds):
            for name, extra in (
                ("replay_tracing_off", {"LANGFUSE_TRACING_ENABLED": "false"}),
                ("replay_local_store", {}),
            ):
                env = {
                    **base_env,
                    **extra,
                    "AUTOOPS_HOME": str(Path(tmp) / f"home-{name}-{round_number}"),
                }
                done = subprocess.run(
                    [*autoops, "--json", "-q", "replay", str(events_file)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                )
                results[name].append(json.loads(done.stdout)["events_per_s"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=300, help="traces per round and variant")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--replay-events", type=int, default=2000, help="0 skips the replay comparison"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(1_000_000))

        def store_path() -> Path:
            return Path(tmp) / f"bench-{next(counter)}.db"

        variants: dict[str, Callable[[], int]] = {
            "otel_floor": lambda: run_otel_floor(args.traces),
            "langfuse_sdk": lambda: run_sdk(args.traces),
            "core_otlp": lambda: run_core(args.traces, core_otlp_exporter(), masked=False),
            "core_local_store": lambda: run_core(
                args.traces, core_store_exporter(store_path()), masked=False
            ),
            "core_local_store_masked": lambda: run_core(
                args.traces, core_store_exporter(store_path()), masked=True
            ),
        }
        per_observation = measure(variants, args.rounds)
        store_rates = store_write_rates(args.traces * 2, args.rounds, Path(tmp))

    medians = {name: statistics.median(values) for name, values in per_observation.items()}
    sdk = medians["langfuse_sdk"]
    print(
        f"cost per observation, median of {args.rounds} rounds x {args.traces * OBSERVATIONS_PER_TRACE} observations"
    )
    for name, value in medians.items():
        print(f"  {name:26s} {value:8.1f} us   ({value / sdk:.2f} x Langfuse SDK)")
    store = medians["core_local_store"]
    print(
        f"  target: core <= 0.5 x SDK -> core_otlp {medians['core_otlp'] / sdk:.2f}, "
        f"core_local_store {store / sdk:.2f}"
    )
    print(
        f"local store writes (LocalStore.write of recorded batches): median "
        f"{statistics.median(store_rates):,.0f} observations/s over {args.rounds} rounds "
        f"(min {min(store_rates):,.0f}; target >= 20,000)"
    )
    if args.replay_events:
        throughput = replay_throughput(args.replay_events, max(1, args.rounds // 2))
        off = statistics.median(throughput["replay_tracing_off"])
        on = statistics.median(throughput["replay_local_store"])
        print(f"replay of {args.replay_events} events, median events/s")
        print(f"  tracing off          {off:10.1f}")
        print(f"  tracing, local store {on:10.1f}   ({on / off:.2f} x tracing off)")


if __name__ == "__main__":
    main()
