"""Where the CLI writes: data to stdout, everything else to stderr.

Rich is imported on first use, so commands that print nothing rich do not pay for it.
Rich honours ``NO_COLOR`` and ``COLUMNS`` itself. Tables read well anywhere: on a terminal a
table built by ``fitted_table`` drops its least important columns until it fits, before any
cell is cut; when stdout is not a terminal (a pipe, a file) every table is printed at its
full width, so no cell is ever cut for ``grep``, ``cut`` or a log.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from config.json_values import finite
from config.redaction import redact_secrets

if TYPE_CHECKING:
    from rich.console import Console, RenderableType


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "get_secret_value"):
        return "****"
    return str(value)


def to_json(document: Any) -> str:
    """The JSON text of a document, stable key order, secrets never included; a float JSON
    cannot carry (NaN, infinity: a server's odd answer) as null, so the text stays JSON."""
    try:
        text = _dumps(document, indent=2)
    except RecursionError:
        # Indented, json encodes in Python code, several frames a level: a value nested as
        # deep as the parser took (a trace's output, ~970 levels) failed as an internal
        # error. Unindented, the C encoder writes it.
        text = _dumps(document, indent=None)
    return redact_secrets(text)


def _dumps(document: Any, indent: int | None) -> str:
    try:
        return json.dumps(document, indent=indent, default=_json_default, allow_nan=False)
    except ValueError:
        return json.dumps(finite(document), indent=indent, default=_json_default)


@contextmanager
def writing_stdout() -> Iterator[None]:
    """Data written to stdout; a failure is a local file's (exit 6), in one line.

    A full disk behind ``> file``, or stdout closed (``>&-``: Python then has no
    ``sys.stdout``), was an internal error with the run's own exit code lost. A reader that
    left (``| head``) is not a failure (``GuardedStdout``).
    """
    from config.errors import LocalFileError

    if sys.stdout is None:
        raise LocalFileError("cannot write to standard output: it is closed")
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        discard_stdout()
        raise LocalFileError(f"cannot write to standard output: {exc.strerror or exc}") from None


class StdoutError(OSError):
    """Writing standard output failed (not a reader that left: that is BrokenPipeError)."""


class GuardedStdout:
    """``sys.stdout`` for the CLI's process, whose write and flush failures are
    ``StdoutError``: what click and Typer print themselves (a help text) can then be told
    from a command's own ``OSError`` at the error boundary.

    A reader that left (``| head``) is not a failure: the rest of the output is discarded
    and the command ends with its own exit code. Rich and click answered a broken pipe with
    a silent exit 1, so a replay's 0, a failed check's 1 and a success looked alike.

    Everything written is passed through ``redact_secrets`` (so is stderr, ``QuietStderr``):
    the last guard, under the masking each command does, for text no command wrote itself
    (click's usage errors echo the argument given: ``autoops "$LANGFUSE_SECRET_KEY"``).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self.write_unredacted(redact_secrets(text))
        return len(text)

    def write_unredacted(self, text: str) -> None:
        """``write`` without the redaction: see ``write_generated_secret``."""
        try:
            self._stream.write(text)
        except BrokenPipeError:
            discard_stdout()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None
        except UnicodeEncodeError:
            # An ASCII-only stdout (LC_ALL=C with PYTHONUTF8=0, PYTHONIOENCODING=ascii):
            # what it cannot hold is shown as "?" (the help's bullets made it a traceback).
            encoding = getattr(self._stream, "encoding", None) or "ascii"
            self.write_unredacted(text.encode(encoding, "replace").decode(encoding))

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            discard_stdout()
        except OSError as exc:
            raise StdoutError(exc.errno, exc.strerror) from None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, ...
        return getattr(self._stream, name)


class QuietStderr:
    """``sys.stderr`` for the CLI's process: a write that fails (its reader left, as in
    ``autoops replay ... 2>&1 | head -1``, or a full disk) discards the rest of it.

    Messages are not the work: a broken pipe there ended a replay before its first event,
    nothing recorded, exit 1. The command now goes on and ends with its own exit code.
    Secrets are masked in all of it, as on stdout (``GuardedStdout``).
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            self._stream.write(redact_secrets(text))
            return len(text)
        except (OSError, ValueError):  # ValueError: written after it was closed
            _discard(self._stream)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError):
            _discard(self._stream)

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding, buffer, ...
        return getattr(self._stream, name)


class ClosedStdout:
    """What ``sys.stdout`` is when the process started with it closed (``>&-``: Python then
    has none): every write fails as a closed descriptor does, so a help text printed by
    click is refused (exit 6) instead of vanishing with exit 0."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    def flush(self) -> None:
        """Nothing waits to be written."""

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "it is closed")


def write_generated_secret(text: str) -> None:
    """Write ``text`` to stdout as it is, secrets included: only for a secret made for the
    user to copy (the keys ``autoops serve`` generates for its run), never a configured one.
    Everything else written to stdout has its secrets masked (``GuardedStdout``)."""
    with writing_stdout():
        write = getattr(sys.stdout, "write_unredacted", sys.stdout.write)
        write(text)
        sys.stdout.flush()


def discard_stdout() -> None:
    """Point stdout at /dev/null once writing it failed: the interpreter flushes it again at
    exit, and that second failure printed "Exception ignored ..." and made the exit code 120.
    """
    _discard(sys.stdout)


def _discard(stream: Any) -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


@dataclass
class Output:
    """The output mode of one invocation and its two consoles."""

    json_mode: bool = False
    quiet: bool = False
    verbose: bool = False
    _stdout: Console | None = field(default=None, repr=False)
    _stderr: Console | None = field(default=None, repr=False)
    _warned: set[str] = field(default_factory=set, repr=False)

    @property
    def stdout(self) -> Console:
        """The console for data (tables)."""
        if self._stdout is None:
            from rich.console import Console

            width, height = _dumb_terminal_size()
            self._stdout = Console(
                file=sys.stdout, highlight=False, soft_wrap=False, width=width, height=height
            )
        return self._stdout

    @property
    def stderr(self) -> Console:
        """The console for progress, warnings and errors."""
        if self._stderr is None:
            from rich.console import Console

            self._stderr = Console(file=sys.stderr, highlight=False, soft_wrap=True)
        return self._stderr

    def emit_json(self, document: Any) -> None:
        """Write a JSON document to stdout."""
        text = to_json(document) + "\n"
        with writing_stdout():
            sys.stdout.write(text)
            sys.stdout.flush()

    def render(self, renderable: RenderableType) -> None:
        """Write a table or other Rich renderable to stdout (whole when not on a terminal)."""
        with writing_stdout():
            self._render(renderable)

    def _render(self, renderable: RenderableType) -> None:
        console = self.stdout
        if console.is_terminal:
            console.print(renderable)
            return
        from rich.console import Console
        from rich.measure import Measurement

        natural = Measurement.get(console, console.options.update_width(100_000), renderable)
        # Rich caps a print at its console's width: a console as wide as the table.
        whole = Console(
            file=console.file,
            width=max(natural.maximum, console.width),
            highlight=False,
            soft_wrap=False,
            color_system=None,
        )
        whole.print(renderable)

    def table_width(self) -> int | None:
        """The width a table may take: the terminal's, or None (its own) when piped."""
        return self.stdout.width if self.stdout.is_terminal else None

    def line(self, text: str) -> None:
        """Write a plain line of data to stdout (no markup; control characters visible)."""
        with writing_stdout():
            # Never wrapped: piped, a long line split at 80 columns broke grep, and the
            # `export` lines of `serve` for eval.
            self.stdout.print(
                visible(redact_secrets(text)), markup=False, highlight=False, soft_wrap=True
            )

    def info(self, text: str) -> None:
        """A status line on stderr; silent with --quiet."""
        if not self.quiet:
            self.stderr.print(visible(redact_secrets(text)), markup=False)

    def success(self, text: str) -> None:
        """A success line on stderr; silent with --quiet."""
        if not self.quiet:
            self.stderr.print(f"[green]✓[/green] {escape(redact_secrets(text))}")

    def warning(self, text: str) -> None:
        """A warning on stderr (shown even with --quiet), once per invocation."""
        if text in self._warned:
            return
        self._warned.add(text)
        self.stderr.print(f"[yellow]warning:[/yellow] {escape(redact_secrets(text))}")

    def error(self, text: str, hint: str | None = None) -> None:
        """An error line on stderr, with an optional hint line."""
        self.stderr.print(f"[bold red]error:[/bold red] {escape(redact_secrets(text))}")
        if hint:
            self.stderr.print(f"[dim]hint:[/dim] {escape(redact_secrets(hint))}")

    @property
    def live(self) -> bool:
        """Whether live progress is shown: on a terminal, without --quiet or --json."""
        return not (self.quiet or self.json_mode) and sys.stderr.isatty()

    @contextmanager
    def status_line(self) -> Iterator[Callable[[str], None] | None]:
        """A live progress line on stderr (spinner, text, elapsed time), gone when done.

        Yields ``update(text)`` (at most ten redraws a second), or None when progress is
        not shown (piped, --quiet, --json).
        """
        if not self.live:
            yield None
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.fields[line]}"), TimeElapsedColumn())
        with Progress(*columns, console=self.stderr, transient=True) as bar:
            task = bar.add_task("work", total=None, line="")
            last = 0.0

            def update(text: str) -> None:
                nonlocal last
                now = time.monotonic()
                if now - last >= 0.1:
                    last = now
                    bar.update(task, line=escape(redact_secrets(text)))

            yield update

    def debug(self, text: str) -> None:
        """A debug line on stderr, only with --verbose."""
        if self.verbose:
            self.stderr.print(f"[dim]{escape(redact_secrets(text))}[/dim]")


# C0 and C1 control characters and DEL: an ESC from a server's answer would drive the
# terminal (colours, its title, clearing the screen, OSC 8 links). And lone surrogates (a
# JSON answer's "\ud800"): no terminal can be written one (UnicodeEncodeError, an internal
# error).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _shown(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """``text`` with its control characters (and lone surrogates) shown as ``\\x1b`` and
    ``\\ud800`` escapes."""
    return _CONTROL.sub(_shown, text)


def escape(text: str) -> str:
    """Text from elsewhere (a server's answer, a file, the user) made safe to print with
    Rich: control characters shown as ``\\x1b`` escapes, secrets masked (a server may echo
    the credentials it was sent), Rich markup escaped (``[link=...]``, ``[/]``)."""
    from rich.markup import escape as rich_escape

    return rich_escape(redact_secrets(visible(str(text))))


@dataclass(frozen=True)
class Column:
    """A table column; on a narrow terminal the lowest ``priority`` goes first (0: never)."""

    header: str
    priority: int = 0
    justify: str = "left"
    # Never cut below this many characters (an id to copy), whatever else is cut.
    min_width: int | None = None


def _dumb_terminal_size() -> tuple[int | None, int | None]:
    """The width and height of a dumb terminal (TERM=dumb: Emacs' shell, some CI systems):
    Rich takes one as 80x25, whatever COLUMNS or the terminal say, unless it is given both
    (tables were cut at 80 columns on a wide one, and overflowed a narrow one)."""
    if os.environ.get("TERM", "").lower() not in ("dumb", "unknown"):
        return None, None  # Rich's own
    width, height = 80, 25  # Rich's own answer
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
        # A terminal that reports 0x0 (some do) made tables and lines vanish.
        width, height = size.columns or width, size.lines or height
    except (OSError, ValueError, AttributeError):  # not a terminal
        pass
    columns, lines = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    width = int(columns) if columns.isdigit() and int(columns) > 0 else width
    height = int(lines) if lines.isdigit() and int(lines) > 0 else height
    return width, height


def fitted_table(
    columns: list[Column], rows: list[list[str]], *, width: int | None, **table: Any
) -> Any:
    """A Rich table of ``rows`` with the columns that fit in ``width`` (all of them: None).

    As ``kubectl get`` does, whole columns are dropped, least important first, before any
    cell is cut; only when even the essential columns do not fit are cells cut.
    """
    from rich.console import Console
    from rich.measure import Measurement
    from rich.table import Table

    kept = list(range(len(columns)))

    def build() -> Table:
        built = Table(**table)
        for index in kept:
            column = columns[index]
            built.add_column(
                column.header,
                justify=column.justify,  # type: ignore[arg-type]
                no_wrap=True,
                min_width=column.min_width,
            )
        for row in rows:
            built.add_row(*(row[index] for index in kept))
        return built

    result = build()
    if width is None:
        return result
    # A height too: without one, Rich sizes a console on a dumb terminal (TERM=dumb) at 80
    # columns whatever width it is given, and nothing was ever dropped (every cell was cut).
    measuring = Console(width=10_000, height=25, no_color=True)
    droppable = sorted((c.priority, -i, i) for i, c in enumerate(columns) if c.priority > 0)
    while droppable and Measurement.get(measuring, measuring.options, result).maximum > width:
        kept.remove(droppable.pop(0)[2])
        result = build()
    return result
