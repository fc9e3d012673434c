"""Opening a file the CLI writes its output to, whatever it is: a file, a pipe, a device.

A named pipe no process reads would block the opening for ever (before a replay's stop
handlers exist, or a health-check's JUnit report with nothing printed): it is opened without
waiting, and refused when no reader is there. Devices and pipes are written where they are,
never replaced by a regular file (``events generate -o /dev/null`` as root replaced the
system's /dev/null by renaming a temporary file over it).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NO_READER = "no process reads that pipe"


def open_writer(path: Path) -> int:
    """A descriptor writing ``path`` (created if missing, not truncated), in blocking mode
    once open. ``OSError`` (ENXIO: "no process reads that pipe") when it cannot be."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, NO_READER) from None
        raise
    os.set_blocking(descriptor, True)  # a reader that falls behind slows the writer down
    return descriptor


def is_special(path: Path) -> bool:
    """Whether ``path`` exists and is not a regular file (a pipe, a device, /dev/null)."""
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False
