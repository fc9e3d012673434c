"""What sampling will do: the global rate and every rule, where each comes from, in words.

Serves ``autoops sampling show`` and the result shown after ``set`` and ``reset``. Built from
``LoadedSettings``: the winning value of each setting, the values it overrides, the rules of
the ``[sampling]`` tables, and the limit of the adaptive lowering. The replay records its run's adaptive changes next to the store
(``last-replay-sampling.json``), so this report can show what the last run really did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoops_cli.actions.files import replace_file
from autoops_cli.output import escape
from autoops_cli.simulation.catalog import sampling_rule_names
from config.sampling_rules import RULE_KINDS

if TYPE_CHECKING:
    from rich.table import Table

    from autoops_cli.actions.sampling.file import SamplingChange
    from config.settings import LangfuseConfig
    from config.settings_layers import RawValue
    from config.settings_sources import LoadedSettings

GLOBAL_SETTING = "langfuse.sample_rate"
SWITCH_SETTING = "langfuse.enable_sampling"
LAST_REPLAY_FILE = "last-replay-sampling.json"
PRECEDENCE = (
    "each trace is decided once, at its root, from its trace id (the same decision in every "
    "process): the highest rate among the rules it matches, else the global rate"
)
ADAPTIVE_RULES = "rules below 1.0 are scaled like the global rate; rules at 1.0 are never lowered"


def show_value(value: Any) -> str:
    """A value as the user would write it: ``0.1``, ``1``, ``true``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


def _percent(rate: float) -> str:
    return f"{rate * 100:.3g} %"


def assignment(raw: RawValue) -> str:
    """How a value was set, in words: ``LANGFUSE_SAMPLE_RATE=0.1 in the environment``."""
    origin = raw.origin
    if origin.kind == "env":
        return f"{origin.name}={raw.value} in the environment"
    if origin.kind == "dotenv":
        return f"{origin.name}={raw.value} in {origin.path}"
    if origin.kind == "flag":
        return f"{origin.name} {show_value(raw.value)}"
    return f"{show_value(raw.value)} in {origin.path} (key {origin.name})"


def _overridden(raw: RawValue) -> str:
    origin = raw.origin
    if origin.kind in ("env", "dotenv"):
        return f"the {assignment(raw)}"
    return f"the {show_value(raw.value)} in {origin.path}"


def override_note(loaded: LoadedSettings, setting: str) -> str | None:
    """``LANGFUSE_SAMPLE_RATE=0.1 in the environment overrides the 0.5 in ./autoops.toml``."""
    winner = loaded.values.get(setting)
    shadowed = loaded.shadowed.get(setting)
    if winner is None or not shadowed:
        return None
    return f"{assignment(winner)} overrides " + " and ".join(_overridden(r) for r in shadowed)


def _overrides(loaded: LoadedSettings, setting: str) -> list[dict[str, Any]]:
    return [
        {"value": raw.value, "origin": raw.origin.describe()}
        for raw in loaded.shadowed.get(setting, [])
    ]


def _who(kind: str, name: str) -> str:
    return {
        "event_type": f"{name} events",
        "severity": f"{name}-severity events",
        "agent": f"events routed to {name}",
    }[kind]


def rule_effect(
    kind: str, name: str, rate: float, global_rate: float, inactive: str | None = None
) -> str:
    """What one rule does, in words (``inactive``: why no rule applies now)."""
    who = _who(kind, name)
    if inactive is not None:
        return f"not applied ({inactive}): every trace of {who} is treated as all others"
    if rate >= 1.0:
        return f"every trace of {who} is kept, also while adaptive sampling lowers the rates"
    if rate <= 0.0:
        return f"traces of {who} are dropped, unless another rule they match keeps some"
    text = f"about {_percent(rate)} of the traces of {who} are kept"
    if rate < global_rate:
        text += f" (below the global {show_value(global_rate)}: for them this rule wins over the global rate)"
    # A trace matching several rules takes the highest rate: this one may not decide.
    return text + ", unless another rule they match keeps more"


def sampling_report(loaded: LoadedSettings) -> dict[str, Any]:
    """The ``autoops sampling show --json`` document (the settings must be valid)."""
    config, _ = loaded.require()
    active = config.enable_sampling and config.enabled and config.tracing_enabled
    global_rate = config.sample_rate
    inactive = (
        None
        if active
        else "tracing is disabled"
        if not (config.enabled and config.tracing_enabled)
        else "sampling is off"
    )
    rules = []
    known = sampling_rule_names()
    ordered = sorted(loaded.sampling_rules.items(), key=lambda r: (RULE_KINDS.index(r[0]), r[1]))
    for kind, name, rate in ordered:
        setting = f"sampling.{kind}.{name}"
        rules.append(
            {
                "setting": setting,
                "kind": kind,
                "name": name,
                "rate": rate,
                "origin": loaded.origin_of(setting).describe(),
                "overrides": _overrides(loaded, setting),
                "note": override_note(loaded, setting),
                "known": name in known[kind],
                "effect": rule_effect(kind, name, rate, global_rate, inactive),
            }
        )
    if not (config.enabled and config.tracing_enabled):
        effect = "tracing is disabled: nothing is recorded, sampling does not matter"
    elif not config.enable_sampling:
        effect = "sampling is off: every trace is kept; the rate and the rules are not applied"
    else:
        which = "traces no rule matches" if rules else "traces"
        effect = f"about {_percent(global_rate)} of the {which} are kept"
    return {
        "mode": loaded.mode,
        "tracing_enabled": config.enabled and config.tracing_enabled,
        "sampling_enabled": config.enable_sampling,
        "sampling_enabled_origin": loaded.origin_of(SWITCH_SETTING).describe(),
        "global": {
            "setting": GLOBAL_SETTING,
            "env": "LANGFUSE_SAMPLE_RATE",
            "rate": global_rate,
            "origin": loaded.origin_of(GLOBAL_SETTING).describe(),
            "overrides": _overrides(loaded, GLOBAL_SETTING),
            "note": override_note(loaded, GLOBAL_SETTING),
            "effect": effect,
        },
        "rules": rules,
        "precedence": PRECEDENCE,
        "adaptive": adaptive_report(loaded, config, active=active),
        "files": {
            "project": str(loaded.files.project) if loaded.files.project else None,
            "user": str(loaded.files.user),
        },
    }


def adaptive_report(
    loaded: LoadedSettings, config: LangfuseConfig, *, active: bool
) -> dict[str, Any]:
    """The adaptive lowering: its limit, and the last replay's changes."""
    from config.store.local_store import default_store_path

    store = default_store_path()
    return {
        "active": active,
        "max_latency_ms": config.max_latency_ms,
        "max_latency_ms_origin": loaded.origin_of("langfuse.max_latency_ms").describe(),
        "rules": ADAPTIVE_RULES,
        "last_replay": read_last_replay(store.parent),
    }


def explanation_lines(report: dict[str, Any]) -> list[str]:
    """What the core will do, one sentence a line (printed under the table)."""
    glob = report["global"]
    lines = []
    if not report["sampling_enabled"]:
        lines.append(f"sampling is off ({SWITCH_SETTING} from {report['sampling_enabled_origin']})")
    if glob["note"]:
        lines.append(glob["note"])
    lines += [note for rule in report["rules"] if (note := rule["note"])]
    lines.append(f"global rate {show_value(glob['rate'])}: {glob['effect']}")
    if report["sampling_enabled"] and report["tracing_enabled"]:
        if report["rules"]:
            lines.append(PRECEDENCE)
        for rule in report["rules"]:
            lines.append(f"{rule['kind']} = {rule['name']}: {rule['effect']}")
    lines += _adaptive_lines(report["adaptive"])
    return lines


def _adaptive_lines(adaptive: dict[str, Any]) -> list[str]:
    if not adaptive["active"]:
        return ["adaptive sampling: off (it works only while sampling is on)"]
    lines = [
        f"adaptive sampling halves the rates (down to 1 %) while tracing adds more than "
        f"{show_value(adaptive['max_latency_ms'])} ms per agent operation ({adaptive['max_latency_ms_origin']}); "
        f"{ADAPTIVE_RULES}",
        "the outbox lowers nothing: delivery slows the agents to Langfuse's pace, and keeps "
        "every batch while Langfuse is unreachable",
    ]
    last = adaptive["last_replay"]
    if last is not None:
        changes = last.get("changes") or []
        head = f"last replay {last.get('run_id')} ({last.get('finished_at')})"
        if not changes:
            lines.append(f"{head}: no adaptive changes, rate {show_value(last.get('final_rate'))}")
        for change in changes:
            lines.append(
                f"{head}: rate {show_value(change['from'])} -> {show_value(change['to'])} after "
                f"{change['after_traces']} traces: {change['reason']}"
            )
    return lines


def sampling_table(report: dict[str, Any]) -> Table:
    """The global rate and the rules, with their origins, as a table."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.ASCII, header_style="bold", title="sampling")
    table.add_column("rule", overflow="fold")
    table.add_column("rate")
    table.add_column("from", overflow="fold")
    glob = report["global"]
    table.add_row("global", show_value(glob["rate"]), escape(glob["origin"]))
    for rule in report["rules"]:
        # Names and origins come from files and the environment: escaped as such (markup,
        # control characters, a secret pasted as a rule's name).
        name = escape(rule["name"]) if rule["known"] else f"{escape(rule['name'])} (unknown)"
        table.add_row(f"{rule['kind']} = {name}", show_value(rule["rate"]), escape(rule["origin"]))
    return table


def change_warnings(change: SamplingChange, loaded: LoadedSettings) -> list[str]:
    """Why what was just written (or removed) is not what the core will use, if it is not."""
    setting = change.key.setting
    winner = loaded.values.get(setting)
    warnings = []
    if change.rate is not None and winner is not None:
        written_here = winner.origin.kind == "file" and winner.origin.path == change.path
        if not written_here:
            warnings.append(
                f"{assignment(winner)} overrides the {show_value(change.rate)} just written to "
                f"{change.path}; remove it for the file to take effect"
            )
    elif change.rate is None and winner is not None:
        warnings.append(f"{setting} is still set: {assignment(winner)}")
    config = loaded.langfuse
    if config is not None and not config.enable_sampling:
        switch = loaded.values.get(SWITCH_SETTING)
        where = assignment(switch) if switch is not None else "the default"
        warnings.append(
            f"sampling is off ({where}): every trace is kept until it is turned on again"
        )
    return warnings


def record_replay_sampling(directory: Path, document: dict[str, Any]) -> None:
    """Keep a replay's sampling outcome for ``sampling show`` (atomically; errors ignored)."""
    document = {"finished_at": datetime.now(UTC).isoformat(timespec="seconds"), **document}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        replace_file(directory / LAST_REPLAY_FILE, json.dumps(document, indent=2))
    except OSError:
        pass  # a report aid only: the replay's own summary has the same changes


def read_last_replay(directory: Path) -> dict[str, Any] | None:
    """What ``record_replay_sampling`` kept, or None (also for a file of another shape: a
    damaged record was an internal error of `sampling show`, and of `set` after writing)."""
    try:
        data = json.loads((directory / LAST_REPLAY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if _is_replay_record(data) else None


def _is_replay_record(data: Any) -> bool:
    def number(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    def change(item: Any) -> bool:
        return (
            isinstance(item, dict)
            and number(item.get("from"))
            and number(item.get("to"))
            and number(item.get("after_traces"))
            and isinstance(item.get("reason"), str)
        )

    return (
        isinstance(data, dict)
        and isinstance(data.get("run_id"), str)
        and isinstance(data.get("finished_at"), str)
        and number(data.get("final_rate"))
        and isinstance(data.get("changes"), list)
        and all(change(item) for item in data["changes"])
    )
