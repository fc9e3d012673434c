"""``autoops traces list|show``: local store and Langfuse API give the same answers."""

from __future__ import annotations

import json
import os
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from config.store.local_store import LocalStore
from config.tracing import attributes as la
from config.tracing.span_records import SpanRecord
from tests.cli.test_replay import EXAMPLE
from tests.conftest import Cli
from tests.support.paths import GOLDEN
from tests.support.serve_process import ServeHandle

if TYPE_CHECKING:
    from config.langfuse_integration import LangfuseIntegrationService

T0 = 1_795_000_000_000_000_000  # a fixed instant, so the output is the same every run


def span(
    trace: str,
    span_id: str,
    parent: str | None,
    name: str,
    kind: str,
    start_ms: int,
    end_ms: int,
    **extra: str,
) -> SpanRecord:
    attributes = {la.OBSERVATION_TYPE: kind, la.TRACE_NAME: "simulation.demand_spike", **extra}
    return SpanRecord(
        trace,
        span_id,
        parent,
        name,
        T0 + start_ms * 1_000_000,
        T0 + end_ms * 1_000_000,
        attributes,
        trusted_json=True,
    )


def fixed_store() -> str:
    trace = "f" * 32
    outcome = json.dumps(
        {"agents": ["pricing_agent"], "decisions": {"pricing_agent": {}}, "conflicts_detected": 1}
    )
    spans = [
        span(trace, "1" * 16, "0" * 16, "pricing_agent.optimize_price", "agent", 1, 9,
             **{la.OBSERVATION_METADATA_PREFIX + "confidence": "0.82"}),
        span(trace, "2" * 16, "1" * 16, "competitor_feed", "tool", 2, 4),
        span(trace, "a" * 16, "1" * 16, "pricing_agent.decision", "event", 8, 8,
             **{la.OBSERVATION_OUTPUT: '{"new_price": 27.49}',
                la.OBSERVATION_METADATA_PREFIX + "decision_type": '"price_decrease"',
                la.OBSERVATION_METADATA_PREFIX + "confidence": "0.82",
                la.OBSERVATION_METADATA_PREFIX + "reasoning": '"competitor cheaper"'}),
        # A conflict and its resolution in the same millisecond: their recorded sequence
        # orders them (the resolution's id sorts first).
        span(trace, "3" * 16, "0" * 16, "conflict.price_vs_discount", "event", 10, 10,
             **{la.OBSERVATION_LEVEL: "WARNING", la.OBSERVATION_METADATA_PREFIX + "sequence": "5"}),
        span(trace, "2b" * 8, "0" * 16, "conflict_resolution.price_vs_discount", "event", 10, 10,
             **{la.OBSERVATION_OUTPUT: '{"winner": "promotion_agent", "overturned": "pricing_agent"}',
                la.OBSERVATION_METADATA_PREFIX + "rule": '"promotion_over_price_rise"',
                la.OBSERVATION_METADATA_PREFIX + "overturned_agent": '"pricing_agent"',
                la.OBSERVATION_METADATA_PREFIX + "sequence": "6"}),
        span(trace, "0" * 16, None, "orchestrator.process_event", "chain", 0, 12,
             **{la.OBSERVATION_OUTPUT: outcome, la.TRACE_METADATA_PREFIX + "event_type": '"demand_spike"',
                la.TRACE_METADATA_PREFIX + "product_id": '"PROD_007"', la.TRACE_METADATA_PREFIX + "severity": '"high"'}),
    ]  # fmt: skip
    store = LocalStore(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    store.write(spans)
    store.close()
    return trace


def test_golden_list_and_tree(cli: Cli) -> None:
    trace_id = fixed_store()
    listed = cli("traces", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout == (GOLDEN / "traces_list.txt").read_text(encoding="utf-8")
    shown = cli("traces", "show", trace_id)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout == (GOLDEN / "traces_show.txt").read_text(encoding="utf-8")
    tree = json.loads(cli("traces", "show", trace_id, "--json").stdout)
    (root,) = tree["observations"]
    assert root["name"] == "orchestrator.process_event" and root["duration_ms"] == 12.0
    agent, conflict, resolution = root["children"]
    assert (agent["type"], agent["confidence"], agent["children"][0]["name"]) == (
        "AGENT",
        0.82,
        "competitor_feed",
    )
    assert agent["children"][1]["decision"] == {
        "type": "price_decrease",
        "confidence": 0.82,
        "reasoning": "competitor cheaper",
        "outputs": {"new_price": 27.49},
    }
    assert conflict["level"] == "WARNING"
    assert resolution["resolution"] == {
        "rule": "promotion_over_price_rise",
        "stood": "promotion_agent",
        "overturned": "pricing_agent",
    }


def test_show_gives_durations_to_the_microsecond_as_list_does(
    cli: Cli, served: ServeHandle
) -> None:
    """The tree computed durations from start and end times cut to the millisecond: 0.531 ms
    showed as 1.0 and 0.187 as 0.0, where traces list and metrics gave the latency."""
    trace = "d" * 32
    spans = [
        SpanRecord(trace, "1" * 16, None, "orchestrator.process_event", T0, T0 + 1_522_000,
                   {la.OBSERVATION_TYPE: "chain"}, trusted_json=True),
        SpanRecord(trace, "2" * 16, "1" * 16, "inventory_agent.assess", T0 + 900_000,
                   T0 + 1_087_000, {la.OBSERVATION_TYPE: "agent"}, trusted_json=True),
    ]  # fmt: skip
    for path in (Path(os.environ["AUTOOPS_HOME"]) / "traces.db", served.store):
        store = LocalStore(path)
        store.write(spans)
        store.close()
    for env in ({}, served.client_env()):
        tree = json.loads(cli("traces", "show", trace, "--json", env=env).stdout)
        (root,) = tree["observations"]
        assert (root["duration_ms"], root["children"][0]["duration_ms"]) == (1.522, 0.187)
        listed = json.loads(cli("traces", "list", "--json", env=env).stdout)["traces"]
        assert [t["duration_s"] for t in listed if t["id"] == trace] == [0.001522]


def test_the_tree_is_in_the_order_of_instants_whatever_offset_a_time_is_written_with() -> None:
    """Children were sorted by the text of their start times: 10:00:02Z written as
    05:00:02-05:00 came before 10:00:01Z."""
    from autoops_cli.actions.traces.rows import observation_tree

    def observation(span: str, parent: str | None, start: str) -> dict[str, object]:
        return {"id": span, "parentObservationId": parent, "name": span, "startTime": start}

    (root,) = observation_tree({"observations": [
        observation("root", None, "2026-12-03T10:00:00.000Z"),
        observation("second", "root", "2026-12-03T05:00:02.000-05:00"),
        observation("first", "root", "2026-12-03T10:00:01.000Z"),
        observation("unreadable", "root", "soon"),
    ]})  # fmt: skip
    assert [child["name"] for child in root["children"]] == ["first", "second", "unreadable"]


@pytest.mark.parametrize("depth", [400, 500, 975, 990])
def test_an_output_nested_about_as_deep_as_the_parser_takes_is_written_as_json(depth: int) -> None:
    """An output nested ~975 deep parsed, then failed the indented encoder once in the tree:
    `traces show --json` was an internal error (RecursionError). Deep values are written
    by the C encoder; past MAX_VALUE_DEPTH they stay the text they came as."""
    from autoops_cli.actions.traces.rows import MAX_VALUE_DEPTH, json_or_text
    from autoops_cli.output import to_json

    text = "[" * depth + "]" * depth
    shown = json_or_text(text)
    assert shown == (text if depth > MAX_VALUE_DEPTH else json.loads(text))
    tree = {"observations": [{"children": [{"children": [{"output": shown}]}]}]}
    assert json.loads(to_json(tree)) == tree
    # NaN deep inside: made JSON by a recursive walk, which failed there in its turn.
    with_nan = json_or_text("[" * (depth - 1) + "[NaN, 1e400]" + "]" * (depth - 1))
    written = json.loads(to_json(tree | {"output": with_nan}))
    assert isinstance(written["output"], str) or "NaN" not in to_json(with_nan)


def test_numbers_past_the_float_range_are_never_shown_as_inf() -> None:
    """A latency of 1e306 s showed "(inf ms)" in the tree (null in --json); a Retry-After of
    1e400 was said as "asks to wait inf s"."""
    from http.server import BaseHTTPRequestHandler

    from autoops_cli.actions.traces.rows import observation_tree
    from autoops_cli.langfuse_api.client import ApiClient
    from config.errors import ApiError
    from config.settings import LangfuseConfig
    from tests.support.loopback import LoopbackServer, reply

    (root,) = observation_tree({"observations": [{"id": "a", "name": "a", "latency": 1e306}]})
    assert root["duration_ms"] is None

    class Limited(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply(self, 429, b"{}", Retry_After="1e400")

        def log_message(self, *args: object) -> None:
            pass

    server = LoopbackServer(Limited)
    config = LangfuseConfig(public_key="pk-lf-1", secret_key="sk-lf-1", host=server.url)
    try:
        with ApiClient(config, timeout=5) as client, pytest.raises(ApiError) as refused:
            client.get("/api/public/traces", [])
    finally:
        server.close()
    assert "asks to wait for ever" in str(refused.value) and "inf" not in str(refused.value)


def test_tables_read_well_at_any_width_and_piped(cli: Cli) -> None:
    """Piped: every cell whole. On a terminal: the least important columns go first."""
    fixed_store()
    for columns in (60, 80, 120):
        terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": str(columns)}
        listed = cli("traces", "list", env=terminal)
        assert listed.exit_code == 0, listed.stderr
        text = without_escapes(listed.stdout)
        assert text == (GOLDEN / f"traces_list_{columns}.txt").read_text(encoding="utf-8")
        assert max(len(line) for line in text.splitlines()) <= columns
        assert "…" not in text  # columns were dropped, no cell was cut
    piped = cli("traces", "list", env={"COLUMNS": "60"}).stdout
    assert piped == (GOLDEN / "traces_list.txt").read_text(encoding="utf-8")  # all columns
    # Narrower than the essential columns: the id keeps the prefix traces show takes (it
    # was cut first: "f3…" at 40 columns, nothing at 30).
    for columns in (20, 30, 40):
        terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": str(columns)}
        text = without_escapes(cli("traces", "list", env=terminal).stdout)
        assert "| ffffffff |" in text or "| ffffffff " in text, text


def without_escapes(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_show_takes_a_unique_prefix_and_names_the_store(cli: Cli, workdir: Path) -> None:
    assert cli("traces", "list").stdout  # no store yet: nothing created by reading
    assert not (workdir / ".autoops").exists()
    trace_id = fixed_store()
    shown = cli("traces", "show", trace_id[:8], "--json")
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == trace_id
    store = Path(os.environ["AUTOOPS_HOME"]) / "traces.db"
    missing = cli("traces", "show", "0123456789")
    assert missing.exit_code == 1
    assert f"no trace id starts with 0123456789 in the local store {store}" in missing.stderr
    assert "authorized project" not in missing.stderr
    for blank in ("", " "):  # no id: every trace's observations were shown as one tree
        empty = cli("traces", "show", blank)
        assert empty.exit_code == 2 and "trace id ''" in empty.stderr
    # Shorter than a prefix may be: a whole id (of another client), asked as it is.
    short = cli("traces", "show", "fff")
    assert short.exit_code == 1 and "trace fff not found" in short.stderr
    assert "(a prefix of an id needs at least 6 characters)" in short.stderr
    written = LocalStore(store)
    written.write([span("t2", "9" * 16, None, "their.root", "span", 0, 3)])
    written.close()
    shown = json.loads(cli("traces", "show", "t2", "--json").stdout)
    assert shown["id"] == "t2" and shown["observations"][0]["name"] == "their.root"


def test_list_filters_and_json(cli: Cli) -> None:
    assert cli("replay", str(EXAMPLE), "--run-id", "listing", "--json").exit_code == 0
    events = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    everything = json.loads(
        cli("traces", "list", "--all", "--session", "listing", "--json").stdout
    )["traces"]
    assert len(everything) == len(events)
    assert [t["timestamp"] for t in everything] == sorted(
        (t["timestamp"] for t in everything), reverse=True
    )
    spikes = json.loads(
        cli("traces", "list", "--event-type", "demand_spike", "--all", "--json").stdout
    )["traces"]
    assert len(spikes) == sum(1 for e in events if e["event_type"] == "demand_spike")
    assert {t["event_type"] for t in spikes} == {"demand_spike"}
    critical = json.loads(cli("traces", "list", "--tag", "critical", "--all", "--json").stdout)[
        "traces"
    ]
    assert len(critical) == sum(1 for e in events if e["severity"] == "critical")
    assert len(json.loads(cli("traces", "list", "--limit", "7", "--json").stdout)["traces"]) == 7
    assert cli("traces", "list", "--since", "yesterday-ish").exit_code == 2
    assert cli("traces", "show", "0" * 32).exit_code == 1


def test_same_answers_from_serve_and_the_local_store(cli: Cli, served: ServeHandle) -> None:
    assert (
        cli(
            "replay",
            str(EXAMPLE),
            "--limit",
            "30",
            "--run-id",
            "both",
            # Everything delivered before the exit, however busy the machine (default: 2 s).
            env={**served.client_env(), "AUTOOPS_FLUSH_DEADLINE": "60"},
        ).exit_code
        == 0
    )
    remote = json.loads(cli("traces", "list", "--all", "--json", env=served.client_env()).stdout)[
        "traces"
    ]
    env = {"AUTOOPS_HOME": str(served.store.parent)}
    local = json.loads(cli("traces", "list", "--all", "--json", "--local", env=env).stdout)[
        "traces"
    ]
    assert remote == local and len(remote) == 30
    trace_id = remote[0]["id"]
    shown_remote = json.loads(
        cli("traces", "show", trace_id, "--json", env=served.client_env()).stdout
    )
    shown_local = json.loads(cli("traces", "show", trace_id, "--json", "--local", env=env).stdout)
    assert shown_remote == shown_local


def test_pages_and_next(cli: Cli) -> None:
    """Pages keep one size; ``next`` says where the traces not shown start."""
    store = LocalStore(Path(os.environ["AUTOOPS_HOME"]) / "traces.db")
    store.write(
        [span(f"{i:032x}", f"{i:016x}", None, "orchestrator.process_event", "chain", i, i + 1)
         for i in range(1, 8)]
    )  # fmt: skip
    store.close()

    def listed(*args: str) -> tuple[list[str], object]:
        result = cli("traces", "list", "--json", *args)
        assert result.exit_code == 0, result.stderr
        body = json.loads(result.stdout)
        return [t["id"][-1] for t in body["traces"]], body["next"]

    assert listed("--limit", "3") == (["7", "6", "5"], {"page": 2, "limit": 3})
    assert listed("--limit", "3", "--page", "2") == (["4", "3", "2"], {"page": 3, "limit": 3})
    assert listed("--limit", "3", "--page", "3") == (["1"], None)
    assert listed("--all") == (["7", "6", "5", "4", "3", "2", "1"], None)
    assert listed("--all", "--max-items", "5") == (
        ["7", "6", "5", "4", "3"],
        {"page": 2, "limit": 5},
    )
    table = cli("traces", "list", "--limit", "3")
    assert "more traces: --page 2 --limit 3" in table.stderr
    assert "\\x0a" not in table.stderr  # a newline in the hint was shown escaped


def test_a_store_file_holding_only_the_api_cache_or_the_outbox_reads_as_no_store(
    cli: Cli, workdir: Path
) -> None:
    """Langfuse mode writes its outbox, and the read commands their API cache, into the store
    file before any trace is stored locally: the local reads answered "internal error: no
    such table" from then on."""
    from autoops_cli.langfuse_api.cache import ApiCache
    from config.delivery.outbox import Outbox

    store = workdir / ".autoops" / "traces.db"
    store.parent.mkdir(parents=True, exist_ok=True)
    ApiCache(store).put("key", {"answer": 1})
    Outbox(store).close()
    for command in (("traces", "list", "--local"), ("metrics", "--local"), ("health-check",)):
        result = cli(*command)
        assert result.exit_code == 0, (command, result.both)
        assert "internal error" not in result.both
    assert cli("--json", "traces", "list", "--local").stdout.count('"id"') == 0


def local_service() -> LangfuseIntegrationService:
    """The guide's service, installed, in local mode (the store of the test's AUTOOPS_HOME)."""
    from config.langfuse_integration import (
        LangfuseIntegrationService,
        install_langfuse_integration,
    )
    from config.settings import DataMaskingConfig, LangfuseConfig

    return install_langfuse_integration(
        LangfuseIntegrationService(LangfuseConfig(), DataMaskingConfig())
    )


def test_a_trace_recorded_through_the_guides_api_lists_its_agents(cli: Cli, workdir: Path) -> None:
    """The list read the agents from the replay orchestrator's output only: a trace of the
    guide's examples showed none, though `traces show` had its agent operations."""
    service = local_service()
    trace_id = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "P1"})
    span_id = service.start_agent_span("inventory_agent", "assess", {"stock": 5})
    service.log_agent_decision(span_id, {"decision_type": "restock", "qty": 3}, confidence=0.9)
    service.end_agent_span(span_id, {"reorder": 3})
    service.finalize_trace(trace_id, {"status": "done"})
    # A trace of one agent operation, and a collaboration outside any trace, showed none.
    with service.trace_operation("price_optimization", agent_id="pricing_agent") as operation:
        operation_trace = operation.trace_id
    with service.track_collaboration(["inventory_agent", "pricing_agent"], "sync") as together:
        collaboration_trace = together.trace_id
    service.shutdown()
    listed = json.loads(cli("--json", "traces", "list", "--local").stdout)["traces"]
    by_id = {row["id"]: row for row in listed}
    assert (by_id[trace_id]["agents"], by_id[trace_id]["decisions"]) == (["inventory_agent"], 1)
    assert by_id[operation_trace]["agents"] == ["pricing_agent"]
    assert by_id[collaboration_trace]["agents"] == ["inventory_agent", "pricing_agent"]


def test_a_guide_trace_lists_its_conflicts_and_one_ended_at_shutdown_its_agents(
    cli: Cli, workdir: Path
) -> None:
    """Conflicts logged with the guide's API were listed as 0 (counted from the replay's
    outcome only), the trace at level DEFAULT; a trace never finalized, ended at shutdown,
    was listed with no agents and no decisions."""
    service = local_service()
    conflicted = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "P1"})
    span_id = service.start_agent_span("pricing_agent", "optimize", {"price": 10})
    service.end_agent_span(span_id, {"price": 9})
    with service.track_collaboration(["inventory_agent", "pricing_agent"], "sync"):
        service.log_conflict("price_vs_stock", ["inventory_agent", "pricing_agent"], {"why": 1})
        service.log_conflict("restock", ["inventory_agent", "promotion_agent"], {"why": 2})
        service.log_conflict_resolution(
            "restock", "stock first", {}, overturned_agent="promotion_agent"
        )
    service.finalize_trace(conflicted, {"status": "completed"})
    left_open = service.create_simulation_trace({"event_type": "demand_spike", "product_id": "P2"})
    span_id = service.start_agent_span("inventory_agent", "forecast", {"stock": 5})
    service.log_agent_decision(span_id, {"decision_type": "restock"}, confidence=0.8)
    service.end_agent_span(span_id, {"reorder": 3})
    service.shutdown()  # ends the open trace: recorded, not lost
    listed = json.loads(cli("--json", "traces", "list", "--local").stdout)["traces"]
    by_id = {row["id"]: row for row in listed}
    assert (by_id[conflicted]["conflicts"], by_id[conflicted]["level"]) == (2, "WARNING")
    assert (by_id[left_open]["agents"], by_id[left_open]["decisions"]) == (["inventory_agent"], 1)
    assert by_id[left_open]["conflicts"] == 0


def test_since_and_until_keep_their_milliseconds(cli: Cli) -> None:
    """--since 13:31:33.400Z was sent as 13:31:33Z: the window took traces from before it,
    and a sub-second window was refused as empty."""
    assert cli("replay", str(EXAMPLE), "--limit", "60").exit_code == 0
    every = json.loads(cli("--json", "traces", "list", "--local", "--all").stdout)["traces"]
    stamps = sorted(row["timestamp"] for row in every)
    # A start inside a second that holds an earlier trace (60 traces in a few seconds: there is one).
    cut = next(b for a, b in pairwise(stamps) if a[:19] == b[:19] and a < b)
    listed = json.loads(cli("--json", "traces", "list", "--local", "--all", "--since", cut).stdout)[
        "traces"
    ]
    assert sorted(row["timestamp"] for row in listed) == [s for s in stamps if s >= cut]
    window = cli("traces", "list", "--local", "--since", stamps[0], "--until", stamps[-1])
    assert window.exit_code == 0, window.both


def test_a_filter_that_is_not_utf_8_matches_nothing_instead_of_an_internal_error(
    cli: Cli, workdir: Path
) -> None:
    """An argument that is not UTF-8 reaches Python as lone surrogates, which SQLite cannot
    bind: `traces list --local --session $'ab\\xff'` was an internal error (exit 1)."""
    import subprocess

    from tests.support.serve_process import autoops_executable

    assert cli("replay", str(EXAMPLE)).exit_code == 0
    for option in ("--session", "--event-type", "--tag"):
        done = subprocess.run(
            [autoops_executable(), "traces", "list", "--local", option, b"ab\xff"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "no traces matching these filters" in done.stderr
        assert "internal error" not in done.stderr


@pytest.mark.parametrize(("columns", "size", "width"), [
    ("300", (0, 0), 300), ("40", (0, 0), 40), ("", (120, 40), 120),
    ("", (0, 0), 80),  # a terminal that says 0x0: Rich's 80 (its tables vanished)
])  # fmt: skip
def test_on_a_dumb_terminal_tables_take_the_width_columns_says(
    monkeypatch: pytest.MonkeyPatch, columns: str, size: tuple[int, int], width: int
) -> None:
    """TERM=dumb: Rich took the terminal as 80 columns whatever COLUMNS said (tables cut
    on a wide one, overflowing a narrow one)."""
    import io
    import os

    from autoops_cli.output import Output

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            return 1

    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setattr("sys.stdout", Terminal())
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=1: os.terminal_size(size))
    assert Output().table_width() == width


def test_on_a_dumb_terminal_columns_are_dropped_before_cells_are_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """TERM=dumb: Rich sized the measuring console at 80 columns whatever width it was
    given, so no column was ever dropped and every cell was cut (``66e…``)."""
    import io

    from rich.console import Console

    from autoops_cli.output import Column, fitted_table

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setattr("sys.stdout", Terminal())
    columns = [Column("id", 0), Column("name", 0), Column("detail", 1), Column("more", 2)]
    rows = [["0123456789abcdef", "inventory_low", "x" * 50, "y" * 50]]
    table = fitted_table(columns, rows, width=80)  # what Rich gives a dumb terminal
    shown = Console(file=io.StringIO(), width=80, height=25)
    shown.print(table)
    text = shown.file.getvalue()  # type: ignore[attr-defined]
    assert "0123456789abcdef" in text and "inventory_low" in text and "…" not in text
    assert "detail" not in text and "more" not in text  # dropped whole
