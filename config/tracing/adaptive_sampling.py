"""Lowering the sample rate while tracing costs too much, and restoring it afterwards.

The seed's alert rule made active: when tracing adds more than ``LANGFUSE_MAX_LATENCY_MS`` to
an agent operation (on average over a window of traces), the effective rate is halved, step
by step down to 1 %; when it is back under half the budget, it is doubled, step by step, up
to the configured rate.

The size of the outbox lowers nothing. While Langfuse takes batches, delivery holds the
outbox to ``LANGFUSE_BUFFER_SIZE`` by making the agents wait (``config.delivery.sender``);
that wait, inside the tracing calls, counts as tracing cost here. When Langfuse takes
nothing (down, refusing), the outbox keeps every batch for later: lowering the rate then
would drop traces the outbox exists to keep. Every change is logged and kept for the run's summary. Tracing over its
latency budget is the error handler's call (``on_over_budget``: in the integration,
``LangfuseErrorHandler.handle_performance_degradation``, which calls ``lower``). Sampling stays a
per-trace decision at the root, so traces are still kept or dropped whole. The sampler scales
its rules below 1.0 by the same factor (``config.tracing.sampling``); a rule at 1.0 is never lowered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from config.redaction import core_logger
from config.tracing.sampling import ADAPTIVE_FLOOR, TraceSampler

logger = core_logger("autoops.sampling")

WINDOW_TRACES = 50
STEP = 0.5
MIN_RATE = ADAPTIVE_FLOOR


def latency_reason(overhead_ms: float, budget_ms: float) -> str:
    """Why the rate went down when tracing costs too much (kept in ``changes``)."""
    return f"tracing adds {overhead_ms:.3f} ms per agent operation (budget {budget_ms:g} ms)"


@dataclass
class AdaptiveSampling:
    """Watches windows of finished traces and moves the sampler's rate."""

    sampler: TraceSampler
    base_rate: float
    max_latency_ms: float
    changes: list[dict[str, Any]] = field(default_factory=list)
    # Told the measured overhead (ms per agent operation) when it is over the budget; it
    # decides what to do about it. None: lower the rate here.
    on_over_budget: Callable[[float], None] | None = None
    _traces: int = 0
    _window_ns: int = 0
    _window_operations: int = 0

    def trace_finished(self, tracing_ns: int, operations: int) -> None:
        """Account one finished trace; at the end of a window, maybe change the rate."""
        self._traces += 1
        self._window_ns += tracing_ns
        self._window_operations += operations
        if self._traces % WINDOW_TRACES:
            return
        window_ns, window_operations = self._window_ns, self._window_operations
        self._window_ns = self._window_operations = 0
        if window_operations == 0:
            # No agent operation to weigh it against: its whole tracing time was taken for
            # the cost of one operation, and traces of collaborations alone lowered the rate.
            return
        self.evaluate(window_ns / window_operations / 1e6)

    def evaluate(self, overhead_ms: float) -> None:
        """Lower or restore the rate for the measured overhead (ms per agent operation)."""
        rate = self.sampler.rate
        if overhead_ms > self.max_latency_ms:
            if self.on_over_budget is not None:
                self.on_over_budget(overhead_ms)
            else:
                self.lower(latency_reason(overhead_ms, self.max_latency_ms))
        elif overhead_ms < self.max_latency_ms / 2 and rate < self.base_rate:
            self._change(
                min(self.base_rate, rate / STEP), "tracing cost back under half its budget"
            )

    def lower(self, reason: str) -> float:
        """Halve the rate in force, not below the floor; the rate in force afterwards.

        Sampling switched off (``LANGFUSE_ENABLE_SAMPLING=false``) keeps every trace: then
        nothing changes.
        """
        rate = self.sampler.rate
        if self.sampler.enabled:
            # Never below the floor, and never "lowered" up to it from a rate already under it.
            self._change(max(min(MIN_RATE, rate), rate * STEP), reason)
        return self.sampler.rate

    def _change(self, new_rate: float, reason: str) -> None:
        rate = self.sampler.rate
        if new_rate == rate:
            return
        self.sampler.set_rate(new_rate)
        change = {"after_traces": self._traces, "from": rate, "to": new_rate, "reason": reason}
        self.changes.append(change)
        log = logger.warning if new_rate < rate else logger.info
        log("sample rate %g -> %g: %s", rate, new_rate, reason)
