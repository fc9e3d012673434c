"""Files the commands write: replaced atomically, never left half-written, and never a file
that holds something else."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from autoops_cli.output_files import is_special
from config.errors import UsageError

NOT_A_REGULAR_FILE = "not a regular file (a device, a pipe or a folder), so it is not replaced"
HEAD_BYTES = 4096  # enough of a file's start to tell what wrote it


def replace_file(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it, renamed over it.

    A reader sees the old file or the new one, never a part of it; a failure (a full disk)
    leaves no temporary file behind. ``mode`` is the new file's permission bits; without it
    the file is private to its owner (``tempfile``'s 0600). A symbolic link is followed: its
    target is replaced and the link stays (a linked autoops.toml became a copy). Anything
    but a regular file there (a device, a pipe, a folder) is refused, never replaced: as
    root, ``--path /dev/null --force`` replaced the system's /dev/null. Raises ``OSError``.
    """
    if path.is_symlink():
        try:
            path = path.resolve()
        except RuntimeError as loop:  # Python before 3.13 raises this for a link loop
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path)) from loop
    if is_special(path):
        raise OSError(errno.EINVAL, NOT_A_REGULAR_FILE, str(path))
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def editing(path: Path) -> Iterator[None]:
    """Hold the lock on ``path``'s folder (its target's, for a link) while a command reads,
    changes and writes the file: two ``autoops sampling set`` at once each read the file
    before the other wrote it, and one rule was lost while both said it was set. The folder
    is locked (``flock``), not the file, which each write replaces; where it cannot be
    (a folder not there yet, or not readable), the edit goes on unlocked."""
    import fcntl

    try:
        folder = path.resolve().parent if path.is_symlink() else path.absolute().parent
    except (OSError, RuntimeError):  # a link loop (RuntimeError before Python 3.13): the
        folder = path.absolute().parent  # edit refuses it in one line
    while not folder.exists() and folder != folder.parent:  # created by the write
        folder = folder.parent
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def refuse_foreign_file(
    path: Path, option: str, *, ours: Callable[[bytes], bool], what: str
) -> None:
    """A ``UsageError`` (exit 2) when ``path`` is a non-empty file whose first bytes
    (``ours``) are not what ``option`` writes: the command would replace something else (the
    local store and its outbox, an event file, a configuration) by its output.

    A file that is not there, empty, or not a regular file (``/dev/null``, a pipe) is
    written as asked; so is an earlier output of the same option.
    """
    try:
        if not stat.S_ISREG(path.stat().st_mode) or path.stat().st_size == 0:
            return
        with path.open("rb") as existing:
            head = existing.read(HEAD_BYTES)
    except OSError:
        return  # not there, or not readable: writing it says what is wrong
    if not ours(head):
        raise UsageError(
            f"{option} {path}: the file exists and is not {what}; the command would overwrite it",
            hint="name a new file, or remove this one if it is not needed",
        )


def is_event_file(head: bytes) -> bool:
    """Whether these first bytes start a JSON Lines event file (plain or gzip)."""
    if head.startswith(b"\x1f\x8b"):
        try:
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
        except zlib.error:
            return False
    first = head.removeprefix(b"\xef\xbb\xbf").lstrip().split(b"\n", 1)[0]
    # An event, not any JSON (a package.json, another tool's report): it names its type.
    return first.startswith(b"{") and (b'"event_type"' in first or b'"event_id"' in first)
