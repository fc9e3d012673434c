"""The ``[sampling]`` tables of ``autoops.toml``: rates per event type, severity and agent.

This is the format of the rules and how they are read from settings; the sampler that
applies them to traces is ``config.tracing.sampling``. Kept apart so the settings layer can
read and check rules without depending on the tracing engine.

Which rate applies to a trace (``docs/sampling.md``): the rules match on the trace's event
type, severity and the agents its event is routed to; among the rules that match, the
highest rate wins, so a "keep every critical event" rule can never be undercut by another
rule; with no matching rule the global rate (``langfuse.sample_rate``) applies.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

SAMPLING_TABLE = "sampling"
RULE_KINDS = ("event_type", "severity", "agent")
RATE_RANGE = "a number from 0 to 1"


def check_rate(value: Any) -> float:
    """``value`` as a rate, or ``ValueError`` naming the valid range (numbers only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be {RATE_RANGE}, got {value!r}")
    rate = float(value)
    if not 0.0 <= rate <= 1.0:  # NaN fails too
        raise ValueError(f"must be {RATE_RANGE}, got {rate:g}")
    return rate + 0.0  # -0.0 as 0.0 ("about -0 % of the traces are kept")


def parse_rate(text: str) -> float:
    """A rate typed on the command line (``0.1``, ``1``, ``1e-3``), or ``ValueError``."""
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError(f"must be {RATE_RANGE}, got {text!r}") from None
    if math.isnan(number):
        raise ValueError(f"must be {RATE_RANGE}, got {text!r}")
    return check_rate(number)


@dataclass(frozen=True)
class SamplingSubject:
    """What rules match on: a trace's event type, severity, and the agents it is routed to."""

    event_type: str | None = None
    severity: str | None = None
    agents: tuple[str, ...] = ()


@dataclass(frozen=True)
class SamplingRules:
    """Rates per event type, per severity and per routed agent (the ``[sampling]`` tables)."""

    event_type: Mapping[str, float] = field(default_factory=dict)
    severity: Mapping[str, float] = field(default_factory=dict)
    agent: Mapping[str, float] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.event_type or self.severity or self.agent)

    def items(self) -> Iterator[tuple[str, str, float]]:
        """Every rule as ``(kind, name, rate)``, in table order."""
        for kind in RULE_KINDS:
            for name, rate in getattr(self, kind).items():
                yield kind, name, rate

    def highest(self, subject: SamplingSubject) -> float | None:
        """The highest rate among the rules matching ``subject``; None when none matches."""
        found: float | None = None
        candidates = [
            self.event_type.get(subject.event_type or ""),
            self.severity.get(subject.severity or ""),
        ]
        candidates += [self.agent.get(agent) for agent in subject.agents]
        for rate in candidates:
            if rate is not None and (found is None or rate > found):
                found = rate
        return found


def parse_rule_table(
    table: Any,
) -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:
    """The ``[sampling]`` table of one file: ``(setting, rate)`` pairs and ``(setting, problem)``.

    Settings are named ``sampling.<kind>.<name>``, e.g. ``sampling.severity.critical``.
    """
    rules: list[tuple[str, float]] = []
    problems: list[tuple[str, str]] = []
    if not isinstance(table, dict):
        return rules, [(SAMPLING_TABLE, f"[{SAMPLING_TABLE}] must be a table")]
    for kind, names in table.items():
        where = f"{SAMPLING_TABLE}.{kind}"
        if kind not in RULE_KINDS:
            known = ", ".join(sorted(RULE_KINDS))
            problems.append(
                (
                    where,
                    f"unknown rule kind (known: {known}; the global rate is langfuse.sample_rate)",
                )
            )
            continue
        if not isinstance(names, dict):
            problems.append((where, f"[{where}] must be a table of name = rate"))
            continue
        for name, value in names.items():
            setting = f"{where}.{name}"
            if not name.strip():
                problems.append((setting, "empty name"))
                continue
            try:
                rules.append((setting, check_rate(value)))
            except ValueError as exc:
                problems.append((setting, str(exc)))
    return rules, problems


def rules_from_settings(values: Mapping[str, Any]) -> SamplingRules:
    """The rules among settings keyed ``sampling.<kind>.<name>`` (others are ignored)."""
    tables: dict[str, dict[str, float]] = {kind: {} for kind in RULE_KINDS}
    for setting, value in values.items():
        table, _, rest = setting.partition(".")
        kind, _, name = rest.partition(".")
        if table == SAMPLING_TABLE and kind in tables and name:
            tables[kind][name] = float(value)
    return SamplingRules(**tables)
