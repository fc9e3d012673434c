"""Delivery to Langfuse with nothing lost, against a loopback peer that injects faults."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autoops_cli.simulation.generator import generate_events, write_events
from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli, Figures
from tests.support.fake_langfuse import FakeLangfuse, Faults, Received
from tests.support.serve_process import autoops_executable

# A replay that waits on the network (no flush deadline, agents blocked on requests) runs
# for minutes or for ever against these servers; a working one ends in seconds. The ceiling
# is far from both, so a loaded machine cannot reach it and only a hang does.
HANG_CEILING_S = 60.0


def keys_for(url: str, secret: str = KNOWN_SECRET) -> dict[str, str]:
    return {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": secret,
        "LANGFUSE_HOST": url,
    }


def run_script(
    workdir: Path, code: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``code`` run as a script of its own (a process to fork from), this repository on its
    path; it must exit 0."""
    script = workdir / "script.py"
    script.write_text(code, encoding="utf-8")
    environ = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})}
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300,
        env=environ, cwd=workdir, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


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


def pending_spans(home: Path) -> int:
    """Spans waiting in the outbox under ``home``, read-only (0 before the replay made it)."""
    import sqlite3

    store = home / "traces.db"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT COALESCE(SUM(items), 0) FROM outbox WHERE kind = 'spans'")
            return int(row.fetchone()[0])
    except sqlite3.OperationalError:  # no file or no table yet
        return 0


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
    flushed = cli("buffer", "flush", "--json", "--wait", "60", env=keys_for(fake_langfuse.url))
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
        env={**keys_for(fake_langfuse.url), "AUTOOPS_FLUSH_DEADLINE": "30"},
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


def test_a_retry_after_past_all_reason_is_waited_only_so_long(
    cli: Cli, fake_langfuse: FakeLangfuse, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One 429 asking to wait 1e400 s (inf) stopped delivery for the rest of the process:
    the server, taking everything after it, got one request. The wait is capped (its cap
    made short here, the point being that sending starts again)."""
    from config.delivery import sender

    monkeypatch.setattr(sender, "MAX_RETRY_AFTER_S", 0.5)
    fake_langfuse.faults.statuses = [429]
    fake_langfuse.faults.retry_after = "1e400"
    result = cli(
        "replay", str(EXAMPLE), "--limit", "20", "--json",
        env={**keys_for(fake_langfuse.url), "AUTOOPS_FLUSH_DEADLINE": "30"},
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (
        len(span_ids(fake_langfuse.received)) == json.loads(result.stdout)["observations_recorded"]
    )


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
    assert summary["events_processed"] == 200
    # The exit is bounded: without the 2 s flush deadline the replay would retry the 503s
    # for ever. Only that hang comes near this ceiling (the time itself is not the point:
    # a busy machine stretches it; benchmarks/ measure it).
    assert elapsed < HANG_CEILING_S, elapsed
    assert outbox(cli)["pending_spans"] == summary["observations_recorded"]
    # The count the replay printed is what `buffer status` shows right after.
    waiting = summary["delivery"]["batches_waiting"]
    assert f"{waiting} batch(es) not delivered" in result.stderr
    assert outbox(cli)["pending_batches"] == waiting
    fake_langfuse.faults.always_status = None
    assert cli("buffer", "flush", "--wait", "60", env=keys_for(fake_langfuse.url)).exit_code == 0
    assert len(span_ids(fake_langfuse.received)) == summary["observations_recorded"]
    reliability.tried()
    reliability.answered(503)
    reliability.exited(result.exit_code)
    reliability.missing(summary["observations_recorded"] - len(span_ids(fake_langfuse.received)))


OUTAGE_EVENTS = 500


@pytest.mark.slow
def test_outage_in_the_middle_loses_nothing(cli: Cli, workdir: Path, reliability: Figures) -> None:
    events_file = workdir / "events.jsonl"
    write_events(events_file, generate_events(OUTAGE_EVENTS, seed=8))
    # What a run without outage records, in local mode, with the same run id.
    local = json.loads(cli("replay", str(events_file), "--run-id", "outage", "--json").stdout)
    import sqlite3

    with sqlite3.connect(Path(os.environ["AUTOOPS_HOME"]) / "traces.db") as db:
        expected = {row[0] for row in db.execute("SELECT id FROM observations")}
    assert len(expected) == local["observations_recorded"]

    received = Received()
    # The outage: once 30 % of the spans arrived the server goes away (connections refused),
    # decided by the server itself, so a fast or a slow replay meets it at the same point.
    server = FakeLangfuse(
        received=received, faults=Faults(refuse_after_spans=int(0.3 * len(expected)))
    )
    port = server.port
    env = {**os.environ, **keys_for(server.url), "AUTOOPS_HOME": str(workdir / "remote-home")}
    replay = subprocess.Popen(
        [autoops_executable(), "-q", "--json", "replay", str(events_file), "--run-id", "outage"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        stdout, stderr = replay.communicate(timeout=300)
    finally:
        server.close()
    assert replay.returncode == 4, stderr
    assert "kept in the outbox" in stderr
    assert 0.3 * len(expected) <= len(span_ids(received)) < len(expected)  # a real outage
    flush_with_server_back(port, received, env)
    reliability.tried(OUTAGE_EVENTS)
    reliability.exited(replay.returncode)
    reliability.missing(len(expected - span_ids(received)))
    assert span_ids(received) == expected
    assert json.loads(stdout)["observations_recorded"] == len(expected)


@pytest.mark.slow
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
    # Polled in this process (cheap; still another process than the replay's): a deadline
    # generous enough for a loaded machine, and the kill as soon as the outbox has filled.
    deadline = time.monotonic() + 120
    while (
        time.monotonic() < deadline
        and replay.poll() is None
        and pending_spans(workdir / "crash-home") <= 500
    ):
        time.sleep(0.05)
    assert replay.poll() is None, "the replay ended before it could be killed"
    replay.send_signal(signal.SIGKILL)
    replay.wait(timeout=30)
    before = buffer_status(env)
    assert before["pending_spans"] > 0
    flush_with_server_back(port, received, env)
    reliability.tried()
    reliability.exited(replay.returncode)  # -9: SIGKILL
    reliability.missing(before["pending_spans"] - len(span_ids(received)))
    assert len(span_ids(received)) == before["pending_spans"]


FAILING_SERVER_EVENTS = 300


@pytest.mark.slow
def test_the_agents_never_wait_on_a_failing_server(cli: Cli, workdir: Path) -> None:
    """503s and a server that answers after 10 s (past the 5 s request timeout) hold up
    neither the agents nor the exit: every event is processed, the run ends within its
    flush deadline, and every span is delivered or kept in the outbox for a later flush.

    How much a failing server costs the agents' rate is a measurement, made side by side by
    ``benchmarks/delivery_overhead.py --faults``; compared here it fails on a busy machine.
    """
    events_file = workdir / "events.jsonl"
    write_events(events_file, generate_events(FAILING_SERVER_EVENTS, seed=4))
    for name, faults, exit_code, deadline in (
        # A healthy peer gets everything before the exit, however busy the machine.
        ("healthy", Faults(), 0, "30"),
        ("unavailable", Faults(always_status=503), 4, "2"),  # the default deadline
        ("slow", Faults(delay_s=10.0), 4, "2"),
    ):
        received = Received()
        server = FakeLangfuse(faults=faults, received=received)
        env = {
            **keys_for(server.url),
            "AUTOOPS_HOME": str(workdir / name),
            "AUTOOPS_FLUSH_DEADLINE": deadline,
        }
        try:
            started = time.monotonic()
            result = cli("replay", str(events_file), "--json", env=env)
            elapsed = time.monotonic() - started
            # Read before close(): a slow server's handlers would still add what they got.
            with received.lock:
                delivered = span_ids(received)
        finally:
            server.close()
        assert result.exit_code == exit_code, (name, result.stderr)
        summary = json.loads(result.stdout)
        recorded = summary["observations_recorded"]
        assert summary["events_processed"] == FAILING_SERVER_EVENTS, name
        assert summary["events_failed"] == 0 and summary["tracing"]["tracing_errors"] == 0, name
        assert recorded >= 3 * FAILING_SERVER_EVENTS, name  # a root and its agents per event
        assert elapsed < HANG_CEILING_S, (name, elapsed)
        status = json.loads(cli("buffer", "status", "--json", env=env).stdout)
        kept = status["pending_spans"]
        if name == "healthy":
            assert (len(delivered), kept) == (recorded, 0), name
            continue
        # Nothing was acknowledged (503, or an answer after the client gave up): all kept.
        assert "kept in the outbox" in result.stderr, name
        assert kept == recorded, (name, kept, recorded)
        # The count the replay printed is what `buffer status` shows right after.
        assert status["pending_batches"] == summary["delivery"]["batches_waiting"], name
        back = Received()
        healthy = FakeLangfuse(port=server.port, received=back)  # the outbox is per host
        try:
            assert cli("buffer", "flush", "--json", "--wait", "60", env=env).exit_code == 0, name
        finally:
            healthy.close()
        assert len(span_ids(back)) == recorded, name


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
    silent.listen(8)  # connections are accepted below and never answered
    silent.settimeout(60)  # generous: only a sender that never connects reaches it
    stuck: list[socket.socket] = []
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        # The stuck request would wait 10 minutes for an answer: a shutdown that waited for
        # it could not end before the ceiling below.
        config = LangfuseConfig(
            public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=url, timeout=600.0
        )
        store = workdir / "stuck" / "traces.db"
        service = LangfuseIntegrationService(
            config, DataMaskingConfig(), store_path=store, batch_size=1
        )
        trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e1"})
        agents = ["inventory_agent", "pricing_agent", "promotion_agent"]
        service.end_agent_span(service.start_agent_span(agents[0], "work"))
        stuck.append(silent.accept()[0])  # the first batch's request is in flight: stuck
        for agent in agents[1:]:  # these queue up behind it
            service.end_agent_span(service.start_agent_span(agent, "work"))
        service.finalize_trace(trace, {"ok": True})
        recorded = service.get_performance_metrics()["observations_recorded"]
        started = time.monotonic()
        service.shutdown(timeout=0.5)
        assert time.monotonic() - started < HANG_CEILING_S  # not the request's 600 s
        kept = Outbox(store).status()["pending_spans"]
        reliability.tried()
        reliability.missing(recorded - kept)
        assert kept == recorded == 4
    finally:
        for connection in stuck:
            connection.close()  # the sender's request fails now and its thread ends
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


def test_writers_of_another_sender_wait_out_its_stall_once_not_per_group(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replay worker's exporter only writes; while the file's backlog is over the bound it
    waits for the parent's sender. Against a Langfuse that refuses everything the backlog
    never shrinks: the first write group waits out the flush deadline, the later ones look
    once and go on (waiting every group made two workers ten times slower than one)."""
    from config.delivery.outbox import NewBatch, Outbox
    from config.delivery.sender import OutboxExporter
    from config.settings import LangfuseConfig

    host = f"http://127.0.0.1:{free_port()}"
    config = LangfuseConfig(
        public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=host,
        buffer_size=10, flush_deadline=0.3,
    )  # fmt: skip
    outbox = Outbox(workdir / "traces.db")
    outbox.add_many([NewBatch("spans", host, b"x", 50)])
    writer = OutboxExporter(config, outbox, resource={}, sending=False)
    looks: list[int] = []
    real_backlog = outbox.backlog
    monkeypatch.setattr(
        outbox, "backlog", lambda h, key=None: looks.append(1) or real_backlog(h, key)
    )
    try:
        writer._wait_for_other_sender()
        assert len(looks) > 2  # it waited, looking again and again
        for _ in range(3):  # the next groups: more written, still nothing sent
            outbox.add_many([NewBatch("spans", host, b"x", 50)])
            looks.clear()
            writer._wait_for_other_sender()
            assert len(looks) == 1
        # The other sender makes progress again: the bound holds again.
        with outbox._transaction("test") as db:
            db.execute("DELETE FROM outbox WHERE seq = (SELECT MIN(seq) FROM outbox)")
        looks.clear()
        writer._wait_for_other_sender()
        assert len(looks) > 2
    finally:
        writer.shutdown(timeout=0)
        outbox.close()


def test_a_flushs_progress_counts_every_batch_the_exporter_delivered(workdir: Path) -> None:
    """The replay's progress lines took ``batches_delivered`` from the flush under way, which
    counted from its own start: a run's count went 13 (replaying), then 0, 2, 3 (delivering).
    It is the exporter's count, never going down."""
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    server = FakeLangfuse()
    config = LangfuseConfig(public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=server.url)
    service = LangfuseIntegrationService(
        config, DataMaskingConfig(), store_path=workdir / "count" / "traces.db", batch_size=1
    )
    try:
        for event_id in ("e1", "e2"):
            trace = service.create_simulation_trace(
                {"event_type": "demand_spike", "event_id": event_id}
            )
            service.finalize_trace(trace, {"ok": True})
        assert service.flush(timeout=15.0)
        before = service.client.delivery_progress().delivered
        assert before >= 1
        trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e3"})
        service.finalize_trace(trace, {"ok": True})
        heard: list[int] = []
        assert service.client.flush(15.0, on_progress=lambda p: heard.append(p.delivered))
        assert heard and heard[0] >= before and heard == sorted(heard), (before, heard)
        assert heard[-1] == service.client.delivery_progress().delivered > before
    finally:
        service.shutdown(timeout=0)
        server.close()


def test_rows_another_process_adds_are_not_this_senders_to_report(workdir: Path) -> None:
    """Shards sharing one AUTOOPS_HOME: a replay that had delivered everything counted the
    rows another one added after its flush as its own "kept in the outbox" (exit 4). A
    sender answers for the backlog it started with and the rows it added."""
    from config.delivery.outbox import Outbox
    from config.langfuse_integration import LangfuseIntegrationService
    from config.settings import DataMaskingConfig, LangfuseConfig

    server = FakeLangfuse()
    config = LangfuseConfig(public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=server.url)
    store = workdir / "shared" / "traces.db"
    store.parent.mkdir()
    earlier = Outbox(store)  # a backlog from before: this run delivers it
    earlier.add("scores", server.url, b"[]", 0)
    service = LangfuseIntegrationService(
        config, DataMaskingConfig(), store_path=store, batch_size=1
    )
    try:
        trace = service.create_simulation_trace({"event_type": "demand_spike", "event_id": "e1"})
        service.finalize_trace(trace, {"ok": True})
        assert service.client.pending() >= 1
        assert service.flush(timeout=15.0)
        assert service.client.pending() == 0
        earlier.add("scores", server.url, b"[]", 0)  # another process, sharing the file
        assert service.client.pending() == 0
        assert service.flush(timeout=15.0)  # nothing of its own waits
    finally:
        service.shutdown(timeout=0)
        earlier.close()
        server.close()


def test_a_frozen_sender_sends_nothing_more_and_changes_nothing(workdir: Path) -> None:
    """A replay freezes its sender before it counts. Frozen, the sender went on sending the
    same rows flat out (an answer no longer removed them and set no backoff): 500 requests
    a second to a Langfuse that refused each. It stops; the outbox stays as it was."""
    from config.delivery.outbox import NewBatch, Outbox
    from config.delivery.sender import OutboxExporter
    from config.settings import LangfuseConfig

    # Answered late: the sender starts at once, and on a busy machine a quick refusal could
    # land (a dead letter) before freeze() below.
    server = FakeLangfuse(faults=Faults(always_status=400, delay_s=0.5))
    config = LangfuseConfig(public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=server.url)
    outbox = Outbox(workdir / "traces.db")
    outbox.add_many([NewBatch("spans", server.url, b"x", 5) for _ in range(3)])
    exporter = OutboxExporter(config, outbox, resource={})
    try:
        exporter.freeze()
        time.sleep(1.0)  # what a frozen sender would send meanwhile
        assert len(server.received.otlp_times) <= 1  # at most one already under way
        assert outbox.count(server.url) == 3
        assert exporter.stats.dead_letters == 0
    finally:
        exporter.shutdown(timeout=0)
        outbox.close()
        server.close()


def test_a_dead_letter_of_a_batch_another_sender_delivered_is_none(workdir: Path) -> None:
    """Two senders of one outbox: a refusal answered to one for a batch the other had
    delivered (and removed) meanwhile was counted as a dead letter that did not exist."""
    from config.delivery.outbox import NewBatch, Outbox

    outbox = Outbox(workdir / "traces.db")
    kept, delivered = outbox.add_many([NewBatch("spans", "http://h", b"x", 5)] * 2)
    outbox.delivered_many([delivered])  # the other sender's
    assert outbox.dead_letter(kept, 400, "bad") is True
    assert outbox.dead_letter(delivered, 400, "bad") is False
    status = outbox.status()
    assert status["dead_letters"] == 1
    outbox.close()


@pytest.mark.parametrize("action", ["drop", "readdress"])
def test_drop_and_readdress_count_what_they_deleted_or_moved(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """The counts were read before the transaction: a flush (or another drop) of the
    same batches in between, and `buffer drop` said it dropped 80 batches that the
    server had received."""
    from config.delivery import outbox as outbox_module
    from config.delivery.outbox import NewBatch, Outbox

    path = workdir / "traces.db"
    outbox = Outbox(path)
    delivered, *_ = outbox.add_many([NewBatch("spans", "http://old", b"x", 5)] * 3)
    other = Outbox(path)  # another process's connection: it delivers one just then
    begin = outbox_module.Outbox._transaction

    def late(self: Outbox, doing: str) -> Any:
        if self is outbox:
            other.delivered_many([delivered])
        return begin(self, doing)

    monkeypatch.setattr(outbox_module.Outbox, "_transaction", late)
    if action == "drop":
        counted, _ = outbox.drop("http://old")
    else:
        counted = outbox.readdress("http://old", "http://new")
    assert (counted.batches, counted.spans) == (2, 10)
    outbox.close()
    other.close()


def scope_body(public_key: str) -> bytes:
    """A span batch body whose Langfuse scope names ``public_key``, as the sender writes it."""
    import gzip

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    from config.delivery.otlp import SCOPE_NAME

    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add().scope
    scope.name = SCOPE_NAME
    attribute = scope.attributes.add()
    attribute.key, attribute.value.string_value = "public_key", public_key
    return gzip.compress(request.SerializeToString())


OLDER_OUTBOX_SCHEMA = (
    "CREATE TABLE outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, "
    "host TEXT NOT NULL, created_us INTEGER NOT NULL, items INTEGER NOT NULL, "
    "attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, body BLOB NOT NULL);"
    "CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
    "host TEXT NOT NULL, created_us INTEGER NOT NULL, failed_us INTEGER NOT NULL, "
    "items INTEGER NOT NULL, status INTEGER, message TEXT, body BLOB NOT NULL);"
)


def test_an_outbox_of_an_older_autoops_gets_the_project_column_and_keeps_its_rows(
    workdir: Path,
) -> None:
    """Rows kept before batches recorded their project have none: any keys send them, as
    before; the rows of a known project only its own."""
    from config.delivery.outbox import NewBatch, Outbox

    path = workdir / "traces.db"
    with sqlite3.connect(path) as db:  # the outbox tables as an older autoops made them
        db.executescript(
            OLDER_OUTBOX_SCHEMA + "INSERT INTO outbox (kind, host, created_us, items, body) "
            "VALUES ('spans', 'http://h', 1, 5, x'00');"
        )
        # A span batch naming its project's key, and the scores written with it: that
        # project's, told from the body when the column is added.
        db.execute(
            "INSERT INTO outbox (kind, host, created_us, items, body) VALUES (?, ?, 2, ?, ?)",
            ("spans", "http://k", 1, scope_body("pk-lf-theirs")),
        )
        db.execute(
            "INSERT INTO outbox (kind, host, created_us, items, body) VALUES (?, ?, 2, ?, ?)",
            ("scores", "http://k", 1, b"[]"),
        )
    outbox = Outbox(path)
    assert outbox.pending("http://k", public_key="pk-lf-ours") == []
    assert [e.kind for e in outbox.pending("http://k", public_key="pk-lf-theirs")] == [
        "spans",
        "scores",
    ]
    (theirs,) = outbox.add_many([NewBatch("spans", "http://h", b"x", 3, "pk-lf-theirs")])
    assert [e.items for e in outbox.pending("http://h", public_key="pk-lf-ours")] == [5]
    assert [e.items for e in outbox.pending("http://h", public_key="pk-lf-theirs")] == [5, 3]
    assert outbox.count("http://h", public_key="pk-lf-ours") == 1
    assert outbox.other_projects("http://h", "pk-lf-ours") == {"pk-lf-theirs": 1}
    # The backlog a sender with our keys waits on (its stream bound): ours, not theirs.
    assert outbox.backlog("http://h", "pk-lf-ours").items == 5
    assert outbox.backlog("http://h").items == 8
    assert outbox.dead_letter(theirs, 400, "bad") is True
    # Our flush --dead-letters re-queues ours only: theirs wait for their keys, as dead
    # letters (it re-queued every project's, counted them, and left theirs to be retried).
    assert outbox.requeue_dead_letters("http://h", "pk-lf-ours") == 0
    assert outbox.requeue_dead_letters("http://h", "pk-lf-theirs") == 1  # project kept
    assert outbox.other_projects("http://h", "pk-lf-ours") == {"pk-lf-theirs": 1}
    outbox.close()


def test_an_older_outbox_is_given_its_projects_a_page_per_transaction_and_a_stop_loses_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transaction filled every row's project: it read every body into memory at once
    and held the file's write lock throughout (another autoops opening the file meanwhile
    failed, "database is locked"). A page at a time now, each committed (seen by another
    connection as it goes); a stop part-way leaves the rest for the next process."""
    from config.delivery import outbox as outbox_module
    from config.delivery.outbox import Outbox

    path = workdir / "traces.db"
    # Two hosts side by side: each score row is the project of its host's span batch before
    # it, across page boundaries; a damaged span batch names none (its scores: the one before).
    rows = [
        ("spans", "http://a", scope_body("pk-a1")), ("spans", "http://b", scope_body("pk-b")),
        ("scores", "http://a", b"[]"), ("scores", "http://b", b"[]"),
        ("spans", "http://a", b"damaged"), ("scores", "http://a", b"[]"),
        ("spans", "http://a", scope_body("pk-a2")), ("scores", "http://b", b"[]"),
        ("scores", "http://a", b"[]"),
    ]  # fmt: skip
    expected = ["pk-a1", "pk-b", "pk-a1", "pk-b", None, "pk-a1", "pk-a2", "pk-b", "pk-a2"]
    with sqlite3.connect(path) as db:
        db.executescript(OLDER_OUTBOX_SCHEMA)
        db.executemany(
            "INSERT INTO outbox (kind, host, created_us, items, body) VALUES (?, ?, 1, 1, ?)",
            rows,
        )
    monkeypatch.setattr(outbox_module, "PAGE_ROWS", 2)
    fill_page, seen = outbox_module._fill_key_page, []

    def watched_page(db: sqlite3.Connection) -> bool:
        with sqlite3.connect(path) as other:  # what another process sees meanwhile
            seen.append(other.execute("SELECT COUNT(public_key) FROM outbox").fetchone()[0])
        if len(seen) == 3:
            raise KeyboardInterrupt  # a Ctrl-C in the third page
        return fill_page(db)

    monkeypatch.setattr(outbox_module, "_fill_key_page", watched_page)
    with pytest.raises(KeyboardInterrupt):
        Outbox(path)
    assert seen == [0, 2, 4]  # two pages committed, the third rolled back
    monkeypatch.setattr(outbox_module, "_fill_key_page", fill_page)
    Outbox(path).close()  # the next process fills the rest
    with sqlite3.connect(path) as db:
        assert [key for (key,) in db.execute("SELECT public_key FROM outbox ORDER BY seq")] == (
            expected
        )
        assert (
            db.execute("SELECT name FROM sqlite_master WHERE name LIKE '%fill%'").fetchall() == []
        )


FORKED_WORKERS = """
import json, multiprocessing, sys
from config.langfuse_integration import get_langfuse_integration

if sys.argv[3:] == ["at-import"]:  # the application's service, made when it is imported
    get_langfuse_integration()

def trace(tag):
    service = get_langfuse_integration()
    trace_id = service.create_simulation_trace(
        {"event_type": "demand_spike", "product_id": tag, "event_id": tag}
    )
    service.finalize_trace(trace_id)
    return trace_id

def child(tag):  # ends with os._exit, without a flush of its own
    return trace(tag)

if __name__ == "__main__":
    method, parent_traces = sys.argv[1], sys.argv[2] == "yes"
    parent = [trace("parent")] if parent_traces else []
    if parent:
        assert get_langfuse_integration().flush(60)
    pool = multiprocessing.get_context(method).Pool(2)
    children = pool.map(child, ["c1", "c2", "c3"])
    pool.close()  # the workers end as they do by themselves (terminate() kills them)
    pool.join()
    print(json.dumps({"parent": parent, "children": children}))
"""


@pytest.mark.parametrize(
    ("mode", "method", "parent_traces", "service"),
    [
        ("langfuse", "fork", "yes", "lazy"),
        ("local", "fork", "yes", "lazy"),
        ("local", "fork", "no", "lazy"),
        ("local", "spawn", "no", "lazy"),
        ("local", "forkserver", "yes", "lazy"),
        ("local", "forkserver", "no", "at-import"),
    ],
)
def test_workers_forked_by_multiprocessing_record_their_traces(
    workdir: Path, served: Any, mode: str, method: str, parent_traces: str, service: str
) -> None:
    """Langfuse mode: a forked child's outbox threads did not follow it, so its batches
    stayed in memory, its flush returned False, and a multiprocessing worker's traces were
    lost when it ended. Each child now opens a destination of its own. And in both modes a
    worker (which ends with os._exit, no atexit) lost what it traced last unless it
    flushed: its exit hands it over, whatever the start method, and whether or not the
    parent traced before it forked."""
    extra = served.client_env() if mode == "langfuse" else {}
    done = run_script(workdir, FORKED_WORKERS, method, parent_traces, service, env=extra)
    result = json.loads(done.stdout)
    expected = {*result["parent"], *result["children"]}
    store = served.store if mode == "langfuse" else Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    with sqlite3.connect(store) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM traces")}
    assert stored == expected


CALLERS_TRACE_IDS = """
import json
from config.langfuse_integration import get_langfuse_integration

service = get_langfuse_integration()
returned = []
for given in [None, "order-42", "ABCDEF0123456789ABCDEF0123456789", 42, "", "0" * 32, 0]:
    event = {"event_type": "demand_spike", "product_id": str(given)}
    trace_id = service.create_simulation_trace(event, trace_id=given)
    # The caller's own id reaches its trace (it found nothing once the id was lowered).
    named = trace_id if given is None or given == "" else given
    assert service.start_agent_span("pricing_agent", "quote", parent_trace_id=named)
    assert service.finalize_trace(named) is not None
    returned.append(trace_id)
assert not service.trace_manager._traces, service.trace_manager._traces  # no claim left
print(json.dumps({"flushed": service.flush(30), "returned": returned}))
"""


@pytest.mark.parametrize("mode", ["langfuse", "local"])
def test_a_callers_trace_id_that_is_not_32_hex_is_made_one_and_loses_nothing(
    workdir: Path, served: Any, mode: str
) -> None:
    """``create_simulation_trace(trace_id=...)`` took any id: in langfuse mode one that was
    not 32 hex characters could not be encoded, and the batch it was in (the good traces
    around it too) was lost. An id in upper case was stored lowered, and the id returned
    found nothing. Each is now an id Langfuse takes (a stable one from the caller's), and
    the id returned is the trace's."""
    extra = served.client_env() if mode == "langfuse" else {}
    done = run_script(workdir, CALLERS_TRACE_IDS, env=extra)
    result = json.loads(done.stdout)
    assert result["flushed"] is True
    returned = result["returned"]
    assert all(re.fullmatch("[0-9a-f]{32}", trace_id) for trace_id in returned)
    assert returned[2] == "abcdef0123456789abcdef0123456789"
    assert len(set(returned)) == 7
    assert "'order-42' is not 32 hex characters" in done.stderr
    assert "trace id ''" not in done.stderr  # "" is no id: a random one, as None
    store = served.store if mode == "langfuse" else Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    with sqlite3.connect(store) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM traces")}
    assert stored == set(returned)


WAITS_OF_NONE = """
import json
from config.langfuse_integration import get_langfuse_integration

service = get_langfuse_integration()
ids = []
for wait in [None, "soon", 10**400]:
    ids.append(service.create_simulation_trace({"event_type": "demand_spike"}))
    service.finalize_trace(ids[-1])
    flushed = service.flush(wait)
health = service.health_check(10**400)["status"]  # past the float range: the longest wait
print(json.dumps({"ids": ids, "flushed": flushed, "health": health}))
ids.append(service.create_simulation_trace({"event_type": "demand_spike"}))
service.finalize_trace(ids[-1])
service.shutdown(10**400)
print(json.dumps(ids))
"""


def test_flush_and_shutdown_of_none_wait_as_by_default(workdir: Path, served: Any) -> None:
    """``shutdown(None)`` failed inside the sender (None compared with 0) before the batch
    was kept: the trace was neither delivered nor in the outbox; ``flush(None)`` said a
    connection failed. A wait past the float range is the longest (OverflowError: lost)."""
    done = run_script(workdir, WAITS_OF_NONE, env=served.client_env())
    first, last = done.stdout.splitlines()
    assert json.loads(first)["flushed"] is True
    assert json.loads(first)["health"] == "healthy"
    with sqlite3.connect(served.store) as db:
        stored = {row[0] for row in db.execute("SELECT id FROM traces")}
    assert stored == set(json.loads(last))
    assert "failed" not in done.stderr


PLAIN_FORK_OF_AN_OPEN_TRACE = """
import os, sys
from config.langfuse_integration import get_langfuse_integration

service = get_langfuse_integration()
parent = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "p"})
span = service.start_agent_span("inventory_agent", "assess", parent_trace_id=parent)
child = os.fork()
if child == 0:
    own = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "c"})
    print(own, flush=True)
    sys.exit(0)  # a normal exit: atexit shuts its service down (``own`` left open)
os.waitpid(child, 0)
print(parent, flush=True)
os._exit(0)  # the parent dies before it ends its trace: what the child wrote is what is left
"""


def test_a_plainly_forked_child_leaves_its_parents_open_traces_to_the_parent(
    workdir: Path,
) -> None:
    """A child of os.fork() that exits normally shut its inherited service down, which
    ended the parent's open trace and agent span as "still open at shutdown" (stored, and
    kept when the parent died before finishing them). It ends only what it opened."""
    done = run_script(workdir, PLAIN_FORK_OF_AN_OPEN_TRACE)
    child_trace, parent_trace = done.stdout.split()
    store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    with sqlite3.connect(store) as db:
        messages = dict(
            db.execute(
                "SELECT trace_id || ':' || name, COALESCE(status_message, '') FROM observations"
            ).fetchall()
        )
    assert messages[f"{child_trace}:orchestrator.process_event"] == "still open at shutdown"
    # Never ended by the parent: not recorded as ended by its child either.
    assert not [key for key in messages if key.startswith(parent_trace)]


GRANDCHILD_DURING_RECONNECT = """
import os, threading, time
from config.client import LangfuseClient
from config.langfuse_integration import get_langfuse_integration

service = get_langfuse_integration()
connect = LangfuseClient._connect

def slow_connect(self, *args, **kwargs):
    time.sleep(1.0)  # a slow open widens the window a real fork can fall into
    return connect(self, *args, **kwargs)

LangfuseClient._connect = slow_connect
child = os.fork()
if child == 0:
    first_use = threading.Thread(target=service.get_performance_metrics)  # connects
    first_use.start()
    time.sleep(0.3)
    grandchild = os.fork()
    if grandchild == 0:
        trace_id = service.create_simulation_trace(
            {"event_type": "demand_spike", "product_id": "g", "event_id": "g"}
        )
        service.finalize_trace(trace_id)
        print("grandchild flushed", service.flush(30), flush=True)
        os._exit(0)
    first_use.join()
    os.waitpid(grandchild, 0)
    os._exit(0)
os.waitpid(child, 0)
"""


def test_a_grandchild_forked_while_its_parent_connects_is_not_stuck(workdir: Path) -> None:
    """The child holds its connecting lock while it opens its destination: a grandchild
    forked by another of its threads meanwhile inherited the lock held, and hung at its
    first trace for ever."""
    done = run_script(workdir, GRANDCHILD_DURING_RECONNECT)
    assert "grandchild flushed True" in done.stdout
