"""Delivery to Langfuse with nothing lost, against a loopback peer that injects faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from autoops_cli.simulation.generator import generate_events, write_events
from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli, Figures
from tests.support.fake_langfuse import FakeLangfuse, Faults, Received
from tests.support.serve_process import autoops_executable


def keys_for(url: str, secret: str = KNOWN_SECRET) -> dict[str, str]:
    return {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": secret,
        "LANGFUSE_HOST": url,
    }


def span_ids(received: Received) -> set[str]:
    return {span.span_id for span in received.spans}


def buffer_status(env: dict[str, str]) -> dict:
    """``autoops buffer status --json`` as a real process (another process's view)."""
    done = subprocess.run(
        [autoops_executable(), "--json", "buffer", "status"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return dict(json.loads(done.stdout))


def flush_with_server_back(port: int, received: Received, env: dict[str, str]) -> None:
    """Start the peer again on its old port and run ``autoops buffer flush`` as a real process."""
    server = FakeLangfuse(port=port, received=received)
    try:
        flush = subprocess.run(
            [autoops_executable(), "buffer", "flush", "--timeout", "120"],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        assert flush.returncode == 0, flush.stderr
    finally:
        server.close()


def outbox(cli: Cli) -> dict:
    return json.loads(cli("buffer", "status", "--json").stdout)


def test_rejected_keys_keep_the_data_for_after_the_fix(
    cli: Cli, fake_langfuse: FakeLangfuse, reliability: Figures
) -> None:
    wrong = keys_for(fake_langfuse.url, "sk-lf-wrong-secret-000000")
    result = cli("replay", str(EXAMPLE), "--limit", "5", "--json", env=wrong)
    assert result.exit_code == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "rejected the keys" in errors[0]
    assert "sk-lf-wrong-secret-000000" not in result.stdout + result.stderr
    assert fake_langfuse.received.spans == []
    recorded = json.loads(result.stdout)["observations_recorded"]
    assert outbox(cli)["pending_spans"] == recorded
    flushed = cli("buffer", "flush", "--json", env=keys_for(fake_langfuse.url))
    assert flushed.exit_code == 0, flushed.stderr
    assert len(span_ids(fake_langfuse.received)) == recorded
    assert outbox(cli)["pending_batches"] == 0
    reliability.tried(5)
    reliability.exited(result.exit_code)
    reliability.missing(recorded - len(span_ids(fake_langfuse.received)))


def test_429_retry_after_is_honoured_and_nothing_is_lost(
    cli: Cli, fake_langfuse: FakeLangfuse, reliability: Figures
) -> None:
    fake_langfuse.faults.statuses = [429]
    fake_langfuse.faults.retry_after = "2"
    result = cli(
        "replay",
        str(EXAMPLE),
        "--limit",
        "20",
        "--json",
        env={**keys_for(fake_langfuse.url), "AUTOOPS_FLUSH_DEADLINE": "10"},
    )
    assert result.exit_code == 0, result.stderr
    times = fake_langfuse.received.otlp_times
    assert len(times) >= 2
    assert times[1] - times[0] >= 2.0
    recorded = json.loads(result.stdout)["observations_recorded"]
    assert len(span_ids(fake_langfuse.received)) == recorded
    reliability.tried()
    reliability.answered(429)
    reliability.exited(result.exit_code)
    reliability.missing(recorded - len(span_ids(fake_langfuse.received)))


def test_unavailable_server_bounded_exit_then_flush(
    cli: Cli, fake_langfuse: FakeLangfuse, reliability: Figures
) -> None:
    fake_langfuse.faults.always_status = 503
    started = time.monotonic()
    result = cli("replay", str(EXAMPLE), "--json", env=keys_for(fake_langfuse.url))
    elapsed = time.monotonic() - started
    summary = json.loads(result.stdout)
    assert result.exit_code == 4
    assert "kept in the outbox" in result.stderr
    # The run itself plus at most the 2 s exit deadline (and some slack for a slow machine).
    assert elapsed <= summary["duration_s"] + 4.0
    assert outbox(cli)["pending_spans"] == summary["observations_recorded"]
    # The count the replay printed is what `buffer status` shows right after.
    waiting = summary["delivery"]["batches_waiting"]
    assert f"{waiting} batch(es) not delivered" in result.stderr
    assert outbox(cli)["pending_batches"] == waiting
    fake_langfuse.faults.always_status = None
    assert cli("buffer", "flush", env=keys_for(fake_langfuse.url)).exit_code == 0
    assert len(span_ids(fake_langfuse.received)) == summary["observations_recorded"]
    reliability.tried()
    reliability.answered(503)
    reliability.exited(result.exit_code)
    reliability.missing(summary["observations_recorded"] - len(span_ids(fake_langfuse.received)))


def test_outage_in_the_middle_loses_nothing(cli: Cli, workdir: Path, reliability: Figures) -> None:
    events_file = workdir / "events.jsonl"
    write_events(events_file, generate_events(2000, seed=8))
    # What a run without outage records, in local mode, with the same run id.
    local = json.loads(cli("replay", str(events_file), "--run-id", "outage", "--json").stdout)
    import sqlite3

    with sqlite3.connect(Path(os.environ["AUTOOPS_HOME"]) / "traces.db") as db:
        expected = {row[0] for row in db.execute("SELECT id FROM observations")}
    assert len(expected) == local["observations_recorded"]

    received = Received()
    server = FakeLangfuse(received=received)
    port = server.port
    env = {**os.environ, **keys_for(server.url), "AUTOOPS_HOME": str(workdir / "remote-home")}
    replay = subprocess.Popen(
        [autoops_executable(), "-q", "--json", "replay", str(events_file), "--run-id", "outage"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while (
        len(received.spans) < 0.3 * len(expected)
        and time.monotonic() < deadline
        and replay.poll() is None
    ):
        time.sleep(0.05)
    server.close()  # the outage: connections refused from here on
    stdout, stderr = replay.communicate(timeout=300)
    assert replay.returncode == 4, stderr
    assert "kept in the outbox" in stderr
    flush_with_server_back(port, received, env)
    reliability.tried(2000)
    reliability.exited(replay.returncode)
    reliability.missing(len(expected - span_ids(received)))
    assert span_ids(received) == expected
    assert json.loads(stdout)["observations_recorded"] == len(expected)


def test_killed_replay_is_delivered_by_the_next_flush(
    cli: Cli, workdir: Path, reliability: Figures
) -> None:
    events_file = workdir / "events.jsonl"
    write_events(events_file, generate_events(3000, seed=9))
    received = Received()
    server = FakeLangfuse(received=received)
    port = server.port
    server.close()  # down from the start: everything waits in the outbox
    env = {
        **os.environ,
        **keys_for(f"http://127.0.0.1:{port}"),
        "AUTOOPS_HOME": str(workdir / "crash-home"),
    }
    replay = subprocess.Popen(
        [autoops_executable(), "-q", "replay", str(events_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and buffer_status(env)["pending_spans"] <= 500:
        time.sleep(0.5)
    replay.send_signal(signal.SIGKILL)
    replay.wait(timeout=30)
    before = buffer_status(env)
    assert before["pending_spans"] > 0
    flush_with_server_back(port, received, env)
    reliability.tried()
    reliability.exited(replay.returncode)  # -9: SIGKILL
    reliability.missing(before["pending_spans"] - len(span_ids(received)))
    assert len(span_ids(received)) == before["pending_spans"]


def test_a_failing_or_hanging_server_is_given_only_the_deadline(cli: Cli, workdir: Path) -> None:
    """503s, or a server that answers after 10 s: the run records everything, gives up
    delivering after AUTOOPS_FLUSH_DEADLINE without progress, and keeps it all in the outbox."""
    events_file = workdir / "events.jsonl"
    write_events(events_file, generate_events(300, seed=4))
    for name, faults in (
        ("unavailable", Faults(always_status=503)),
        ("hanging", Faults(delay_s=10.0)),
    ):
        server = FakeLangfuse(faults=faults)
        try:
            env = {**keys_for(server.url), "AUTOOPS_HOME": str(workdir / name)}
            result = cli("replay", str(events_file), "--json", env=env)
        finally:
            server.close()
        assert result.exit_code == 4, (name, result.stderr)
        summary = json.loads(result.stdout)
        assert summary["events_processed"] == 300
        # The deadline counts time without progress; slack for a loaded machine.
        assert summary["flush_s"] <= 2.0 + 2.5, (name, summary["flush_s"])
        pending = json.loads(cli("buffer", "status", "--json", env=env).stdout)
        assert pending["pending_spans"] == summary["observations_recorded"], name
        assert pending["pending_batches"] == summary["delivery"]["batches_waiting"], name


def test_a_refused_batch_becomes_a_dead_letter_and_can_be_resent(
    cli: Cli, fake_langfuse: FakeLangfuse, reliability: Figures
) -> None:
    fake_langfuse.faults.statuses = [400]
    keys = keys_for(fake_langfuse.url)
    result = cli("replay", str(EXAMPLE), "--limit", "10", "--json", env=keys)
    assert result.exit_code == 5
    assert "refused" in result.stderr
    status = outbox(cli)
    assert status["dead_letters"] == 1
    assert status["last_dead_letter_message"] == "injected fault"
    table = cli("buffer", "status").stdout
    assert "dead_letters" in table and "injected fault" in table
    recorded = json.loads(result.stdout)["observations_recorded"]
    assert len(span_ids(fake_langfuse.received)) < recorded
    resent = cli("buffer", "flush", "--dead-letters", "--json", env=keys)
    assert resent.exit_code == 0, resent.stderr
    assert json.loads(resent.stdout)["requeued_dead_letters"] == 1
    assert len(span_ids(fake_langfuse.received)) == recorded
    assert outbox(cli)["dead_letters"] == 0
    reliability.tried()
    reliability.answered(400)
    reliability.exited(result.exit_code)
    reliability.missing(recorded - len(span_ids(fake_langfuse.received)))


def test_shutdown_keeps_what_was_queued_behind_a_stuck_request(
    workdir: Path, reliability: Figures
) -> None:
    """A host that accepts and never answers: shutdown returns, and every batch is kept."""
    import socket

    from config.delivery.outbox import Outbox
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        config = LangfuseConfig(
            public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=url, timeout=5.0
        )
        store = workdir / "stuck" / "traces.db"
        service = LangfuseIntegrationService(
            config, DataMaskingConfig(), store_path=store, batch_size=1
        )
        trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e1"})
        for agent in ("inventory_agent", "pricing_agent", "promotion_agent"):
            service.end_agent_span(service.start_agent_span(agent, "work"))
            time.sleep(0.2)  # the first batch's request is stuck by now; the rest queue up
        service.finalize_trace(trace, {"ok": True})
        recorded = service.get_performance_metrics()["observations_recorded"]
        started = time.monotonic()
        service.shutdown(timeout=0.5)
        assert time.monotonic() - started < 2.0
        kept = Outbox(store).status()["pending_spans"]
        reliability.tried()
        reliability.missing(recorded - kept)
        assert kept == recorded == 4
    finally:
        silent.close()


def free_port() -> int:
    """A port nothing listens on (yet): connections to it are refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_flush_skips_the_fallback_cool_down(workdir: Path) -> None:
    """Unreachable beyond max_retries: fallback (30 s cool-down); the host is back and a flush
    delivers at once instead of waiting out the cool-down."""
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    port = free_port()
    config = LangfuseConfig(
        public_key=KNOWN_PUBLIC,
        secret_key=KNOWN_SECRET,
        host=f"http://127.0.0.1:{port}",
        max_retries=1,
    )
    service = LangfuseIntegrationService(
        config, DataMaskingConfig(), store_path=workdir / "cool" / "traces.db", batch_size=1
    )
    trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e1"})
    service.finalize_trace(trace, {"ok": True})
    deadline = time.monotonic() + 60
    while service.get_performance_metrics()["delivery_state"] != "fallback":
        assert time.monotonic() < deadline, service.get_performance_metrics()
        time.sleep(0.05)
    server = FakeLangfuse(port=port)
    try:
        # Well under the 30 s cool-down: only a flush that skips it can deliver in time.
        assert service.flush(timeout=15.0)
        assert len(span_ids(server.received)) == 1
        assert service.get_performance_metrics()["delivery_state"] == "ok"
    finally:
        service.shutdown(timeout=0)
        server.close()


LIBRARY_EXIT = """
import sys, time
from config.langfuse_integration import get_langfuse_integration
service = get_langfuse_integration()
trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e1"})
service.finalize_trace(trace, {"ok": True})
print("exiting", flush=True)
"""


def test_the_library_exit_waits_as_long_as_autoops_flush_deadline(workdir: Path) -> None:
    """The atexit hook gives a silent host AUTOOPS_FLUSH_DEADLINE seconds (not a fixed 2 s)."""
    import socket
    import sys

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections complete in the backlog; nothing ever answers
    try:
        env = {
            **os.environ,
            **keys_for(f"http://127.0.0.1:{silent.getsockname()[1]}"),
            "AUTOOPS_HOME": str(workdir / "library"),
            "LANGFUSE_TIMEOUT": "30",
            "AUTOOPS_FLUSH_DEADLINE": "4",
        }
        child = subprocess.Popen(
            [sys.executable, "-c", LIBRARY_EXIT],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "exiting"
        announced = time.monotonic()
        child.wait(timeout=60)
        waited = time.monotonic() - announced
    finally:
        silent.close()
    assert child.returncode == 0
    assert waited >= 3.5  # the deadline (4 s) without progress, not the old fixed 2 s
    from config.delivery.outbox import Outbox

    kept = Outbox(workdir / "library" / "traces.db").status()
    assert kept["pending_spans"] == 1  # the trace's one observation, kept for later
