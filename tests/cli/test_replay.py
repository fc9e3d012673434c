"""``autoops replay``: one trace per event in the local store, bad lines, sampling, masking."""

from __future__ import annotations

import gzip
import json
import os
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from autoops_cli.simulation.generator import generate_events, write_events
from tests.conftest import Cli
from tests.support.paths import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "events.jsonl"

# The trace schema, written out independently of the orchestrator's routing table:
# event type -> (agents, whether pricing and promotion collaborate).
EXPECTED_ROUTES = {
    "demand_spike": (3, True),
    "inventory_low": (2, False),
    "competitor_price_change": (2, True),
    "supply_delay": (2, False),
    "seasonal_trend": (3, True),
    "slow_moving_inventory": (3, True),
}
TOOLS_PER_AGENT = 2


def store_file(workdir: Path) -> Path:
    return Path(os.environ["AUTOOPS_HOME"]) / "traces.db"


def query(workdir: Path, sql: str, *params: object) -> list[tuple]:
    with sqlite3.connect(store_file(workdir)) as db:
        return db.execute(sql, params).fetchall()


def expected_counts(lines: list[dict]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in lines:
        agents, collaborative = EXPECTED_ROUTES[event["event_type"]]
        counts["traces"] += 1
        counts["agent"] += agents
        counts["tool"] += agents * TOOLS_PER_AGENT
        counts["decision"] += agents
        counts["collaboration"] += 1 if collaborative else 0
    return counts


def write_jsonl(path: Path, items: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in items))
    return path


def test_example_replay_records_one_complete_trace_per_event(cli: Cli, workdir: Path) -> None:
    result = cli("replay", str(EXAMPLE), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    events = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    expected = expected_counts(events)
    assert summary["events_processed"] == len(events) == summary["traces_recorded"]
    assert summary["destination"].startswith("local store")
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == expected["traces"]
    by_type = dict(query(workdir, "SELECT type, COUNT(*) FROM observations GROUP BY type"))
    assert by_type["AGENT"] == expected["agent"]
    assert by_type["TOOL"] == expected["tool"]
    decisions = query(workdir, "SELECT COUNT(*) FROM observations WHERE name LIKE '%.decision'")[0][
        0
    ]
    assert decisions == expected["decision"]
    collaborations = query(
        workdir, "SELECT COUNT(*) FROM observations WHERE name LIKE 'collaboration.%'"
    )
    assert collaborations[0][0] == expected["collaboration"]
    assert (
        query(workdir, "SELECT COUNT(*) FROM scores WHERE name = 'decision_confidence'")[0][0]
        == expected["decision"]
    )
    assert sum(summary["decisions"].values()) == expected["decision"]
    # Every trace: schema name, tags, session = run id, and exactly one root workflow.
    rows = query(workdir, "SELECT name, tags, session_id FROM traces")
    assert {name.split(".")[0] for name, _, _ in rows} == {"simulation"}
    assert {session for _, _, session in rows} == {summary["run_id"]}
    assert all(len(json.loads(tags)) == 3 for _, tags, _ in rows)
    roots = query(
        workdir,
        "SELECT COUNT(*) FROM observations WHERE parent_observation_id IS NULL AND name = 'orchestrator.process_event'",
    )
    assert roots[0][0] == expected["traces"]
    conflicts = query(
        workdir,
        "SELECT COUNT(*) FROM observations WHERE name LIKE 'conflict.%' AND level = 'WARNING'",
    )
    assert conflicts[0][0] == summary["conflicts_detected"] > 0


def test_same_run_id_gives_identical_decisions_and_is_stored_once(cli: Cli, workdir: Path) -> None:
    first = json.loads(cli("replay", str(EXAMPLE), "--run-id", "fixed", "--json").stdout)
    snapshot = query(
        workdir, "SELECT id, output FROM observations WHERE type = 'AGENT' ORDER BY id"
    )
    scores = query(workdir, "SELECT id, value FROM scores ORDER BY id")
    second = json.loads(cli("replay", str(EXAMPLE), "--run-id", "fixed", "--json").stdout)
    assert first["decisions"] == second["decisions"]
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == first["events_processed"]
    assert (
        query(workdir, "SELECT id, output FROM observations WHERE type = 'AGENT' ORDER BY id")
        == snapshot
    )
    assert query(workdir, "SELECT id, value FROM scores ORDER BY id") == scores


GOOD_LINES = 300


def test_bad_lines_are_reported_and_skipped(cli: Cli, workdir: Path) -> None:
    good = [json.dumps(e) for e in generate_events(GOOD_LINES, seed=5)]
    bad = ["{not json", "[]", '{"event_type": "nope", "timestamp": "2026-11-20T08:00:00Z", "product_id": "P"}',
           '{"event_type": "demand_spike", "product_id": "P"}', '{"event_type": "demand_spike", "timestamp": "yesterday", "product_id": "P"}',
           '{"event_type": "demand_spike", "timestamp": "2026-11-20T08:00:00", "product_id": "P"}',
           '{"event_type": "demand_spike", "timestamp": "2026-11-20T08:00:00Z", "product_id": "P", "severity": "urgent"}',
           '{"event_type": "demand_spike", "timestamp": "2026-11-20T08:00:00Z", "product_id": "P", "data": {"current_stock": -1}}',
           '{"event_type": "demand_spike", "timestamp": "2026-11-20T08:00:00Z", "product_id": 7}',
           '{"event_type": "demand_spike", "timestamp": "2026-11-20T08:00:00Z", "product_id": "P", "data": {"current_price": NaN}}']  # fmt: skip
    lines = list(good)
    bad_line_numbers = []
    for i, text in enumerate(bad):
        position = 20 + i * 23  # spread over the file, the last one well before its end
        lines.insert(position, text)
    for number, text in enumerate(lines, start=1):
        if text in bad:
            bad_line_numbers.append(number)
    path = write_jsonl(workdir / "mixed.jsonl", lines)
    result = cli("replay", str(path), "--json")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert summary["events_processed"] == GOOD_LINES
    assert summary["events_rejected"] == 10
    assert [r["line"] for r in summary["rejected"]] == bad_line_numbers
    for number in bad_line_numbers:
        assert f"mixed.jsonl:{number}: " in result.stderr
    assert "unknown event_type 'nope'" in result.stderr
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == GOOD_LINES


def test_a_repeated_event_id_gets_a_trace_of_its_own_so_the_counts_are_what_is_stored(
    cli: Cli, workdir: Path
) -> None:
    events = [json.dumps(e) for e in generate_events(6, seed=9)]
    # The third event again, and the first one with other data under the same id.
    first = json.loads(events[0])
    first["severity"] = "low"
    lines = [*events[:4], events[2], *events[4:], json.dumps(first)]
    path = write_jsonl(workdir / "repeats.jsonl", lines)
    result = cli("replay", str(path), "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["events_processed"] == 8
    assert summary["events_rejected"] == 0
    assert "2 event(s) repeated an earlier event_id" in result.stderr
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == summary["traces_recorded"] == 8
    assert (
        query(workdir, "SELECT COUNT(*) FROM observations")[0][0]
        == summary["observations_recorded"]
    )
    assert query(workdir, "SELECT COUNT(*) FROM scores")[0][0] == summary["scores_recorded"]

    # Replayed again with the same run id: the same ids (renamed ones too), stored once.
    again = cli("replay", str(path), "--json", "--run-id", summary["run_id"])
    assert again.exit_code == 0
    assert json.loads(again.stdout)["traces_recorded"] == 8
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == 8


def test_with_shard_the_repeated_event_ids_are_not_said_to_be_replayed_here(
    cli: Cli, workdir: Path
) -> None:
    """Renamed over the whole file, so that every shard names them alike: the warning said
    the repeats of other shards' products had been replayed by this run."""
    from autoops_cli.simulation.partition import shard_of

    event = {"event_id": "x", "timestamp": "2026-11-20T08:15:00Z", "event_type": "demand_spike"}
    product = "PROD_001"
    elsewhere = 1 + shard_of(product, 2) % 2  # the other shard of two
    path = write_jsonl(
        workdir / "repeats.jsonl", [json.dumps({**event, "product_id": product})] * 2
    )
    result = cli("replay", str(path), "--shard", f"{elsewhere}/2", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["events_processed"] == 0
    assert "each was replayed" not in result.stderr
    assert "those of this shard were replayed" in result.stderr


def test_strict_stops_at_the_first_bad_line_keeping_what_was_recorded(
    cli: Cli, workdir: Path
) -> None:
    good = [json.dumps(e) for e in generate_events(30, seed=2)]
    path = write_jsonl(workdir / "strict.jsonl", [*good[:20], "oops", *good[20:]])
    result = cli("replay", str(path), "--strict", "--json")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert summary["events_processed"] == 20
    assert summary["stopped_early"].startswith("line 21:")
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == 20


def test_sampling_keeps_a_quarter_of_whole_traces(cli: Cli, workdir: Path) -> None:
    count = 1600
    events = list(generate_events(count, seed=11))
    path = write_events(workdir / "many.jsonl", events) and workdir / "many.jsonl"
    result = cli("replay", str(path), "--sample-rate", "0.25", "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    recorded = query(workdir, "SELECT COUNT(*) FROM traces")[0][0]
    # Binomial(1600, 0.25): mean 400, sd = 17.3; 4 sd either side.
    assert 330 <= recorded <= 470
    assert summary["traces_recorded"] == recorded
    assert summary["events_sampled_out"] == count - recorded
    # Complete traces only: each recorded trace has all the agents its event type calls for.
    types = {e["event_id"]: e["event_type"] for e in events}
    rows = query(
        workdir,
        "SELECT json_extract(t.metadata, '$.event_id'), COUNT(o.id) FROM traces t "
        "JOIN observations o ON o.trace_id = t.id AND o.type = 'AGENT' GROUP BY t.id",
    )
    assert len(rows) == recorded
    for event_id, agents in rows:
        assert agents == EXPECTED_ROUTES[types[event_id]][0]


def test_masking_keeps_pii_out_of_the_store(cli: Cli, workdir: Path) -> None:
    secret_email = "jane.doe@example.com"
    card = "4111 1111 1111 1111"
    event = next(iter(generate_events(1, seed=3)))
    event["data"]["note"] = f"customer {secret_email} paid with {card}"
    event["customer_email"] = secret_email
    path = write_jsonl(workdir / "pii.jsonl", [event])
    assert cli("replay", str(path)).exit_code == 0
    blob = b"".join(p.read_bytes() for p in store_file(workdir).parent.glob("traces.db*"))
    assert secret_email.encode() not in blob
    assert b"4111" not in blob.replace(b"[CARD]", b"")
    assert b"[EMAIL]" in blob or b"[CUSTOMER]" in blob


def test_dry_run_records_nothing(cli: Cli, workdir: Path) -> None:
    result = cli("replay", str(EXAMPLE), "--dry-run", "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["destination"] == "none (dry run)"
    assert summary["traces_recorded"] == 0
    assert summary["events_processed"] == 200
    assert not store_file(workdir).exists()


def test_dry_run_with_bad_lines_does_not_claim_a_recording(cli: Cli, workdir: Path) -> None:
    path = write_jsonl(workdir / "some-bad.jsonl", [EXAMPLE.read_text().splitlines()[0], "{x"])
    result = cli("replay", str(path), "--dry-run")
    assert result.exit_code == 6
    assert "1 line(s) rejected; the other 1 event(s) were replayed, nothing recorded" in (
        result.stderr
    )
    assert not store_file(workdir).exists()


def test_more_bad_lines_than_the_summary_keeps_are_counted_truthfully(
    cli: Cli, workdir: Path
) -> None:
    result = cli("replay", str(write_jsonl(workdir / "bad.jsonl", ["{x"] * 150)), "--json")
    assert result.exit_code == 6
    assert len(json.loads(result.stdout)["rejected"]) == 100
    assert "... and 100 more bad lines (the first 100 listed in --json)" in result.stderr
    fewer = cli("replay", str(write_jsonl(workdir / "fewer.jsonl", ["{x"] * 60)), "--json")
    assert "... and 10 more bad lines (all listed in --json)" in fewer.stderr


@pytest.mark.parametrize(
    ("run_id", "problem"),
    [
        ("r\udcff", "printable US-ASCII characters only"),  # an argument that is not UTF-8
        ("caf\u00e9", "printable US-ASCII characters only"),
        ("a\tb", "printable US-ASCII characters only"),
        ("", "must not be empty"),
        ("x" * 201, "at most 200 characters (got 201)"),
    ],
)
def test_a_run_id_that_cannot_be_a_session_id_is_refused_before_any_store(
    cli: Cli, workdir: Path, run_id: str, problem: str
) -> None:
    """The run id is every trace's Langfuse session id: one that cannot be sent or stored
    made every trace of the run fail to record, while the run exited 0."""
    result = cli("replay", str(EXAMPLE), "--run-id", run_id)
    assert result.exit_code == 2
    assert problem in result.stderr
    assert "Traceback" not in result.both
    assert not store_file(workdir).exists()


def test_stdin_gzip_and_limit(cli: Cli, workdir: Path) -> None:
    text = EXAMPLE.read_text()
    piped = json.loads(cli("replay", "-", "--limit", "15", "--json", input=text).stdout)
    assert piped["events_processed"] == 15
    compressed = workdir / "events.jsonl.gz"
    compressed.write_bytes(gzip.compress(text.encode()))
    zipped = json.loads(cli("replay", str(compressed), "--json").stdout)
    assert zipped["events_processed"] == 200


def test_missing_file_is_exit_6(cli: Cli, workdir: Path) -> None:
    result = cli("replay", "nope.jsonl")
    assert result.exit_code == 6
    assert "nope.jsonl" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_sample_rate_is_a_usage_error(cli: Cli) -> None:
    result = cli("replay", str(EXAMPLE), "--sample-rate", "1.5")
    assert result.exit_code == 2


def test_custom_orchestrator(cli: Cli, workdir: Path) -> None:
    (workdir / "my_orchestrator.py").write_text(
        "from config.langfuse_integration import get_langfuse_integration\n"
        "class Mine:\n"
        "    def handle(self, event):\n"
        "        with get_langfuse_integration().trace_operation('my_step', as_type='tool'):\n"
        "            pass\n"
        "        return {'decisions': {'my_agent': {'ok': True}}, 'conflicts_detected': 0}\n"
        "def build():\n"
        "    return Mine()\n"
    )
    result = cli(
        "replay", str(EXAMPLE), "--limit", "5", "--orchestrator", "my_orchestrator:build", "--json"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["decisions"] == {"my_agent": 5}
    assert query(workdir, "SELECT COUNT(*) FROM observations WHERE name = 'my_step'")[0][0] == 5
    bad = cli("replay", str(EXAMPLE), "--orchestrator", "nowhere:build")
    assert bad.exit_code == 2
    assert "--orchestrator" in bad.stderr


def test_human_summary_and_destination_line(cli: Cli, workdir: Path) -> None:
    result = cli("replay", str(EXAMPLE), "--limit", "3")
    assert result.exit_code == 0
    assert "replaying" in result.stderr and "local store" in result.stderr
    assert "| events_processed" in result.stdout
    assert "| 3 " in result.stdout


@pytest.mark.parametrize("count", [1])
def test_quick_start_main_job_as_a_real_process(run_autoops, count: int) -> None:  # type: ignore[no-untyped-def]
    result = run_autoops("replay", str(EXAMPLE), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["traces_recorded"] == 200


def test_speed_follows_the_recorded_pace(cli: Cli, workdir: Path) -> None:
    events = list(generate_events(3, seed=1))
    for index, event in enumerate(events):  # 2 s apart, replayed 10x faster: about 0.4 s
        event["timestamp"] = f"2026-11-20T08:00:0{index * 2}Z"
    path = write_jsonl(workdir / "paced.jsonl", events)
    summary = json.loads(cli("replay", str(path), "--speed", "10", "--json").stdout)
    assert summary["events_processed"] == 3
    assert summary["duration_s"] >= 0.39


def test_a_long_paced_wait_is_announced_and_a_stop_keeps_what_was_replayed(
    workdir: Path,
) -> None:
    """An event dated years after the one before (a mistyped year) made --speed sleep for
    years without a word: it looked like a hang."""
    import select
    import signal
    import subprocess

    from tests.support.replay_runs import clean_env
    from tests.support.serve_process import autoops_executable

    events = list(generate_events(2, seed=1))
    events[0]["timestamp"] = "2026-11-20T08:00:00Z"
    events[1]["timestamp"] = "9999-12-31T23:59:59Z"
    path = write_jsonl(workdir / "outlier.jsonl", events)
    process = subprocess.Popen(
        [autoops_executable(), "--json", "replay", str(path), "--speed", "1000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
        env=clean_env(AUTOOPS_HOME=str(workdir / "paced")),
    )  # fmt: skip
    assert process.stderr is not None
    said = ""
    try:
        while "waiting" not in said:  # read as it comes (a buffered readline hid lines)
            ready, _, _ = select.select([process.stderr], [], [], 60)
            chunk = os.read(process.stderr.fileno(), 65536) if ready else b""
            assert chunk, f"no word of the wait within 60 s: {said!r}"
            said += chunk.decode()
    except AssertionError:
        process.kill()
        raise
    assert f"{path}:2: waiting 2," in said and "days for this event's time at --speed 1000" in said
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    summary = json.loads(stdout)
    assert summary["traces_recorded"] == 1
    # The event waited for was read and is in no other count: it is said, not lost.
    assert (summary["lines_read"], summary["events_total"]) == (2, 2)
    assert "1 event(s) recorded, 1 read but not recorded" in stderr.decode()


def test_another_file_under_the_same_run_id_gets_traces_of_its_own(cli: Cli, workdir: Path) -> None:
    """A nightly job with a fixed ``--run-id`` and a new file whose event ids start again at
    evt-000001: the trace ids came from the run id and the event id alone, so the second
    night's observations were written over the first night's and the traces mixed two
    events. The event's content is in the id now: the same file again is stored once, and
    another file's events keep traces of their own, each whole."""
    monday = write_jsonl(workdir / "monday.jsonl", list(generate_events(20, seed=1)))
    tuesday = write_jsonl(workdir / "tuesday.jsonl", list(generate_events(20, seed=2)))
    assert cli("replay", str(monday), "--run-id", "nightly").exit_code == 0
    alone = query(workdir, "SELECT COUNT(*) FROM observations")[0][0]
    assert cli("replay", str(monday), "--run-id", "nightly").exit_code == 0
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == 20  # stored once
    result = cli("replay", str(tuesday), "--run-id", "nightly", "--json")
    assert result.exit_code == 0, result.stderr
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == 40
    added = json.loads(result.stdout)["observations_recorded"]
    assert query(workdir, "SELECT COUNT(*) FROM observations")[0][0] == alone + added
    # Each trace holds the observations of its own event only: one workflow root apiece.
    roots = query(
        workdir,
        "SELECT trace_id, COUNT(*) FROM observations WHERE parent_observation_id IS NULL "
        "GROUP BY trace_id",
    )
    assert len(roots) == 40 and {count for _, count in roots} == {1}
