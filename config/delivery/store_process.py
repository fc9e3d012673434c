"""The local store written from another process: a replay's agents and its store on two cores.

``StoreProcessExporter`` sends each batch of spans and scores to a writer process
(``config.store.writer_process``), which maps them to rows and writes them in order, one
transaction each, and answers each once it is committed: the committed watermark advances on
those answers, so a replay still counts only what is on disk. A thread would not do: mapping
and binding hold the GIL, and a writer thread was measured slower than writing in place
(``LocalStoreExporter``'s docstring). The replay uses this exporter in local mode when it
runs in one process and has a second CPU; everything else writes in place.

If the writer process dies (killed, out of memory), the batches it had not answered are
written here, and every later one too: writing a batch twice stores it once, so nothing is
lost or doubled. A write that fails in the writer (a full disk, a value it cannot store) is
a ``write_failure`` as in ``LocalStoreExporter``: counted, logged, nothing more written.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO, NamedTuple

import config
from config.delivery.exporters import StoreWatermark
from config.errors import LocalFileError
from config.redaction import core_logger
from config.store.local_store import WRITER_CACHE_KIB, LocalStore, write_error
from config.store.writer_process import ERROR, OK, frame
from config.tracing.span_records import ScoreRecord, SpanRecord

logger = core_logger("autoops.delivery")

# How long ``shutdown`` waits for the writer to end once its input is closed (it has
# nothing left to write by then: the replay waited for its last batch).
_EXIT_WAIT_S = 10.0


class _Sent(NamedTuple):
    ticket: int
    spans: list[SpanRecord]
    scores: list[ScoreRecord]


class StoreProcessExporter(StoreWatermark):
    """Hands each batch to a writer process; committed once the writer says it is written.

    ``store`` is this process's connection, already opened (and the file created): the
    writer opens its own; this one writes only if the writer dies.
    """

    def __init__(self, store: LocalStore) -> None:
        super().__init__()
        self.store = store
        # Sent and not answered yet, oldest first: what this process writes if the writer dies.
        self._sent: deque[_Sent] = deque()
        self._writing_here = False
        # One batch handed over at a time, in ticket order; _changed guards the rest (an
        # RLock: _fail takes it again).
        self._exporting = threading.Lock()
        self._changed = threading.Condition(threading.RLock())
        self._process = _start_writer(store.path)
        self._stdin: IO[bytes] = self._process.stdin  # type: ignore[assignment]
        self._answers = threading.Thread(
            target=self._read_answers, name="autoops-store-writer", daemon=True
        )
        self._answers.start()

    # --- the tracer's side ------------------------------------------------------------------

    def export(self, spans: list[SpanRecord], scores: list[ScoreRecord]) -> None:
        """Send the batch (its ticket is ``exported_batches()`` once this returns)."""
        with self._exporting:
            self._exported += 1
            sent = _Sent(self._exported, spans, scores)
            with self._changed:  # a failure answered meanwhile has taken every batch sent
                failed = self.write_failure is not None
                here = self._writing_here
                if not failed and not here:
                    self._sent.append(sent)
            if failed:
                self._count_failed(len(spans), len(scores))
                return
            if here:
                self._write_here([sent])
                return
            if self._stdin.closed:  # handed back: written here once the writer has ended
                return
            try:
                data = frame(spans, scores)
            except (pickle.PicklingError, RecursionError) as exc:
                # A value the writer cannot be sent: it writes what it has and ends, and this
                # process writes this batch and the rest, in order, once it has.
                what = (
                    str(exc) if isinstance(exc, pickle.PicklingError) else "a value nested too deep"
                )
                logger.warning(
                    "%s cannot be sent to the store writer process; writing the store in this "
                    "process", what,
                )  # fmt: skip
                with contextlib.suppress(OSError):
                    self._stdin.close()
                return
            try:
                self._stdin.write(data)
                self._stdin.flush()
            except OSError:
                pass  # the writer is gone: its reader thread writes what it left, this one too

    def wait_committed(self, ticket: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s until batch ``ticket`` is written; False if it is not."""
        with self._changed:
            return (
                self._changed.wait_for(
                    lambda: self._committed >= ticket or self.write_failure is not None, timeout
                )
                and self._committed >= ticket
            )

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until everything taken is written; False if it is not."""
        return self.wait_committed(self._exported, timeout) and self.write_failure is None

    def interrupt(self) -> None:
        """A second stop: a writer that has not answered all it was sent (stopped, stuck) is
        not waited for: it is killed and this process writes what it had not answered.
        Signal-safe (a kill): a send blocked on a full pipe then fails and returns."""
        if self._committed < self._exported:
            self._process.kill()

    def shutdown(self, timeout: float) -> None:
        """End the writer's input (it writes what it has, then ends) and close the store."""
        with self._exporting, contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self._process.wait(max(timeout, _EXIT_WAIT_S))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._answers.join()
        self.store.close()

    # --- the writer's side ------------------------------------------------------------------

    def _read_answers(self) -> None:
        """Count each batch the writer answers for; if it ends early, take its place."""
        stdout: IO[bytes] = self._process.stdout  # type: ignore[assignment]
        for line in stdout:
            with self._changed:
                if not self._sent:  # an answer for nothing sent: the writer is broken
                    self._process.kill()
                    break
                sent = self._sent.popleft()
                if line == OK:
                    self._commit(sent)
                    continue
            text = line[len(ERROR) :].decode("utf-8", "replace").strip()
            with self._changed:  # one step: a batch sent after it is counted by export
                self._fail(text or "the store writer process failed")
                failed, self._sent = [sent, *self._sent], deque()
            for lost in failed:
                self._count_failed(len(lost.spans), len(lost.scores))
            return
        stdout.close()
        self._take_over()

    def _take_over(self) -> None:
        """The writer ended with batches (or more to come) unanswered: write them here."""
        with self._changed:
            ended_early = not self._stdin.closed  # closed here: ended as asked
        if ended_early:
            try:  # its output is closed: it is ending, if not gone already
                status = f"exit status {self._process.wait(_EXIT_WAIT_S)}"
            except subprocess.TimeoutExpired:
                status = "its answers stopped"
            logger.warning(
                "the store writer process ended (%s); writing the store in this process", status
            )
        # Batches exported meanwhile wait in _sent; the older ones are written before any
        # newer one (the watermark means "this one and all before").
        with self._exporting:
            with self._changed:
                left, self._sent = list(self._sent), deque()
            self._write_here(left)
            with self._changed:
                self._writing_here = True

    def _write_here(self, batches: list[_Sent]) -> None:
        for position, sent in enumerate(batches):
            if self.write_failure is None:
                try:
                    self.store.write(sent.spans, sent.scores)
                except Exception as exc:
                    self._fail(write_error(self.store.path, exc).message)
            if self.write_failure is not None:
                for lost in batches[position:]:
                    self._count_failed(len(lost.spans), len(lost.scores))
                return
            with self._changed:
                self._commit(sent)

    def _commit(self, sent: _Sent) -> None:
        """Count ``sent`` as written (``_changed`` held)."""
        self.stats.count_written(len(sent.spans), len(sent.scores))
        self._committed = sent.ticket
        self._changed.notify_all()

    def _fail(self, message: str) -> None:
        with self._changed:
            if self.write_failure is None:
                self.write_failure = LocalFileError(message)
                logger.error("%s; tracing keeps nothing more of this run", message)
            self.stats.last_error = str(self.write_failure)
            self._changed.notify_all()

    def _count_failed(self, spans: int, scores: int) -> None:
        with self._changed:
            self.stats.count_failed(spans, scores)


def _start_writer(path: Path) -> subprocess.Popen[bytes]:
    """The writer process for the store at ``path`` (it finds this ``config`` package first)."""
    package_root = str(Path(config.__file__).resolve().parent.parent)
    environ = dict(os.environ)
    environ["PYTHONPATH"] = os.pathsep.join(
        [package_root, *filter(None, [environ.get("PYTHONPATH")])]
    )
    return subprocess.Popen(
        # -P: nothing is imported from the working directory (a config.py there, say).
        [sys.executable, "-P", "-m", "config.store.writer_process", str(path),
         str(WRITER_CACHE_KIB)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environ,
        # Its own process group: a Ctrl-C at the terminal (or a signal to the replay's group)
        # reaches the replay only, from the writer's first instant; the replay ends the
        # writer's input when it stops, and a replay killed outright closes it too.
        process_group=0,
    )  # fmt: skip
