"""Failures and recovery: an agent that raises, tracing that fails, a Langfuse that is down.

Nothing is lost and nothing stops:

1. An agent raises. Its observation is marked ERROR with the exception as status message, the
   trace is finalized with the error, and the run goes on with the next event.
2. Tracing itself fails (here: a confidence that is not a number). The core counts it in
   ``tracing_errors`` and logs it on the ``autoops.tracing`` logger; the agent is unaffected.
3. Delivery. In local mode writes are synchronous: nothing waits. In langfuse mode every batch
   goes to an outbox on disk first and leaves it only when Langfuse accepted it. With the host
   down, ``flush()`` gives up at its deadline and the batches stay (``batches_pending``);
   the next run sends them first, or ``autoops buffer flush`` does.

    python examples/error_handling_integration.py
    LANGFUSE_HOST=http://127.0.0.1:9 LANGFUSE_PUBLIC_KEY=pk-lf-... LANGFUSE_SECRET_KEY=sk-lf-... \\
        python examples/error_handling_integration.py     # nothing listens on port 9
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from config.langfuse_integration import (
    LangfuseIntegrationService,
    agent_operation,
    get_langfuse_integration,
)
from config.models import AgentDecision


class PricingAgent:
    agent_id = "pricing_agent"

    @agent_operation("optimize_price")
    def optimize(self, event: dict[str, Any]) -> AgentDecision:
        """Take 5 % off; an event without a price is a bug upstream, and says so."""
        if "current_price" not in event["data"]:
            raise ValueError(f"event {event['event_id']} has no current_price")
        price = event["data"]["current_price"]
        return AgentDecision(
            self.agent_id, "price_decrease", {"new_price": round(price * 0.95, 2)}, 0.8, "slow"
        )


def event_with(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "event_type": "slow_moving_inventory",
        "product_id": "PROD_050",
        "data": data,
    }


def agent_failure(service: LangfuseIntegrationService, run_id: str) -> None:
    """Three events, the second one broken: two decisions, one ERROR trace, no crash."""
    agent = PricingAgent()
    events = [
        event_with({"current_price": 20.0}),
        event_with({}),
        event_with({"current_price": 8.0}),
    ]
    for event in events:
        trace_id = service.create_simulation_trace(event, session_id=run_id)
        try:
            decision = agent.optimize(event)
        except Exception as exc:
            # agent_operation has already ended the agent span at level ERROR with the status
            # message "ValueError: ..." and re-raised; record the failure on the trace too.
            service.finalize_trace(trace_id, {"event_id": event["event_id"]}, error=exc)
            failure = f"{type(exc).__name__}: {exc}"
            print(f"  {event['event_id']}: agent failed ({failure}); trace {trace_id} ERROR")
            continue
        service.finalize_trace(trace_id, {"decisions": {agent.agent_id: decision.outputs}})
        print(f"  {event['event_id']}: {decision.decision_type} -> {decision.outputs}")


def tracing_failure(service: LangfuseIntegrationService, run_id: str) -> None:
    """A tracing call that fails: counted and logged, never raised into the agent."""
    event = event_with({"current_price": 12.5})
    trace_id = service.create_simulation_trace(event, session_id=run_id)
    span = service.start_agent_span(
        agent_id="promotion_agent",
        operation="plan_promotion",
        parent_trace_id=trace_id,
        inputs=event["data"],
    )
    # A language model answered a word where the prompt asked for a number.
    answer = json.loads('{"decision_type": "no_promotion", "confidence": "high"}')
    before = service.get_performance_metrics()["tracing_errors"]
    service.log_agent_decision("promotion_agent", answer)  # no exception
    after = service.get_performance_metrics()["tracing_errors"]
    service.end_agent_span(span, answer)  # the operation itself is still recorded
    service.finalize_trace(trace_id, {"decisions": {"promotion_agent": answer}})
    print(f"  tracing_errors {before} -> {after}; the agent went on (its decision is not recorded)")


def main() -> int:
    # The core reports trouble through logging (autoops.tracing, autoops.delivery); an
    # application routes it wherever its logs go. Secrets never appear in these messages.
    logging.basicConfig(level=logging.WARNING, format="  log %(name)s: %(message)s")
    service = get_langfuse_integration()
    run_id = f"errors-{uuid.uuid4().hex[:8]}"
    print(f"mode {service.mode}: traces go to {service.destination}")

    print("1. an agent raises:")
    agent_failure(service, run_id)
    print("2. tracing fails:")
    tracing_failure(service, run_id)

    print("3. delivery:")
    delivered = service.flush(timeout=service.config.flush_deadline)
    metrics = service.get_performance_metrics()
    health = service.health_check()  # degraded: tracing errors were counted
    service.shutdown(timeout=0)  # flushed above; whatever is left stays in the outbox
    print(
        f"  {metrics['traces_finalized']} traces, {metrics['observations_recorded']} observations, "
        f"{metrics['scores_recorded']} scores; health_check(): {health['status']} "
        f"(tracing_errors {health['tracing_errors']})"
    )
    if service.mode != "langfuse":
        print(f"  written to the {service.destination} as they ended: nothing waits")
    elif delivered:
        print(f"  delivered to {service.destination}: outbox empty")
    else:
        print(
            f"  {service.destination} did not take them ({metrics['delivery_state']}): "
            f"{metrics['batches_pending']} batch(es) kept in the outbox in {service.store_path}"
        )
        print("  nothing is lost: the next run sends them first, or run `autoops buffer flush`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
