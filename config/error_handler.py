"""The seed's ``LangfuseErrorHandler``: what happens when tracing, a trace or Langfuse fails.

One place decides, so the traced application never sees a tracing failure:

- ``handle_connection_error``: the destination failed (Langfuse unreachable after
  ``max_retries`` attempts, reported by the background sender; a failed connectivity probe;
  a batch the local store could not take). Logged, and the service goes on in fallback mode:
  in langfuse mode batches keep going to the outbox while sending waits out a cool-down.
- ``handle_trace_error``: a trace could not be finalized. Logged, and everything still open of
  it is ended at level ERROR and forgotten (``TraceManager.cleanup_failed_trace``), so a
  failed trace leaks nothing and later traces are unaffected.
- ``handle_performance_degradation``: tracing costs more than ``LANGFUSE_MAX_LATENCY_MS`` per
  agent operation. The sample rate is halved (adaptive sampling reports here when a window of
  traces is over budget, and restores the rate when the cost is back down).
- ``handle_tracing_error``: any other failure inside a tracing call. Logged and counted; the
  call returns as if tracing were off.

Errors on the traced code's path are counted in ``tracing_errors``
(``get_performance_metrics()["tracing_errors"]``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from config.redaction import core_logger
from config.tracing.adaptive_sampling import latency_reason

if TYPE_CHECKING:
    from config.tracing.adaptive_sampling import AdaptiveSampling

logger = core_logger("autoops.tracing")


class FallbackConnection(Protocol):
    """What fallback mode needs of the connection (``config.client.LangfuseClient``)."""

    @property
    def destination(self) -> str:
        """Where traces go, in words."""
        ...

    def enable_fallback_mode(self) -> bool:
        """Keep recording but stop sending for a cool-down; False when there is no sending."""
        ...


class FailedTraceCleanup(Protocol):
    """What a failed trace needs of the trace lifecycle (``config.trace_manager.TraceManager``)."""

    def cleanup_failed_trace(self, trace_id: str, reason: str = ...) -> int:
        """End and forget everything still open of the trace; how many observations."""
        ...


class LangfuseErrorHandler:
    """Handles connection, trace, performance and other tracing errors; counts them.

    Built before the client and the trace manager it works with, which are attached
    afterwards (``attach``): the client reports to it, and it acts on both.
    """

    def __init__(
        self, *, max_acceptable_latency: float, sampling: AdaptiveSampling | None = None
    ) -> None:
        self.max_acceptable_latency = max_acceptable_latency  # ms per agent operation
        self.sampling = sampling
        self.connection: FallbackConnection | None = None
        self.trace_manager: FailedTraceCleanup | None = None
        self.fallback_activations = 0
        self._tracing_errors = 0
        self._lock = threading.Lock()

    def attach(
        self,
        *,
        connection: FallbackConnection | None = None,
        trace_manager: FailedTraceCleanup | None = None,
    ) -> None:
        """Give the handler the connection and the trace manager it acts on."""
        if connection is not None:
            self.connection = connection
        if trace_manager is not None:
            self.trace_manager = trace_manager

    @property
    def tracing_errors(self) -> int:
        """Errors met on the traced code's path since the service started."""
        return self._tracing_errors

    def _count(self) -> None:
        with self._lock:
            self._tracing_errors += 1

    # --- the seed's methods ---------------------------------------------------------------

    def handle_connection_error(self, error: BaseException, *, where: str | None = None) -> None:
        """The destination failed: log a warning and go on in fallback mode.

        ``where`` names the tracing call that met the failure on the traced code's path (its
        batch is lost, so it counts as a tracing error); without it the failure was reported
        from the background (nothing lost: the batches wait in the outbox).
        """
        if where is not None:
            self._count()
        destination = self.connection.destination if self.connection is not None else "Langfuse"
        logger.warning(
            "connection to %s failed%s, continuing in fallback mode: %s",
            destination,
            f" in {where}" if where else "",
            _describe(error),
        )
        self.enable_fallback_mode()

    def enable_fallback_mode(self) -> None:
        """Keep the service running without sending: batches wait in the outbox meanwhile.

        In local mode writes are synchronous and each batch is tried anew: nothing to pause.
        """
        if self.connection is not None and self.connection.enable_fallback_mode():
            self.fallback_activations += 1

    def handle_trace_error(self, trace_id: str, error: BaseException) -> None:
        """A trace failed: log it and end what is still open of it (``cleanup_failed_trace``).

        Never raises into the traced operation; counted as a tracing error.
        """
        self._count()
        logger.error(
            "trace %s failed (its open observations are ended at level ERROR): %s",
            trace_id or "(none)",
            _describe(error),
        )
        self.cleanup_failed_trace(trace_id, f"tracing failed: {_describe(error)}")

    def cleanup_failed_trace(self, trace_id: str, reason: str = "trace failed") -> int:
        """End and forget everything still open of the trace; how many observations."""
        if self.trace_manager is None or not trace_id:
            return 0
        try:
            return self.trace_manager.cleanup_failed_trace(trace_id, reason)
        except Exception as exc:  # the last line of defence: never into the traced code
            logger.error("cleanup of trace %s failed: %s", trace_id, _describe(exc))
            return 0

    def handle_performance_degradation(self, latency_ms: float) -> None:
        """Tracing adds ``latency_ms`` per agent operation: over the budget, sample less."""
        if latency_ms > self.max_acceptable_latency:
            self.reduce_sampling_rate(latency_reason(latency_ms, self.max_acceptable_latency))

    def reduce_sampling_rate(self, reason: str = "tracing over its latency budget") -> float | None:
        """Halve the effective sample rate (down to 1 %); the rate in force afterwards.

        Logged and listed in ``get_performance_metrics()["sampling_changes"]``; adaptive
        sampling restores it step by step once tracing is cheap again. None without it.
        """
        return self.sampling.lower(reason) if self.sampling is not None else None

    def handle_tracing_error(self, where: str, error: BaseException) -> None:
        """Any other failure inside a tracing call: counted and logged, never raised."""
        self._count()
        logger.warning(
            "tracing error in %s (the traced operation continues): %s", where, _describe(error)
        )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
