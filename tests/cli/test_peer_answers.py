"""Answers a Langfuse never gives, from a peer that answers quickly: each is an error naming
the answer (a failed check for health-check, exit 1; exit 5 for the read commands), never
a success, nor a timeout blamed on the network.

The peer answers every route from a table of functions (path, query) -> (status, type, body).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import Cli
from tests.support.loopback import LoopbackServer, reply

Reply = tuple[int, str, bytes]
Route = Callable[[dict[str, list[str]]], Reply]

HEALTH: Reply = (200, "application/json", b'{"status": "OK", "version": "3.100.0"}')
LOGIN_PAGE: Reply = (200, "text/html", b"<html><body>Sign in</body></html>")
PROJECTS: Reply = (200, "application/json", b'{"data": [{"id": "p", "name": "proj"}]}')
EMPTY: Reply = (200, "application/json", b'{"data": [], "meta": {}}')
TRACE_ID = "abcdef12" * 4


def json_reply(document: Any, status: int = 200) -> Reply:
    return status, "application/json", json.dumps(document).encode()


class Peer:
    """A loopback HTTP peer; ``routes`` maps a path to its answer, ``fallback`` the rest."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.fallback: Route = lambda query: (404, "application/json", b'{"message": "no"}')
        self.requests = 0
        self.posted = False  # an OTLP request arrived (answered ``post_answer``)
        self.post_answer: Reply = (200, "application/json", b"{}")
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                peer.requests += 1
                url = urlsplit(self.path)
                route = peer.routes.get(url.path, peer.fallback)
                status, content_type, body = route(parse_qs(url.query))
                reply(self, status, body, content_type)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                peer.posted = True
                status, content_type, body = peer.post_answer
                reply(self, status, body, content_type)

        self._server = LoopbackServer(Handler)
        self.url = self._server.url

    def env(self, workdir: Path) -> dict[str, str]:
        home = workdir / f"home-{time.monotonic_ns()}"  # no cached answer carries over
        os.makedirs(home)
        return {
            "LANGFUSE_HOST": self.url,
            "LANGFUSE_PUBLIC_KEY": "pk-lf-test",
            "LANGFUSE_SECRET_KEY": "sk-lf-test",
            "AUTOOPS_HOME": str(home),
        }

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.close()


def one_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


# --- health-check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "page", [LOGIN_PAGE, (200, "application/json", b'{"data": [1,2,'), json_reply({"ok": 1})]
)
def test_a_peer_answering_200_pages_that_are_not_the_api_is_not_healthy(
    cli: Cli, workdir: Path, peer: Peer, page: Reply
) -> None:
    """A login page or a proxy that answers 200 to everything but health: the keys were
    accepted by nothing, and the read path is not there."""
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.fallback = lambda query: page
    result = cli("--json", "health-check", "--timeout", "5", env=peer.env(workdir))
    report = json.loads(result.stdout)
    assert result.exit_code == 1, result.stdout
    assert report["healthy"] is False
    credentials = {c["name"]: c for c in report["checks"]}["credentials"]
    assert credentials["status"] == "fail"
    assert "projects answered 200 without" in credentials["message"]


@pytest.mark.parametrize(
    ("page", "said"),
    [(LOGIN_PAGE, "without a JSON body (text/html)"),
     # NaN: Python's parser takes it, traces and metrics refuse it; health-check passed it.
     ((200, "application/json", b'{"data": [], "x": NaN}'), "without a JSON body")],
)  # fmt: skip
def test_a_read_path_answering_what_the_reads_refuse_fails(
    cli: Cli, workdir: Path, peer: Peer, page: Reply, said: str
) -> None:
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.fallback = lambda query: page
    result = cli("--json", "health-check", "--timeout", "5", env=peer.env(workdir))
    assert result.exit_code == 1, result.stdout
    read_path = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["read path"]
    assert read_path["status"] == "fail"
    assert f"v2 observations answered 200 {said}" in read_path["message"]


@pytest.mark.parametrize(
    ("status", "exit_code"), [(401, 3), (403, 3), (429, 1), (500, 1), (503, 1)]
)
def test_a_read_path_refusing_the_reads_fails_instead_of_promising_v1(
    cli: Cli, workdir: Path, peer: Peer, status: int, exit_code: int
) -> None:
    """Only a 404 sends the read commands to v1: any other refusal of a v2 read was a
    warning ("the v1 fallbacks will be used"), health-check exited 0, and traces and
    metrics then failed."""
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.routes["/api/public/v2/observations"] = lambda query: EMPTY
    asked: list[str] = []

    def metrics(query: dict[str, list[str]]) -> Reply:
        asked.append("metrics")
        return json_reply({"message": "Rate limit exceeded" if status == 429 else "no"}, status)

    peer.routes["/api/public/v2/metrics"] = metrics
    result = cli("--json", "health-check", "--wait", "3", env=peer.env(workdir))
    assert result.exit_code == exit_code, result.stdout
    read_path = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["read path"]
    assert read_path["status"] == "fail"
    assert read_path["message"].startswith(f"v2 metrics answered {status}")
    # Keys and a daily quota are not waited for: each retry spent a metrics request (a
    # used-up quota, worse). A 5xx is: a backend still starting behind its health route.
    if status < 500:
        assert asked == ["metrics"]
    else:
        assert len(asked) > 1


def test_waiting_sees_a_read_path_through_a_starting_backend(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """--wait stopped at the first 503 of the metrics API, though waiting is for that."""
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.routes["/api/public/v2/observations"] = lambda query: EMPTY
    answers = iter([json_reply({"message": "starting"}, 503)] * 2)
    peer.routes["/api/public/v2/metrics"] = lambda query: next(answers, json_reply({"data": []}))
    result = cli("--json", "health-check", "--wait", "30", env=peer.env(workdir))
    assert result.exit_code == 0, result.stdout


def test_waiting_retries_only_for_the_server_and_asks_its_metrics_once(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """``--wait`` reran every check every second, a v2 metrics request each time (a daily
    quota on Cloud), also when only a local check failed, which waiting cannot mend."""
    asked: list[str] = []

    def count(answer: Reply) -> Route:
        def route(query: dict[str, list[str]]) -> Reply:
            asked.append("x")
            return answer

        return route

    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.routes["/api/public/v2/observations"] = lambda query: EMPTY
    peer.routes["/api/public/v2/metrics"] = count(json_reply({"data": []}))
    env = peer.env(workdir)
    # A local warning (every trace sampled out): --strict fails on it, and waiting would
    # not change it.
    env["LANGFUSE_SAMPLE_RATE"] = "0"
    result = cli("--json", "health-check", "--strict", "--wait", "5", env=env)
    assert result.exit_code == 1, result.stdout
    failing = [c["name"] for c in json.loads(result.stdout)["checks"] if c["status"] != "ok"]
    assert set(failing) == {"configuration", "sampling"}
    # One attempt (health, projects, observations, metrics): it did not wait, the failure
    # is local.
    assert len(asked) == 1 and peer.requests == 4

    # The server's own failure is waited for; its read path is asked once all the same.
    peer.routes["/api/public/health"] = lambda query: json_reply({"status": "starting"}, 503)
    asked.clear()
    result = cli("--json", "health-check", "--wait", "3", env=env)
    assert result.exit_code == 1, result.stdout
    assert not asked


# --- traces: pages that repeat, traces without ids ------------------------------------------


@pytest.mark.parametrize("with_ids", [True, False])
def test_v2_pages_repeated_under_new_cursors_are_an_api_error(
    cli: Cli, workdir: Path, peer: Peer, with_ids: bool
) -> None:
    """Without ids too: only items with an id were compared, and pages of id-less roots
    were read until the timeout, which was then blamed on the network (exit 4)."""
    roots = [{"id": f"o{n}" if with_ids else None, "traceId": f"{n:032x}",
              "startTime": "2026-11-20T08:00:00Z"} for n in range(5)]  # fmt: skip
    fresh = iter(range(10**9))
    peer.routes["/api/public/v2/observations"] = lambda query: json_reply(
        {"data": roots, "meta": {"cursor": f"c{next(fresh)}"}}
    )
    result = cli("traces", "list", "--limit", "20", "--timeout", "30", env=peer.env(workdir))
    assert result.exit_code == 5, result.stderr
    assert "answered a page of items it gave before: its pages repeat" in one_error(result)
    assert peer.requests == 2


def test_v1_pages_that_repeat_are_an_api_error(cli: Cli, workdir: Path, peer: Peer) -> None:
    traces = [{"id": f"{n:032x}", "timestamp": "2026-11-20T08:00:00Z"} for n in range(5)]
    peer.routes["/api/public/traces"] = lambda query: json_reply(
        {"data": traces, "meta": {"page": 1, "totalPages": 10**8}}
    )
    result = cli("traces", "list", "--all", "--timeout", "30", env=peer.env(workdir))
    assert result.exit_code == 5, result.stderr
    assert "its pages repeat" in one_error(result)


@pytest.mark.parametrize(
    "detail",
    [{}, {"id": None, "observations": []}, {"id": TRACE_ID, "observations": "zzz"},
     {"id": TRACE_ID, "observations": [{"name": "no id"}]}],
)  # fmt: skip
def test_a_v1_trace_without_an_id_is_an_api_error(
    cli: Cli, workdir: Path, peer: Peer, detail: dict[str, Any]
) -> None:
    peer.routes[f"/api/public/traces/{TRACE_ID}"] = lambda query: json_reply(detail)
    result = cli("traces", "show", TRACE_ID, "--json", env=peer.env(workdir))
    assert result.exit_code == 5, result.stdout
    assert f"{peer.url}/api/public/traces/{TRACE_ID} answered" in one_error(result)


def test_v2_observations_without_ids_are_an_api_error(cli: Cli, workdir: Path, peer: Peer) -> None:
    peer.routes["/api/public/v2/observations"] = lambda query: json_reply({"data": [{}]})
    result = cli("traces", "show", TRACE_ID, "--json", env=peer.env(workdir))
    assert result.exit_code == 5, result.stdout
    assert "answered an observation without an id" in one_error(result)


def test_junit_xml_carries_control_characters_from_the_server_escaped(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """A version with ESC, BEL and NUL in it: the JUnit file still parses (XML 1.0 has no
    place for them, even as character references), and says them as the terminal does."""
    from xml.etree import ElementTree

    peer.routes["/api/public/health"] = lambda query: json_reply(
        {"status": "OK", "version": "4.35.0\u001b\u0007\u0000"}
    )
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.fallback = lambda query: EMPTY
    report = workdir / "health.xml"
    result = cli("health-check", "--junit", str(report), env=peer.env(workdir))
    assert result.exit_code == 0, result.stdout + result.stderr
    suite = ElementTree.parse(report).getroot()
    outputs = [element.text or "" for element in suite.iter("system-out")]
    assert any("4.35.0\\x1b\\x07\\x00" in text for text in outputs)


# --- deploy ----------------------------------------------------------------------------------


def failed_canary(cli: Cli, workdir: Path, peer: Peer, code: int) -> dict[str, Any]:
    """``deploy`` against the peer: the canary was posted, the run exited ``code``; its step."""
    result = cli("--json", "deploy", "--canary-timeout", "3", env=peer.env(workdir))
    assert peer.posted
    assert result.exit_code == code, result.stdout + result.stderr
    canary: dict[str, Any] = json.loads(result.stdout)["steps"][-1]
    assert canary["status"] == "fail"
    return canary


@pytest.mark.parametrize(
    ("reads", "code", "said"),
    [
        (json_reply({"message": "Invalid credentials"}, 401), 3, "rejected the API keys (401"),
        (json_reply({"message": "boom"}, 500), 5, "answered 500: boom"),
        (LOGIN_PAGE, 5, "answered 200 without a JSON body"),
        (json_reply(["not", "an", "object"]), 5, "answered 200 without a JSON object"),
    ],
)
def test_deploy_says_what_the_read_api_answered_instead_of_the_canary(
    cli: Cli, workdir: Path, peer: Peer, reads: Reply, code: int, said: str
) -> None:
    """The canary is accepted, then every read of it fails: the deploy names the answer and
    exits with its code, rather than a bare "not visible" (exit 1) after polling it all."""

    def healthy_until_sent(query: dict[str, list[str]]) -> Reply:
        return reads if peer.posted else EMPTY

    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.routes["/api/public/v2/observations"] = healthy_until_sent
    peer.routes["/api/public/v2/metrics"] = healthy_until_sent
    peer.fallback = healthy_until_sent
    canary = failed_canary(cli, workdir, peer, code)
    assert "not visible within 3 s" in canary["detail"] and said in canary["detail"]


@pytest.mark.parametrize(
    ("answer", "code", "said"),
    [
        (json_reply({"message": "busy"}, 503), 4, "kept in the outbox"),
        (LOGIN_PAGE, 5, "kept in the outbox"),
        (json_reply({"message": "bad span"}, 400), 5, "refused and kept as a dead letter"),
    ],
)
def test_deploy_says_a_canary_that_was_not_delivered_was_not_delivered(
    cli: Cli, workdir: Path, peer: Peer, answer: Reply, code: int, said: str
) -> None:
    """A canary the ingestion refused (or never took) was polled for, then reported as
    "not visible within N s" (exit 1), whose advice is a longer --canary-timeout."""
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.fallback = lambda query: EMPTY
    peer.post_answer = answer
    canary = failed_canary(cli, workdir, peer, code)
    assert "not delivered to" in canary["detail"] and said in canary["detail"]
    assert "not visible" not in canary["detail"]


def test_v1_pages_that_overlap_list_each_trace_once(cli: Cli, workdir: Path, peer: Peer) -> None:
    """Offset pages shift when traces arrive between two requests: pages of 7 that start 5
    apart list 20 traces, each once."""
    traces = [{"id": f"{n:032x}", "timestamp": "2026-11-20T08:00:00Z"} for n in range(20)]

    def page(query: dict[str, list[str]]) -> Reply:
        start = (int(query.get("page", ["1"])[0]) - 1) * 5
        return json_reply({"data": traces[start : start + 7], "meta": {"totalPages": 4}})

    peer.routes["/api/public/traces"] = page
    result = cli("--json", "traces", "list", "--all", env=peer.env(workdir))
    assert result.exit_code == 0, result.stderr
    listed = [row["id"] for row in json.loads(result.stdout)["traces"]]
    assert sorted(listed) == [trace["id"] for trace in traces]


def test_a_tree_shows_a_dash_for_what_the_answer_left_out(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    peer.routes["/api/public/v2/observations"] = lambda query: json_reply(
        {"data": [{"id": "obs1", "traceId": TRACE_ID},
                  {"id": "obs2", "traceId": TRACE_ID, "parentObservationId": "obs1"}]}
    )  # fmt: skip
    result = cli("traces", "show", TRACE_ID, env=peer.env(workdir))
    assert result.exit_code == 0, result.stderr
    assert "None" not in result.stdout
    assert f"- {TRACE_ID} (-)" in result.stdout


def test_v1_listing_survives_a_page_of_arrivals_and_duplicates_inside_a_page(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """A page's worth of traces arrives between the first and the second request (the
    second page then holds nothing new), and one page repeats an id: each trace is listed
    once, none is lost, and no 'pages repeat' error is made of it."""
    older = [{"id": f"{n:032x}", "timestamp": "2026-11-20T08:00:00Z"} for n in range(250)]
    requests = iter(range(10**6))

    def page(query: dict[str, list[str]]) -> Reply:
        arrived = [{"id": f"{10**6 + n:032x}", "timestamp": "2026-11-21T08:00:00Z"}
                   for n in range(100 * min(next(requests), 1))]  # fmt: skip
        traces = [*arrived[::-1], *older]
        number, limit = int(query["page"][0]), int(query["limit"][0])
        start = (number - 1) * limit
        items = traces[start : start + limit]
        items = items[:1] + items if number == 1 else items  # the same id twice in a page
        pages = -(-len(traces) // limit)
        return json_reply({"data": items, "meta": {"page": number, "totalPages": pages}})

    peer.routes["/api/public/traces"] = page
    result = cli("--json", "traces", "list", "--all", env=peer.env(workdir))
    assert result.exit_code == 0, result.stderr
    listed = [row["id"] for row in json.loads(result.stdout)["traces"]]
    assert len(listed) == len(set(listed))
    assert {trace["id"] for trace in older} <= set(listed)


def test_a_tree_with_an_output_nested_too_deep_is_shown(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    peer.routes[f"/api/public/traces/{TRACE_ID}"] = lambda query: json_reply(
        {"id": TRACE_ID, "observations": [{"id": "o1", "name": "x.decision", "output": deep}]}
    )
    result = cli("--json", "traces", "show", TRACE_ID, env=peer.env(workdir))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.stderr


# --- what a server's strings and numbers may hold ------------------------------------------------


def echoed_credentials(env: dict[str, str]) -> str:
    """The Basic credentials the CLI sends with ``env``'s keys, as a server may echo them."""
    import base64

    pair = f"{env['LANGFUSE_PUBLIC_KEY']}:{env['LANGFUSE_SECRET_KEY']}".encode()
    return base64.b64encode(pair).decode()


def test_echoed_credentials_reach_no_file(cli: Cli, workdir: Path, peer: Peer) -> None:
    """A server that puts the Authorization header it got into a project's name, or into
    the metrics' operation names: the terminal showed ``Basic ****``, but the JUnit report
    and the metrics cache in the store held the credentials in clear."""
    import sqlite3

    env = peer.env(workdir)
    echoed = f"Authorization: Basic {echoed_credentials(env)}"
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: json_reply(
        {"data": [{"id": "p", "name": echoed}]}
    )
    peer.fallback = lambda query: json_reply(
        {"data": [{"name": f"inventory_agent.{echoed}", "type": "AGENT", "level": "DEFAULT",
                   "count_count": 1, "avg_latency": 5}], "meta": {}}
    )  # fmt: skip
    report = workdir / "health.xml"
    checked = cli("health-check", "--junit", str(report), env=env)
    assert "Basic ****" in report.read_text(encoding="utf-8"), checked.both
    measured = cli("metrics", "--refresh", env=env)
    assert measured.exit_code == 0, measured.both
    with sqlite3.connect(Path(env["AUTOOPS_HOME"]) / "traces.db") as db:
        cached = " ".join(body for (body,) in db.execute("SELECT body FROM api_cache"))
    assert "Basic ****" in cached
    for written in (report.read_text(encoding="utf-8"), cached, checked.both, measured.both):
        assert echoed_credentials(env) not in written
        assert env["LANGFUSE_SECRET_KEY"] not in written


def test_odd_strings_and_numbers_from_the_server_are_shown(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """A lone surrogate (JSON's "\\ud800") in a name was an internal error on the terminal,
    where --json passed; latencies of 1e308 and -1e308 made the sparkline an internal error
    too (their difference overflows); a row named ".decide" was an agent without a name."""
    now = time.time()
    buckets = [time.strftime("%Y-%m-%dT%H:00:00.000Z", time.gmtime(now - hours * 3600))
               for hours in (1, 2)]  # fmt: skip
    rows = [
        {"name": "agent\ud800.op", "type": "AGENT", "level": "DEFAULT", "count_count": 3,
         "avg_latency": 5},
        {"name": ".decide", "type": "AGENT", "level": "DEFAULT", "count_count": 3,
         "avg_latency": 5},
        *({"time_dimension": bucket, "level": "DEFAULT", "count_count": 1,
           "avg_latency": latency} for bucket, latency in zip(buckets, (1e308, -1e308), strict=True)),
    ]  # fmt: skip
    peer.fallback = lambda query: json_reply({"data": rows, "meta": {}})
    env = peer.env(workdir)
    result = cli("metrics", "--since", "3h", "--by", "hour", "--refresh", env=env)
    assert result.exit_code == 0, result.both
    assert "agent\\ud800" in result.stdout
    document = cli("--json", "metrics", "--refresh", env=env)
    assert "" not in json.loads(document.stdout)["agents"]


def test_times_with_an_offset_are_shown_in_utc(cli: Cli, workdir: Path, peer: Peer) -> None:
    """A start time with an offset was shown as written under "time (UTC)"."""
    roots = [
        {"id": "o1", "traceId": "1" * 32, "startTime": "2026-11-20T07:30:00.000+05:30"},
        {"id": "o2", "traceId": "2" * 32, "startTime": "2026-11-20T01:00:00.000-03:00"},
        # At the ends of the calendar, UTC is out of range: shown as written.
        {"id": "o3", "traceId": "3" * 32, "startTime": "0001-01-01T00:00:00+05:30"},
        {"id": "o4", "traceId": "4" * 32, "startTime": "9999-12-31T23:59:59-05:00"},
    ]
    peer.routes["/api/public/v2/observations"] = lambda query: json_reply(
        {"data": roots, "meta": {}}
    )
    result = cli("traces", "list", env=peer.env(workdir))
    assert result.exit_code == 0, result.both
    assert "11-20 02:00:00" in result.stdout and "11-20 04:00:00" in result.stdout


def test_the_shortest_telling_prefix_of_long_and_alike_ids() -> None:
    """Found from sorted neighbours (trying every length was quadratic in the ids' length:
    half a minute for two ids of 300,000 characters from a server, past --timeout); the
    same answers as trying every length."""
    import random

    from autoops_cli.actions.traces.view import short_ids

    def every_length(ids: list[str]) -> int:
        distinct = set(ids)
        for length in range(8, max((len(i) for i in distinct), default=0) + 1):
            if len({i[:length] for i in distinct}) == len(distinct):
                return length
        return max((len(i) for i in distinct), default=8)

    pick = random.Random(7)
    for _ in range(2000):
        ids = ["".join(pick.choice("ab") for _ in range(pick.randint(0, 14)))
               for _ in range(pick.randint(0, 6))]  # fmt: skip
        assert short_ids(ids) == every_length(ids), ids
    alike = "a" * 300_000
    assert short_ids([alike + "1", alike + "2"]) == 300_001


def test_empty_score_pages_under_new_cursors_end_the_listing(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    """v3 scores answered empty pages, each with a new cursor: traces show read them until
    --timeout and blamed the network (exit 4). An empty page is the last."""
    fresh = iter(range(10**9))
    peer.routes["/api/public/v3/scores"] = lambda query: json_reply(
        {"data": [], "meta": {"cursor": f"c{next(fresh)}"}}
    )
    peer.routes["/api/public/v2/observations"] = lambda query: json_reply(
        {"data": [{"id": "o1", "traceId": TRACE_ID, "name": "orchestrator.process_event",
                   "type": "CHAIN", "startTime": "2026-11-20T08:00:00Z"}], "meta": {}}
    )  # fmt: skip
    peer.routes[f"/api/public/traces/{TRACE_ID}"] = lambda query: json_reply(
        {"id": TRACE_ID, "name": "simulation.demand_spike", "timestamp": "2026-11-20T08:00:00Z",
         "observations": []}
    )  # fmt: skip
    result = cli("traces", "show", TRACE_ID, "--timeout", "20", env=peer.env(workdir))
    assert result.exit_code == 0, result.both
    assert peer.requests < 10


def test_the_api_cache_masks_secrets_in_strings_and_keeps_its_json(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A configured secret of digits only: masked in the JSON text, it was masked inside a
    number too (``{"count":****1}``), and the next read of the cache failed."""
    from autoops_cli.langfuse_api.cache import ApiCache
    from config import redaction

    monkeypatch.setattr(redaction, "_KNOWN_SECRETS", {})
    redaction.register_credentials("pk-lf-1", "90817263545")
    cache = ApiCache(workdir / "traces.db")
    cache.put("key", {"count": 9081726354512, "name": "agent 90817263545"})
    assert cache.get("key", 60) == {"count": 9081726354512, "name": "agent ****"}
    cache.close()
