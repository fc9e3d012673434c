"""Simulation events: the model, the validation of one line, and a streaming reader.

The format (JSON Lines, one event per line) is documented in ``docs/events.md``. Every line
of a file becomes either a ``SimulationEvent`` or a ``RejectedLine`` with a one-line reason;
a bad line never stops the reading, and no input can make the parser raise anything but
``EventValidationError``.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import math
import os
import re
import select
import sqlite3
import stat
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, Protocol, cast

from autoops_cli.simulation.catalog import DEFAULT_SEVERITY, SEVERITIES
from autoops_cli.simulation.event_types import EVENT_TYPES, EventTypeSpec, FieldSpec
from config.errors import LocalFileError

MAX_LINE_BYTES = 1_048_576
# Arrays and objects nested deeper than this fail the line. A bound of its own rather than
# the parser's RecursionError, which comes at a depth that depends on how deep the caller's
# stack already is: a replay worker, parsing the same line lower in its stack, would reject
# a line its parent had accepted.
MAX_NESTING = 500
# The largest value of a documented number field: 2**53, the largest integer a double (and
# JavaScript) holds exactly; far beyond any stock, price or day count, and small enough that
# the agents' arithmetic (products of a few fields) stays finite. A larger value fails the
# line, not the agents.
MAX_FIELD_VALUE = 2**53
DEFAULT_TRIGGER_SOURCE = "simulation"
KNOWN_FIELDS: tuple[str, ...] = (
    "event_id",
    "timestamp",
    "event_type",
    "trigger_source",
    "product_id",
    "severity",
    "data",
)
# What a blank line holds, as documented: a line of anything else (a form feed, a no-break
# space) is not skipped in silence but rejected, as JSON does not allow it either.
BLANK = b" \t\r"
_MAX_SHOWN = 80  # characters of an offending value quoted in a reason
_SKIP_CHUNK = 65_536  # bytes read at a time while skipping the rest of an over-long line
_MISSING: Any = object()
# A \uD800-\uDFFF escape may leave an unpaired surrogate that cannot be written as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


@dataclass(frozen=True)
class SimulationEvent:
    """One validated simulation event."""

    event_id: str
    timestamp: datetime
    event_type: str
    trigger_source: str
    product_id: str
    severity: str
    data: dict[str, Any]
    extra: dict[str, Any]
    line_number: int

    def as_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict; unknown top-level fields come last."""
        return {
            "event_id": self.event_id,
            "timestamp": format_timestamp(self.timestamp),
            "event_type": self.event_type,
            "trigger_source": self.trigger_source,
            "product_id": self.product_id,
            "severity": self.severity,
            "data": dict(self.data),
            **self.extra,
        }


@dataclass(frozen=True)
class RejectedLine:
    """A line of an event file that is not a valid event, and why."""

    line_number: int
    reason: str


class EventValidationError(ValueError):
    """An event line or object is invalid; ``reason`` says why, in one line."""

    def __init__(self, reason: str) -> None:
        # Reasons end up in one-line reports: never let a newline through.
        self.reason = " ".join(reason.split())
        super().__init__(self.reason)


class _PeekableSource(Protocol):
    """What the reader needs of a binary stream (a file, a GzipFile, stdin's buffer)."""

    def peek(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


class _NonFiniteNumber(ValueError):
    """Raised from inside ``json.loads`` for NaN, Infinity and overflowing floats."""


def format_timestamp(value: datetime) -> str:
    """ISO 8601 with its offset, ``Z`` for UTC (the form the generator writes)."""
    text = value.isoformat()
    if value.utcoffset() == timedelta(0):
        return text.removesuffix("+00:00") + "Z"
    return text


def parse_event_line(raw: bytes, line_number: int = 0) -> SimulationEvent:
    """Parse one line (its ``\\n`` or ``\\r\\n`` ending optional) into a validated event.

    Raises ``EventValidationError`` for every invalid input, whatever the bytes.
    """
    return _parse_content(_strip_line_ending(raw), line_number)


def parse_event(obj: Any, *, line_number: int = 0, raw: bytes | None = None) -> SimulationEvent:
    """Validate an already decoded JSON value as an event.

    ``raw`` is the line it came from; without ``event_id`` the id is a hash of ``raw``, or of
    the canonical JSON of ``obj`` when ``raw`` is not given.
    """
    if not isinstance(obj, dict):
        raise EventValidationError(f"line is not a JSON object (got {_json_type(obj)})")
    _check_keys(obj, "the event")
    event_type = _required_string(obj, "event_type")
    spec = EVENT_TYPES.get(event_type)
    if spec is None:
        known = ", ".join(sorted(EVENT_TYPES))
        raise EventValidationError(f"unknown event_type {_describe(event_type)} (known: {known})")
    timestamp = _parse_timestamp(obj.get("timestamp", _MISSING))
    product_id = _required_string(obj, "product_id")
    event_id = _optional_string(obj, "event_id")
    trigger_source = _optional_string(obj, "trigger_source")
    severity = obj.get("severity", DEFAULT_SEVERITY)
    if not isinstance(severity, str) or severity not in SEVERITIES:
        allowed = ", ".join(SEVERITIES)
        raise EventValidationError(
            f"field 'severity' must be one of {allowed}, got {_describe(severity)}"
        )
    data = _validate_data(spec, obj.get("data", _MISSING))
    return SimulationEvent(
        event_id=event_id or _default_event_id(obj, raw),
        timestamp=timestamp,
        event_type=event_type,
        trigger_source=trigger_source or DEFAULT_TRIGGER_SOURCE,
        product_id=product_id,
        severity=severity,
        data=data,
        extra={key: value for key, value in obj.items() if key not in KNOWN_FIELDS},
        line_number=line_number,
    )


def read_events(
    source: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[SimulationEvent | RejectedLine]:
    """Stream the events of a JSON Lines file or standard input (``"-"``), gzipped or not.

    Yields one ``SimulationEvent`` or ``RejectedLine`` per non-blank line, holding at most
    about ``max_line_bytes`` of the file in memory. Gzip is recognised by its first bytes,
    whatever the name. A file that cannot be opened or read (missing, a directory, a corrupt
    gzip stream), an empty one, or one that is plainly not JSON Lines (a JSON array, CSV,
    binary data) raises ``LocalFileError`` when iterated, the last ones before any event.
    """
    reader = EventReader(source, max_line_bytes=max_line_bytes)
    try:
        yield from reader
    finally:
        reader.close()


class EventReader:
    """The events of a file or standard input, and how far the reading has come.

    Opening it checks the file (it exists, can be read, looks like JSON Lines): what is
    wrong with it raises ``LocalFileError`` at once, before anything is recorded
    (``allow_empty``: an empty input is no events rather than an error). Iterating
    yields what ``read_events`` does. ``lines_read``, ``bytes_read`` and ``size`` (the
    file's bytes on disk, compressed or not; None for standard input or a pipe) give the
    progress; ``count_lines_left()`` how much a run that stopped early did not read.

    An event whose ``event_id`` an earlier line of the input already had is yielded under
    the next free ``<event_id>#<n>`` (n = 2 for the second occurrence) and counted in
    ``events_renamed``: a replay derives the trace id from the run id and the event id, so
    the repeat would otherwise replace the earlier event's trace and the run's counts would
    no longer be what is stored. (``check_event_ids=False``: a replay worker, whose parent
    renamed them.)
    """

    def __init__(
        self,
        source: str | Path,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        allow_empty: bool = False,
        check_event_ids: bool = True,
    ) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.name = "standard input" if source == "-" else str(source)
        self.max_line_bytes = max_line_bytes
        self.lines_read = 0  # the lines handed out (or skipped: blank)
        self._lines_seen = 0  # the lines read, some of them held back (see __iter__)
        self.events_renamed = 0  # events whose event_id repeated an earlier one's
        self.finished = False  # the end of the input was reached
        self._content_seen = False  # a line that is not blank was read
        self._stream, self._file, self._owned = _open(source, self.name)
        self.size = _regular_file_size(self._file)
        # What may block between events: standard input, or a named pipe (a FIFO, `<(cmd)`)
        # or device given by name (a file of no size on disk); it was taken for a file, and
        # the events read from it waited for the next to be committed and handed out.
        if source == "-":
            self._pipe = _descriptor(sys.stdin)
        else:
            self._pipe = _descriptor(self._file) if self.size is None else None
        self._event_ids = EventIds() if check_event_ids else None
        try:
            if self._pipe is not None and not isinstance(self._stream, _Prefixed):
                # Its head read ahead, up to a pause: a peek gives only what has come so far.
                self._stream = _Prefixed(self._stream, owned=self._owned, pipe=self._pipe)
            _check_format(
                self._stream,
                self.name,
                allow_empty=allow_empty,
                # A regular file's head, or one read ahead to its end, is all there is when
                # short; a pipe's is what came before a pause (a feed may pause).
                short_is_whole=self.size is not None
                or (isinstance(self._stream, _Prefixed) and self._stream.reached_end),
            )
        except BaseException:
            self.close()
            raise

    @property
    def only_blank_lines(self) -> bool:
        """The whole input was read and held blank lines only: no events, as an empty file
        (one short enough for the format check is refused there, before anything is made)."""
        return self.finished and not self._content_seen

    @property
    def may_block(self) -> bool:
        """Whether the next read may wait for input (standard input, a pipe): only such a
        read is abandoned by a stop; a file's next line comes at once, and abandoning its read
        could lose a line from the count of lines read and not read."""
        return self.size is None

    def input_waiting(self) -> bool:
        """Whether there is input to read now: always for a file; for standard input or a
        named pipe, whether it holds something (or its end). False means the next read may wait for the
        writer of the pipe, which a replay of a live feed does between events: what was
        replayed is then made durable first (the engine), and handed to the workers (the
        pool). Lines already read ahead into a buffer count as nothing waiting: at worst a
        commit comes early."""
        if self.size is not None or self._pipe is None:
            return True
        try:
            readable, _, _ = select.select([self._pipe], [], [], 0)
        except (OSError, ValueError):  # closed, or a descriptor select cannot watch
            return True
        return bool(readable)

    @property
    def bytes_read(self) -> int | None:
        """Bytes of the file (as on disk) read so far; None when its size is unknown."""
        if self.size is None or self._file is None:
            return None
        try:
            return min(self._file.tell(), self.size)
        except (OSError, ValueError):  # closed, or not seekable after all
            return None

    def __iter__(self) -> Iterator[SimulationEvent | RejectedLine]:
        # Binary lines before any event are held back: a file that starts with a block of
        # zeros (what a crash leaves) passes the format check, and its first line is only
        # a bad line; but BINARY_LINES_REFUSED of them in a row (a disk image) is binary
        # data, refused as one error rather than a rejection per line. ``lines_read`` counts
        # the lines handed out (a held line once it is): a run stopping at a held line (a
        # --strict rejection) has not read the lines after it, whatever was read ahead.
        held: list[RejectedLine] = []
        judging = True  # no event yet: binary lines are held back

        def hand_out(items: list[RejectedLine]) -> Iterator[RejectedLine]:
            for rejected in items:
                self.lines_read = rejected.line_number
                yield rejected
            items.clear()

        while True:
            number = self._lines_seen
            try:
                # Line 1 may carry a BOM on top of its longest length.
                room = len(codecs.BOM_UTF8) if number == 0 else 0
                line, too_long = _read_line(self._stream, self.max_line_bytes + room)
            except (OSError, EOFError, zlib.error) as exc:
                yield from hand_out(held)  # read before the failure: reported, not lost
                self.lines_read = number
                raise LocalFileError(
                    f"cannot read events from {self.name} at line {number + 1}: {_os_reason(exc)}"
                ) from exc
            if line is None:
                yield from hand_out(held)
                self.lines_read = number
                self.finished = True
                return
            number = self._lines_seen = number + 1
            if not held:
                self.lines_read = number
            # A BOM (some Windows editors write one) is tolerated on the first line only.
            bom = len(codecs.BOM_UTF8) if number == 1 and line.startswith(codecs.BOM_UTF8) else 0
            line = line[bom:]
            if too_long or len(line) > self.max_line_bytes:
                yield from hand_out(held)
                self.lines_read = number
                yield RejectedLine(number, f"line longer than {self.max_line_bytes} bytes")
                continue
            if not line.strip(BLANK):
                continue
            self._content_seen = True
            item: SimulationEvent | RejectedLine
            try:
                item = _parse_content(line, number, byte_offset=bom)
            except EventValidationError as exc:
                item = RejectedLine(number, exc.reason)
                if judging and _binary(line):
                    held.append(item)
                    if len(held) >= BINARY_LINES_REFUSED:
                        raise EventFileFormatError(
                            f"{self.name}: binary data, not JSON Lines (one JSON event per "
                            "line, docs/events.md)"
                        ) from None
                    continue
            else:
                judging = False
                item = self._with_unique_id(item)
            yield from hand_out(held)
            self.lines_read = number
            yield item

    def _with_unique_id(self, event: SimulationEvent) -> SimulationEvent:
        """The event, under ``<event_id>#<n>`` when an earlier line had its id."""
        if self._event_ids is None:
            return event
        unique = self._event_ids.unique(event.event_id)
        if unique == event.event_id:
            return event
        self.events_renamed += 1
        return replace(event, event_id=unique)

    def count_lines_left(self) -> int | None:
        """The lines after the last one read, counted by reading on (None: unknown, for
        standard input, which is not the reader's to drain, or a file that fails to read)."""
        ahead = self._lines_seen - self.lines_read  # read, held back, never handed out
        if self.finished:
            return ahead
        if self._file is None or self.size is None:
            return None
        left = ahead
        last = b"\n"
        try:
            while chunk := self._stream.read(_COUNT_CHUNK):
                left += chunk.count(b"\n")
                last = chunk[-1:]
        except (OSError, EOFError, zlib.error, ValueError):
            return None
        return left + (last != b"\n")  # a last line without its newline counts too

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if self._event_ids is not None:
            self._event_ids.close()
        if self._owned:
            self._stream.close()
        if self._file is not None:
            self._file.close()  # under a GzipFile, which leaves it open; else closed already


class EventIds:
    """The event ids an input has had so far: a repeated id gets the next free ``<id>#<n>``.

    Kept in a private temporary SQLite database (removed when closed), not in memory: a file
    of millions of events must not grow the process, and SQLite's page cache bounds what is
    held. Where no temporary file can be made, or it can no longer be written (a full disk),
    a dict in memory takes over from then on (the ids seen before are then forgotten).
    """

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._in_memory: dict[str, int] | None = None

    def unique(self, event_id: str) -> str:
        """``event_id`` itself the first time; for its n-th occurrence ``<event_id>#<n>``
        (the next such id not taken yet, an id the input has itself included). Every id
        returned is remembered."""
        if self._in_memory is None:
            try:
                return self._unique(event_id, self._repeats_on_disk, self._remember_on_disk)
            except sqlite3.Error:
                self.close()
                self._in_memory = {}
        memory = self._in_memory
        return self._unique(event_id, memory.get, memory.__setitem__)

    @staticmethod
    def _unique(
        event_id: str,
        repeats: Callable[[str], int | None],
        remember: Callable[[str, int], None],
    ) -> str:
        seen = repeats(event_id)
        if seen is None:
            remember(event_id, 1)
            return event_id
        occurrence = seen + 1
        while repeats(candidate := f"{event_id}#{occurrence}") is not None:
            occurrence += 1
        remember(event_id, occurrence)
        remember(candidate, 1)
        return candidate

    def _repeats_on_disk(self, event_id: str) -> int | None:
        if self._db is None:
            # "": a temporary database of this connection only, deleted when it closes.
            self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE ids (id TEXT PRIMARY KEY, seen INTEGER NOT NULL) WITHOUT ROWID"
            )
            self._db.execute("BEGIN")  # never committed: the file goes with the connection
        row = self._db.execute("SELECT seen FROM ids WHERE id = ?", (event_id,)).fetchone()
        return None if row is None else int(row[0])

    def _remember_on_disk(self, event_id: str, seen: int) -> None:
        assert self._db is not None
        self._db.execute("INSERT OR REPLACE INTO ids VALUES (?, ?)", (event_id, seen))

    def close(self) -> None:
        """Forget the ids (the temporary file is removed)."""
        if self._db is not None:
            self._db.close()
            self._db = None


def _regular_file_size(file: IO[bytes] | None) -> int | None:
    if file is None:
        return None
    try:
        status = os.fstat(file.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        return None
    return status.st_size if stat.S_ISREG(status.st_mode) else None


GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 4096  # enough of the start of a file to tell what it is
_COUNT_CHUNK = 1_048_576  # bytes read at a time while counting the lines left


class _Prefixed:
    """A stream given ``peek`` by reading its first ``_SNIFF_BYTES`` ahead: a gzip stream,
    or a standard input without one (a test's BytesIO).

    The head is read in small steps, so a gzip stream that breaks inside it still gives the
    lines before the break: the error is kept and raised when the reading gets there, as it
    would be further on. (``GzipFile.peek`` fails as a whole and gives nothing.) Closes the
    stream it wraps only when ``owned``: standard input is not the reader's to close.
    """

    _STEP = 512  # bytes decompressed at a time while reading the head

    def __init__(self, stream: Any, *, owned: bool = False, pipe: int | None = None) -> None:
        """``pipe``: the descriptor of a pipe ``stream`` reads (buffered, with ``read1``):
        after its first bytes, the head is what comes without a pause of ``_PIPE_PAUSE_S``
        (a feed that pauses after a header line is judged line by line, as the same bytes in
        a file; a small file piped at once is judged whole)."""
        self._stream = stream
        self._owned = owned
        self._error: BaseException | None = None
        self.reached_end = False  # the head is the whole input
        head = bytearray()
        read_some = getattr(stream, "read1", stream.read)
        # A pipe's buffered bytes first, all at once: its buffer is then empty, so that
        # select() tells whether more has come.
        step = _SNIFF_BYTES if pipe is not None else self._STEP
        try:
            while len(head) < _SNIFF_BYTES:
                if head and pipe is not None and not _comes_soon(pipe):
                    break
                chunk = read_some(min(step, _SNIFF_BYTES - len(head)))
                if not chunk:
                    self.reached_end = True
                    break
                head += chunk
        except (OSError, EOFError, zlib.error) as exc:
            self._error = exc
        self._head = bytes(head)

    def peek(self, size: int, /) -> bytes:
        if self._error is not None and b"\n" not in self._head:
            raise self._error  # not one whole line before the break: nothing to replay
        return self._head

    def readline(self, size: int, /) -> bytes:
        if self._head:
            end = self._head.find(b"\n") + 1 or len(self._head)
            if size >= 0:
                end = min(end, size)
            line, self._head = self._head[:end], self._head[end:]
            if line.endswith(b"\n") or (size >= 0 and len(line) >= size):
                return line
            return line + self._more(
                lambda: self._stream.readline(-1 if size < 0 else size - len(line))
            )
        return self._more(lambda: self._stream.readline(size))

    def read(self, size: int, /) -> bytes:
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._more(lambda: self._stream.read(size))

    def _more(self, read: Callable[[], bytes | None]) -> bytes:
        """What the stream gives after the head; a break found while reading ahead is
        raised here, where the reading reaches it (the line it cuts is not given), and
        again on any later read: the stream under it is not read past a break."""
        if self._error is not None:
            raise self._error
        if self.reached_end:  # a terminal's end of input (Ctrl-D) comes once: not read past
            return b""
        return bytes(read() or b"")

    def close(self) -> None:
        if self._owned:
            self._stream.close()


_PIPE_PAUSE_S = 0.25  # a pipe's head: what comes within this of the bytes before it


def _comes_soon(pipe: int) -> bool:
    """Whether the pipe has more (or its end) within ``_PIPE_PAUSE_S``."""
    try:
        readable, _, _ = select.select([pipe], [], [], _PIPE_PAUSE_S)
    except (OSError, ValueError):  # a descriptor select cannot watch: read on, as from a file
        return True
    return bool(readable)


def _descriptor(stream: Any) -> int | None:
    """The file descriptor under ``stream``, or None (a test's in-memory standard input)."""
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None


class EventFileFormatError(LocalFileError):
    """The file is not JSON Lines at all (empty, a JSON array, CSV, binary): nothing read."""


def _open(source: str | Path, name: str) -> tuple[_PeekableSource, IO[bytes] | None, bool]:
    """The binary stream to read (decompressed when gzip), the file under it (None for
    standard input), and whether the stream is the reader's to close."""
    if source == "-":
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise LocalFileError("cannot read events from standard input: it is not available")
        raw: _PeekableSource = stdin if hasattr(stdin, "peek") else _Prefixed(stdin)
        file: IO[bytes] | None = None
        owned = False
    else:
        try:
            file = open(source, "rb")  # noqa: SIM115  (closed by EventReader.close)
        except OSError as exc:
            raise LocalFileError(f"cannot read events from {name}: {_os_reason(exc)}") from exc
        raw = cast("_PeekableSource", file)
        owned = True
    try:
        compressed = raw.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] == GZIP_MAGIC
    except OSError as exc:  # a directory opens on some systems and fails on the first read
        if owned:
            raw.close()
        raise LocalFileError(f"cannot read events from {name}: {_os_reason(exc)}") from exc
    if compressed:
        return (
            _Prefixed(gzip.GzipFile(fileobj=cast("IO[bytes]", raw), mode="rb"), owned=True),
            file,
            True,
        )
    return raw, file, owned


def _check_format(
    stream: _PeekableSource, name: str, *, allow_empty: bool = False, short_is_whole: bool = True
) -> None:
    """Refuse, with what the file looks like and how to convert it, what is not JSON Lines.

    Judged from the first few KB: a file with a line there that is one JSON object is JSON
    Lines (its bad lines, if any, are rejected one by one); so is one starting with a long
    line that opens an object, with only blank lines so far, or with several lines that are
    each a whole JSON value. Anything else (nothing at all, a JSON array or a document over
    several lines, CSV, other text, binary data) is refused before any event is read.
    """
    try:
        head = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
    except (OSError, EOFError, zlib.error) as exc:
        raise LocalFileError(
            f"cannot read events from {name} at line 1: {_os_reason(exc)}"
        ) from exc
    text = head.removeprefix(codecs.BOM_UTF8)
    lines = [line.strip() for line in text.split(b"\n")]
    # The head is the whole input (nothing at all is the end of a pipe too).
    complete = not head or (len(head) < _SNIFF_BYTES and short_is_whole)
    if not any(lines) and not complete:
        return  # only blank lines so far: judged line by line (and "no events" at the end)
    if not any(lines) and allow_empty:  # a replay worker given no events: nothing to do
        return
    if not any(lines):
        raise EventFileFormatError(f"{name}: no events (the file is empty)")
    whole = lines if complete else lines[:-1]  # the last may be cut off
    if any(line.startswith(b"{") and line.endswith(b"}") for line in whole):
        return
    if any(line.startswith(b"{") and line != b"{" for line in lines):
        return  # a long line that opens an object, or a broken event: judged line by line
    if not text.replace(b"\x00", b"").strip():
        return  # only NUL bytes so far (a block a crash left zeroed): judged line by line
    if sum(_is_json(line) for line in whole) >= 2:
        return  # JSON Lines of values that are not events: each rejected on its own
    if not complete and len(head) < _SNIFF_BYTES:
        # A pipe's first bytes, then a pause (a feed that paused after a header line):
        # judged line by line as the rest comes, as the same bytes in a file would be.
        return
    first_line = next(line for line in lines if line)
    if first_line.startswith(b"["):
        raise EventFileFormatError(
            f"{name}: a JSON array, not JSON Lines (one event per line); convert it with "
            f"jq -c '.[]' {name} > events.jsonl"
        )
    if first_line == b"{":
        raise EventFileFormatError(
            f"{name}: a JSON document over several lines, not JSON Lines (one event per "
            f"line); convert it with jq -c '.' {name} > events.jsonl (jq -c '.[]' for a list)"
        )
    if b"\x00" in text:
        raise EventFileFormatError(
            f"{name}: binary data, not JSON Lines (one JSON event per line, docs/events.md)"
        )
    shown = first_line[:60].decode("utf-8", "replace")
    if b"," in first_line and b"{" not in first_line:
        raise EventFileFormatError(
            f"{name}: CSV, not JSON Lines (line 1 starts {shown!r}); convert each row to one "
            f"JSON object per line, e.g. mlr --icsv --ojsonl cat {name} > events.jsonl"
        )
    raise EventFileFormatError(
        f"{name}: text, not JSON Lines (line 1 starts {shown!r}); each line must be one JSON "
        "event (docs/events.md)"
    )


def _is_json(line: bytes) -> bool:
    """Whether ``line`` is one whole JSON value (``[1, 2]``, ``"text"``, ``3``)."""
    if not line:
        return False
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return _clip(str(exc) or type(exc).__name__)


def _read_line(stream: _PeekableSource, max_line_bytes: int) -> tuple[bytes | None, bool]:
    """The next line without its ending (``None`` at the end), and whether it was too long.

    The rest of an over-long line is skipped in chunks, so memory stays bounded.
    """
    limit = max_line_bytes + 2  # room for a full-length line plus "\r\n"
    chunk = stream.readline(limit)
    if not chunk:
        return None, False
    if len(chunk) == limit and not chunk.endswith(b"\n"):
        while True:
            rest = stream.readline(_SKIP_CHUNK)
            if not rest or rest.endswith(b"\n"):
                return b"", True
    line = _strip_line_ending(chunk)
    return line, len(line) > max_line_bytes


# Binary lines in a row, before any event, that make a file binary data (a disk image
# starts with zeros, which pass the format check as a crash's zeroed block does).
BINARY_LINES_REFUSED = 8


# C0 control bytes text never holds (tab, line and form feeds, carriage return and escape
# aside): a line not UTF-8 with one of them is binary; one without is text in another
# encoding (a Latin-1 export), rejected line by line like any bad line.
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f]")


def _binary(line: bytes) -> bool:
    """Whether a line is binary: a NUL byte, or bytes that are not UTF-8 with control
    bytes among them (a Latin-1 export was refused whole as binary data)."""
    if b"\x00" in line:
        return True
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return _CONTROL_BYTES.search(line) is not None
    return False


def _strip_line_ending(raw: bytes) -> bytes:
    return raw.removesuffix(b"\n").removesuffix(b"\r")


def _parse_content(content: bytes, line_number: int, *, byte_offset: int = 0) -> SimulationEvent:
    """Decode, parse and validate one line's content (no line ending).

    ``byte_offset`` is where ``content`` starts in the line (after a BOM), so that the byte
    reported for invalid UTF-8 counts from the start of the line as it is in the file.
    """
    try:
        text = content.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise EventValidationError(f"invalid UTF-8 at byte {exc.start + byte_offset}") from None
    if not content.strip(BLANK):
        raise EventValidationError("line is blank")
    obj = _load_json(text)
    return parse_event(obj, line_number=line_number, raw=content)


def _load_json(text: str) -> Any:
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except _NonFiniteNumber as exc:
        raise EventValidationError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise EventValidationError(f"not valid JSON: {exc.msg} (column {exc.colno})") from None
    except UnicodeEncodeError:
        raise EventValidationError("a string holds an unpaired UTF-16 surrogate") from None
    except ValueError as exc:
        if "integer string conversion" in str(exc):  # Python's int-from-string digit limit
            limit = sys.get_int_max_str_digits()
            raise EventValidationError(f"integer longer than {limit} digits") from None
        raise EventValidationError(f"not valid JSON: {_clip(str(exc))}") from None
    except RecursionError:
        raise EventValidationError("nested too deeply") from None
    # Only a line with more opening brackets than the bound can be nested beyond it.
    if text.count("[") + text.count("{") > MAX_NESTING and _nested_deeper_than(obj, MAX_NESTING):
        raise EventValidationError("nested too deeply")
    return obj


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds arrays or objects more than ``limit`` levels deep (walked with
    a list, not recursion)."""
    pending = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        container, depth = pending.pop()
        if depth > limit:
            return True
        items = container.values() if isinstance(container, dict) else container
        pending.extend((item, depth + 1) for item in items if isinstance(item, dict | list))
    return False


def _reject_constant(name: str) -> Any:
    raise _NonFiniteNumber(f"non-finite number {name} is not allowed")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 would silently become inf
        raise _NonFiniteNumber(f"number {_clip(text)} is out of range")
    return value


def _check_keys(obj: dict[Any, Any], where: str) -> None:
    for key in obj:
        if not isinstance(key, str):  # only possible for objects not decoded from JSON
            raise EventValidationError(
                f"field names in {where} must be strings, got {_describe(key)}"
            )


def _required_string(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name, _MISSING)
    if value is _MISSING:
        raise EventValidationError(f"missing required field '{name}'")
    if not isinstance(value, str) or not value.strip():
        raise EventValidationError(
            f"field '{name}' must be a non-empty string, got {_describe(value)}"
        )
    return value


def _optional_string(obj: dict[str, Any], name: str) -> str | None:
    return _required_string(obj, name) if name in obj else None


def _parse_timestamp(value: Any) -> datetime:
    if value is _MISSING:
        raise EventValidationError("missing required field 'timestamp'")
    problem = "must be an ISO 8601 string with a UTC offset or Z"
    if not isinstance(value, str):
        raise EventValidationError(f"field 'timestamp' {problem}, got {_describe(value)}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise EventValidationError(f"field 'timestamp' {problem}, got {_describe(value)}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise EventValidationError(
            f"field 'timestamp' must include a UTC offset or Z, got {_describe(value)}"
        )
    return parsed


def _validate_data(spec: EventTypeSpec, value: Any) -> dict[str, Any]:
    """Documented fields checked and defaulted, unknown fields kept untouched."""
    if value is _MISSING:
        value = {}
    if not isinstance(value, dict):
        raise EventValidationError(f"field 'data' must be an object, got {_describe(value)}")
    _check_keys(value, "'data'")
    data: dict[str, Any] = {}
    for field in spec.fields:
        given = value.get(field.name, _MISSING)
        data[field.name] = field.default if given is _MISSING else _coerce(field, given)
    for key, extra in value.items():
        if key not in data:
            data[key] = extra
    return data


def _coerce(field: FieldSpec, value: Any) -> int | float | str:
    """The value converted to the field's kind, or EventValidationError."""
    if field.kind == "str":
        if isinstance(value, str):
            return value
        raise _bad_field(field, value)
    # bool is an int in Python; a true/false in a number field is a producer bug.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_field(field, value)
    number: int | float
    if field.kind == "int":
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise _bad_field(field, value)
        number = int(value)
    else:
        try:
            number = float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
        except OverflowError:  # an int too large for a float
            raise _bad_field(field, value) from None
        if not math.isfinite(number):
            raise _bad_field(field, value)
    if number < 0:
        raise _bad_field(field, value)
    if number > MAX_FIELD_VALUE:
        raise EventValidationError(
            f"field 'data.{field.name}' is out of range (at most {MAX_FIELD_VALUE}), "
            f"got {_describe(value)}"
        )
    return number


def _bad_field(field: FieldSpec, value: Any) -> EventValidationError:
    wanted = {
        "int": "a non-negative integer",
        "float": "a finite non-negative number",
        "str": "a string",
    }[field.kind]
    return EventValidationError(
        f"field 'data.{field.name}' must be {wanted}, got {_describe(value)}"
    )


def _default_event_id(obj: dict[str, Any], raw: bytes | None) -> str:
    """A stable id: the hash of the line, or of the object's canonical JSON."""
    if raw is None:
        try:
            raw = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("ascii")
        except (TypeError, ValueError, RecursionError):
            raise EventValidationError(
                "event has no event_id and is not JSON-serialisable"
            ) from None
    return "evt-" + hashlib.sha256(raw).hexdigest()[:16]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _describe(value: Any) -> str:
    """A short, one-line rendering of an offending value for a reason."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, str):
        return _clip(repr(value))
    if isinstance(value, float):
        return _clip(json.dumps(value))  # NaN / Infinity, as JSON would spell them
    if isinstance(value, int):
        try:
            return _clip(str(value))
        except ValueError:  # beyond the int-to-str digit limit
            return f"an integer of {value.bit_length()} bits"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a value of type {type(value).__name__}"


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
