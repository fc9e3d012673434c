"""Langfuse mode against peers that misbehave on purpose: a real ``autoops replay`` (in this
process) sends to a loopback server that echoes the credentials it was sent, answers without
end, asks for no wait at all, or refuses every batch.

What must hold: no secret, in any form, in the output or in the store file; a bounded read of
any answer; a backoff the peer cannot talk the sender out of; one line per kind of trouble,
not one per batch; and nothing lost (what was not delivered stays in the outbox).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_replay import EXAMPLE
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli
from tests.support.loopback import LoopbackServer, reply

CREDENTIALS = f"{KNOWN_PUBLIC}:{KNOWN_SECRET}"
BASIC = base64.b64encode(CREDENTIALS.encode()).decode()


class HostilePeer:
    """A loopback HTTP server; ``answer(handler, body)`` writes the answer to each request
    (``posts`` counts the POSTs)."""

    def __init__(self, answer: Callable[[BaseHTTPRequestHandler, bytes], None]) -> None:
        self.posts = 0
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                peer.posts += 1
                self._answer(body)

            def _answer(self, body: bytes) -> None:
                try:
                    answer(self, body)
                except (BrokenPipeError, ConnectionResetError):  # the client stopped reading
                    self.close_connection = True

        self._loopback = LoopbackServer(Handler)
        self.url = self._loopback.url

    def close(self) -> None:
        self._loopback.close()


@pytest.fixture
def peer_with() -> Iterator[
    Callable[[Callable[[BaseHTTPRequestHandler, bytes], None]], HostilePeer]
]:
    peers: list[HostilePeer] = []

    def start(answer: Callable[[BaseHTTPRequestHandler, bytes], None]) -> HostilePeer:
        peers.append(HostilePeer(answer))
        return peers[-1]

    yield start
    for peer in peers:
        peer.close()


def env_for(peer: HostilePeer) -> dict[str, str]:
    return {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": peer.url,
        "AUTOOPS_FLUSH_DEADLINE": "1",
    }


def store_bytes(workdir: Path) -> bytes:
    """Every byte of the store file and its WAL."""
    found = b""
    for path in sorted((workdir / ".autoops").glob("traces.db*")):
        found += path.read_bytes()
    return found


def percent_encoded(text: str) -> str:
    return "".join(c if c.isalnum() else f"%{ord(c):02X}" for c in text)


@pytest.mark.parametrize("status", [400, 401, 500])
@pytest.mark.parametrize("spelled", ["as sent", "upper case", "percent-encoded"])
def test_credentials_a_peer_echoes_are_never_shown_or_kept(
    cli: Cli, workdir: Path, peer_with: Callable[..., HostilePeer], status: int, spelled: str
) -> None:
    """Also in upper case or percent-encoded (as some servers write what they quote),
    which went into the messages, the summary and the dead letters unmasked."""
    spell = {"as sent": str, "upper case": str.upper, "percent-encoded": percent_encoded}[spelled]

    def echo(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        auth = handler.headers.get("Authorization", "")
        decoded = base64.b64decode(auth.split()[-1]).decode()
        message = f"bad request from {decoded} ({auth}), secret {decoded.split(':')[1]}"
        reply(handler, status, json.dumps({"message": spell(message)}).encode())

    peer = peer_with(echo)
    result = cli("replay", str(EXAMPLE), "--limit", "5", "--json", env=env_for(peer))
    assert result.exit_code in (3, 4, 5), result.both
    assert peer.posts >= 1
    kept = store_bytes(workdir)
    status_shown = cli("--json", "buffer", "status", env=env_for(peer)).stdout
    for form in (KNOWN_SECRET, BASIC, CREDENTIALS):
        for seen in {form, spell(form)}:
            assert seen not in result.both
            assert seen not in status_shown
            assert seen.encode() not in kept
    assert "Traceback" not in result.both


def test_an_answer_without_end_is_cut_off_and_the_batches_kept(
    cli: Cli, workdir: Path, peer_with: Callable[..., HostilePeer]
) -> None:
    """A 200 whose body never ends (a proxy gone wrong, a hostile peer) was read whole into
    memory: gigabytes. Only the first megabyte is read; nothing counts as delivered."""

    def endless(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b" " * 65536
        for _ in range(10_000):  # 640 MB if read whole; the client hangs up long before
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    peer = peer_with(endless)
    result = cli("replay", str(EXAMPLE), "--limit", "5", "--json", env=env_for(peer))
    assert result.exit_code == 4, result.both
    assert "longer than 1048576 bytes" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["delivery"]["batches_waiting"] >= 1
    waiting = cli("--json", "buffer", "status", env=env_for(peer))
    assert json.loads(waiting.stdout)["pending_batches"] == summary["delivery"]["batches_waiting"]


@pytest.mark.parametrize("asked", ["0", "-5", "nan"])
def test_a_retry_after_of_no_wait_does_not_undo_the_backoff(
    cli: Cli, peer_with: Callable[..., HostilePeer], asked: str
) -> None:
    """A peer answering 503 with Retry-After: 0 (or worse) to every attempt: the sender's own
    backoff applies. Obeyed, it made thousands of requests within the flush deadline."""
    peer = peer_with(lambda handler, body: reply(handler, 503, b"{}", Retry_After=asked))
    result = cli("replay", str(EXAMPLE), "--limit", "5", "--json", env=env_for(peer))
    assert result.exit_code == 4, result.both
    # The backoff (0.2 s, doubling) allows a handful in the run and its 1 s flush deadline;
    # a slower machine makes fewer, never more.
    assert peer.posts <= 12, peer.posts


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [(507, "application/json", b'{"message": "storage"}'), (529, "application/json", b"{}"),
     (522, "text/html", b"<html>origin timed out</html>")],
)  # fmt: skip
def test_any_server_error_is_retried_and_kept_in_the_outbox(
    cli: Cli, peer_with: Callable[..., HostilePeer], status: int, content_type: str, body: bytes
) -> None:
    """A 5xx other than 500/502/503/504 (507, a CDN's 522 page) made the batches dead letters
    (never retried on their own), or stopped sending as "not Langfuse": a server error is
    retried, and what it did not take stays in the outbox (exit 4)."""
    peer = peer_with(lambda handler, _body: reply(handler, status, body, content_type))
    env = env_for(peer)
    result = cli("replay", str(EXAMPLE), "--limit", "5", "--json", env=env)
    assert result.exit_code == 4, result.both
    assert "dead letter" not in result.stderr and "not Langfuse" not in result.stderr
    kept = json.loads(cli("--json", "buffer", "status", env=env).stdout)
    assert kept["dead_letters"] == 0 and kept["pending_batches"] > 0, kept


@pytest.mark.parametrize(
    ("answer", "delivery_line"),
    [((401, b'{"message": "Invalid credentials"}', "application/json"), "rejected the keys"),
     ((200, b"<html>login</html>", "text/html"), "sending stopped")],
)  # fmt: skip
def test_a_stop_is_said_and_wins_over_rejected_keys_or_a_host_that_is_not_langfuse(
    workdir: Path, peer_with: Callable[..., HostilePeer], answer: tuple[int, bytes, str],
    delivery_line: str,
) -> None:  # fmt: skip
    """SIGTERM against a host rejecting the keys (or not Langfuse) exited 3 (or 5), and the
    line saying where the run stopped and what was not read was never printed."""
    import subprocess

    from tests.support.replay_runs import clean_env
    from tests.support.serve_process import autoops_executable

    (workdir / "stops_at_ten.py").write_text(
        "import os, signal\n"
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "class StopsAtTen(RetailOrchestrator):\n"
        "    handled = 0\n\n"
        "    def handle(self, event):\n"
        "        StopsAtTen.handled += 1\n"
        "        if StopsAtTen.handled == 10:\n"
        "            os.kill(os.getpid(), signal.SIGTERM)\n"
        "        return super().handle(event)\n",
        encoding="utf-8",
    )
    peer = peer_with(lambda handler, _body: reply(handler, *answer))
    replay = subprocess.run(
        [autoops_executable(), "--json", "replay", str(EXAMPLE), "--orchestrator",
         "stops_at_ten:StopsAtTen"],
        check=False, capture_output=True, text=True, timeout=120, cwd=workdir,
        env=clean_env(AUTOOPS_HOME=str(workdir / "home"), **env_for(peer)),
    )  # fmt: skip
    assert replay.returncode == 143, replay.stderr
    assert delivery_line in replay.stderr
    last = replay.stderr.strip().splitlines()[-1]
    assert last.startswith("warning: stopped by SIGTERM at line 10: 10 event(s)"), last
    assert json.loads(replay.stdout)["stopped_early"] == "SIGTERM"


def test_a_peer_refusing_every_batch_gives_a_few_lines_not_one_per_batch(
    cli: Cli, workdir: Path, peer_with: Callable[..., HostilePeer]
) -> None:
    peer = peer_with(lambda handler, body: reply(handler, 400, b'{"message": "no"}'))
    env = env_for(peer)
    result = cli("replay", str(EXAMPLE), "--json", env=env)
    assert result.exit_code == 5, result.both
    dead = json.loads(cli("--json", "buffer", "status", env=env).stdout)["dead_letters"]
    assert dead > 4  # so that the limit shows
    refused = [line for line in result.stderr.splitlines() if "refused a batch" in line]
    assert len(refused) == 3
    assert all(line.startswith("warning: ") for line in refused)
    assert result.stderr.count("more messages like the one above are not shown") == 1
    with sqlite3.connect(workdir / ".autoops" / "traces.db") as db:
        assert db.execute("SELECT COUNT(*) FROM dead_letters").fetchone()[0] == dead


def test_from_says_what_becomes_of_the_dead_letters_it_moves(
    cli: Cli, peer_with: Callable[..., HostilePeer], fake_langfuse: Any
) -> None:
    """`flush --from` asked to "send 0 batch(es) and 2 dead letter(s)", then moved the dead
    letters, sent nothing (dead letters go with --dead-letters) and said nothing of them."""
    refusing = peer_with(lambda handler, body: reply(handler, 400, b'{"message": "no"}'))
    assert cli("replay", str(EXAMPLE), "--limit", "3", env=env_for(refusing)).exit_code == 5
    here = {**env_for(refusing), "LANGFUSE_HOST": fake_langfuse.url}
    dead = json.loads(cli("--json", "buffer", "status", env=here).stdout)["dead_letters"]
    moved = cli("--json", "buffer", "flush", "--from", refusing.url, "--yes", env=here)
    assert moved.exit_code == 0, moved.both
    result = json.loads(moved.stdout)
    assert result["moved_from"]["dead_letters"] == dead > 0
    assert f"{dead} dead letter(s) moved from {refusing.url} wait for" in result["message"]
    sent = cli("--json", "buffer", "flush", "--dead-letters", "--wait", "30", env=here)
    assert sent.exit_code == 0, sent.both
    assert json.loads(sent.stdout)["requeued_dead_letters"] == dead


def test_a_refusal_with_markup_and_escapes_is_shown_safely_everywhere(
    cli: Cli, peer_with: Callable[..., HostilePeer]
) -> None:
    """A server's message with Rich markup made `buffer status` (the command the error line
    points to) an internal error, and its ESC reached the terminal in the warning lines."""
    message = json.dumps({"message": "bad [/] tag \u001b[31m red"}).encode()
    peer = peer_with(lambda handler, body: reply(handler, 400, message))
    env = env_for(peer)
    replayed = cli("replay", str(EXAMPLE), env=env)
    assert replayed.exit_code == 5, replayed.both
    assert "\x1b" not in replayed.both and "bad [/] tag \\x1b[31m red" in replayed.stderr
    status = cli("buffer", "status", env=env)
    assert status.exit_code == 0, status.both
    assert "\x1b" not in status.both and "bad [/] tag \\x1b[31m red" in status.stdout


@pytest.mark.parametrize("refusing", ["spans", "scores"])
def test_a_2xx_refusing_part_of_a_batch_keeps_it_as_a_dead_letter(
    cli: Cli, workdir: Path, peer_with: Callable[..., HostilePeer], refusing: str
) -> None:
    """An OTLP partial success with rejected spans, a 207 with errors for scores: counted as
    delivered, these were lost without a trace (exit 0). The request's rows are now kept as
    dead letters, re-sendable once the cause is fixed."""

    def partly(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        spans = handler.path.endswith("/v1/traces")
        if spans and refusing == "spans":
            answer = {"partialSuccess": {"rejectedSpans": "5", "errorMessage": "too old"}}
            reply(handler, 200, json.dumps(answer).encode())
        elif not spans and refusing == "scores":
            answer = {"errors": [{"id": "x", "status": 400, "message": "too old"}]}
            reply(handler, 207, json.dumps(answer).encode())
        else:
            reply(handler, 200, b"{}")

    peer = peer_with(partly)
    result = cli("replay", str(EXAMPLE), "--limit", "20", "--json", env=env_for(peer))
    assert result.exit_code == 5, result.both
    assert "refused" in result.stderr
    status = json.loads(cli("--json", "buffer", "status", env=env_for(peer)).stdout)
    assert status["dead_letters"] >= 1
    assert "refused: too old" in status["last_dead_letter_message"]
    # Counted as failed, spans as scores (refused spans were counted nowhere the summary
    # shows).
    tracing = json.loads(result.stdout)["tracing"]
    assert tracing[f"{refusing}_failed"] >= (5 if refusing == "spans" else 1)


@pytest.mark.parametrize("count", [b"1e400", b"Infinity"])
def test_a_refusal_of_more_spans_than_any_count_refuses_them_all(
    cli: Cli, workdir: Path, peer_with: Callable[..., HostilePeer], count: bytes
) -> None:
    """``rejectedSpans`` of 1e400 (strict JSON, infinity to Python): OverflowError killed the
    sender thread with a traceback; the replay exited 4 with its summary saying "ok", and
    `buffer flush` exited 0 saying another process held the batches."""

    def refusing(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        if handler.path.endswith("/v1/traces"):
            reply(handler, 200, b'{"partialSuccess": {"rejectedSpans": ' + count + b"}}")
        else:
            reply(handler, 200, b"{}")

    peer = peer_with(refusing)
    env = env_for(peer)
    result = cli("replay", str(EXAMPLE), "--limit", "20", "--json", env=env)
    assert result.exit_code == 5, result.both
    assert "Traceback" not in result.both and "Exception in thread" not in result.both
    status = json.loads(cli("--json", "buffer", "status", env=env).stdout)
    assert status["dead_letters"] >= 1 and status["pending_batches"] == 0
    summary = json.loads(result.stdout)
    assert summary["tracing"]["dead_letters"] == status["dead_letters"]


HEALTH_ANSWERS = {
    "projects not a list": {"/api/public/projects": {"data": "abc"}},
    "projects of numbers": {"/api/public/projects": {"data": [1]}},
    "version NaN": {"/api/public/health": {"status": "OK", "version": float("nan")}},
    "deep health": {"/api/public/health": "[" * 200_000 + "]" * 200_000},
    "markup and ESC": {
        "/api/public/health": {"status": "OK", "version": "[/]\x1b[2J"},
        "/api/public/projects": {"data": [{"name": "[/]\x1b]0;owned\x07"}]},
    },
}


@pytest.mark.parametrize("case", list(HEALTH_ANSWERS))
def test_health_check_reads_any_answer_without_an_internal_error(
    cli: Cli, peer_with: Callable[..., HostilePeer], case: str
) -> None:
    answers = HEALTH_ANSWERS[case]

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        found = answers.get(path, {"status": "OK", "version": "3"} if "health" in path else {})
        text = found if isinstance(found, str) else json.dumps(found)  # NaN as JSON's NaN
        reply(handler, 200, text.encode())

    peer = peer_with(answer)
    for output in ([], ["--json"]):
        result = cli(*output, "health-check", env=env_for(peer))
        assert result.exit_code in (0, 1, 5), result.both
        assert "internal error" not in result.both and "Traceback" not in result.both
        assert "\x1b" not in result.both
        if output:
            json.loads(result.stdout, parse_constant=pytest.fail)


def test_traces_show_stops_at_a_cursor_that_loops(
    cli: Cli, peer_with: Callable[..., HostilePeer]
) -> None:
    """A server giving the same page and cursor for ever: the tree grew to gigabytes until the
    timeout. A cursor given twice ends the read with one line naming the route (exit 5)."""
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    page = {
        "data": [{"id": f"o{n}", "traceId": trace_id, "name": "x"} for n in range(3)],
        "meta": {"cursor": "same"},
    }

    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = handler.path.split("?", 1)[0]
        reply(handler, 200, json.dumps(page if path.endswith("observations") else {}).encode())

    peer = peer_with(answer)
    result = cli("traces", "show", trace_id, env=env_for(peer))
    assert result.exit_code == 5, result.both
    assert "answered a cursor it gave before" in result.stderr
    assert "/api/public/v2/observations" in result.stderr


@pytest.mark.parametrize(
    "answer_bytes",
    [b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n{}", b""],
    ids=["status line", "content length", "closed"],
)
def test_a_peer_answering_no_http_is_named_so_not_unreachable(
    cli: Cli, peer_with: Callable[..., HostilePeer], answer_bytes: bytes
) -> None:
    def answer(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        handler.wfile.write(answer_bytes)
        handler.close_connection = True

    peer = peer_with(answer)
    listed = cli("traces", "list", "--timeout", "5", env=env_for(peer))
    assert listed.exit_code == 4, listed.both
    assert "no valid HTTP answer" in listed.stderr and "cannot reach" not in listed.stderr
    checked = cli("--json", "health-check", env=env_for(peer))
    endpoint = next(c for c in json.loads(checked.stdout)["checks"] if c["name"] == "endpoint")
    assert endpoint["message"].startswith("no valid HTTP answer"), endpoint


def test_a_flush_that_cannot_remove_what_it_delivered_says_so(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk after delivery: the flush waited its whole --wait, then said the batches
    were 'not delivered' (None), exit 4. They were delivered; the file is what failed."""
    from config.delivery.outbox import Outbox
    from config.errors import LocalFileError
    from tests.support.fake_langfuse import FakeLangfuse, Faults

    server = FakeLangfuse(faults=Faults(always_status=503))
    try:
        env = {"LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC, "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
               "LANGFUSE_HOST": server.url, "AUTOOPS_FLUSH_DEADLINE": "1"}  # fmt: skip
        assert cli("replay", str(EXAMPLE), env=env).exit_code == 4
        kept = json.loads(cli("--json", "buffer", "status", env=env).stdout)["pending_batches"]
        server.faults.always_status = None

        def disk_full(self: Outbox, seqs: Any) -> int:
            raise LocalFileError(
                "cannot write to the outbox in traces.db (removing delivered batches): "
                "database or disk is full"
            )

        monkeypatch.setattr(Outbox, "delivered_many", disk_full)
        flushed = cli("--json", "buffer", "flush", "--wait", "30", env=env)
    finally:
        server.close()
    assert flushed.exit_code == 6, flushed.both
    result = json.loads(flushed.stdout)
    assert result["delivered_batches"] == result["undeletable_batches"] == kept > 0
    assert "database or disk is full" in flushed.stderr
    assert "may be sent again by a later flush" in flushed.stderr and "None" not in flushed.stderr


def test_a_flush_beside_a_running_replay_is_no_network_error(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process wrote batches while the flush ran: 'not delivered ... (None)', exit 4,
    though nothing failed. Now exit 0, saying who holds the rest."""
    from config.delivery.outbox import Outbox
    from config.delivery.sender import OutboxExporter
    from tests.support.fake_langfuse import FakeLangfuse

    server = FakeLangfuse()
    flush = OutboxExporter.flush

    def flush_while_another_process_writes(self: OutboxExporter, *args: Any, **kw: Any) -> bool:
        done = flush(self, *args, **kw)
        other = Outbox(workdir / ".autoops" / "traces.db")  # as a replay running beside it
        other.add("scores", server.url, b"[]", 1)
        other.close()
        return done

    try:
        env = {"LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC, "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
               "LANGFUSE_HOST": server.url}  # fmt: skip
        assert cli("replay", str(EXAMPLE), "--limit", "5", env=env).exit_code == 0
        monkeypatch.setattr(OutboxExporter, "flush", flush_while_another_process_writes)
        flushed = cli("--json", "buffer", "flush", env=env)
    finally:
        server.close()
    assert flushed.exit_code == 0, flushed.both
    result = json.loads(flushed.stdout)
    assert result["remaining_batches"] == 1 and "another autoops process" in result["message"]


def test_a_flush_against_a_peer_that_never_answers_is_a_network_error(
    cli: Cli, peer_with: Callable[..., HostilePeer]
) -> None:
    """A request still waiting when --wait ran out was taken for another process's work:
    exit 0 and 'another autoops process is adding or sending them'."""
    release = threading.Event()

    def hang(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        release.wait(30)
        handler.close_connection = True

    peer = peer_with(hang)
    env = env_for(peer)
    try:
        assert cli("replay", str(EXAMPLE), "--limit", "5", env=env).exit_code == 4
        flushed = cli("--json", "buffer", "flush", "--wait", "1", env=env)
    finally:
        release.set()
    assert flushed.exit_code == 4, flushed.both
    assert f"(no answer from {peer.url} after " in json.loads(flushed.stdout)["message"]
