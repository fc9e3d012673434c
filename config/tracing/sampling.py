"""Trace sampling: decided once per trace at its root, deterministic from the trace id.

The rule is OpenTelemetry's ``TraceIdRatioBased`` (the one the Langfuse SDK installs for
``sample_rate``): keep a trace when the low 64 bits of its id fall below ``rate * 2**64``.
Every process, and the SDK itself, therefore makes the same decision for the same trace, and
a trace is always kept or dropped whole.

Which rate applies to a trace is the rules' business (``config.sampling_rules``: the highest
matching rule, else the global rate). While adaptive sampling has lowered the global rate,
every rule below 1.0 is scaled by the same factor; a rule at 1.0 is a guarantee and stays.
"""

from __future__ import annotations

from config.sampling_rules import SamplingRules, SamplingSubject

_MAX_64 = (1 << 64) - 1

# The lowest rate adaptive sampling lowers to (a rate configured lower stays as it is).
ADAPTIVE_FLOOR = 0.01


def trace_id_bound(rate: float) -> int:
    """The exclusive upper bound on a trace id's low 64 bits for ``rate``."""
    if rate >= 1.0:
        return _MAX_64 + 1
    if rate <= 0.0:
        return 0
    return round(rate * (_MAX_64 + 1))


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
