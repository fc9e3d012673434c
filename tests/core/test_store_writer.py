"""The local store's writer, and what keeps a long replay's memory flat: the watermark moves
only when a batch is on disk, a failed write is counted and stops the watermark, the store's
writing connection has a bounded page cache, and the summary keeps a bounded list of the
rejected lines while counting all of them."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from autoops_cli.simulation.engine import MAX_REJECTIONS_KEPT
from autoops_cli.simulation.generator import generate_events
from config.client import LangfuseClient
from config.delivery.exporters import LocalStoreExporter
from config.error_handler import LangfuseErrorHandler
from config.errors import LocalFileError
from config.settings import LangfuseConfig
from config.store.local_store import WRITER_CACHE_KIB, LocalStore
from config.tracing.span_records import ScoreRecord, SpanRecord
from tests.conftest import Cli

# Generous: only a hang reaches it (nothing is timed).
HANG_S = 30.0


def spans(count: int) -> list[SpanRecord]:
    trace_id = secrets.token_hex(16)
    return [
        SpanRecord(
            trace_id=trace_id,
            span_id=secrets.token_hex(8),
            parent_span_id=None,
            name=f"step-{index}",
            start_ns=1_700_000_000_000_000_000 + index,
            end_ns=1_700_000_000_000_000_100 + index,
            attributes={"langfuse.observation.type": "span"},
            trusted_json=True,
        )
        for index in range(count)
    ]


class FullDisk(LocalStore):
    def write(self, spans: Iterable[SpanRecord], scores: Iterable[ScoreRecord] = ()) -> None:
        raise LocalFileError(
            f"cannot write to the local store {self.path}: database or disk is full"
        )


def observation_count(path: Path) -> int:
    reader = LocalStore(path)
    try:
        return reader.counts()["observations"]
    finally:
        reader.close()


def test_a_failed_write_stops_the_watermark_and_counts_the_loss(tmp_path: Path) -> None:
    exporter = LocalStoreExporter(FullDisk(tmp_path / "traces.db"))
    exporter.export(spans(2), [])
    assert not exporter.wait_committed(1, HANG_S)
    exporter.export(spans(2), [])
    assert exporter.exported_batches() == 2
    assert not exporter.flush(HANG_S)
    exporter.shutdown(HANG_S)
    assert exporter.write_failure is not None
    assert "disk is full" in str(exporter.write_failure)
    assert exporter.committed_batches() == 0
    assert exporter.stats.spans_failed == 4
    assert exporter.stats.spans_exported == 0


def test_the_write_is_done_when_export_returns(tmp_path: Path) -> None:
    exporter = LocalStoreExporter(LocalStore(tmp_path / "traces.db"))
    exporter.export(spans(3), [])
    assert exporter.committed_batches() == 1
    assert exporter.wait_committed(1, 0.0)
    assert observation_count(tmp_path / "traces.db") == 3
    exporter.shutdown(HANG_S)


def test_local_mode_writes_through_a_bounded_page_cache(tmp_path: Path) -> None:
    config = LangfuseConfig()
    handler = LangfuseErrorHandler(max_acceptable_latency=config.max_latency_ms)
    client = LangfuseClient(
        config, mode="local", error_handler=handler, store_path=tmp_path / "traces.db"
    )
    try:
        exporter = client.exporter
        assert isinstance(exporter, LocalStoreExporter)
        cache = exporter.store.query("PRAGMA cache_size")[0][0]
        assert cache == -WRITER_CACHE_KIB  # negative: KiB, not pages
    finally:
        client.shutdown(timeout=1.0)


def test_the_summary_lists_a_bounded_number_of_rejected_lines(cli: Cli, workdir: Path) -> None:
    good = [json.dumps(event) for event in generate_events(5, seed=3)]
    bad_count = MAX_REJECTIONS_KEPT + 25
    lines: list[Any] = [*good, *(["{not json"] * bad_count)]
    path = workdir / "many-bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = cli("replay", str(path), "--json", "--dry-run")
    assert result.exit_code == 6
    summary = json.loads(result.stdout)
    assert summary["events_rejected"] == bad_count  # all counted
    assert len(summary["rejected"]) == MAX_REJECTIONS_KEPT  # the first ones listed
    assert summary["rejected"][0]["line"] == len(good) + 1
    assert summary["events_processed"] == len(good)


class Unbindable(LocalStore):
    def write(self, spans: Iterable[SpanRecord], scores: Iterable[ScoreRecord] = ()) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")


def test_any_failed_write_is_a_write_failure_that_stops_the_watermark(tmp_path: Path) -> None:
    """Not only a full disk: whatever stops a write stops the run (a replay waits on the
    watermark, which would otherwise never come)."""
    exporter = LocalStoreExporter(Unbindable(tmp_path / "traces.db"))
    with pytest.raises(OverflowError):  # on to the client's error handler
        exporter.export(spans(1), [])
    assert exporter.committed_batches() == 0
    assert exporter.write_failure is not None
    assert "OverflowError" in str(exporter.write_failure)
    exporter.shutdown(HANG_S)
