"""Trace sampling: decided once per trace at its root, deterministic from the trace id.

The rule is OpenTelemetry's ``TraceIdRatioBased`` (the one the Langfuse SDK installs for
``sample_rate``): keep a trace when the low 64 bits of its id fall below ``rate * 2**64``.
Every process, and the SDK itself, therefore makes the same decision for the same trace, and
a trace is always kept or dropped whole.

Which rate applies to a trace (``docs/sampling.md``): the rules of the ``[sampling]`` tables
of ``autoops.toml`` match on the trace's event type, severity and the agents its event is
routed to; among the rules that match, the highest rate wins, so a "keep every critical
event" rule can never be undercut by another rule; with no matching rule the global rate
(``langfuse.sample_rate``) applies. While adaptive sampling has lowered the global rate, every
rule below 1.0 is scaled by the same factor; a rule at 1.0 is a guarantee and stays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_MAX_64 = (1 << 64) - 1

SAMPLING_TABLE = "sampling"
RULE_KINDS = ("event_type", "severity", "agent")
RATE_RANGE = "a number from 0 to 1"
# The lowest rate adaptive sampling lowers to (a rate configured lower stays as it is).
ADAPTIVE_FLOOR = 0.01


def trace_id_bound(rate: float) -> int:
    """The exclusive upper bound on a trace id's low 64 bits for ``rate``."""
    if rate >= 1.0:
        return _MAX_64 + 1
    if rate <= 0.0:
        return 0
    return round(rate * (_MAX_64 + 1))


def check_rate(value: Any) -> float:
    """``value`` as a rate, or ``ValueError`` naming the valid range (numbers only)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"must be {RATE_RANGE}, got {value!r}")
    rate = float(value)
    if not 0.0 <= rate <= 1.0:  # NaN fails too
        raise ValueError(f"must be {RATE_RANGE}, got {rate:g}")
    return rate


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


def scaled_rate(rate: float, factor: float) -> float:
    """A rule's rate while adaptive sampling runs at ``factor``: rules at 1.0 are not lowered."""
    if rate >= 1.0 or factor >= 1.0:
        return rate
    return max(rate * factor, min(rate, ADAPTIVE_FLOOR))


class TraceSampler:
    """Keeps a fraction of traces; ``enabled=False`` keeps every trace (rules included).

    ``rate`` is the global rate in force (adaptive sampling moves it), ``base_rate`` the
    configured one; their ratio scales the rules below 1.0.
    """

    def __init__(
        self, rate: float, *, enabled: bool = True, rules: SamplingRules | None = None
    ) -> None:
        self.enabled = enabled
        self.rate = rate if enabled else 1.0
        self.base_rate = self.rate
        self.rules = rules if rules is not None and enabled else SamplingRules()
        self._bound = trace_id_bound(self.rate)

    def set_rate(self, rate: float) -> None:
        """Change the global rate in force (adaptive sampling uses this)."""
        self.rate = rate
        self._bound = trace_id_bound(rate)

    @property
    def adaptive_factor(self) -> float:
        """How far adaptive sampling has lowered the global rate (1.0: not at all)."""
        if 0.0 < self.rate < self.base_rate:
            return self.rate / self.base_rate
        return 1.0

    def rate_for(self, subject: SamplingSubject | None = None) -> float:
        """The rate deciding a trace: its highest matching rule, else the global rate."""
        if not self.enabled:
            return 1.0
        rule = self.rules.highest(subject) if subject is not None and self.rules else None
        if rule is None:
            return self.rate
        return scaled_rate(rule, self.adaptive_factor)

    def keep(self, trace_id: str, subject: SamplingSubject | None = None) -> bool:
        """True when the trace with this 32-hex id (and these facts) is recorded."""
        if subject is None or not self.rules:
            bound = self._bound
        else:
            bound = trace_id_bound(self.rate_for(subject))
        if bound > _MAX_64:
            return True
        return (int(trace_id[16:], 16) & _MAX_64) < bound
