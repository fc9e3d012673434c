"""Values as JSON can carry them: a float JSON has no literal for (NaN, infinity) becomes null,
and a lone surrogate (text that is not Unicode) becomes U+FFFD.

Shared by the CLI's ``--json`` documents and ``autoops serve``'s answers: a sum that overflows
(two scores of 1.7e308) or a server's odd answer must still give valid JSON, never a 500 or a
``NaN`` a strict parser refuses. ``unicode_text`` is also what the local store and the OTLP
encoder do with text that cannot be UTF-8.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with every non-finite float in it replaced by None (dicts, lists, tuples)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


def unicode_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD.

    A JSON escape (``\\ud800``) or a file name that is not UTF-8 (``os.fsdecode``) gives
    half a surrogate pair: Python keeps it, but it is not Unicode, and SQLite and UTF-8
    cannot take it. U+FFFD is what the text becomes once a JavaScript client or server
    writes it as UTF-8.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text
