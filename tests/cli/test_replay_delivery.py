"""Delivery at real volume, over real HTTP, with real processes and signals.

Durable before counted (what a run reported is on the server after ``buffer flush``, killed or
not), streaming while running, honest at exit (the count printed is what ``buffer status``
shows), a host that is not Langfuse, a full disk, and batches of another host. Faults come
from a proxy on 127.0.0.1 in front of ``autoops serve`` (``tests/support/fault_proxy.py``).
Nothing here asserts a speed: the rates are benchmark figures (``benchmarks/``).
"""

from __future__ import annotations

import contextlib
import json
import random
import select
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from autoops_cli.simulation.engine import COMMIT_EVERY_TRACES
from autoops_cli.simulation.generator import generate_events, write_events
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Figures
from tests.support.fake_langfuse import FakeLangfuse
from tests.support.fault_proxy import FaultProxy, ProxyFaults
from tests.support.property_budget import SCALE
from tests.support.replay_runs import (
    Shape,
    clean_env,
    event_ids,
    ids,
    missing_or_wrong,
    outbox_status,
    progress_lines,
    reported_processed,
    run,
    small_disk,
    start_replay,
    trace_shapes,
)
from tests.support.serve_process import ServeHandle, autoops_executable

SIGNAL_TRIALS = max(2, round(SCALE))  # per signal and server; AUTOOPS_PROPERTY_SCALE=20: 20
# A healthy server on a loaded machine may take more than the default 2 s for one request:
# `--wait` is the time without progress a flush accepts, not how long it takes.
PATIENT = ("--wait", "60")


def refused_url() -> str:
    """A loopback URL nothing listens on: connections are refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def keys(url: str) -> dict[str, str]:
    return {
        "LANGFUSE_HOST": url,
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
    }


def served_env(handle: ServeHandle, url: str | None = None, **extra: str) -> dict[str, str]:
    """A client of ``handle`` (through ``url``, a proxy, when given)."""
    env = {**handle.client_env(), **extra}
    if url is not None:
        env["LANGFUSE_HOST"] = url
    return env  # type: ignore[return-value]


def generated(directory: Path, count: int, seed: int) -> Path:
    path = directory / f"events-{count}-{seed}.jsonl"
    if not path.exists():
        write_events(path, generate_events(count, seed=seed))
    return path


def reference(directory: Path, events: Path, run_id: str) -> dict[str, set[str]]:
    """Every id a local-mode replay of ``events`` under ``run_id`` records."""
    home = directory / f"reference-{run_id}"
    done = run("-q", "replay", str(events), "--run-id", run_id,
               env=clean_env(AUTOOPS_HOME=str(home)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return ids(home / "traces.db")


@pytest.fixture(scope="module")
def signal_events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Shape]]:
    """3,000 events and the shape of each event's trace (from a local reference replay)."""
    directory = tmp_path_factory.mktemp("signals")
    events = generated(directory, 3000, seed=21)
    home = directory / "reference"
    done = run("-q", "replay", str(events), "--run-id", "ref",
               env=clean_env(AUTOOPS_HOME=str(home)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    return events, trace_shapes(home / "traces.db", "ref", events)


# --- a healthy server ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "count", [1000, pytest.param(10_000, marks=pytest.mark.slow)], ids=["1k", "10k"]
)
def test_a_healthy_server_gets_everything_while_the_replay_runs(
    workdir: Path, served: ServeHandle, count: int, reliability: Figures
) -> None:
    events = generated(workdir, count, seed=11)
    expected = reference(workdir, events, "healthy")
    progress = workdir / "progress.jsonl"
    env = clean_env(**served_env(served), AUTOOPS_HOME=str(workdir / "client"))
    replay = start_replay(events, "healthy", env, progress)
    readable_while_replaying = 0
    with httpx.Client(base_url=served.url, auth=served.auth, timeout=30) as api:
        while replay.poll() is None:
            lines = progress_lines(progress)
            if lines and lines[-1]["phase"] == "replaying" and not readable_while_replaying:
                answer = api.get("/api/public/traces", params={"limit": 1})
                if answer.status_code == 200 and answer.json()["meta"]["totalItems"]:
                    # Read while events were still being read: batches flow during the run.
                    readable_while_replaying = lines[-1]["events_processed"]
            time.sleep(0.1)
    stdout, stderr = replay.communicate(timeout=600)
    assert replay.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["events_processed"] == count
    assert summary["delivery"]["batches_waiting"] == 0
    assert summary["delivery"]["state"] == "ok"
    assert 0 < readable_while_replaying < count
    on_server = ids(served.store)
    assert {table: len(found) for table, found in on_server.items()} == {
        table: len(found) for table, found in expected.items()
    }
    assert on_server == expected
    assert outbox_status(env)["pending_batches"] == 0
    lines = progress_lines(progress)
    done = lines[-1]
    assert (done["phase"], done["exit_code"], done["events_processed"]) == ("done", 0, count)
    elapsed = [line["elapsed_s"] for line in lines]  # the done line gave the replay's time
    assert elapsed == sorted(elapsed), elapsed[-3:]
    reliability.tried(count)
    reliability.exited(replay.returncode)
    reliability.missing(sum(len(expected[t] - on_server[t]) for t in expected))


# --- stops: SIGTERM, SIGINT, SIGKILL ------------------------------------------------------

SERVERS = {
    "healthy": ProxyFaults(),
    "slow": ProxyFaults(delay_s=0.3),
    "resetting": ProxyFaults(reset_every=3),
}


@pytest.mark.slow
@pytest.mark.parametrize("server", sorted(SERVERS))
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_a_stop_at_a_random_moment_loses_nothing_reported(
    workdir: Path,
    served: ServeHandle,
    signal_events: tuple[Path, dict[str, Shape]],
    stop: str,
    server: str,
    reliability: Figures,
) -> None:
    """After ``buffer flush``, every event a stopped run reported is on the server, whole
    and once; a SIGTERM'd run exits 143 with its summary."""
    events, shapes = signal_events
    order = event_ids(events)
    chance = random.Random(f"{stop}-{server}")
    proxy = FaultProxy(served.url)
    lost = 0
    try:
        for trial in range(SIGNAL_TRIALS):
            run_id = f"{stop}-{server}-{trial}"
            progress = workdir / f"{run_id}.jsonl"
            env = clean_env(
                **served_env(served, proxy.url), AUTOOPS_HOME=str(workdir / "home" / run_id)
            )
            proxy.faults = SERVERS[server]
            replay = start_replay(events, run_id, env, progress)
            deadline = time.monotonic() + 120
            while not progress_lines(progress) and replay.poll() is None:
                assert time.monotonic() < deadline, "the replay reported nothing"
                time.sleep(0.05)
            time.sleep(chance.uniform(0.0, 3.0))
            replay.send_signal(getattr(signal, stop))
            stdout, stderr = replay.communicate(timeout=120)
            if stop == "SIGTERM":
                assert replay.returncode == 143, stderr
                summary = json.loads(stdout)
                assert summary["stopped_early"] == "SIGTERM"
                assert (
                    f"stopped by SIGTERM at line {summary['lines_read']}: "
                    f"{summary['events_processed']} event(s) recorded"
                ) in stderr
                # Every line of the file is either read or counted as not read.
                assert summary["lines_read"] + summary["lines_not_read"] == len(order)
            else:
                assert replay.returncode == -signal.SIGKILL
            reported = reported_processed(progress, stdout)
            proxy.faults = ProxyFaults()
            flushed = run("buffer", "flush", "--wait", "30", env=env)
            assert flushed.returncode == 0, flushed.stderr
            wrong = missing_or_wrong(served.store, run_id, order[:reported], shapes)
            lost += len(wrong)
            assert wrong == [], f"trial {trial}: {len(wrong)} of {reported} reported events"
            reliability.tried(reported)
            reliability.exited(replay.returncode)
    finally:
        proxy.close()
        reliability.missing(lost)


def test_sigint_stops_after_the_event_in_hand(
    workdir: Path,
    served: ServeHandle,
    signal_events: tuple[Path, dict[str, Shape]],
) -> None:
    events, shapes = signal_events
    progress = workdir / "sigint.jsonl"
    env = clean_env(**served_env(served), AUTOOPS_HOME=str(workdir / "sigint"))
    replay = start_replay(events, "sigint", env, progress)
    while not progress_lines(progress) and replay.poll() is None:
        time.sleep(0.05)
    replay.send_signal(signal.SIGINT)
    stdout, stderr = replay.communicate(timeout=120)
    assert replay.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["stopped_early"] == "SIGINT"
    assert 0 < summary["events_processed"] < len(shapes)
    assert summary["events_total"] <= summary["events_processed"] + 1  # read no further
    waiting = summary["delivery"]["batches_waiting"]
    assert outbox_status(env)["pending_batches"] == waiting
    assert progress_lines(progress)[-1]["exit_code"] == 130
    assert run("buffer", "flush", *PATIENT, env=env).returncode == 0
    reported = event_ids(events)[: summary["events_processed"]]
    assert missing_or_wrong(served.store, "sigint", reported, shapes) == []


# --- the end of a run -----------------------------------------------------------------------


def test_exit_delivery_goes_on_while_the_server_makes_progress(
    workdir: Path, served: ServeHandle
) -> None:
    """A slow server that keeps accepting: delivery at exit outlasts the flush deadline
    (which bounds only a wait without progress) and ends with everything delivered."""
    events = generated(workdir, 800, seed=12)
    proxy = FaultProxy(served.url, ProxyFaults(delay_s=0.5))
    try:
        env = clean_env(
            **served_env(served, proxy.url),
            AUTOOPS_HOME=str(workdir / "slow"),
            AUTOOPS_FLUSH_DEADLINE="1.5",
            LANGFUSE_BUFFER_SIZE="100000",  # no backpressure: a backlog is left for the exit
        )
        progress = workdir / "slow-exit.jsonl"
        done = run("--json", "replay", str(events), "--run-id", "slow-exit",
                   "--progress-file", str(progress), env=env)  # fmt: skip
    finally:
        proxy.close()
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["delivery"]["batches_waiting"] == 0
    assert summary["flush_s"] > 1.5  # delivered past the deadline, as long as it progressed
    assert len(ids(served.store)["traces"]) == 800
    # The run's count on every progress line, never going down (the delivery's own lines
    # restarted at 0 and counted only what it sent).
    lines = progress_lines(progress)
    delivered = [line["delivery"]["batches_delivered"] for line in lines]
    assert delivered == sorted(delivered), delivered
    assert delivered[-1] == summary["delivery"]["batches_delivered"]


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_during_the_final_delivery_is_the_runs_ending(
    workdir: Path, served: ServeHandle, stop: signal.Signals, code: int
) -> None:
    """Every event recorded, the delivery at the end under way, then a stop: it bounded the
    delivery, but the run exited 4 (or 0) with no ``stopped_early``, as if the signal had
    not come. It is the run's ending: 143 / 130, on the progress file's done line too."""
    events = generated(workdir, 400, seed=13)
    proxy = FaultProxy(served.url, ProxyFaults(delay_s=0.4))
    progress = workdir / f"{stop.name}.jsonl"
    try:
        env = clean_env(
            **served_env(served, proxy.url),
            AUTOOPS_HOME=str(workdir / stop.name),
            LANGFUSE_BUFFER_SIZE="100000",  # no backpressure: a backlog is left for the end
        )
        replay = start_replay(events, f"late-{stop.name}", env, progress)
        deadline = time.monotonic() + 120
        while replay.poll() is None and time.monotonic() < deadline:
            lines = progress_lines(progress)
            if lines and lines[-1]["phase"] == "delivering":
                break
            time.sleep(0.02)
        replay.send_signal(stop)
        stdout, stderr = replay.communicate(timeout=120)
    finally:
        proxy.close()
    assert replay.returncode == code, stderr
    summary = json.loads(stdout)
    assert summary["stopped_early"] == stop.name
    assert summary["events_processed"] == 400
    assert f"stopped by {stop.name}" in stderr
    assert progress_lines(progress)[-1]["exit_code"] == code
    assert outbox_status(env)["pending_batches"] == summary["delivery"]["batches_waiting"]


def test_an_unreachable_server_is_given_the_deadline_and_the_count_is_exact(
    workdir: Path, served: ServeHandle
) -> None:
    events = generated(workdir, 300, seed=13)
    url = refused_url()
    env = clean_env(**keys(url), AUTOOPS_HOME=str(workdir / "down"))
    done = run("--json", "replay", str(events), env=env)
    assert done.returncode == 4, done.stderr
    summary = json.loads(done.stdout)
    waiting = summary["delivery"]["batches_waiting"]
    assert f"{waiting} batch(es) not delivered to {url} yet, kept in the outbox" in done.stderr
    status = outbox_status(env)
    assert status["pending_batches"] == waiting > 0
    assert status["pending_spans"] == summary["observations_recorded"]
    assert status["pending_scores"] == summary["scores_recorded"]


def test_a_slow_server_slows_the_replay_instead_of_growing_the_outbox(
    workdir: Path, served: ServeHandle
) -> None:
    """While the server accepts batches, the outbox holds about LANGFUSE_BUFFER_SIZE spans
    and scores (plus one group in writing), never the run's backlog."""
    import contextlib
    import sqlite3

    buffer = 400
    events = generated(workdir, 600, seed=14)
    proxy = FaultProxy(served.url, ProxyFaults(delay_s=0.2))
    home = workdir / "bounded"
    env = clean_env(
        **served_env(served, proxy.url), AUTOOPS_HOME=str(home), LANGFUSE_BUFFER_SIZE=str(buffer)
    )
    progress = workdir / "bounded.jsonl"
    largest = 0
    try:
        replay = start_replay(events, "bounded", env, progress)
        while replay.poll() is None:
            lines = progress_lines(progress)
            if lines and lines[-1]["phase"] == "replaying":
                with contextlib.suppress(sqlite3.Error):
                    db = sqlite3.connect(f"file:{home / 'traces.db'}?mode=ro", uri=True)
                    with contextlib.closing(db):
                        held = db.execute("SELECT COALESCE(SUM(items), 0) FROM outbox").fetchone()
                    largest = max(largest, int(held[0]))
            time.sleep(0.05)
        stdout, stderr = replay.communicate(timeout=300)
    finally:
        proxy.close()
    assert replay.returncode == 0, stderr
    summary = json.loads(stdout)
    recorded = summary["observations_recorded"] + summary["scores_recorded"]
    # The bound, a group in writing (the memory buffer, and a commit point's batch, which
    # goes in whole even when larger than the buffer: COMMIT_EVERY_TRACES traces, their
    # items half again above the average for the routes with the most agents) and a
    # commit's worth of slack; the whole run is several times that.
    one_commit = COMMIT_EVERY_TRACES * 1.5 * recorded / 600
    assert 0 < largest <= 2 * buffer + one_commit + 1000 < recorded / 3
    assert len(ids(served.store)["traces"]) == 600


# --- a host that is not Langfuse -------------------------------------------------------------


def test_a_host_answering_html_keeps_every_batch_and_says_so(
    workdir: Path, served: ServeHandle, reliability: Figures
) -> None:
    events = generated(workdir, 500, seed=15)
    portal = FaultProxy(served.url, ProxyFaults(html=True))
    try:
        env = clean_env(**served_env(served, portal.url), AUTOOPS_HOME=str(workdir / "portal"))
        done = run("--json", "replay", str(events), "--run-id", "portal", env=env)
        assert portal.posts <= 2  # sending stopped at the first answer that was not Langfuse's
    finally:
        portal.close()
    assert done.returncode == 5, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert portal.url in errors[0] and "200 text/html" in errors[0]
    assert "not Langfuse's API answer" in errors[0] and "kept in the outbox" in errors[0]
    summary = json.loads(done.stdout)
    status = outbox_status(env)
    assert status["pending_spans"] == summary["observations_recorded"] > 0
    assert status["pending_scores"] == summary["scores_recorded"]
    assert len(ids(served.store)["traces"]) == 0
    # LANGFUSE_HOST fixed: the batches recorded for the portal go to the real server.
    fixed = clean_env(**served_env(served), AUTOOPS_HOME=str(workdir / "portal"))
    moved = run("--json", "buffer", "flush", *PATIENT, "--from", portal.url, "--yes", env=fixed)
    assert moved.returncode == 0, moved.stderr
    assert json.loads(moved.stdout)["moved_from"]["host"] == portal.url
    assert len(ids(served.store)["observations"]) == summary["observations_recorded"]
    reliability.tried(500)
    reliability.answered(200)
    reliability.exited(done.returncode)
    reliability.missing(summary["observations_recorded"] - len(ids(served.store)["observations"]))


# --- batches of other hosts ----------------------------------------------------------------


def test_a_host_named_as_written_finds_the_batches_kept_for_it(workdir: Path) -> None:
    """The outbox keeps a host as LANGFUSE_HOST is kept (IDNA, no trailing dot, no default
    port): `buffer drop --host` and `flush --from` with the host as the user wrote it
    found nothing for it."""
    from config.delivery.outbox import SPANS, Outbox

    home = workdir / "spelled"
    home.mkdir()
    outbox = Outbox(home / "traces.db")
    outbox.add(SPANS, "https://xn--bcher-kva.invalid", b"batch", 3)
    # Kept by an older autoops as written: the same server, dropped with it (only the first
    # spelling found was dropped, the other stayed).
    outbox.add(SPANS, "HTTPS://xn--bcher-kva.invalid:443", b"batch", 2)
    outbox.close()
    env = clean_env(AUTOOPS_HOME=str(home))
    dropped = run("--json", "buffer", "drop", "--host", "https://B\u00dcCHER.invalid.:443/",
                  "--yes", env=env)  # fmt: skip
    assert dropped.returncode == 0, dropped.stderr
    assert json.loads(dropped.stdout)["dropped_spans"] == 5
    assert outbox_status(env)["by_host"] == []


def test_batches_kept_under_an_older_spelling_of_the_host_are_its_own(
    workdir: Path, served: ServeHandle
) -> None:
    """An older autoops kept LANGFUSE_HOST as written: HTTP://127.0.0.1:PORT/ is the same
    server, whose batches no run sent, each naming it as another host."""
    events = generated(workdir, 20, seed=9)
    home = workdir / "respelled"
    env = clean_env(**served_env(served, refused_url()), AUTOOPS_HOME=str(home))
    assert run("-q", "replay", str(events), env=env).returncode == 4
    with sqlite3.connect(home / "traces.db") as db:
        kept = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        db.execute("UPDATE outbox SET host = ?", (served.url.replace("http://", "HTTP://") + "/",))
    env = clean_env(**served_env(served), AUTOOPS_HOME=str(home))
    # Shown as the configured host's (it was "another host", which a flush then sent).
    (entry,) = outbox_status(env)["by_host"]
    assert (entry["host"], entry["batches"], entry["current"]) == (served.url, kept, True)
    flushed = run("--json", "buffer", "flush", *PATIENT, env=env)
    assert flushed.returncode == 0, flushed.stderr
    result = json.loads(flushed.stdout)
    assert result["delivered_batches"] == kept
    assert result["batches_before"] == kept  # counted after they were found its own (was 0)
    assert "other hosts" not in flushed.stderr
    assert outbox_status(env)["pending_batches"] == 0


def test_a_backlog_of_another_project_on_the_same_host_waits_for_its_own_keys(
    workdir: Path, served: ServeHandle
) -> None:
    """The outbox kept batches by host only: after the keys changed to another project on
    the same host, the backlog recorded with the first project's key was sent with the
    second's (its scores landed there; Langfuse drops spans whose scope names another key).
    Each batch records its project now and is sent only with its keys."""
    from tests.support.fault_proxy import FaultProxy, ProxyFaults

    events = generated(workdir, 30, seed=12)
    home = workdir / "projects"
    proxy = FaultProxy(served.url, ProxyFaults(post_statuses=[503] * 10_000))
    other = {"LANGFUSE_PUBLIC_KEY": "pk-lf-other-project",
             "LANGFUSE_SECRET_KEY": "sk-lf-other-project-secret"}  # fmt: skip
    try:
        theirs = clean_env(**{**served_env(served, proxy.url), **other}, AUTOOPS_HOME=str(home),
                           AUTOOPS_FLUSH_DEADLINE="1")  # fmt: skip
        assert run("-q", "replay", str(events), env=theirs).returncode == 4
        kept = outbox_status(theirs)["pending_batches"]
        proxy.faults.post_statuses = []
        ours = clean_env(**served_env(served, proxy.url), AUTOOPS_HOME=str(home))
        flushed = run("--json", "buffer", "flush", *PATIENT, env=ours)
        assert flushed.returncode == 0, flushed.stderr
        result = json.loads(flushed.stdout)
        assert result["delivered_batches"] == 0
        assert result["other_projects"] == [{"public_key": "pk-lf-other-project", "batches": kept}]
        assert ids(served.store)["traces"] == set()  # nothing sent with these keys
        # This project's own run is sent, theirs still waits, and is named at the end.
        replayed = run("--json", "replay", str(events), "--limit", "5", "--run-id", "ours",
                       env=ours)  # fmt: skip
        assert replayed.returncode == 0, replayed.stderr
        assert "recorded with another project's keys remain in the outbox: " in replayed.stderr
        assert len(ids(served.store)["traces"]) == 5
        assert outbox_status(ours)["pending_batches"] == kept
        # Their keys send theirs (refused here: serve has the other keys).
        assert run("buffer", "flush", env=theirs).returncode == 3
    finally:
        proxy.close()


def test_from_moves_only_this_projects_batches_of_the_other_host(
    workdir: Path, served: ServeHandle
) -> None:
    """`buffer flush --from HOST` moved every batch of the host, another project's too, and
    sent them with this project's keys (its spans re-keyed, its scores in this project)."""
    events = generated(workdir, 30, seed=12)
    home = {"AUTOOPS_HOME": str(workdir / "from")}
    gone = refused_url()
    other = {"LANGFUSE_PUBLIC_KEY": "pk-lf-other-project",
             "LANGFUSE_SECRET_KEY": "sk-lf-other-project-secret"}  # fmt: skip
    theirs = clean_env(**{**served_env(served, gone), **other}, **home, AUTOOPS_FLUSH_DEADLINE="1")
    ours_there = clean_env(**served_env(served, gone), **home, AUTOOPS_FLUSH_DEADLINE="1")
    assert run("-q", "replay", str(events), "--run-id", "theirs", env=theirs).returncode == 4
    kept_theirs = outbox_status(theirs)["pending_batches"]
    mine = run("--json", "replay", str(events), "--limit", "5", "--run-id", "ours", env=ours_there)
    assert mine.returncode == 4, mine.stderr
    ours = clean_env(**served_env(served), **home)
    moved = run("--json", "buffer", "flush", *PATIENT, "--from", gone, "--yes", env=ours)
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)
    assert result["moved_from"]["batches"] == result["delivered_batches"] > 0
    assert len(ids(served.store)["traces"]) == 5  # this project's run only
    left = {entry["host"]: entry["batches"] for entry in outbox_status(ours)["by_host"]}
    assert left == {gone: kept_theirs}  # theirs stays for their keys
    again = run("buffer", "flush", "--from", gone, "--yes", env=ours)
    assert again.returncode == 2 and "another project's" in again.stderr, again.stderr


def test_batches_of_another_host_are_listed_sent_and_dropped(
    workdir: Path, served: ServeHandle
) -> None:
    events = generated(workdir, 120, seed=16)
    home = {"AUTOOPS_HOME": str(workdir / "hosts")}
    wrong, other = refused_url(), refused_url()
    # This project's keys, a wrong LANGFUSE_HOST (a typo, an old instance).
    first = run("--json", "replay", str(events), "--run-id", "wrong",
                env=clean_env(**served_env(served, wrong), **home))  # fmt: skip
    assert first.returncode == 4, first.stderr
    recorded = json.loads(first.stdout)
    second = run("-q", "replay", str(events), "--limit", "20", "--run-id", "other",
                 env=clean_env(**served_env(served, other), **home))  # fmt: skip
    assert second.returncode == 4, second.stderr
    # A run sends its own host's backlog only, and says what waits for the others.
    assert f"batch(es) for other hosts remain in the outbox: {wrong} (" in second.stderr
    right = clean_env(**served_env(served), **home)

    status = outbox_status(right)
    assert status["current_host"] == served.url
    hosts = {entry["host"]: entry for entry in status["by_host"]}
    assert set(hosts) == {wrong, other}
    assert hosts[wrong]["spans"] == recorded["observations_recorded"]
    assert not hosts[wrong]["current"]
    table = run("buffer", "status", env=right).stdout
    assert wrong in table and other in table

    flushed = run("buffer", "flush", *PATIENT, env=right)
    assert flushed.returncode == 0, flushed.stderr
    assert "no batch waits for" in flushed.stderr
    assert "batch(es) for other hosts remain in the outbox" in flushed.stderr
    assert wrong in flushed.stderr and other in flushed.stderr

    unconfirmed = run("buffer", "flush", "--from", wrong, env=right)
    assert unconfirmed.returncode == 2
    assert "give --yes to confirm" in unconfirmed.stderr
    assert outbox_status(right)["hosts"].get(wrong)
    # A host nothing is kept for is said so before any question (it asked to send 0).
    for nothing in ("", other + "x"):
        asked = run("buffer", "flush", "--from", nothing, env=right)
        assert asked.returncode == 2
        assert "no batches are kept for that host" in asked.stderr
        assert "give --yes" not in asked.stderr

    # Written with a trailing slash and in capitals, it is that host (it was "no batches
    # are kept for that host").
    moved = run("--json", "buffer", "flush", *PATIENT, "--from", wrong.upper() + "/", "--yes",
                env=right)  # fmt: skip
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)
    assert result["moved_from"] == {"host": wrong, "batches": hosts[wrong]["batches"],
                                    "dead_letters": 0}  # fmt: skip
    assert result["remaining_batches"] == 0
    assert result["other_hosts"] == [{"host": other, "batches": hosts[other]["batches"]}]
    on_server = ids(served.store)
    assert len(on_server["traces"]) == recorded["traces_recorded"]
    assert len(on_server["observations"]) == recorded["observations_recorded"]
    assert len(on_server["scores"]) == recorded["scores_recorded"]

    assert run("buffer", "drop", "--host", other, env=right).returncode == 2
    # A mistyped host drops nothing, asks nothing, and says which hosts the outbox keeps.
    typo = run("buffer", "drop", "--host", other + "x", env=right)
    assert typo.returncode == 0, typo.stderr
    assert f"nothing is kept for {other}x; the outbox keeps batches for {other}" in typo.stderr
    malformed = run("buffer", "drop", "--host", "http://[bad", env=right)
    assert malformed.returncode == 0, malformed.stderr
    assert "nothing is kept for http://[bad" in malformed.stderr
    dropped = run("--json", "buffer", "drop", "--host", other + "/", "--yes", env=right)
    assert dropped.returncode == 0, dropped.stderr
    assert json.loads(dropped.stdout)["dropped_batches"] == hosts[other]["batches"]
    assert outbox_status(right)["by_host"] == []


# --- buffer flush: fast failure, and waiting when asked -----------------------------------------


def test_buffer_flush_fails_fast_when_refused_and_waits_when_asked(workdir: Path) -> None:
    events = generated(workdir, 50, seed=17)
    url = refused_url()
    env = clean_env(**keys(url), AUTOOPS_HOME=str(workdir / "flush"))
    assert run("-q", "replay", str(events), env=env).returncode == 4
    started = time.monotonic()
    refused = run("buffer", "flush", env=env)
    elapsed = time.monotonic() - started
    assert refused.returncode == 4
    assert "nothing delivered for 2 s" in refused.stderr
    assert elapsed < 10  # 2 s without progress, not the 30 s of a total timeout

    port = int(url.rsplit(":", 1)[1])
    waiting = subprocess.Popen(
        [autoops_executable(), "--json", "buffer", "flush", "--wait", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    time.sleep(3)  # the server comes up later than the flush started
    server = FakeLangfuse(port=port)
    try:
        stdout, stderr = waiting.communicate(timeout=120)
    finally:
        server.close()
    assert waiting.returncode == 0, stderr
    assert json.loads(stdout)["remaining_batches"] == 0
    assert len({span.trace_id for span in server.received.spans}) == 50


def test_a_damaged_span_batch_in_the_outbox_holds_back_no_other(
    workdir: Path, served: ServeHandle
) -> None:
    """A row whose body is no whole gzip failed the merging of every request it was in:
    the rows beside it stayed, retried as a network failure (exit 4), and the refusal was
    blamed on another row. It is sent alone and refused alone; the others are delivered."""
    events = generated(workdir, 200, seed=5)
    home = workdir / "damaged"
    env = clean_env(**served_env(served, refused_url()), AUTOOPS_HOME=str(home))
    assert run("-q", "replay", str(events), env=env).returncode == 4
    with sqlite3.connect(home / "traces.db") as db:
        rows = [row[0] for row in db.execute("SELECT seq FROM outbox WHERE kind = 'spans'")]
        assert len(rows) >= 3, rows
        damaged = rows[len(rows) // 2]
        db.execute("UPDATE outbox SET host = ?", (served.url,))
        db.execute("UPDATE outbox SET body = X'1f8b0800' WHERE seq = ?", (damaged,))
        kept = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    flushed = run("--json", "buffer", "flush", *PATIENT, env={**env, "LANGFUSE_HOST": served.url})
    assert flushed.returncode == 5, flushed.stderr
    with sqlite3.connect(home / "traces.db") as db:
        assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        dead = db.execute("SELECT seq, status FROM dead_letters").fetchall()
    assert [seq for seq, _ in dead] == [damaged] and dead[0][1] == 400
    assert json.loads(flushed.stdout)["delivered_batches"] == kept - 1


class SilentPeer:
    """A loopback peer that takes connections and never answers: a request to it is in
    flight until the client gives up. ``connected`` counts the connections taken."""

    def __init__(self) -> None:
        import socket
        import threading

        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.connected = 0
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            self._held.append(connection)
            self.connected += 1

    def close(self) -> None:
        self._socket.close()
        for connection in self._held:
            connection.close()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stopped_buffer_flush_says_what_it_delivered_and_kept(
    workdir: Path, signum: int, code: int
) -> None:
    """Ctrl-C during buffer flush exited 130 with nothing said, --json included; SIGTERM
    ended it by the signal. It now ends with its result: what was delivered, what the
    outbox keeps (equal to the file), and the stop."""
    events = generated(workdir, 50, seed=17)
    peer = SilentPeer()
    home = workdir / f"stopped-{signum}"
    env = clean_env(**keys(peer.url), AUTOOPS_HOME=str(home), AUTOOPS_FLUSH_DEADLINE="1")
    try:
        assert run("-q", "replay", str(events), env=env).returncode == 4
        before = peer.connected
        waiting = subprocess.Popen(
            [autoops_executable(), "--json", "buffer", "flush", "--wait", "60"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while peer.connected == before and time.monotonic() < deadline:
            time.sleep(0.05)  # until the flush's first request is in flight
        assert peer.connected > before
        waiting.send_signal(signum)
        stdout, stderr = waiting.communicate(timeout=60)
    finally:
        peer.close()
    assert waiting.returncode == code, stderr
    result = json.loads(stdout)
    name = signal.Signals(signum).name
    assert result["stopped"] == name
    assert result["delivered_batches"] == 0
    assert result["remaining_batches"] == result["batches_before"] > 0
    with sqlite3.connect(home / "traces.db") as db:
        kept = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert kept == result["remaining_batches"]
    assert f"stopped by {name}: 0 batch(es) delivered" in stderr


def outbox_rows(store: Path) -> tuple[int, int]:
    """(batches waiting, dead letters) in the store file."""
    with sqlite3.connect(store) as db:
        waiting = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        dead = db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0]
    return int(waiting), int(dead)


@pytest.mark.parametrize("delay_s", [0.9, 1.1, 1.3])
def test_a_refusal_around_the_end_of_the_delivery_is_counted_as_the_store_holds_it(
    workdir: Path, delay_s: float
) -> None:
    """A peer that refuses every batch (400) after about the flush deadline: an answer
    landing after the final delivery gave up, but before the run counted what waits, moved
    its batch to the dead letters, and the summary had it in neither count (exit 4, 'kept
    in the outbox', no dead letter). Whatever the timing, the summary is the store."""
    from http.server import BaseHTTPRequestHandler

    from tests.support.loopback import LoopbackServer, reply

    class SlowRefusal(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay_s)
            reply(self, 400, b'{"message": "bad batch"}')

    peer = LoopbackServer(SlowRefusal)
    home = workdir / f"refused-{delay_s}"
    env = clean_env(**keys(peer.url), AUTOOPS_HOME=str(home), AUTOOPS_FLUSH_DEADLINE="1")
    try:
        done = run("--json", "replay", str(generated(workdir, 20, seed=5)), env=env)
    finally:
        peer.close()
    summary = json.loads(done.stdout)
    waiting, dead = outbox_rows(home / "traces.db")
    assert summary["delivery"]["batches_waiting"] == waiting
    assert summary["tracing"]["dead_letters"] == dead
    assert done.returncode == (5 if dead else 4), done.stderr


def test_two_flushes_of_one_outbox_count_each_batch_once(
    workdir: Path, served: ServeHandle
) -> None:
    """Two buffer flush at once on one outbox: each sends what it reads, and each counted
    every batch it sent, though the other had delivered (and removed) some: 80 + 80
    delivered for 80 batches. A flush counts the rows it removed."""
    proxy = FaultProxy(served.url, ProxyFaults(html=True))  # nothing delivered: all kept
    env = clean_env(**served_env(served, proxy.url), AUTOOPS_HOME=str(workdir / "shared"))
    try:
        kept = run("-q", "replay", str(generated(workdir, 300, seed=8)), env=env)
        assert kept.returncode == 5, kept.stderr
        backlog = outbox_rows(workdir / "shared" / "traces.db")[0]
        proxy.faults = ProxyFaults()  # Langfuse is back
        command = [autoops_executable(), "--json", "buffer", "flush", *PATIENT]
        flushes = [
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            )
            for _ in range(2)
        ]
        results = [flush.communicate(timeout=300) for flush in flushes]
    finally:
        proxy.close()
    assert [flush.returncode for flush in flushes] == [0, 0], results
    delivered = [json.loads(stdout)["delivered_batches"] for stdout, _ in results]
    assert outbox_rows(workdir / "shared" / "traces.db")[0] == 0
    assert sum(delivered) == backlog > 0, results


def test_a_flush_beside_a_running_replay_is_no_network_error(
    workdir: Path, served: ServeHandle
) -> None:
    """A buffer flush while a langfuse-mode replay writes and sends the same outbox: once
    the rows it found were delivered, its own request for the replay's newer rows was still
    under way, and it exited 4 after a second ("nothing delivered for 60 s") against a
    healthy server. It now says another process is adding rows, exit 0."""
    env = clean_env(**served_env(served), AUTOOPS_HOME=str(workdir / "shared"),
                    AUTOOPS_FLUSH_DEADLINE="60")  # fmt: skip
    events = generated(workdir, 1500, seed=21)
    replay = subprocess.Popen(
        [autoops_executable(), "--json", "replay", str(events)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        store = workdir / "shared" / "traces.db"
        deadline = time.monotonic() + 120  # until the outbox has rows (only a hang reaches it)
        while time.monotonic() < deadline and replay.poll() is None:
            try:
                if store.exists() and outbox_rows(store)[0] > 0:
                    break
            except sqlite3.OperationalError:  # the file made, its tables not yet (or locked)
                pass
            time.sleep(0.05)
        flushes = [run("--json", "buffer", "flush", *PATIENT, env=env) for _ in range(2)]
    finally:
        replayed, _ = replay.communicate(timeout=300)
    assert replay.returncode == 0
    for flush in flushes:
        assert flush.returncode == 0, flush.stderr
        assert "nothing delivered" not in flush.stderr
    assert outbox_rows(store) == (0, 0)
    summary = json.loads(replayed)
    traces = httpx.get(served.url + "/api/public/traces", params={"limit": 1},
                       auth=served.auth, timeout=30).json()  # fmt: skip
    assert traces["meta"]["totalItems"] == summary["traces_recorded"] == 1500


# --- a full disk ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["local", "langfuse"])
def test_a_full_disk_stops_the_run_and_counts_only_what_is_on_disk(
    workdir: Path, mode: str, reliability: Figures
) -> None:
    events = generated(workdir, 2000, seed=18)
    with small_disk(workdir / "small", 3 * 1024 * 1024) as (directory, how, preexec):
        env = clean_env(AUTOOPS_HOME=str(directory))
        if mode == "langfuse":
            env.update(keys(refused_url()))  # nothing leaves: everything is in the outbox
        done = subprocess.run(
            [autoops_executable(), "--json", "replay", str(events)],
            capture_output=True, text=True, env=env, timeout=300, preexec_fn=preexec,  # type: ignore[arg-type]
            check=False,
        )  # fmt: skip
        assert done.returncode == 6, (how, done.stderr)
        summary = json.loads(done.stdout)
        assert 0 < summary["events_processed"] < 2000, how
        assert summary["write_error"]
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1
        assert "the run stopped" in errors[0]
        assert f"{summary['events_processed']} event(s) recorded before the failure" in errors[0]
        # The events of the batch that could not be written are named, not left unaccounted.
        lost = summary["events_total"] - summary["events_processed"] - summary["events_failed"]
        assert lost > 0 and f"{lost} read but not recorded" in errors[0]
        assert "kept in the outbox" not in done.stderr  # nothing claimed that was not written
        store = directory / "traces.db"
        if mode == "local":
            assert "cannot write to the local store" in errors[0]
            on_disk = ids(store)
            assert len(on_disk["traces"]) == summary["traces_recorded"]
            assert len(on_disk["observations"]) == summary["observations_recorded"]
            assert len(on_disk["scores"]) == summary["scores_recorded"]
        else:
            assert "cannot write to the outbox in" in errors[0]
            status = outbox_status(env)
            assert status["pending_spans"] == summary["observations_recorded"]
            assert status["pending_scores"] == summary["scores_recorded"]
    reliability.tried(2000)
    reliability.exited(done.returncode)
    reliability.missing(0)


def test_a_host_that_never_answers_is_named_in_the_summary(tmp_path: Path) -> None:
    """A host that takes the connection and never answers has failed nothing when the flush
    deadline ends the run: the summary's last error says a request is unanswered, where it
    said nothing (state ok, no error) beside exit 4."""
    from tests.support.trickle_peer import TricklePeer

    events = tmp_path / "events.jsonl"
    write_events(events, generate_events(5, seed=3))
    peer = TricklePeer(interval=60.0, trickle_headers=True)
    try:
        env = clean_env(
            AUTOOPS_HOME=str(tmp_path / "home"), LANGFUSE_HOST=peer.url,
            LANGFUSE_PUBLIC_KEY=KNOWN_PUBLIC, LANGFUSE_SECRET_KEY=KNOWN_SECRET,
            AUTOOPS_FLUSH_DEADLINE="2",
        )  # fmt: skip
        done = run("--json", "replay", str(events), env=env)
    finally:
        peer.close()
    assert done.returncode == 4, done.stderr
    delivery = json.loads(done.stdout)["delivery"]
    assert delivery["batches_delivered"] == 0 and delivery["batches_waiting"] > 0
    assert delivery["last_error"].startswith(f"no answer from {peer.url} after ")
    assert "(last error: no answer from" in done.stderr


@pytest.mark.parametrize(("answer", "code"), [(None, 130), (b"n\n", 1)])
def test_a_question_interrupted_is_130_and_one_declined_says_so(
    workdir: Path, answer: bytes | None, code: int
) -> None:
    """Ctrl-C at `buffer drop`'s question was click's "Aborted!", exit 1 (a failed check's
    code), not 130; a "no" ended with exit 1 and nothing said. Nothing is dropped."""
    import os
    import pty

    from config.delivery.outbox import SPANS, Outbox

    home = workdir / "asked"
    home.mkdir()
    outbox = Outbox(home / "traces.db")
    outbox.add(SPANS, "https://kept.invalid", b"batch", 3)
    outbox.close()
    controller, terminal = pty.openpty()

    def output(until: float) -> bytes:
        """What the terminal shows next, or nothing by ``until`` (a hang fails, not waits)."""
        ready, _, _ = select.select([controller], [], [], max(0.0, until - time.monotonic()))
        return os.read(controller, 4096) if ready else b""

    # Started as a shell starts it, Ctrl-C not ignored: this test process may ignore SIGINT
    # (an in-process replay before it), and a child inherits that.
    handler = signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        asking = subprocess.Popen(
            [autoops_executable(), "buffer", "drop", "--host", "https://kept.invalid"],
            stdin=terminal, stdout=terminal, stderr=terminal,
            env=clean_env(AUTOOPS_HOME=str(home)),
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, handler)
        os.close(terminal)
    try:
        seen = b""
        deadline = time.monotonic() + 60  # until it asks (only a hang reaches this)
        while b"[y/N]" not in seen and time.monotonic() < deadline:
            seen += output(deadline)
        if answer is None:
            asking.send_signal(signal.SIGINT)
        else:
            os.write(controller, answer)
        deadline = time.monotonic() + 60
        with contextlib.suppress(OSError):  # the terminal's other end closed: it has ended
            while chunk := output(deadline):
                seen += chunk
        assert asking.wait(timeout=60) == code, seen
    finally:
        os.close(controller)
        if asking.poll() is None:  # a failed run leaves no process behind
            asking.kill()
            asking.wait()
    assert b"Aborted" not in seen and b"Traceback" not in seen
    if answer is not None:
        assert b"not confirmed: nothing was changed" in seen
    assert outbox_status(clean_env(AUTOOPS_HOME=str(home)))["pending_batches"] == 1
