"""The store's writer process: maps and writes the batches another process sends it, in order.

``python -m config.store.writer_process PATH CACHE_KIB``, started by
``config.delivery.store_process.StoreProcessExporter``: a replay sends its finished spans and
scores here, so mapping them to rows and SQLite's work run on another core while the agents
go on. It imports only the store (no Langfuse SDK): it is ready in a few tens of ms.

On standard input, each batch is one frame: its length (8 bytes, big-endian), then the
pickled fields of its spans and scores (plain tuples, from the parent process only: a
private pipe). On standard output, one line per batch, once its transaction is committed:
``ok``, or ``error <text>`` after which nothing more is written and the process ends. At the
end of its input, the process ends once everything it was sent is written: interrupts and
terminations go to the parent, which ends the input (so a Ctrl-C never cuts a batch in two):
the parent starts it in a process group of its own, and it ignores both signals as well.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import pickle
import signal
import sys
from pathlib import Path
from typing import Any, BinaryIO

from config.errors import LocalFileError
from config.store.local_store import LocalStore, write_error
from config.tracing.span_records import ScoreRecord, SpanRecord

FRAME_HEADER_BYTES = 8
OK = b"ok\n"
ERROR = b"error "

Batch = tuple[list[SpanRecord], list[ScoreRecord]]

# Records travel as tuples of their fields: pickling the slotted dataclasses themselves runs
# Python code per record, twice as slow on both sides.
_span_fields = operator.attrgetter(*(field.name for field in dataclasses.fields(SpanRecord)))
_score_fields = operator.attrgetter(*(field.name for field in dataclasses.fields(ScoreRecord)))


class _PlainPickler(pickle.Pickler):
    """Pickles plain values only: None, bools, numbers, strings, bytes and their containers.

    Anything else (a score's metadata may hold any object of the application's) raises
    ``pickle.PicklingError``: the writer would have to import its class and run its code,
    and may not even find it. ``reducer_override`` is called for exactly those objects.
    """

    def reducer_override(self, obj: Any) -> Any:
        raise pickle.PicklingError(f"a value of type {type(obj).__name__}")


def frame(spans: list[SpanRecord], scores: list[ScoreRecord]) -> bytes:
    """The bytes that send one batch to the writer process.

    Raises ``pickle.PicklingError`` (or ``RecursionError``) when a value is not plain.
    """
    fields: tuple[list[Any], list[Any]] = (
        [_span_fields(span) for span in spans],
        [_score_fields(score) for score in scores],
    )
    body = io.BytesIO()
    body.write(bytes(FRAME_HEADER_BYTES))
    _PlainPickler(body, protocol=pickle.HIGHEST_PROTOCOL).dump(fields)
    size = body.tell() - FRAME_HEADER_BYTES
    body.seek(0)
    body.write(size.to_bytes(FRAME_HEADER_BYTES, "big"))
    return body.getvalue()


def _read_frame(stream: BinaryIO) -> Batch | None:
    """The next batch, or None at the end of the input (a cut frame is an end too: the
    parent died while sending it, and half a batch is not written)."""
    header = stream.read(FRAME_HEADER_BYTES)
    if len(header) < FRAME_HEADER_BYTES:
        return None
    size = int.from_bytes(header, "big")
    body = stream.read(size)
    if len(body) < size:
        return None
    spans, scores = pickle.loads(body)
    return [SpanRecord(*span) for span in spans], [ScoreRecord(*score) for score in scores]


def _error_line(text: str) -> bytes:
    return ERROR + " ".join(text.split()).encode("utf-8", "replace") + b"\n"


def serve(path: Path, cache_kib: int, source: BinaryIO, answers: BinaryIO) -> int:
    """Write every batch read from ``source`` to the store at ``path``; 0, or 1 after an error."""
    try:
        store = LocalStore(path, cache_kib=cache_kib)
    except LocalFileError as exc:
        answers.write(_error_line(exc.message))
        answers.flush()
        return 1
    try:
        while (batch := _read_frame(source)) is not None:
            try:
                store.write(*batch)
            except Exception as exc:  # also a value the mapping or SQLite cannot take
                answers.write(_error_line(write_error(path, exc).message))
                return 1
            answers.write(OK)
            answers.flush()
        return 0
    finally:
        answers.flush()
        store.close()


def main() -> None:
    """The process's entry point: ``PATH CACHE_KIB`` on the command line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    path, cache_kib = sys.argv[1], int(sys.argv[2])
    try:
        code = serve(Path(path), cache_kib, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the parent is gone: nobody is left to tell
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
