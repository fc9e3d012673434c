"""The local store written from a writer process (``StoreProcessExporter``): it stores what
writing in place stores, its watermark moves only on the writer's word, a writer that dies is
replaced by this process without a batch lost or doubled, and a write the writer cannot do
stops the run's watermark as a failed write in place does."""

from __future__ import annotations

import contextlib
import io
import logging
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from config.delivery.exporters import LocalStoreExporter
from config.delivery.store_process import StoreProcessExporter
from config.settings import DataMaskingConfig
from config.store.local_store import WRITER_CACHE_KIB, LocalStore
from config.store.writer_process import ERROR, OK, frame, serve
from config.tracing.masking import DataMasker
from config.tracing.span_records import ScoreRecord, SpanRecord
from config.tracing.tracer import Tracer
from tests.support.exporters import KeptBatches

# Generous: only a hang reaches it (nothing is timed).
HANG_S = 30.0


def traced_batches(count: int) -> list[tuple[list[SpanRecord], list[ScoreRecord]]]:
    """``count`` batches of real traces: nested observations, input, output, metadata (some
    of it masked), events, an error and scores."""
    kept = KeptBatches()
    tracer = Tracer(
        kept, mask=DataMasker(DataMaskingConfig()).mask, batch_size=10**6, flush_interval=3600
    )
    for number in range(count):
        for event in range(3):
            root = tracer.start_trace(
                "simulation_event",
                root_name="orchestrator",
                input={"event_id": f"evt-{number}-{event}", "data": {"unit_cost": 3.5}},
                metadata={"product_id": f"PROD_{event:03}", "customer_email": "a@b.example"},
                session_id=f"run-{number}",
                tags=["replay", "test"],
            )
            with tracer.use(root):
                agent = tracer.start_observation("pricing_agent", as_type="agent", input=[1, 2])
                agent.event("decision", input={"price": 9.99}, output="raise price é")
                agent.score("confidence", 0.8, comment="sure")
                agent.end(output={"ok": True}, level="WARNING", status_message="slow")
            root.update_trace_metadata({"participating_agents": ["pricing_agent"]})
            root.end(output={"done": 1})
        tracer.commit()
    tracer.shutdown(timeout=HANG_S)
    batches = [(spans, scores) for spans, scores in kept.batches if spans or scores]
    assert len(batches) == count
    return batches


@contextlib.contextmanager
def delivery_warnings(hear: Callable[[logging.LogRecord], None]) -> Iterator[None]:
    """``hear`` gets the delivery logger's warnings, on the logger itself: another test's
    logging setup may have disabled it or kept it from the root logger caplog listens on."""
    logger = logging.getLogger("autoops.delivery")
    handler = logging.Handler(logging.WARNING)
    handler.emit = hear  # type: ignore[method-assign]
    disabled, logger.disabled = logger.disabled, False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.disabled = disabled


def rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of the three tables (a trace's updated_us is when it was written: left out)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        found = {}
        for table in ("traces", "observations", "scores"):
            cursor = db.execute(f"SELECT * FROM {table} ORDER BY id")
            names = [column[0] for column in cursor.description]
            found[table] = [
                tuple(value for name, value in zip(names, row, strict=True) if name != "updated_us")
                for row in cursor
            ]
        return found


def test_the_writer_process_stores_what_writing_in_place_stores(tmp_path: Path) -> None:
    batches = traced_batches(4)
    in_place = LocalStoreExporter(LocalStore(tmp_path / "in-place.db"))
    separate = StoreProcessExporter(LocalStore(tmp_path / "separate.db"))
    for spans, scores in batches:
        in_place.export(spans, scores)
        separate.export(spans, scores)
    assert separate.flush(HANG_S)
    assert separate.committed_batches() == separate.exported_batches() == len(batches)
    assert separate.stats.spans_exported == in_place.stats.spans_exported > 0
    assert separate.stats.scores_exported == in_place.stats.scores_exported > 0
    in_place.shutdown(HANG_S)
    separate.shutdown(HANG_S)
    expected = rows(tmp_path / "in-place.db")
    assert expected["observations"] and expected["scores"]
    assert rows(tmp_path / "separate.db") == expected


def test_the_watermark_moves_on_the_writers_word(tmp_path: Path) -> None:
    (first, first_scores), (second, second_scores) = traced_batches(2)
    exporter = StoreProcessExporter(LocalStore(tmp_path / "traces.db"))
    exporter.export(first, first_scores)
    assert exporter.wait_committed(1, HANG_S)
    # What the watermark says is on disk, for another connection, at once.
    assert len(rows(tmp_path / "traces.db")["observations"]) == len(first)
    exporter.export(second, second_scores)
    assert exporter.wait_committed(2, HANG_S)
    assert len(rows(tmp_path / "traces.db")["observations"]) == len(first) + len(second)
    exporter.shutdown(HANG_S)
    assert exporter.write_failure is None


def test_a_writer_that_dies_is_replaced_and_nothing_is_lost_or_doubled(tmp_path: Path) -> None:
    warnings: list[logging.LogRecord] = []
    batches = traced_batches(4)
    exporter = StoreProcessExporter(LocalStore(tmp_path / "traces.db"))
    with delivery_warnings(warnings.append):
        exporter.export(*batches[0])
        assert exporter.wait_committed(1, HANG_S)
        exporter._process.send_signal(signal.SIGKILL)  # as the OOM killer would
        exporter._process.wait()
        for spans, scores in batches[1:]:
            exporter.export(spans, scores)
        assert exporter.flush(HANG_S)
    assert [record.getMessage() for record in warnings] == [
        "the store writer process ended (exit status -9); writing the store in this process"
    ]
    assert exporter.committed_batches() == 4
    exporter.shutdown(HANG_S)
    assert exporter.write_failure is None
    assert exporter.stats.spans_failed == 0
    stored = rows(tmp_path / "traces.db")
    assert len(stored["observations"]) == sum(len(spans) for spans, _ in batches)
    assert exporter.stats.spans_exported == len(stored["observations"])
    assert exporter.stats.scores_exported == len(stored["scores"])


def test_a_write_the_writer_cannot_do_stops_the_watermark_and_counts_the_loss(
    tmp_path: Path,
) -> None:
    (good, good_scores), (bad, bad_scores), (late, late_scores) = traced_batches(3)
    # A comment SQLite cannot bind: the writer's transaction fails.
    bad_scores = [*bad_scores]
    bad_scores[0] = ScoreRecord(**{**_fields(bad_scores[0]), "comment": {"not": "text"}})  # type: ignore[arg-type]
    exporter = StoreProcessExporter(LocalStore(tmp_path / "traces.db"))
    exporter.export(good, good_scores)
    exporter.export(bad, bad_scores)
    assert not exporter.wait_committed(2, HANG_S)
    exporter.export(late, late_scores)
    assert not exporter.flush(HANG_S)
    exporter.shutdown(HANG_S)
    assert exporter.write_failure is not None
    assert "cannot write to the local store" in str(exporter.write_failure)
    assert "Error binding parameter" in str(exporter.write_failure)
    assert exporter.committed_batches() == 1
    assert exporter.stats.spans_exported == len(good)
    assert exporter.stats.spans_failed == len(bad) + len(late)
    assert exporter.stats.scores_failed == len(bad_scores) + len(late_scores)
    assert len(rows(tmp_path / "traces.db")["observations"]) == len(good)


def _fields(score: ScoreRecord) -> dict[str, object]:
    return {name: getattr(score, name) for name in ScoreRecord.__slots__}  # type: ignore[attr-defined]


def test_the_writer_answers_each_whole_batch_and_drops_a_cut_one(tmp_path: Path) -> None:
    """A frame cut short (its sender died while writing it) is not written in part."""
    (first, first_scores), (second, second_scores) = traced_batches(2)
    cut = frame(second, second_scores)
    source = io.BytesIO(frame(first, first_scores) + cut[: len(cut) // 2])
    answers = io.BytesIO()
    assert serve(tmp_path / "traces.db", WRITER_CACHE_KIB, source, answers) == 0
    assert answers.getvalue() == OK
    assert len(rows(tmp_path / "traces.db")["observations"]) == len(first)


def test_a_store_the_writer_cannot_open_is_its_one_answer(tmp_path: Path) -> None:
    ((spans, scores),) = traced_batches(1)
    not_a_store = tmp_path / "traces.db"
    not_a_store.write_bytes(b"this is not an SQLite file" * 100)
    answers = io.BytesIO()
    assert serve(not_a_store, WRITER_CACHE_KIB, io.BytesIO(frame(spans, scores)), answers) == 1
    answer = answers.getvalue()
    assert answer.startswith(ERROR) and answer.endswith(b"\n") and answer.count(b"\n") == 1
    assert str(not_a_store).encode() in answer


def test_a_value_the_writer_cannot_be_sent_hands_the_writing_back_in_order(
    tmp_path: Path,
) -> None:
    """A score's metadata may hold any object: the writer is never sent one (it would have
    to import its class and run its code). It writes what it has; this process the rest."""

    class Opaque:  # defined here: no other process could import it
        def __str__(self) -> str:
            return "opaque"

    (first, first_scores), (second, second_scores), (third, third_scores) = traced_batches(3)
    second_scores = [*second_scores]
    odd = {**_fields(second_scores[0]), "metadata": {"kept": Opaque()}}
    second_scores[0] = ScoreRecord(**odd)  # type: ignore[arg-type]
    exporter = StoreProcessExporter(LocalStore(tmp_path / "traces.db"))
    exporter.export(first, first_scores)
    exporter.export(second, second_scores)
    exporter.export(third, third_scores)
    assert exporter.flush(HANG_S)
    assert exporter.committed_batches() == 3
    exporter.shutdown(HANG_S)
    assert exporter.write_failure is None
    stored = rows(tmp_path / "traces.db")
    assert len(stored["observations"]) == len(first) + len(second) + len(third)
    assert any('"kept"' in (row[9] or "") for row in stored["scores"])  # metadata column


def test_the_watermark_never_passes_a_batch_the_dead_writer_left(tmp_path: Path) -> None:
    """While the replay takes over (its warning held up by a full stderr, say), a batch
    exported meanwhile must not be written, and counted, before the older ones the writer
    never answered: the watermark means "this one and all before"."""
    entered, release = threading.Event(), threading.Event()

    def held_up(record: logging.LogRecord) -> None:
        entered.set()
        release.wait(HANG_S)

    batches = traced_batches(3)
    exporter = StoreProcessExporter(LocalStore(tmp_path / "traces.db"))
    try:
        with delivery_warnings(held_up):
            exporter.export(*batches[0])
            assert exporter.wait_committed(1, HANG_S)
            exporter._process.send_signal(signal.SIGSTOP)
            exporter.export(*batches[1])  # into the pipe, never answered
            exporter._process.send_signal(signal.SIGKILL)
            assert entered.wait(HANG_S)  # the take-over is under way, its warning held up
            exporter.export(*batches[2])
            assert exporter.committed_batches() == 1
    finally:
        release.set()
    assert exporter.flush(HANG_S)
    assert exporter.committed_batches() == 3
    exporter.shutdown(HANG_S)
    assert len(rows(tmp_path / "traces.db")["observations"]) == sum(len(s) for s, _ in batches)
