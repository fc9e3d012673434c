"""Metrics: the service's own tracing metrics, and per-agent metrics from the recorded traces.

Runs the first 40 events of examples/events.jsonl through the built-in simulated agents
(the orchestrator of ``autoops replay``), then shows

1. ``get_performance_metrics()``: what the tracing itself did in this process (counts,
   latency of the agent operations, overhead per tracing call, errors, outbox);
2. the seed's ``AgentPerformanceMetrics`` per agent and ``SystemWorkflowMetrics``, computed
   from the traces recorded in the last hour, exactly as ``autoops metrics`` computes them
   (docs/metrics.md defines every field).

    python examples/metrics_collection_demo.py
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from itertools import islice
from pathlib import Path
from typing import Any

from autoops_cli.simulation.events import SimulationEvent, read_events
from autoops_cli.simulation.orchestrator import RetailOrchestrator
from config.langfuse_integration import LangfuseIntegrationService, get_langfuse_integration
from config.models import AgentPerformanceMetrics, SystemWorkflowMetrics

EVENTS = Path(__file__).with_name("events.jsonl")


def traced_work(service: LangfuseIntegrationService, count: int) -> None:
    """Process ``count`` recorded events, one trace each (what the replay engine does)."""
    orchestrator = RetailOrchestrator()
    run_id = f"metrics-{uuid.uuid4().hex[:8]}"
    events = (item for item in read_events(EVENTS) if isinstance(item, SimulationEvent))
    for event in islice(events, count):
        trace_id = service.create_simulation_trace(
            event.as_dict(), session_id=run_id, agents=orchestrator.agents_for(event)
        )
        try:
            outcome = orchestrator.handle(event)
        except Exception as exc:
            service.finalize_trace(trace_id, {"event_id": event.event_id}, error=exc)
            continue
        service.finalize_trace(trace_id, outcome.as_dict())


def recorded_metrics() -> dict[str, Any]:
    """The ``autoops metrics --json`` document for the last hour.

    Why the command and not its functions (``autoops_cli.actions.metrics.queries`` and
    ``autoops_cli.actions.metrics.report``): the command works the same in both modes. Without keys it
    reads the local store; with keys it asks the Langfuse metrics API (three requests, v2 with
    a v1 fallback, cached). Its JSON document is documented and stable (docs/metrics.md),
    while those functions are the CLI's internals. ``--refresh`` skips the cache, so the
    traces just sent are counted (Langfuse itself may need a few seconds to ingest them).
    """
    done = subprocess.run(
        [sys.executable, "-m", "autoops_cli", "--json", "metrics", "--since", "1h", "--refresh"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"autoops metrics failed ({done.returncode}): {done.stderr.strip()}")
    return dict(json.loads(done.stdout))


def seed_fields(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """The fields of one of the seed's dataclasses, out of the richer JSON document."""
    return {f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values}


def main() -> int:
    service = get_langfuse_integration()
    print(f"mode {service.mode}: traces go to {service.destination}")
    traced_work(service, 40)
    service.flush(timeout=service.config.flush_deadline)

    # 1. This process's tracing: no network call, always available.
    m = service.get_performance_metrics()
    print(
        f"get_performance_metrics(): {m['traces_finalized']} traces, {m['operations']} agent "
        f"operations (avg {m['avg_latency_ms']:.2f} ms), {m['observations_recorded']} "
        f"observations, {m['scores_recorded']} scores, {m['tracing_overhead_ms']:.3f} ms per "
        f"tracing call, success rate {m['success_rate']:.0%}, tracing errors "
        f"{m['tracing_errors']}, batches pending {m['batches_pending']}"
    )
    service.shutdown(timeout=0)

    # 2. What the recorded traces say, per agent and for the system.
    report = recorded_metrics()
    agents = {
        agent_id: AgentPerformanceMetrics(**seed_fields(AgentPerformanceMetrics, values))
        for agent_id, values in report["agents"].items()
    }
    # Beside the seed's fields, the report has percentiles and the counts behind them.
    extra = report["agents"]
    system = SystemWorkflowMetrics(**seed_fields(SystemWorkflowMetrics, report["system"]))
    print(f"AgentPerformanceMetrics (last hour, {report['source']['api']} source):")
    print("  agent             ops  avg ms  p95 ms success confidence overturned  tools")
    for agent in agents.values():
        tools = " ".join(f"{tool}={n}" for tool, n in sorted(agent.tool_usage_stats.items()))
        print(
            f"  {agent.agent_id:<16} {agent.operation_count:>4} {agent.average_response_time:>7.2f} "
            f"{extra[agent.agent_id]['p95_response_time']:>7.2f} {agent.success_rate:>7.0%} "
            f"{agent.decision_accuracy:>10.2f} {extra[agent.agent_id]['decisions_overturned']:>10}"
            f"  {tools}"
        )
    print(
        f"SystemWorkflowMetrics: {system.total_events_processed} events, average workflow "
        f"{system.average_workflow_duration:.2f} ms, coordination efficiency "
        f"{system.agent_coordination_efficiency:.2f}, conflict resolution rate "
        f"{system.conflict_resolution_rate:.0%}, throughput {system.system_throughput:.4f} events/s"
    )
    for alert in report["alerts"]:
        print(f"alert: {alert['message']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
