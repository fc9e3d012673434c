"""Files the commands write whole: replaced atomically, never left half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def replace_file(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it, renamed over it.

    A reader sees the old file or the new one, never a part of it; a failure (a full disk)
    leaves no temporary file behind. ``mode`` is the new file's permission bits; without it
    the file is private to its owner (``tempfile``'s 0600). Raises ``OSError``.
    """
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
