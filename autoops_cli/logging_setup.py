"""Keep third-party loggers off the user's terminal unless ``--verbose``.

The Langfuse SDK and OpenTelemetry log warnings (export failures, retries) through the
standard ``logging`` module; without this they would interleave with the CLI's own output.
"""

from __future__ import annotations

import logging
import sys

from config.redaction import RedactingFilter

THIRD_PARTY_LOGGERS = ("langfuse", "opentelemetry", "httpx", "httpcore", "urllib3")


def configure_logging(verbose: bool) -> None:
    """Silence third-party loggers, or route everything to stderr (redacted) when verbose."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_autoops", False):
            root.removeHandler(handler)
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RedactingFilter())
        handler._autoops = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        logger.propagate = verbose
        logger.disabled = not verbose
        if not verbose:
            logger.handlers = [logging.NullHandler()]
