"""``autoops sampling``: rules, precedence, origins, file edits, and the core's decisions."""

from __future__ import annotations

import json
import math
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from config.langfuse_integration import LangfuseIntegrationService
from config.sampling_rules import SamplingRules, SamplingSubject
from config.settings import DataMaskingConfig, LangfuseConfig
from config.tracing.adaptive_sampling import AdaptiveSampling
from config.tracing.ids import event_trace_id
from config.tracing.sampling import TraceSampler
from tests.cli.test_replay import EXAMPLE, EXPECTED_ROUTES, query
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Cli, Figures
from tests.core.test_integration_core import Capture
from tests.support.replay_runs import replayed_events

PROJECT_TEXT = """\
# Team settings: reviewed in PR #42
[langfuse]
environment = "staging"  # not production
# half of the traces is plenty here
sample_rate = 0.5

[masking]
retention_days = 7
"""
# The event types routed to the promotion agent (docs/agents.md), written out.
PROMOTION_TYPES = {
    "demand_spike",
    "competitor_price_change",
    "seasonal_trend",
    "slow_moving_inventory",
}


def project(workdir: Path, text: str = PROJECT_TEXT) -> Path:
    path = workdir / "autoops.toml"
    path.write_text(text)
    return path


def show(cli: Cli, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = cli("sampling", "show", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def rules_of(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rule["setting"]: rule for rule in report["rules"]}


def kept(trace_id: str, rate: float) -> bool:
    """TraceIdRatioBased, written out independently of the core."""
    return int(trace_id[16:], 16) < rate * 2**64


# --- the command line -----------------------------------------------------------------------


def test_set_then_show_round_trips_and_keeps_the_file(cli: Cli, workdir: Path) -> None:
    path = project(workdir)
    assert cli("sampling", "set", "0.25").exit_code == 0
    assert cli("sampling", "set", "1", "--severity", "critical").exit_code == 0
    result = cli("sampling", "set", "0.5", "--event-type", "demand_spike", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["setting"] == "sampling.event_type.demand_spike"
    assert (document["scope"], document["file"], document["rate"]) == ("project", str(path), 0.5)
    assert (document["previous"], document["changed"], document["warnings"]) == (None, True, [])

    report = show(cli)
    assert report["global"]["rate"] == 0.25
    assert report["global"]["origin"] == f"{path} (key langfuse.sample_rate)"
    rules = rules_of(report)
    assert set(rules) == {"sampling.severity.critical", "sampling.event_type.demand_spike"}
    assert rules["sampling.severity.critical"]["rate"] == 1.0
    assert rules["sampling.severity.critical"]["origin"] == (
        f"{path} (key sampling.severity.critical)"
    )
    assert (
        "every trace of critical-severity events is kept"
        in (rules["sampling.severity.critical"]["effect"])
    )
    assert document["sampling"]["rules"][0]["setting"] == "sampling.event_type.demand_spike"

    text = path.read_text()
    for kept_line in (
        "# Team settings: reviewed in PR #42",
        'environment = "staging"  # not production',
        "# half of the traces is plenty here",
        "retention_days = 7",
    ):
        assert kept_line in text
    assert tomllib.loads(text) == {
        "langfuse": {"environment": "staging", "sample_rate": 0.25},
        "masking": {"retention_days": 7},
        "sampling": {"severity": {"critical": 1.0}, "event_type": {"demand_spike": 0.5}},
    }
    table = cli("sampling", "show").stdout
    assert "| severity = critical" in table and "| 0.25" in table
    assert "the highest rate among the rules it matches" in table


def test_two_edits_at_once_keep_both_changes(workdir: Path) -> None:
    """Two `sampling set` at once each read the file before the other wrote it: one rule was
    lost while both said "set". One edit waits for the other (the folder is locked): here
    an edit of this test's, holding the lock from its read to its write, and a `sampling
    set` started in between."""
    import contextlib
    import subprocess

    from autoops_cli.actions.files import editing
    from tests.support.replay_runs import clean_env
    from tests.support.serve_process import autoops_executable

    path = project(workdir, '[langfuse]\nrelease = "r"\n')
    with editing(path):
        ours = path.read_text() + "\n[sampling.severity]\nlow = 0.1\n"
        other = subprocess.Popen(
            [autoops_executable(), "sampling", "set", "0.5", "--event-type", "demand_spike"],
            cwd=workdir, env=clean_env(AUTOOPS_HOME=str(workdir / "home")),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):  # unlocked, it wrote meanwhile
            other.wait(timeout=3)
        path.write_text(ours)
    assert other.wait(timeout=60) == 0, other.stderr.read() if other.stderr else ""
    assert tomllib.loads(path.read_text())["sampling"] == {
        "severity": {"low": 0.1}, "event_type": {"demand_spike": 0.5}
    }  # fmt: skip


def test_set_the_same_value_twice_leaves_the_file_alone(cli: Cli, workdir: Path) -> None:
    path = project(workdir, "[sampling.severity]\ncritical = 1.0 # keep\n")
    before = path.read_bytes()
    result = cli("sampling", "set", "1.0", "--severity", "critical")
    assert result.exit_code == 0
    assert "already 1" in result.stderr
    assert path.read_bytes() == before


def test_a_rate_of_minus_zero_is_written_as_zero(cli: Cli, workdir: Path) -> None:
    path = project(workdir, "")
    assert cli("sampling", "set", "--", "-0").exit_code == 0
    assert "sample_rate = 0.0" in path.read_text() and "-0" not in path.read_text()


@pytest.mark.parametrize("rate", ["1.5", "-0.1", "abc", "nan", ""])
@pytest.mark.parametrize("rule", [[], ["--severity", "critical"]])
def test_invalid_rate_exits_2_and_leaves_the_file_unchanged(
    cli: Cli, workdir: Path, reliability: Figures, rate: str, rule: list[str]
) -> None:
    path = project(workdir)
    before = path.read_bytes()
    result = cli("sampling", "set", rate, *rule)
    reliability.tried()
    reliability.exited(result.exit_code)
    assert result.exit_code == 2, result.both
    assert "from 0 to 1" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert path.read_bytes() == before


def test_usage_errors_name_what_is_wrong(cli: Cli, workdir: Path) -> None:
    path = project(workdir)
    before = path.read_bytes()
    unknown = cli("sampling", "set", "0.5", "--event-type", "demand_spik")
    assert unknown.exit_code == 2
    assert "unknown event type 'demand_spik'" in unknown.stderr
    assert "demand_spike" in unknown.stderr
    two = cli("sampling", "set", "0.5", "--severity", "high", "--agent", "pricing_agent")
    assert two.exit_code == 2 and "one of --event-type, --severity, --agent" in two.stderr
    both = cli("sampling", "set", "0.5", "--user", "--project")
    assert both.exit_code == 2 and "not both" in both.stderr
    assert path.read_bytes() == before
    assert not (workdir.parent / "home" / ".config" / "autoops").exists()


def test_a_file_that_is_not_toml_is_left_alone(cli: Cli, workdir: Path) -> None:
    path = project(workdir, "[langfuse]\nsample_rate = [\n")
    before = path.read_bytes()
    result = cli("sampling", "set", "0.3")
    assert result.exit_code == 3
    assert f"{path}: invalid TOML" in result.stderr and "nothing was changed" in result.stderr
    assert path.read_bytes() == before
    project(workdir, '[langfuse]\nsample_rate = "0.5"  # a string, accepted\n')
    result = cli("sampling", "set", "0.3")
    assert result.exit_code == 0 and "(was 0.5)" in result.stderr
    assert path.read_text() == "[langfuse]\nsample_rate = 0.3  # a string, accepted\n"


def test_show_explains_an_environment_variable_overriding_the_file(cli: Cli, workdir: Path) -> None:
    path = project(workdir)
    env = {"LANGFUSE_SAMPLE_RATE": "0.1"}
    report = show(cli, env)
    assert report["global"]["rate"] == 0.1
    assert report["global"]["origin"] == "environment variable LANGFUSE_SAMPLE_RATE"
    assert report["global"]["overrides"] == [
        {"value": 0.5, "origin": f"{path} (key langfuse.sample_rate)"}
    ]
    note = f"LANGFUSE_SAMPLE_RATE=0.1 in the environment overrides the 0.5 in {path}"
    assert report["global"]["note"] == note
    text = cli("sampling", "show", env={**env, "COLUMNS": "400"}).stdout
    assert f"- {note}" in text

    written = cli("sampling", "set", "0.3", env=env)
    assert written.exit_code == 0
    assert (
        f"LANGFUSE_SAMPLE_RATE=0.1 in the environment overrides the 0.3 just written to {path}"
        in " ".join(written.stderr.split())
    )
    assert tomllib.loads(path.read_text())["langfuse"]["sample_rate"] == 0.3
    assert show(cli, env)["global"]["rate"] == 0.1


def test_user_and_project_files_layer_per_rule(cli: Cli, workdir: Path) -> None:
    path = project(workdir)
    user_file = workdir.parent / "home" / ".config" / "autoops" / "config.toml"
    assert cli("sampling", "set", "1", "--severity", "critical", "--user").exit_code == 0
    assert cli("sampling", "set", "0.3", "--event-type", "demand_spike", "--user").exit_code == 0
    assert user_file.is_file() and not (workdir / ".autoops").exists()
    assert cli("sampling", "set", "0.6", "--event-type", "demand_spike").exit_code == 0
    rules = rules_of(show(cli))
    assert rules["sampling.severity.critical"]["origin"] == (
        f"{user_file} (key sampling.severity.critical)"
    )
    spike = rules["sampling.event_type.demand_spike"]
    assert (spike["rate"], spike["origin"]) == (
        0.6,
        f"{path} (key sampling.event_type.demand_spike)",
    )
    assert spike["overrides"] == [
        {"value": 0.3, "origin": f"{user_file} (key sampling.event_type.demand_spike)"}
    ]
    # Writing the user file while the project file sets the same rule: said, not hidden.
    shadowed = cli("sampling", "set", "0.2", "--event-type", "demand_spike", "--user")
    assert shadowed.exit_code == 0
    assert "overrides the 0.2 just written" in " ".join(shadowed.stderr.split())
    assert tomllib.loads(path.read_text())["sampling"] == {"event_type": {"demand_spike": 0.6}}


@pytest.mark.parametrize(
    ("text", "args"),
    [
        ("[langfuse]  # team-wide sampling, see ticket OPS-12\nsample_rate = 0.2\n", ()),
        ("[sampling.severity]  # keep\nlow = 0.1\n", ("--severity", "low")),
    ],
)
def test_reset_keeps_a_table_with_a_comment_on_its_header(
    cli: Cli, workdir: Path, text: str, args: tuple[str, ...]
) -> None:
    """docs/sampling.md: an emptied table stays when it holds a comment; one on the
    header's line was deleted with the table (the file emptied)."""
    path = workdir / "autoops.toml"
    path.write_text(text, encoding="utf-8")
    assert cli("sampling", "reset", *args).exit_code == 0
    assert path.read_text(encoding="utf-8") == text.splitlines(keepends=True)[0]


def test_reset_removes_a_rule_or_the_global_rate(cli: Cli, workdir: Path) -> None:
    path = project(workdir)
    original = path.read_bytes()
    assert cli("sampling", "set", "1", "--severity", "critical").exit_code == 0
    assert cli("sampling", "set", "0.4", "--agent", "pricing_agent").exit_code == 0
    result = cli("sampling", "reset", "--severity", "critical", "--json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["setting"], document["previous"], document["changed"]) == (
        "sampling.severity.critical",
        1.0,
        True,
    )
    assert [r["setting"] for r in document["sampling"]["rules"]] == ["sampling.agent.pricing_agent"]
    assert cli("sampling", "reset", "--agent", "pricing_agent").exit_code == 0
    assert path.read_bytes() == original  # set then reset: the file as it was

    again = cli("sampling", "reset", "--agent", "pricing_agent")
    assert again.exit_code == 0 and "not set" in again.stderr
    assert path.read_bytes() == original

    assert cli("sampling", "reset").exit_code == 0
    report = show(cli)
    assert (report["global"]["rate"], report["global"]["origin"]) == (1.0, "default")
    assert "sample_rate" not in tomllib.loads(path.read_text())["langfuse"]
    assert "# half of the traces is plenty here" in path.read_text()

    user = cli("sampling", "reset", "--severity", "critical", "--user")
    assert user.exit_code == 0
    assert not (workdir.parent / "home" / ".config" / "autoops" / "config.toml").exists()


def test_invalid_rules_in_a_file_are_configuration_problems(cli: Cli, workdir: Path) -> None:
    path = project(
        workdir,
        "[sampling.severity]\ncritical = 1.5\n[sampling.event_typ]\ndemand_spike = 1\n"
        '[sampling.agent]\npricing_agent = "0.3"\n',
    )
    result = cli("config", "validate")
    assert result.exit_code == 3
    assert (
        f"sampling.severity.critical ({path} (key sampling.severity.critical)): "
        "must be a number from 0 to 1, got 1.5"
    ) in result.stderr
    assert f"{path} (key sampling.event_typ)" in result.stderr
    assert "unknown rule kind" in result.stderr
    assert f"{path} (key sampling.agent.pricing_agent)" in result.stderr
    report = json.loads(cli("config", "validate", "--json").stdout)
    assert {e["setting"] for e in report["errors"]} == {
        "sampling.severity.critical",
        "sampling.event_typ",
        "sampling.agent.pricing_agent",
    }
    assert cli("sampling", "show").exit_code == 3
    assert cli("replay", str(EXAMPLE), "--limit", "1").exit_code == 3


def test_a_rule_naming_nothing_known_is_a_warning(cli: Cli, workdir: Path) -> None:
    path = project(workdir, "[sampling.agent]\nbilling_agent = 1.0\n")
    result = cli("config", "validate")
    assert result.exit_code == 0
    assert f"sampling.agent.billing_agent ({path} (key sampling.agent.billing_agent))" in (
        result.stderr
    )
    # Not "matches nothing": an orchestrator of your own routes to agents of its own, and
    # the rule samples those (docs/developer-guide.md); it said so while dropping traces.
    assert "no built-in agent 'billing_agent'" in result.stderr
    assert "matches only an agent your own orchestrator routes to" in result.stderr
    assert rules_of(show(cli))["sampling.agent.billing_agent"]["known"] is False
    # reset may remove what set would refuse to write
    assert cli("sampling", "reset", "--agent", "billing_agent").exit_code == 0
    assert tomllib.loads(path.read_text()) == {}
    project(workdir, "[sampling.event_type]\ndemand_spikes = 1.0\n")  # a typo
    assert "the rule matches nothing" in cli("config", "validate").stderr


def test_set_never_writes_a_secret(cli: Cli, workdir: Path) -> None:
    path = project(
        workdir, f"[langfuse]\nsecret_key = '{KNOWN_SECRET}'\npublic_key = '{KNOWN_PUBLIC}'\n"
    )
    path.chmod(0o600)
    env = {"LANGFUSE_SECRET_KEY": KNOWN_SECRET, "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC}
    result = cli("sampling", "set", "0.2", "--severity", "low", "--json", env=env)
    assert result.exit_code == 0, result.stderr
    assert KNOWN_SECRET not in result.both
    assert path.read_text().count(KNOWN_SECRET) == 1  # the one that was there, untouched
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    user_env = {"LANGFUSE_SECRET_KEY": KNOWN_SECRET, "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC}
    assert cli("sampling", "set", "0.5", "--user", env=user_env).exit_code == 0
    user_file = workdir.parent / "home" / ".config" / "autoops" / "config.toml"
    assert tomllib.loads(user_file.read_text()) == {"langfuse": {"sample_rate": 0.5}}


def test_sampling_disabled_keeps_every_trace(cli: Cli, workdir: Path) -> None:
    project(workdir, "[langfuse]\nsample_rate = 0.0\n[sampling.severity]\nlow = 0.0\n")
    env = {"LANGFUSE_ENABLE_SAMPLING": "false"}
    report = show(cli, env)
    assert report["sampling_enabled"] is False
    assert report["sampling_enabled_origin"] == "environment variable LANGFUSE_ENABLE_SAMPLING"
    assert "every trace is kept" in report["global"]["effect"]
    # The rules said what they would do: "traces of low-severity events are dropped".
    rule = rules_of(report)["sampling.severity.low"]
    assert rule["effect"].startswith("not applied (sampling is off)")
    assert report["adaptive"]["active"] is False
    written = cli("sampling", "set", "0.1", env=env)
    assert "sampling is off (LANGFUSE_ENABLE_SAMPLING=false in the environment)" in " ".join(
        written.stderr.split()
    )
    summary = json.loads(cli("replay", str(EXAMPLE), "--json", env=env).stdout)
    assert summary["traces_recorded"] == summary["events_processed"] == 200
    assert query(workdir, "SELECT COUNT(*) FROM traces")[0][0] == 200


def test_replay_keeps_every_critical_event_and_a_tenth_of_the_rest(
    cli: Cli, run_autoops: Any, workdir: Path
) -> None:
    events_file = workdir / "events.jsonl"
    generated = cli(
        "events", "generate", "--count", "2000", "--seed", "8", "--output", str(events_file)
    )
    assert generated.exit_code == 0, generated.stderr
    assert cli("sampling", "set", "0.1").exit_code == 0
    assert cli("sampling", "set", "1.0", "--severity", "critical").exit_code == 0

    result = run_autoops(
        "replay", str(events_file), "--run-id", "acceptance", "--json", timeout=300
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)

    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    critical = {e["event_id"] for e in events if e["severity"] == "critical"}
    others = [e for e in events if e["severity"] != "critical"]
    rows = query(
        workdir,
        "SELECT json_extract(metadata, '$.event_id'), json_extract(metadata, '$.severity') FROM traces",
    )
    stored = {event_id for event_id, _ in rows}
    assert critical <= stored  # every critical event kept
    kept_others = len(stored - critical)
    # Binomial(n, 0.1): within 4 standard deviations of the mean.
    n = len(others)
    assert abs(kept_others - 0.1 * n) <= 4 * math.sqrt(n * 0.1 * 0.9), (kept_others, n)
    assert summary["traces_recorded"] == len(stored) == len(critical) + kept_others
    # Deterministic from the trace id: exactly the events TraceIdRatioBased(0.1) keeps.
    replayed = replayed_events(events_file)
    expected = {
        e["event_id"]
        for e in others
        if kept(event_trace_id("acceptance", replayed[e["event_id"]]), 0.1)
    }
    assert stored - critical == expected

    # No partial trace: each stored trace has its root and every agent its route calls for.
    types = {e["event_id"]: e["event_type"] for e in events}
    shape = query(
        workdir,
        "SELECT json_extract(t.metadata, '$.event_id'), "
        "SUM(o.parent_observation_id IS NULL AND o.name = 'orchestrator.process_event'), "
        "SUM(o.type = 'AGENT') FROM traces t JOIN observations o ON o.trace_id = t.id GROUP BY t.id",
    )
    assert len(shape) == len(stored)
    for event_id, roots, agents in shape:
        assert roots == 1, event_id
        assert agents == EXPECTED_ROUTES[types[event_id]][0], event_id


def test_agent_rules_apply_to_the_events_routed_to_the_agent(cli: Cli, workdir: Path) -> None:
    project(workdir, "[langfuse]\nsample_rate = 0.0\n[sampling.agent]\npromotion_agent = 1.0\n")
    replayed = cli("replay", str(EXAMPLE), "--json")
    summary = json.loads(replayed.stdout)
    # Not "drops every trace": the rule keeps some (said so by replay, validate and health).
    kept_by_rule = "sample rate 0 drops every trace that no sampling rule keeps (1 rule(s) keep some: promotion_agent)"
    assert kept_by_rule in replayed.stderr
    assert kept_by_rule in cli("config", "validate").stderr
    health = json.loads(cli("--json", "health-check").stdout)
    (sampling,) = [c for c in health["checks"] if c["name"] == "sampling"]
    assert sampling["message"].startswith(kept_by_rule)
    events = [json.loads(line) for line in EXAMPLE.read_text().splitlines() if line.strip()]
    routed = {e["event_id"] for e in events if e["event_type"] in PROMOTION_TYPES}
    stored = {
        row[0] for row in query(workdir, "SELECT json_extract(metadata, '$.event_id') FROM traces")
    }
    assert stored == routed
    assert summary["traces_recorded"] == len(routed)


def test_an_orchestrator_routing_to_one_agent_by_name_is_matched_by_its_rule(
    cli: Cli, workdir: Path
) -> None:
    """agents_for returning "promotion_agent" (a string, not a tuple) was read letter by
    letter: the agent rules matched nothing, silently."""
    (workdir / "one_agent.py").write_text(
        "from autoops_cli.simulation.orchestrator import RetailOrchestrator\n\n"
        "class OneAgent(RetailOrchestrator):\n"
        "    @staticmethod\n"
        "    def agents_for(event):\n"
        "        return 'promotion_agent'\n",
        encoding="utf-8",
    )
    project(workdir, "[sampling.agent]\npromotion_agent = 0.0\n")
    result = cli("replay", str(EXAMPLE), "--limit", "20", "--orchestrator", "one_agent:OneAgent",
                 "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["events_sampled_out"] == 20


def test_show_reports_the_adaptive_lowering(cli: Cli, workdir: Path) -> None:
    env = {"LANGFUSE_MAX_LATENCY_MS": "0.000001"}
    replayed = json.loads(cli("replay", str(EXAMPLE), "--run-id", "slow", "--json", env=env).stdout)
    assert replayed["sampling_changes"]
    adaptive = show(cli, env)["adaptive"]
    assert adaptive["active"] is True
    assert adaptive["max_latency_ms_origin"] == "environment variable LANGFUSE_MAX_LATENCY_MS"
    last = adaptive["last_replay"]
    assert last["run_id"] == "slow"
    assert last["changes"] == replayed["sampling_changes"]
    assert last["final_rate"] < last["configured_rate"] == 1.0
    text = cli("sampling", "show", env={**env, "COLUMNS": "400"}).stdout
    assert "- last replay slow (" in text and "rate 1 -> 0.5 after 50 traces" in text


@pytest.mark.parametrize(
    "kept", ['{"changes": [{}]}', '{"changes": 5}', '{"changes": [5]}', "[1]", "{bad"]
)
def test_a_damaged_record_of_the_last_replay_is_no_record(
    cli: Cli, workdir: Path, kept: str
) -> None:
    """`sampling show` was an internal error (KeyError) on it, and `sampling set` exited 1
    after writing the file."""
    from config.store.local_store import default_store_path

    record = default_store_path().parent / "last-replay-sampling.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(kept, encoding="utf-8")
    assert show(cli, {})["adaptive"]["last_replay"] is None
    shown = cli("sampling", "show")
    assert shown.exit_code == 0 and "internal error" not in shown.stderr
    assert cli("sampling", "set", "0.5").exit_code == 0


def test_show_says_the_outbox_lowers_nothing(cli: Cli, workdir: Path) -> None:
    """A full outbox is delivery's business (backpressure, kept batches), not sampling's."""
    from config.delivery.outbox import SPANS, Outbox
    from config.store.local_store import default_store_path

    host = "http://127.0.0.1:9"
    env = {
        "LANGFUSE_PUBLIC_KEY": KNOWN_PUBLIC,
        "LANGFUSE_SECRET_KEY": KNOWN_SECRET,
        "LANGFUSE_HOST": host,
        "LANGFUSE_BUFFER_SIZE": "1",
    }
    outbox = Outbox(default_store_path())
    for _ in range(2):
        outbox.add(SPANS, host, b"batch", 1)
    outbox.close()
    adaptive = show(cli, env)["adaptive"]
    assert set(adaptive) == {
        "active",
        "max_latency_ms",
        "max_latency_ms_origin",
        "rules",
        "last_replay",
    }
    text = cli("sampling", "show", env={**env, "COLUMNS": "400"}).stdout
    assert "the outbox lowers nothing" in text


def test_the_deploy_canary_is_never_sampled_out(cli: Cli, workdir: Path) -> None:
    project(workdir, "[langfuse]\nsample_rate = 0.0\n[sampling.event_type]\ndemand_spike = 0.0\n")
    result = cli("deploy", "--canary-timeout", "5", "--json")
    assert result.exit_code == 0, result.both
    assert json.loads(result.stdout)["canary"]["delivered"] is True


def test_config_init_template_shows_the_rule_format(cli: Cli, workdir: Path) -> None:
    assert cli("config", "init").exit_code == 0
    text = (workdir / "autoops.toml").read_text()
    assert "[sampling.severity]\n" in text and "# critical = 1.0" in text
    assert cli("sampling", "set", "1", "--severity", "critical").exit_code == 0
    assert tomllib.loads((workdir / "autoops.toml").read_text())["sampling"] == {
        "severity": {"critical": 1.0}
    }


# --- the core ---------------------------------------------------------------------------------


def test_the_highest_matching_rule_wins_else_the_global_rate() -> None:
    rules = SamplingRules(
        event_type={"demand_spike": 0.2, "supply_delay": 0.05},
        severity={"critical": 1.0},
        agent={"promotion_agent": 0.6},
    )
    sampler = TraceSampler(0.5, rules=rules)
    assert sampler.rate_for(SamplingSubject("demand_spike", "critical")) == 1.0
    assert sampler.rate_for(SamplingSubject("demand_spike", "low", ("promotion_agent",))) == 0.6
    assert sampler.rate_for(SamplingSubject("demand_spike", "low")) == 0.2
    assert sampler.rate_for(SamplingSubject("supply_delay", "low")) == 0.05  # below the global
    assert sampler.rate_for(SamplingSubject("seasonal_trend", "high")) == 0.5
    assert sampler.rate_for(None) == 0.5
    off = TraceSampler(0.5, enabled=False, rules=rules)
    assert off.rate_for(SamplingSubject("supply_delay")) == 1.0
    assert all(off.keep(f"{i:032x}", SamplingSubject("supply_delay")) for i in range(50))


def test_adaptive_lowering_scales_rules_below_one() -> None:
    rules = SamplingRules(
        event_type={"demand_spike": 0.8, "supply_delay": 0.005}, severity={"critical": 1.0}
    )
    sampler = TraceSampler(0.4, rules=rules)
    adaptive = AdaptiveSampling(sampler, base_rate=0.4, max_latency_ms=1.0)
    adaptive.evaluate(overhead_ms=5.0)
    adaptive.evaluate(overhead_ms=5.0)
    assert sampler.rate == 0.1 and sampler.adaptive_factor == 0.25
    assert sampler.rate_for(SamplingSubject("demand_spike", "low")) == 0.2
    assert sampler.rate_for(SamplingSubject("demand_spike", "critical")) == 1.0  # never lowered
    assert sampler.rate_for(SamplingSubject("supply_delay")) == 0.005  # already under the floor
    adaptive.evaluate(overhead_ms=0.1)
    adaptive.evaluate(overhead_ms=0.1)
    assert sampler.rate == 0.4 and sampler.adaptive_factor == 1.0
    assert sampler.rate_for(SamplingSubject("demand_spike")) == 0.8


def test_adaptive_lowering_never_raises_a_rate_below_its_floor() -> None:
    for rate in (0.0, 0.004):
        sampler = TraceSampler(rate)
        adaptive = AdaptiveSampling(sampler, base_rate=rate, max_latency_ms=1.0)
        adaptive.evaluate(overhead_ms=50.0)
        assert sampler.rate == rate and adaptive.changes == []


Facts = tuple[str, str, tuple[str, ...]]


def _decisions(rules: SamplingRules, run: str) -> tuple[dict[str, bool], dict[str, Facts]]:
    """Open 400 traces through the seed API: which trace ids one service recorded, and why."""
    capture = Capture()
    service = LangfuseIntegrationService(
        # Adaptive sampling measures time: on a busy machine it lowered the rate between the
        # two services this test compares (these traces have no agent operation, so a window
        # of 50 traces counts as one "operation" of all their cost). Out of reach here.
        LangfuseConfig(sample_rate=0.1, max_latency_ms=1e9),
        DataMaskingConfig(),
        exporter=capture,
        batch_size=1,
        sampling_rules=rules,
    )
    facts: dict[str, Facts] = {}
    for i in range(400):
        event_type = ("demand_spike", "supply_delay", "inventory_low")[i % 3]
        severity = "critical" if i % 7 == 0 else "low"
        agents = ("pricing_agent", "promotion_agent") if i % 5 == 0 else ("inventory_agent",)
        event = {"event_id": f"e{i}", "event_type": event_type, "severity": severity}
        trace_id = service.create_simulation_trace(event, session_id=run, agents=agents)
        service.finalize_trace(trace_id, {"ok": True})
        facts[trace_id] = (event_type, severity, agents)
    service.shutdown()
    recorded = {span.trace_id for span in capture.spans}
    return {trace_id: trace_id in recorded for trace_id in facts}, facts


def test_rules_in_the_core_decide_the_same_in_every_service(workdir: Path) -> None:
    rules = SamplingRules(
        event_type={"demand_spike": 0.5}, severity={"critical": 1.0}, agent={"promotion_agent": 0.3}
    )
    first, facts = _decisions(rules, "run-a")
    second, _ = _decisions(rules, "run-a")
    assert first == second  # two services, the same trace ids: the same decisions
    for trace_id, (event_type, severity, agents) in facts.items():
        matching = [0.1]  # the global rate, when nothing matches
        if severity == "critical":
            matching = [1.0]
        elif event_type == "demand_spike" or "promotion_agent" in agents:
            matching = [0.5] * (event_type == "demand_spike") + [0.3] * (
                "promotion_agent" in agents
            )
        assert first[trace_id] == kept(trace_id, max(matching)), trace_id
    assert 0 < sum(first.values()) < len(first)


def test_the_library_reads_rules_from_the_files(workdir: Path) -> None:
    from config.errors import ConfigurationError

    project(
        workdir, "[sampling.severity]\ncritical = 1.0\n[sampling.event_type]\nsupply_delay = 0.2\n"
    )
    service = LangfuseIntegrationService(exporter=Capture())
    assert service.tracer.sampler.rules == SamplingRules(
        event_type={"supply_delay": 0.2}, severity={"critical": 1.0}
    )
    service.shutdown()
    project(workdir, "[sampling.severity]\ncritical = 2\n")
    with pytest.raises(ConfigurationError, match=r"sampling\.severity\.critical"):
        LangfuseIntegrationService(exporter=Capture())


def test_a_sampling_report_that_cannot_be_written_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the replay keeps its sampling outcome: the report is skipped (the
    summary has it), and its half-written temporary file is not left in AUTOOPS_HOME."""
    from autoops_cli.actions import files
    from autoops_cli.actions.sampling import report

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    report.record_replay_sampling(tmp_path, {"changes": []})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("nested", ["[" * 600 + "]" * 600, "{a = " * 600 + "1" + "}" * 600])
def test_toml_nested_too_deeply_is_an_invalid_file_not_an_internal_error(
    cli: Cli, workdir: Path, nested: str
) -> None:
    """Arrays or inline tables nested some hundreds deep made the TOML parser recurse past
    Python's limit: every command said "internal error: RecursionError" (exit 1), and
    ``config validate --json`` printed no JSON. It is an invalid file (exit 3)."""
    path = project(workdir, f"x = {nested}\n")
    before = path.read_bytes()
    validated = cli("--json", "config", "validate")
    assert validated.exit_code == 3, validated.both
    (error,) = json.loads(validated.stdout)["errors"]
    assert error["source"] == str(path) and "nested too deeply" in error["message"]
    changed = cli("sampling", "set", "0.3")
    assert changed.exit_code == 3 and "nothing was changed" in changed.stderr
    assert path.read_bytes() == before


def test_a_change_that_leaves_the_configuration_invalid_is_undone(cli: Cli, workdir: Path) -> None:
    """``sampling set`` wrote the file, said so, then exited 3 for another key's problem: a
    script saw a failure and a changed file. The file is put back; a change that mends the
    configuration goes through."""
    path = project(workdir, "[langfuse]\nsampl_rate = 0.1\n")
    before = path.read_bytes()
    for command in (("set", "0.2"), ("set", "0.5", "--severity", "high")):
        result = cli("sampling", *command)
        assert result.exit_code == 3, result.both
        assert "nothing was changed" in result.stderr and "✓" not in result.stderr
        assert path.read_bytes() == before
    path.write_text("[langfuse]\nsample_rate = 2\n", encoding="utf-8")  # out of range
    mended = cli("sampling", "set", "0.2")
    assert mended.exit_code == 0, mended.both
    assert path.read_text(encoding="utf-8") == "[langfuse]\nsample_rate = 0.2\n"


def test_a_linked_project_file_stays_a_link(cli: Cli, workdir: Path) -> None:
    """autoops.toml as a symbolic link (dotfiles): set replaced the link with a copy, and so
    did the undo of a refused change, though it said nothing was changed."""
    shared = workdir / "dotfiles" / "autoops.toml"
    shared.parent.mkdir()
    shared.write_text("[langfuse]\nsampl_rate = 0.1\n", encoding="utf-8")
    link = workdir / "autoops.toml"
    link.symlink_to(shared)
    assert cli("sampling", "set", "0.2").exit_code == 3  # refused: undone
    assert link.is_symlink()
    shared.write_text("[langfuse]\nsample_rate = 0.1\n", encoding="utf-8")
    assert cli("sampling", "set", "0.3").exit_code == 0
    assert link.is_symlink()
    assert shared.read_text(encoding="utf-8") == "[langfuse]\nsample_rate = 0.3\n"


def test_a_looping_link_is_one_line_exit_6(cli: Cli, workdir: Path) -> None:
    """autoops.toml as a link in a loop: set and config init --force were internal errors
    (RuntimeError from resolving the link)."""
    (workdir / "a").symlink_to(workdir / "b")
    (workdir / "b").symlink_to(workdir / "a")
    (workdir / "autoops.toml").symlink_to(workdir / "a")
    for command in (("sampling", "set", "0.5"), ("config", "init", "--force")):
        result = cli(*command)
        assert result.exit_code == 6, result.both
        assert "Too many levels of symbolic links" in result.stderr
        assert "internal error" not in result.both


def test_a_pipe_or_device_is_never_replaced_by_a_configuration(cli: Cli, workdir: Path) -> None:
    """config init --force renamed its file over a pipe or a device (as root, --path
    /dev/null replaced the system's); sampling set did the same through a linked
    autoops.toml, and hung reading a pipe. Both are refused (exit 6), the pipe kept."""
    fifo = workdir / "settings.fifo"
    os.mkfifo(fifo)
    written = cli("config", "init", "--path", str(fifo), "--force")
    assert written.exit_code == 6, written.both
    assert "not a regular file" in written.stderr
    (workdir / "autoops.toml").symlink_to(fifo)
    edited = cli("sampling", "set", "0.4")
    assert edited.exit_code == 6, edited.both
    assert "not a regular file" in edited.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_set_in_a_subfolder_writes_the_projects_file_and_keeps_its_store(
    cli: Cli, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project with its .autoops/ store and no autoops.toml: set run in a subfolder
    created sub/autoops.toml, which made sub the project, and its store sub/.autoops (the
    outbox's waiting batches then read as none). The file goes to the project's folder."""
    monkeypatch.delenv("AUTOOPS_HOME")
    (workdir / ".autoops").mkdir()
    sub = workdir / "sub"
    sub.mkdir()
    monkeypatch.chdir(sub)
    done = cli("--json", "sampling", "set", "0.5")
    assert done.exit_code == 0, done.both
    assert json.loads(done.stdout)["file"] == str(workdir / "autoops.toml")
    assert not (sub / "autoops.toml").exists()
    from config.store.local_store import default_store_path

    assert default_store_path() == workdir / ".autoops" / "traces.db"
    # Not the home folder's (.autoops/ left there by a run in it): that would configure
    # every folder below it.
    home = workdir.parent / "home"
    (home / ".autoops").mkdir(parents=True)
    (home / "new").mkdir()
    monkeypatch.chdir(home / "new")
    created = cli("--json", "sampling", "set", "0.5")
    assert json.loads(created.stdout)["file"] == str(home / "new" / "autoops.toml")


@pytest.mark.parametrize(
    "original",
    [
        b'[langfuse]\r\nenvironment = "x"\r\n',  # CRLF: every line came back LF
        b"[masking]\nmask_pii = true\n",  # the [langfuse] set added stayed, empty
        b"[masking]\nmask_pii = true",  # no newline at the end: one was added
        b"[masking]\r\nmask_pii = true\r\n\r\n",
    ],
)
@pytest.mark.parametrize("rule", [(), ("--severity", "high"), ("--agent", "pricing_agent")])
def test_set_then_reset_gives_the_file_back_byte_for_byte(
    cli: Cli, workdir: Path, original: bytes, rule: tuple[str, ...]
) -> None:
    path = workdir / "autoops.toml"
    path.write_bytes(original)
    assert cli("sampling", "set", "0.3", *rule).exit_code == 0
    written = path.read_bytes()
    if b"\r\n" in original:  # the lines added end as the file's do
        assert b"\n" not in written.replace(b"\r\n", b"")
    assert cli("sampling", "reset", *rule).exit_code == 0
    assert path.read_bytes() == original


def test_show_prints_rule_names_from_a_file_as_they_are_written(cli: Cli, workdir: Path) -> None:
    """The table printed rule names and origins raw: Rich markup was applied ("[bold]evil"
    shown as "evil"), an ESC reached the terminal, a secret pasted as a name was shown
    whole (the notes and --json masked all three)."""
    (workdir / "autoops.toml").write_text(
        '[sampling.agent]\n"[bold]evil[/bold]" = 0.5\n"a\\u001b[31mgent" = 0.5\n'
        f'"{KNOWN_SECRET}" = 0.4\n',
        encoding="utf-8",
    )
    shown = cli("sampling", "show")
    assert shown.exit_code == 0, shown.both
    assert "agent = [bold]evil[/bold] (unknown)" in shown.stdout
    assert "a\\x1b[31mgent" in shown.stdout and "\x1b" not in shown.stdout
    assert KNOWN_SECRET not in shown.both
