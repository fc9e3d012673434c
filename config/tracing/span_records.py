"""What the core records: finished spans with Langfuse's OTel attributes, and scores;
and ``SpanExporter``, the protocol of whatever receives them in batches.

A ``SpanRecord`` is exactly what would travel over OTLP to ``/api/public/otel/v1/traces``:
ids, name, times, status and a flat attribute map whose keys are the Langfuse SDK's own
attribute names (``config.tracing.attributes``). Local mode maps the same records onto
trace and observation rows (``config.store.otel_mapping``), so both destinations hold the same data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

# OTel status codes (opentelemetry.trace.StatusCode values).
STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


@dataclass(slots=True)
class SpanRecord:
    """One finished span."""

    trace_id: str  # 32 hex
    span_id: str  # 16 hex
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int = STATUS_UNSET
    status_message: str | None = None
    resource: dict[str, Any] = field(default_factory=dict)
    # The instrumentation scope the span came with over OTLP: {"name", "version",
    # "attributes"}; None for the core's own spans (Langfuse SDK conventions).
    scope: dict[str, Any] | None = None
    # True when every metadata attribute value is JSON written by the core itself, so the
    # mapping may splice the values instead of parsing them (spans from outside: False).
    trusted_json: bool = False


@dataclass(slots=True)
class ScoreRecord:
    """One score, in the shape of Langfuse's ``CreateScoreRequest``."""

    id: str
    trace_id: str | None
    observation_id: str | None
    name: str
    value: float | str
    timestamp_ns: int
    data_type: str = "NUMERIC"
    comment: str | None = None
    session_id: str | None = None
    environment: str | None = None
    metadata: dict[str, Any] | None = None
    source: str = "API"  # or ANNOTATION (a score a client says a person gave)

    def as_request(self) -> dict[str, Any]:
        """The JSON body of ``POST /api/public/scores``."""
        body: dict[str, Any] = {"id": self.id, "name": self.name, "value": self.value}
        optional = {
            "traceId": self.trace_id,
            "observationId": self.observation_id,
            "sessionId": self.session_id,
            "comment": self.comment,
            "environment": self.environment,
            "metadata": self.metadata,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        body["dataType"] = self.data_type
        # When it was scored: without it Langfuse stamps the score on arrival, and a batch
        # kept through an outage (or seconds in the outbox) had its decisions leave the
        # metrics window of their operations. As the SDK sends it, to the microsecond.
        body["timestamp"] = _iso_utc(self.timestamp_ns)
        if self.source != "API":  # Langfuse's default: the core's own scores say nothing
            body["source"] = self.source
        return body


def _iso_utc(ns: int) -> str:
    """``2026-12-03T14:00:00.123456Z`` for nanoseconds since the epoch."""
    seconds, rest = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


# The tracer's side of delivery, defined here so the tracing layer needs nothing above it:
# the exporters (config.delivery) implement it.
class SpanExporter(Protocol):
    """Receives finished batches from the tracer."""

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Take one batch; must not block on the network."""

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds until everything taken is delivered."""

    def shutdown(self, timeout: float) -> None:
        """Flush, then release resources."""
