"""The foundation: configuration, initialisation and the health check of the integration.

Shows what the core will do before any agent runs: which mode it is in (local store or
Langfuse), which host, where each value came from, what data masking applies; then
``initialize_langfuse_integration()`` and ``health_check()``, before and after a first trace.
The secret key is never printed, only its mask (``sk-lf-****<last 4>``).

    python examples/langfuse_foundation_demo.py

Exit 0 when healthy, 3 when the configuration is invalid (every problem is listed), as
``autoops config validate`` does.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from config.errors import ConfigurationError
from config.langfuse_integration import get_langfuse_integration, initialize_langfuse_integration
from config.redaction import mask_secret
from config.settings_sources import load_settings


def show_health(label: str, health: dict[str, Any]) -> None:
    """One line per health_check(): can traces reach their destination, and the local view."""
    print(
        f"health_check() {label}: available {health['available']}, {health['status']}, "
        f"mode {health['mode']}, "
        f"sample rate {health['sample_rate']:g}, tracing errors {health['tracing_errors']}, "
        f"batches pending {health['batches_pending']}"
    )


def main() -> int:
    # LangfuseConfig() and DataMaskingConfig() read the environment, .env, autoops.toml and
    # the user file (highest first). load_settings() reads the same sources and also says
    # where each value came from, and collects every problem instead of stopping at the first.
    loaded = load_settings()
    for warning in loaded.warnings:
        print(f"warning: {warning.line()}", file=sys.stderr)
    try:
        config, masking = loaded.require()  # LangfuseConfig, DataMaskingConfig
    except ConfigurationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)

    def origin(setting: str) -> str:
        return loaded.origin_of(setting).describe()

    print("configuration:")
    print(f"  mode         {config.mode}")
    print(f"  host         {config.host}  ({origin('langfuse.host')})")
    print(f"  public key   {config.public_key or '-'}")
    # SecretStr keeps the key out of repr() and logs; show a mask, never the value.
    secret = config.secret_key
    print(f"  secret key   {mask_secret(secret.get_secret_value()) if secret else '-'}")
    print(f"  sample rate  {config.effective_sample_rate:g}  ({origin('langfuse.sample_rate')})")
    print(f"  environment  {config.environment}")
    print(
        f"  masking      pii={masking.mask_pii} customer_data={masking.mask_customer_data} "
        f"financial_data={masking.mask_financial_data}, kept {masking.retention_days} days"
    )

    # (Re)create the process-wide service with these settings: what get_langfuse_integration()
    # and the decorators use from now on. False means it could not start as configured or
    # its destination does not answer; the application carries on either way.
    success = initialize_langfuse_integration(config, masking)
    service = get_langfuse_integration()
    state = "ready" if success else "not ready, continuing in fallback mode"
    print(f"initialize_langfuse_integration(): {state}; {service.mode} mode, {service.destination}")
    show_health("before", service.health_check())

    # A first trace. Its event carries an e-mail address and a customer id: masking replaces
    # them with [EMAIL] and [CUSTOMER] before anything is recorded or sent.
    event = {
        "event_id": f"evt-{uuid.uuid4().hex[:8]}",
        "timestamp": datetime.now(UTC).isoformat(),
        "event_type": "inventory_low",
        "trigger_source": "inventory_system",
        "product_id": "PROD_042",
        "severity": "medium",
        "data": {
            "current_stock": 8,
            "reorder_point": 25,
            "note": "reported by jane.doe@example.com",
            "customer_id": "CUST-8812",
        },
    }
    trace_id = service.create_simulation_trace(event, session_id="foundation-demo")
    span = service.start_agent_span(
        agent_id="inventory_agent",
        operation="assess_inventory",
        parent_trace_id=trace_id,
        inputs=event["data"],
    )
    service.log_agent_decision(
        "inventory_agent",
        {"decision_type": "restock", "outputs": {"reorder_quantity": 40}, "confidence": 0.9},
    )
    service.end_agent_span(span, {"reorder_quantity": 40})
    service.finalize_trace(trace_id, {"final_actions": {"reorder_quantity": 40}})
    delivered = service.flush(timeout=config.flush_deadline)
    print(f"first trace {trace_id}: {'recorded' if delivered else 'kept in the outbox'}")

    health = service.health_check()
    show_health("after", health)
    service.shutdown(timeout=0)
    return 0 if health["status"] == "healthy" and delivered else 1


if __name__ == "__main__":
    sys.exit(main())
