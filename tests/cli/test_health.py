"""``autoops health-check``: every outcome has its exit code, within the timeout."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.fake_langfuse import FakeLangfuse
from tests.support.serve_process import ServeHandle


def checks(result) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def keys_for(url: str, secret: str = KNOWN_SECRET) -> dict[str, str]:
    return {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": secret,
        "LANGFUSE_HOST": url,
    }


def test_healthy_serve(cli: Cli, served: ServeHandle, workdir: Path) -> None:
    result = cli("health-check", "--json", "--junit", "report.xml", env=served.client_env())
    assert result.exit_code == 0, result.stdout
    found = checks(result)
    assert found["endpoint"]["status"] == "ok"
    assert found["credentials"]["status"] == "ok" and found["credentials"]["value"]
    assert found["read path"]["value"] == "v2"
    assert found["transport security"]["status"] == "ok"  # plain http on loopback is fine
    assert json.loads(result.stdout)["healthy"] is True
    suite = ElementTree.parse(workdir / "report.xml").getroot()
    assert suite.tag == "testsuite"
    assert [case.get("name") for case in suite.findall("testcase")] == list(found)
    # Plain http to loopback is nothing to warn about: --strict passes too.
    strict = cli("health-check", "--strict", env=served.client_env())
    assert strict.exit_code == 0, strict.stdout


def test_local_mode_checks_the_store(cli: Cli) -> None:
    result = cli("health-check", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["mode"] == "local"
    assert "local mode" in checks(result)["local store"]["message"]


def test_a_store_that_is_no_database_or_cannot_be_made_fails_with_a_report(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A corrupt store gave only an error line (no JSON, no JUnit file); a home that is a
    file passed, and the next replay failed."""
    home = workdir / ".autoops"
    home.mkdir()
    (home / "traces.db").write_text("garbage")
    junit = workdir / "health.xml"
    corrupt = cli("--json", "health-check", "--junit", str(junit))
    assert corrupt.exit_code == 1, corrupt.both
    checks = {c["name"]: c for c in json.loads(corrupt.stdout)["checks"]}
    assert checks["local store"]["status"] == checks["outbox"]["status"] == "fail"
    assert "not a database" in checks["outbox"]["message"] and junit.exists()
    not_a_folder = workdir / "home-file"
    not_a_folder.write_text("x")
    monkeypatch.setenv("AUTOOPS_HOME", str(not_a_folder))
    blocked = cli("--json", "health-check")
    assert blocked.exit_code == 1, blocked.both
    store = next(c for c in json.loads(blocked.stdout)["checks"] if c["name"] == "local store")
    assert store["status"] == "fail" and "is not a directory" in store["message"]
    # A replay says the same (it said "[Errno 17] File exists: ..."), exit 6.
    replayed = cli("replay", str(EXAMPLE), "--limit", "1")
    assert replayed.exit_code == 6
    assert f"{not_a_folder} is not a directory" in replayed.stderr
    assert "Errno" not in replayed.stderr
    # The read commands said "no traces yet" (exit 0): there can be none.
    for command in (("traces", "list", "--local"), ("metrics", "--local"), ("buffer", "status")):
        read = cli(*command)
        assert read.exit_code == 6, read.both
        assert f"{not_a_folder} is not a directory" in read.stderr
    # A link in a loop, or to nowhere, is no folder either: the read commands said "no
    # traces yet", and a replay "[Errno 17] File exists".
    (workdir / "loop-a").symlink_to(workdir / "loop-b")
    (workdir / "loop-b").symlink_to(workdir / "loop-a")
    (workdir / "dangling").symlink_to(workdir / "nowhere" / "home")
    # A folder where the store's file should be: "0 batches" (buffer) or "no traces yet".
    folder_home = workdir / "folder-home"
    (folder_home / "traces.db").mkdir(parents=True)
    monkeypatch.setenv("AUTOOPS_HOME", str(folder_home))
    for command in (("buffer", "status"), ("traces", "list", "--local")):
        result = cli(*command)
        assert result.exit_code == 6, result.both
        assert f"{folder_home / 'traces.db'}: it is not a file" in result.stderr
    for link in (workdir / "loop-a", workdir / "dangling"):
        monkeypatch.setenv("AUTOOPS_HOME", str(link))
        for command in (("replay", str(EXAMPLE), "--limit", "1"), ("traces", "list", "--local")):
            result = cli(*command)
            assert result.exit_code == 6, result.both
            assert f"{link} is not a directory" in result.stderr


def test_the_sampling_check_says_what_the_core_would_do_and_why(cli: Cli, workdir: Path) -> None:
    """With sampling switched off, the rate (1) was credited to the file (which said 0);
    with a file that does not parse, the defaults it fell back to were "ok, rate 1"."""
    (workdir / "autoops.toml").write_text("[langfuse]\nsample_rate = 0.0\n")
    off = checks(cli("--json", "health-check", env={"LANGFUSE_ENABLE_SAMPLING": "false"}))
    assert off["sampling"]["value"] == 1.0
    assert off["sampling"]["message"] == (
        "sampling off: every trace is kept (environment variable LANGFUSE_ENABLE_SAMPLING)"
    )
    (workdir / "autoops.toml").write_text("[langfuse]\nsample_rate = 0.2\nbroken = \n")
    broken = checks(cli("--json", "health-check"))
    assert broken["configuration"]["status"] == "fail"
    assert (broken["sampling"]["status"], broken["sampling"]["value"]) == ("warn", None)


def test_refused_connection_is_exit_4(cli: Cli) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("health-check", "--json", env=keys_for(f"http://127.0.0.1:{port}"))
    assert result.exit_code == 4
    assert checks(result)["endpoint"]["status"] == "fail"
    # Said on stderr too, as every failure is (with --json a CI log showed no error at all).
    (said,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert said.startswith("error: not healthy: endpoint: ") and str(port) in said


def test_timeout_is_exit_4_within_the_timeout(cli: Cli, fake_langfuse: FakeLangfuse) -> None:
    fake_langfuse.faults.delay_s = 60.0  # answers long after both the timeout and the ceiling
    started = time.monotonic()
    result = cli("health-check", "--timeout", "1", "--json", env=keys_for(fake_langfuse.url))
    # Ended by its 1 s timeout, not by the server's answer: only waiting for that gets here.
    assert time.monotonic() - started < 30
    assert result.exit_code == 4
    assert "timed out" in checks(result)["endpoint"]["message"]


def test_bad_keys_are_exit_3(cli: Cli, fake_langfuse: FakeLangfuse) -> None:
    result = cli(
        "health-check", "--json", env=keys_for(fake_langfuse.url, "sk-lf-wrong-0000000000")
    )
    assert result.exit_code == 3
    assert "keys rejected" in checks(result)["credentials"]["message"]
    assert "sk-lf-wrong-0000000000" not in result.stdout + result.stderr


def test_503_from_health_is_exit_1(cli: Cli, fake_langfuse: FakeLangfuse) -> None:
    fake_langfuse.faults.health_status = 503
    result = cli("health-check", "--json", env=keys_for(fake_langfuse.url))
    assert result.exit_code == 1
    assert "Database not available" in checks(result)["endpoint"]["message"]


def test_plain_http_to_a_remote_host_is_exit_3(cli: Cli) -> None:
    result = cli("health-check", "--json", env=keys_for("http://langfuse.example.com"))
    assert result.exit_code == 3
    assert checks(result)["configuration"]["status"] == "fail"


def test_v1_only_server_warns_about_the_read_path(cli: Cli, fake_langfuse: FakeLangfuse) -> None:
    result = cli("health-check", "--json", env=keys_for(fake_langfuse.url))
    assert result.exit_code == 0
    assert checks(result)["read path"]["value"] == "v1"


def test_deploy_canary_found_on_serve(cli: Cli, served: ServeHandle) -> None:
    import httpx

    result = cli("deploy", "--json", "--canary-timeout", "20", env=served.client_env())
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert [s["step"] for s in report["steps"]] == ["health-check", "initialize", "canary"]
    trace_id = report["canary"]["trace_id"]
    assert report["canary"]["ingestion_delay_s"] >= 0
    trace = httpx.get(
        f"{served.url}/api/public/traces/{trace_id}", auth=served.auth, timeout=10
    ).json()
    assert trace["name"] == "simulation.demand_spike"
    assert len(trace["observations"]) >= 3


def test_a_refused_older_batch_is_not_blamed_on_the_canary(cli: Cli, served: ServeHandle) -> None:
    """The outbox holds batches of an earlier run, and the first of them is refused: the
    deploy said its canary was refused (exit 5), though the canary itself arrived."""
    from tests.support.fault_proxy import FaultProxy, ProxyFaults

    proxy = FaultProxy(served.url, ProxyFaults(post_statuses=[503] * 10_000))
    try:
        env = {**served.client_env(), "LANGFUSE_HOST": proxy.url, "AUTOOPS_FLUSH_DEADLINE": "1"}
        assert cli("replay", str(EXAMPLE), "--limit", "2", env=env).exit_code == 4
        proxy.faults.post_statuses = [400]  # the oldest batch left, sent first and alone
        result = cli("deploy", "--json", "--canary-timeout", "30", env=env)
    finally:
        proxy.close()
    report = json.loads(result.stdout)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert report["steps"][-1]["status"] == "ok"
    status = json.loads(cli("--json", "buffer", "status", env=env).stdout)
    assert status["dead_letters"] == 1  # the older batch's refusal, kept


def test_deploy_fails_when_the_read_path_lags(cli: Cli, fake_langfuse: FakeLangfuse) -> None:
    """The fake accepts spans but never shows them: the canary times out, exit 1."""
    started = time.monotonic()
    result = cli("deploy", "--json", "--canary-timeout", "2", env=keys_for(fake_langfuse.url))
    assert result.exit_code == 1
    # Bounded by the canary timeout: without it the canary would wait for ever.
    assert time.monotonic() - started < 60
    canary = json.loads(result.stdout)["steps"][-1]
    assert canary["status"] == "fail" and "not visible within 2 s" in canary["detail"]
    assert f"error: deploy failed at canary: {canary['detail']}" in result.stderr


def test_deploy_dry_run_sends_nothing(cli: Cli, served: ServeHandle) -> None:
    import httpx

    result = cli("deploy", "--dry-run", "--json", env=served.client_env())
    assert result.exit_code == 0
    assert json.loads(result.stdout)["canary"]["sent"] is False
    listed = httpx.get(f"{served.url}/api/public/traces", auth=served.auth, timeout=10).json()
    assert listed["meta"]["totalItems"] == 0


def test_deploy_in_local_mode(cli: Cli) -> None:
    result = cli("deploy", "--json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["canary"]["ingestion_delay_s"] >= 0


def test_wait_retries_until_the_server_is_up(cli: Cli) -> None:
    import threading

    not_yet = socket.socket()
    not_yet.bind(("127.0.0.1", 0))
    not_yet.listen(1)
    not_yet.settimeout(60)  # generous: the first attempt comes within a second or so
    port = not_yet.getsockname()[1]
    servers: list[FakeLangfuse] = []

    def start_after_the_first_attempt() -> None:
        """Fail the first attempt (closed without an answer), then start the server: the
        order is fixed by the attempt itself, not by a delay a busy machine could outrun."""
        with not_yet:
            connection, _ = not_yet.accept()
            # Reset, not a graceful close: the port is then free for the server at once.
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            connection.close()
        servers.append(FakeLangfuse(port=port))

    starter = threading.Thread(target=start_after_the_first_attempt)
    starter.start()
    try:
        result = cli(
            "health-check",
            "--wait",
            "15",
            "--timeout",
            "2",
            "--json",
            env=keys_for(f"http://127.0.0.1:{port}"),
        )
    finally:
        starter.join()
        for server in servers:
            server.close()
    assert result.exit_code == 0, result.stdout
    assert "checking again" in result.stderr


def test_a_secret_file_readable_by_others_is_a_warning(
    cli: Cli, served: ServeHandle, workdir: Path
) -> None:
    config = workdir / "autoops.toml"
    config.write_text(
        f"[langfuse]\npublic_key = '{served.public_key}'\n"
        f"secret_key = '{served.secret_key}'\nhost = '{served.url}'\n"
    )
    config.chmod(0o644)
    result = cli("health-check", "--json")
    message = checks(result)["configuration"]["message"]
    assert checks(result)["configuration"]["status"] == "warn"
    assert "readable by others" in message and "chmod 600" in message
    assert str(served.secret_key) not in result.both
    config.chmod(0o600)
    assert (
        "readable by others"
        not in checks(cli("health-check", "--json"))["configuration"]["message"]
    )
