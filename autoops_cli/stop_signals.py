"""SIGINT and SIGTERM before a command takes them: a quiet exit with the documented code.

Start-up is all imports: a Ctrl-C then would print the traceback of whichever import it
interrupted, and a SIGTERM would end the process by the signal (-15 to a caller that reads
the exit status, not the documented 143). From the first line of ``main`` both end the
process at once with 130 or 143, nothing having been done. Once the command runs, a Ctrl-C
is Python's ``KeyboardInterrupt`` again (the CLI turns it into 130 after the command's own
clean-up); SIGTERM keeps the quiet exit unless the command sets its own handler (``replay``
and ``serve`` stop cleanly). Standard library only: this runs before anything is imported.
"""

from __future__ import annotations

import os
import signal
import threading


def _exit_on_stop(signum: int, frame: object) -> None:
    os._exit(128 + signum)


def exit_quietly_on_stops() -> None:
    """The start-up handlers; a signal the caller ignores (``nohup``) stays ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, _exit_on_stop)


def interrupt_as_exception() -> None:
    """The command starts: a Ctrl-C raises ``KeyboardInterrupt`` again (main thread only;
    an in-process caller that set its own handler keeps it)."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is _exit_on_stop
    ):
        signal.signal(signal.SIGINT, signal.default_int_handler)
