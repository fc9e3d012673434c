"""``--timeout`` bounds the whole command, also against a peer trickling its answer.

The peer sends a byte a second, so each socket read is quick and httpx's per-read timeouts
never fire; the answer would take about a minute. Every read command must end with exit 4,
naming the host, once its ``--timeout`` is spent (the bound asserted is the behaviour, far
from any speed: a command still running after 30 s has ignored its 2 s budget).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.cli.test_health import keys_for
from tests.conftest import Cli
from tests.support.trickle_peer import TricklePeer

COMMANDS = {
    "traces list": ("traces", "list"),
    "traces show": ("traces", "show", "0" * 32),
    "metrics": ("metrics", "--refresh"),
    "health-check": ("health-check", "--json"),
}


@pytest.mark.parametrize("trickle_headers", [False, True], ids=["body", "headers"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_trickling_peer_is_cut_off_at_the_timeout(
    cli: Cli, command: str, trickle_headers: bool
) -> None:
    peer = TricklePeer(trickle_headers=trickle_headers)
    try:
        started = time.monotonic()
        result = cli(*COMMANDS[command], "--timeout", "2", env=keys_for(peer.url))
        elapsed = time.monotonic() - started
    finally:
        peer.close()
    assert peer.requests, "the command never reached the peer"
    assert elapsed < 30, f"{command} ran {elapsed:.0f} s with --timeout 2"
    assert result.exit_code == 4, result.both
    if command == "health-check":
        endpoint = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["endpoint"]
        assert endpoint["message"].startswith(f"timed out: {peer.url}")
    else:
        assert peer.url in result.stderr and "within the timeout" in result.stderr
