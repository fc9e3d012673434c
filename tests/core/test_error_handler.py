"""LangfuseErrorHandler through its public methods: connection, trace and performance errors."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from config.delivery.outbox import Outbox
from config.langfuse_integration import LangfuseIntegrationService
from config.settings import DataMaskingConfig, LangfuseConfig
from config.tracing.adaptive_sampling import WINDOW_TRACES
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET
from tests.core.test_delivery import free_port
from tests.support.fake_langfuse import FakeLangfuse
from tests.support.replay_runs import clean_env

EVENT = {"event_type": "demand_spike", "product_id": "P1", "severity": "high"}


def langfuse_service(port: int, store: Path, **config: object) -> LangfuseIntegrationService:
    settings = LangfuseConfig(
        public_key=KNOWN_PUBLIC,
        secret_key=KNOWN_SECRET,
        host=f"http://127.0.0.1:{port}",
        **config,  # type: ignore[arg-type]
    )
    return LangfuseIntegrationService(settings, DataMaskingConfig(), store_path=store, batch_size=1)


def local_service(store: Path, **config: object) -> LangfuseIntegrationService:
    return LangfuseIntegrationService(
        LangfuseConfig(**config),  # type: ignore[arg-type]
        DataMaskingConfig(),
        store_path=store,
        batch_size=1,
    )


def one_trace(service: LangfuseIntegrationService, event_id: str) -> str:
    trace_id = service.create_simulation_trace({**EVENT, "event_id": event_id}, session_id="s")
    span_id = service.start_agent_span("pricing_agent", "optimize_price", {"price": 10})
    service.log_agent_decision(span_id, {"decision_type": "hold"}, confidence=0.7)
    service.end_agent_span(span_id, {"price": 10})
    service.finalize_trace(trace_id, {"ok": True})
    return trace_id


def observations(store: Path, trace_id: str) -> dict[str, tuple[str | None, str | None, str]]:
    """name -> (level, status message, parent id) of a trace's observations in the store."""
    with sqlite3.connect(store) as db:
        rows = db.execute(
            "SELECT name, level, status_message, COALESCE(parent_observation_id, '') "
            "FROM observations WHERE trace_id = ?",
            (trace_id,),
        ).fetchall()
    return {name: (level, message, parent) for name, level, message, parent in rows}


# --- handle_connection_error ---------------------------------------------------------------


def test_a_refused_connection_means_fallback_mode_and_nothing_lost(workdir: Path) -> None:
    port = free_port()
    service = langfuse_service(port, workdir / "down" / "traces.db")
    try:
        check = service.client.check_connection(timeout=2.0)
        assert not check.available
        assert "ConnectError" in check.detail
        assert service.error_handler.fallback_activations == 1
        assert service.health_check()["delivery_state"] == "fallback"
        trace_ids = [one_trace(service, f"e{n}") for n in range(3)]  # the service keeps running
        metrics = service.get_performance_metrics()
        assert metrics["tracing_errors"] == 0  # nothing failed on the traced code's path
        assert metrics["traces_finalized"] == 3
        # Sending waits out the cool-down: everything recorded waits in the outbox.
        assert service.client.wait_committed(service.tracer.commit(), 30.0)
        pending = Outbox(workdir / "down" / "traces.db").status()
        assert pending["pending_spans"] == metrics["observations_recorded"]
        server = FakeLangfuse(port=port)
        try:
            assert service.flush(timeout=30.0)
            received = {span.trace_id for span in server.received.spans}
            assert received == set(trace_ids)
            assert len(server.received.spans) == metrics["observations_recorded"]
            assert service.get_performance_metrics()["delivery_state"] == "ok"
        finally:
            server.close()
    finally:
        service.shutdown(timeout=0)


def test_keys_the_probe_finds_rejected_make_the_health_degraded(workdir: Path) -> None:
    """health_check() said "healthy" with its own detail saying the keys were rejected:
    only a batch refused for them counted, and the probe runs before any batch."""
    server = FakeLangfuse()
    try:
        settings = LangfuseConfig(
            public_key=KNOWN_PUBLIC,
            secret_key="sk-lf-wrong-0000000000000000",
            host=server.url,
        )
        service = LangfuseIntegrationService(
            settings, DataMaskingConfig(), store_path=workdir / "traces.db", batch_size=1
        )
        try:
            for _ in range(2):  # the second call, in fallback mode, the same
                health = service.health_check()
                assert health["available"] is False
                assert "rejected the keys (401" in health["detail"]
                assert health["status"] == "degraded"
        finally:
            service.shutdown(timeout=0)
    finally:
        server.close()


def test_unreachable_after_max_retries_is_reported_through_the_handler(
    workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    service = langfuse_service(port, workdir / "down" / "traces.db", max_retries=1)
    try:
        with caplog.at_level(logging.WARNING, logger="autoops"):
            one_trace(service, "e1")
            deadline = time.monotonic() + 60
            while service.get_performance_metrics()["delivery_state"] != "fallback":
                assert time.monotonic() < deadline, service.get_performance_metrics()
                time.sleep(0.05)
        assert service.error_handler.fallback_activations == 1
        reported = [r.getMessage() for r in caplog.records if r.name == "autoops.tracing"]
        assert any(
            f"connection to http://127.0.0.1:{port} failed, continuing in fallback mode: "
            "NetworkError: Langfuse unreachable after 2 attempts" in message
            for message in reported
        ), reported
        assert service.get_performance_metrics()["batches_pending"] > 0
    finally:
        service.shutdown(timeout=0)


def test_a_store_that_fails_a_write_costs_that_batch_only(workdir: Path) -> None:
    """Local mode: the store's connection breaks mid-run; the agent never notices."""
    store = workdir / "gone" / "traces.db"
    service = local_service(store)
    first = one_trace(service, "e1")
    service.client.exporter.store.close()  # type: ignore[attr-defined]
    second = one_trace(service, "e2")  # every write of this trace fails
    metrics = service.get_performance_metrics()
    assert metrics["traces_finalized"] == 2
    assert metrics["tracing_errors"] > 0
    assert service.health_check()["status"] == "degraded"
    assert set(observations(store, first)) == {
        "orchestrator.process_event",
        "pricing_agent.optimize_price",
        "pricing_agent.decision",
    }
    assert observations(store, second) == {}


# --- handle_trace_error --------------------------------------------------------------------


def test_a_trace_error_cleans_up_that_trace_and_later_traces_are_unaffected(
    workdir: Path,
) -> None:
    store = workdir / "store" / "traces.db"
    service = local_service(store)
    broken = service.create_simulation_trace({**EVENT, "event_id": "broken"}, session_id="s")
    service.start_agent_span("inventory_agent", "forecast", {"days": 7})  # never ended

    class BrokenOutcome(dict[str, object]):
        def get(self, *args: object) -> object:
            raise AttributeError("a broken outcome")

    # An outcome that fails as it is read: finalizing the trace fails half way.
    service.finalize_trace(broken, BrokenOutcome())
    assert service.trace_manager.open_observations(broken) == []
    assert service.trace_manager.current_trace_id() is None
    assert service.get_performance_metrics()["tracing_errors"] == 1
    assert service.get_performance_metrics()["success_rate"] == 0.0
    later = one_trace(service, "later")
    service.flush()
    failed = observations(store, broken)
    assert {name: level for name, (level, _, _) in failed.items()} == {
        "orchestrator.process_event": "ERROR",
        "inventory_agent.forecast": "ERROR",
    }
    assert failed["inventory_agent.forecast"][1].startswith("tracing failed: AttributeError")
    fine = observations(store, later)
    root_id = next(
        parent for name, (_, _, parent) in fine.items() if name == "orchestrator.process_event"
    )
    assert root_id == ""  # the later trace is not nested under the failed one
    assert {level for level, _, _ in fine.values()} == {"DEFAULT"}
    assert service.get_performance_metrics()["traces_finalized"] == 2


def test_a_failed_trace_whose_description_fails_too_still_ends_its_root(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cleaning up a failed trace (or one open at shutdown) described it before ending its
    root, under the same guard: when describing failed too (the tracing's own failure), the
    root was never ended, nor recorded, though counted as a failed trace."""
    from config.tracing.tracer import Observation

    store = workdir / "store" / "traces.db"
    service = local_service(store)
    broken = service.create_simulation_trace({**EVENT, "event_id": "broken"}, session_id="s")
    service.end_agent_span(service.start_agent_span("inventory_agent", "forecast", {"days": 7}))

    def fails(*args: object, **kwargs: object) -> None:
        raise RuntimeError("tracing broke")

    monkeypatch.setattr(Observation, "update_trace_metadata", fails)
    service.finalize_trace(broken, {"ok": True})  # fails describing: cleaned up
    service.flush()
    levels = {name: level for name, (level, _, _) in observations(store, broken).items()}
    assert levels["orchestrator.process_event"] == "ERROR"


def test_a_trace_the_application_abandons_is_ended_at_error(workdir: Path) -> None:
    store = workdir / "store" / "traces.db"
    service = local_service(store)
    trace_id = service.create_simulation_trace({**EVENT, "event_id": "e1"}, session_id="s")
    service.start_agent_span("pricing_agent", "optimize_price")
    service.start_agent_span("pricing_agent", "competitor_feed")
    service.error_handler.handle_trace_error(trace_id, TimeoutError("workflow gave up"))
    assert service.trace_manager.open_observations(trace_id) == []
    assert service.trace_manager.agent_operation(trace_id, "pricing_agent") is None
    service.finalize_trace(trace_id, {"ok": True})  # nothing left to finalize: a no-op
    service.flush()
    levels = {
        name: (level, message)
        for name, (level, message, _) in observations(store, trace_id).items()
    }
    assert levels == {
        "orchestrator.process_event": ("ERROR", "tracing failed: TimeoutError: workflow gave up"),
        "pricing_agent.optimize_price": ("ERROR", "tracing failed: TimeoutError: workflow gave up"),
        "pricing_agent.competitor_feed": (
            "ERROR",
            "tracing failed: TimeoutError: workflow gave up",
        ),
    }
    assert service.get_performance_metrics()["traces_finalized"] == 1


# --- handle_performance_degradation --------------------------------------------------------


def test_degradation_over_the_budget_lowers_the_effective_sample_rate(workdir: Path) -> None:
    service = local_service(workdir / "store" / "traces.db", max_latency_ms=50.0)
    service.error_handler.handle_performance_degradation(20.0)  # within the budget
    assert service.get_performance_metrics()["effective_sample_rate"] == 1.0
    service.error_handler.handle_performance_degradation(80.0)
    metrics = service.get_performance_metrics()
    assert metrics["effective_sample_rate"] == 0.5
    (change,) = metrics["sampling_changes"]
    assert change["from"] == 1.0 and change["to"] == 0.5
    assert "tracing adds 80.000 ms per agent operation (budget 50 ms)" in change["reason"]


def test_adaptive_sampling_goes_through_the_handlers_budget(workdir: Path) -> None:
    """A window of traces over LANGFUSE_MAX_LATENCY_MS: the handler decides, and lowers."""
    service = local_service(workdir / "store" / "traces.db", max_latency_ms=1e-9)
    for n in range(WINDOW_TRACES):
        one_trace(service, f"e{n}")
    assert service.get_performance_metrics()["effective_sample_rate"] == 0.5
    relaxed = local_service(workdir / "other" / "traces.db", max_latency_ms=1e-9)
    relaxed.error_handler.max_acceptable_latency = 1e9  # the handler's budget is the one applied
    for n in range(WINDOW_TRACES):
        one_trace(relaxed, f"e{n}")
    assert relaxed.get_performance_metrics()["sampling_changes"] == []


def test_sampling_switched_off_is_never_lowered(workdir: Path) -> None:
    service = local_service(workdir / "store" / "traces.db", enable_sampling=False)
    assert service.error_handler.reduce_sampling_rate() == 1.0
    assert service.get_performance_metrics()["sampling_changes"] == []


def test_the_cores_log_lines_carry_no_secret_with_no_logging_configured(tmp_path: Path) -> None:
    """An application that configures no logging: Python's last-resort handler prints the
    core's warnings to stderr, and a key quoted by the application's own exception, or
    given in a trace id, was printed with them."""
    script = textwrap.dedent(
        f"""
        from config.langfuse_integration import agent_operation, get_langfuse_integration

        class Settings:
            def as_dict(self):
                raise RuntimeError("cannot serialise {{'secret': '{KNOWN_SECRET}'}}")

        class PricingAgent:
            agent_id = "pricing_agent"

            @agent_operation("optimize_price")
            def optimize(self, settings):
                return {{"price": 9.99}}

        service = get_langfuse_integration()
        trace_id = service.create_simulation_trace(
            {{"event_type": "demand_spike", "product_id": "P1"}}, trace_id="run-{KNOWN_SECRET}"
        )
        PricingAgent().optimize(Settings())
        service.finalize_trace(trace_id, {{}})
        service.shutdown()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=clean_env(AUTOOPS_HOME=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "cannot serialise" in done.stderr  # the warnings were printed ...
    assert "is not 32 hex characters" in done.stderr
    assert KNOWN_SECRET not in done.stderr  # ... without the key
