"""Typed errors of the core and the exit codes they map to.

Every exit code of the ``autoops`` command is defined here, once. Core code raises an
``AutoopsError`` subclass; only the CLI's error boundary turns it into a one-line message
on stderr and the process exit code. Messages never contain a secret: callers build them
from setting names and origins, never from secret values.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, aligned with Langfuse's official CLI (and 130/143 for signals)."""

    OK = 0
    FAILURE = 1  # a check failed, or an internal error
    USAGE = 2  # bad command line
    CONFIG = 3  # invalid configuration or rejected credentials
    NETWORK = 4  # unreachable host, timeout
    API = 5  # HTTP error answered by the API
    LOCAL_FILE = 6  # local file missing, unreadable, or bad input
    # Stopped by a signal, as shells report it (128 + the signal's number): the work done
    # before the stop is kept, and the summary says how far the run got.
    INTERRUPTED = 130  # SIGINT (Ctrl-C)
    TERMINATED = 143  # SIGTERM (docker stop, systemd, a CI timeout)


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "a check failed, or an internal error",
    ExitCode.USAGE: "usage error (bad option or argument)",
    ExitCode.CONFIG: "invalid configuration or rejected credentials",
    ExitCode.NETWORK: "network error (unreachable, timeout)",
    ExitCode.API: "HTTP error returned by the Langfuse API",
    ExitCode.LOCAL_FILE: "local file missing, unreadable, or bad input",
    ExitCode.INTERRUPTED: "interrupted (SIGINT, Ctrl-C); what was recorded before is kept",
    ExitCode.TERMINATED: "terminated (SIGTERM); what was recorded before is kept",
}


# The exit code of a run a stop ended, by the signal's name (a summary's ``stopped_early``).
STOP_EXIT_CODES: dict[str, ExitCode] = {
    "SIGINT": ExitCode.INTERRUPTED,
    "SIGTERM": ExitCode.TERMINATED,
}


class AutoopsError(Exception):
    """Base of every expected error; carries the exit code the CLI ends with."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class CheckFailedError(AutoopsError):
    """A check the user asked for did not pass."""

    exit_code = ExitCode.FAILURE


class UsageError(AutoopsError):
    """The command line asks for something impossible (beyond what the parser catches)."""

    exit_code = ExitCode.USAGE


class ConfigurationError(AutoopsError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    exit_code = ExitCode.CONFIG

    def __init__(
        self, message: str, *, problems: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or []


class CredentialsError(ConfigurationError):
    """The server rejected the key pair (401/403)."""


class NetworkError(AutoopsError):
    """The server could not be reached, or did not answer in time."""

    exit_code = ExitCode.NETWORK


class ApiError(AutoopsError):
    """The API answered with an HTTP error."""

    exit_code = ExitCode.API

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class LocalFileError(AutoopsError):
    """A local file is missing, unreadable, or holds bad input."""

    exit_code = ExitCode.LOCAL_FILE


class StopNow(SystemExit):
    """A second stop (SIGINT, SIGTERM) while a command sets up: give up at once, with the
    stop's exit code. Its own class: code that catches what a plugin raises (``sys.exit()``
    in an orchestrator's factory) must let it through (a second Ctrl-C was exit 2)."""
