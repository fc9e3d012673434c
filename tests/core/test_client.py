"""LangfuseClient through its public methods: the destination by mode, the probe, errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from config.client import LangfuseClient
from config.delivery.exporters import LocalStoreExporter, NullExporter
from config.delivery.sender import OutboxExporter
from config.error_handler import LangfuseErrorHandler
from config.langfuse_integration import get_langfuse_integration
from config.settings import LangfuseConfig
from config.tracing.span_records import ScoreRecord, SpanRecord
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET
from tests.core.test_delivery import free_port
from tests.support.fake_langfuse import FakeLangfuse, Faults


def client_for(
    mode: str, store: Path | None, host: str = "https://cloud.langfuse.com"
) -> LangfuseClient:
    keys = {"public_key": KNOWN_PUBLIC, "secret_key": KNOWN_SECRET} if mode == "langfuse" else {}
    config = LangfuseConfig(host=host, **keys)  # type: ignore[arg-type]
    handler = LangfuseErrorHandler(max_acceptable_latency=config.max_latency_ms)
    client = LangfuseClient(config, mode=mode, error_handler=handler, store_path=store)
    handler.attach(connection=client)
    return client


def test_the_mode_chooses_the_destination(workdir: Path) -> None:
    local = client_for("local", workdir / "local" / "traces.db")
    assert isinstance(local.exporter, LocalStoreExporter)
    assert local.destination == f"local store {workdir / 'local' / 'traces.db'}"
    assert local.pending() == 0
    assert not local.enable_fallback_mode()  # nothing is sent: nothing to pause
    local.shutdown(timeout=1.0)
    disabled = client_for("disabled", None)
    assert isinstance(disabled.exporter, NullExporter)
    assert disabled.destination == "none (tracing disabled)"
    assert disabled.store_path is None
    remote = client_for(
        "langfuse", workdir / "remote" / "traces.db", f"http://127.0.0.1:{free_port()}"
    )
    try:
        assert isinstance(remote.exporter, OutboxExporter)
        assert remote.destination.startswith("http://127.0.0.1:")
        assert remote.enable_fallback_mode()
        assert remote.stats.state == "fallback"
    finally:
        remote.shutdown(timeout=0)


def test_probe_of_a_healthy_langfuse(workdir: Path, fake_langfuse: FakeLangfuse) -> None:
    client = client_for("langfuse", workdir / "traces.db", fake_langfuse.url)
    try:
        check = client.check_connection(timeout=5.0)
        assert check.available, check
        assert check.destination == fake_langfuse.url
        assert "Langfuse 3.99.0" in check.detail
        assert check.round_trip_ms is not None
        assert client.stats.state == "ok"
        assert client.error_handler.fallback_activations == 0
    finally:
        client.shutdown(timeout=0)


def test_initialising_with_keys_langfuse_rejects_is_not_a_success(
    workdir: Path, fake_langfuse: FakeLangfuse
) -> None:
    """The guide's start-up check (``if not success: ... fallback mode``) passed with wrong
    keys: only the public health route was asked."""
    from config.langfuse_integration import initialize_langfuse_integration

    wrong = LangfuseConfig(
        public_key=KNOWN_PUBLIC, secret_key="sk-lf-wrong-0000", host=fake_langfuse.url
    )
    assert initialize_langfuse_integration(wrong) is False
    service = get_langfuse_integration()
    health = service.health_check()
    assert health["available"] is False and "rejected the keys" in health["detail"]
    right = LangfuseConfig(public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=fake_langfuse.url)
    assert initialize_langfuse_integration(right) is True
    assert get_langfuse_integration().health_check()["available"] is True
    get_langfuse_integration().shutdown(timeout=0)


def test_probe_of_an_unhealthy_langfuse_enters_fallback(workdir: Path) -> None:
    server = FakeLangfuse(faults=Faults(health_status=503))
    client = client_for("langfuse", workdir / "traces.db", server.url)
    try:
        check = client.check_connection(timeout=5.0)
        assert not check.available
        assert "answered 503" in check.detail and "Database not available" in check.detail
        assert client.stats.state == "fallback"
        assert client.error_handler.fallback_activations == 1
        assert client.error_handler.tracing_errors == 0  # a probe: nothing was lost
    finally:
        client.shutdown(timeout=0)
        server.close()


def test_probe_of_the_local_store(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = workdir / "store" / "traces.db"
    client = client_for("local", store)
    assert client.check_connection().available
    shutil.rmtree(store.parent)
    (workdir / "store").write_text("not a directory")  # the store can no longer be opened
    with caplog.at_level(logging.WARNING, logger="autoops"):
        check = client.check_connection()
    assert not check.available and "LocalFileError" in check.detail
    assert any(
        f"connection to local store {store} failed" in r.getMessage() for r in caplog.records
    )
    assert client_for("disabled", None).check_connection().available is False


class RefusingExporter:
    """A destination that refuses every batch (as a full disk would)."""

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        raise OSError("No space left on device")

    def flush(self, timeout: float) -> bool:
        raise OSError("No space left on device")

    def shutdown(self, timeout: float) -> None:
        raise OSError("No space left on device")


def test_destination_errors_go_to_the_handler_not_the_caller() -> None:
    config = LangfuseConfig()
    handler = LangfuseErrorHandler(max_acceptable_latency=config.max_latency_ms)
    client = LangfuseClient(
        config, mode="local", error_handler=handler, exporter=RefusingExporter()
    )
    handler.attach(connection=client)
    client.export([], [])
    assert client.flush(timeout=1.0) is False
    client.shutdown(timeout=1.0)
    assert handler.tracing_errors == 3
    check = client.check_connection()
    assert check.available and "not probed" in check.detail
