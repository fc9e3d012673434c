"""Values as JSON can carry them: a float JSON has no literal for (NaN, infinity) becomes null.

Shared by the CLI's ``--json`` documents and ``autoops serve``'s answers: a sum that overflows
(two scores of 1.7e308) or a server's odd answer must still give valid JSON, never a 500 or a
``NaN`` a strict parser refuses.
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
