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
        self.posted = False  # an OTLP request arrived (answered 200)
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
                reply(self, 200, b"{}")

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


def test_a_read_path_answering_a_login_page_fails(cli: Cli, workdir: Path, peer: Peer) -> None:
    peer.routes["/api/public/health"] = lambda query: HEALTH
    peer.routes["/api/public/projects"] = lambda query: PROJECTS
    peer.fallback = lambda query: LOGIN_PAGE
    result = cli("--json", "health-check", "--timeout", "5", env=peer.env(workdir))
    assert result.exit_code == 1, result.stdout
    read_path = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["read path"]
    assert read_path["status"] == "fail"
    assert "v2 observations answered 200 without a JSON body (text/html)" in read_path["message"]


# --- traces: pages that repeat, traces without ids ------------------------------------------


def test_v2_pages_repeated_under_new_cursors_are_an_api_error(
    cli: Cli, workdir: Path, peer: Peer
) -> None:
    roots = [{"id": f"o{n}", "traceId": f"{n:032x}", "startTime": "2026-11-20T08:00:00Z"}
             for n in range(5)]  # fmt: skip
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
    result = cli("--json", "deploy", "--canary-timeout", "3", env=peer.env(workdir))
    assert peer.posted
    assert result.exit_code == code, result.stdout + result.stderr
    canary = json.loads(result.stdout)["steps"][-1]
    assert canary["status"] == "fail"
    assert "not visible within 3 s" in canary["detail"] and said in canary["detail"]


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
