"""Trace sampling: decided once per trace at its root, deterministic from the trace id.

The rule is OpenTelemetry's ``TraceIdRatioBased`` (the one the Langfuse SDK installs for
``sample_rate``): keep a trace when the low 64 bits of its id fall below ``rate * 2**64``.
Every process, and the SDK itself, therefore makes the same decision for the same trace, and
a trace is always kept or dropped whole.
"""

from __future__ import annotations

_MAX_64 = (1 << 64) - 1


def trace_id_bound(rate: float) -> int:
    """The exclusive upper bound on a trace id's low 64 bits for ``rate``."""
    if rate >= 1.0:
        return _MAX_64 + 1
    if rate <= 0.0:
        return 0
    return round(rate * (_MAX_64 + 1))


class TraceSampler:
    """Keeps a fraction ``rate`` of traces; ``enabled=False`` keeps every trace."""

    def __init__(self, rate: float, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self.rate = rate if enabled else 1.0
        self._bound = trace_id_bound(self.rate)

    def set_rate(self, rate: float) -> None:
        """Change the rate (the adaptive lowering and the CLI's --sample-rate use this)."""
        self.rate = rate
        self._bound = trace_id_bound(rate)

    def keep(self, trace_id: str) -> bool:
        """True when the trace with this 32-hex id is recorded."""
        if self._bound > _MAX_64:
            return True
        return (int(trace_id[16:], 16) & _MAX_64) < self._bound
