"""Exporters for tests and benchmarks that look at what the tracer hands over."""

from __future__ import annotations

from config.tracing.span_records import ScoreRecord, SpanRecord


class KeptBatches:
    """Keeps every batch the tracer hands over, as ``(spans, scores)``, in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[SpanRecord], list[ScoreRecord]]] = []

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        self.batches.append((spans, scores))

    def flush(self, timeout: float) -> bool:
        return True

    def shutdown(self, timeout: float) -> None:
        pass
