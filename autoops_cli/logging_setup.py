"""What reaches the terminal from the ``logging`` module: the core's warnings and errors as
the CLI's ``warning:`` lines, third-party loggers only with ``--verbose``.

The Langfuse SDK and OpenTelemetry log warnings (export failures, retries) through the
standard ``logging`` module; without this they would interleave with the CLI's own output.
The core (``autoops.*`` loggers: delivery, tracing, sampling) logs what goes wrong while a
command runs; with no handler, Python's last-resort handler printed those records bare,
unredacted and once per batch (a peer refusing 200 batches gave 200 lines).
"""

from __future__ import annotations

import logging
import sys
from collections import Counter

from autoops_cli.output import visible
from config.redaction import RedactingFilter, redact_secrets

THIRD_PARTY_LOGGERS = ("langfuse", "opentelemetry", "httpx", "httpcore", "urllib3")
CORE_LOGGER = "autoops"
# Records with the same format shown before the rest of them are only counted: the command's
# summary gives the totals, and --verbose shows every one.
SAME_RECORDS_SHOWN = 3


class _CoreNotices(logging.Handler):
    """The core's records as ``warning: <message>`` lines, secrets redacted, an exception as
    its type and message (never a traceback), and at most ``SAME_RECORDS_SHOWN`` of each
    format, then one line saying the rest are not shown.

    A warning whatever the record's level: what the core logs is news while the command
    runs; the command's own ``error:`` line, at the end, gives the verdict and exit code.
    The record is left as it came (other handlers, an application's, see it unchanged).
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.stream = sys.stderr
        self._seen: Counter[tuple[str, str]] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        key = (record.name, str(record.msg))
        self._seen[key] += 1
        seen = self._seen[key]
        if seen > SAME_RECORDS_SHOWN + 1:
            return
        try:
            if seen > SAME_RECORDS_SHOWN:
                text = "more messages like the one above are not shown (--verbose shows them)"
            else:
                text = record.getMessage()
                if record.exc_info and record.exc_info[1] is not None:
                    error = record.exc_info[1]
                    text += f" ({type(error).__name__}: {error})"
            # A server's words may be in it: control characters shown, never sent as they are.
            self.stream.write(f"warning: {visible(redact_secrets(text))}\n")
            self.stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(verbose: bool) -> None:
    """Silence third-party loggers, or route everything to stderr (redacted) when verbose."""
    root = logging.getLogger()
    core = logging.getLogger(CORE_LOGGER)
    for owner in (root, core):
        for handler in list(owner.handlers):
            if getattr(handler, "_autoops", False):
                owner.removeHandler(handler)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._autoops = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    else:
        notices = _CoreNotices()
        notices._autoops = True  # type: ignore[attr-defined]
        core.addHandler(notices)
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = verbose
        logger.disabled = not verbose
        if not verbose:
            logger.handlers = [logging.NullHandler()]
