"""The example budget of the property tests (hypothesis), and how to run a longer one.

CI runs every property test with its budget as written: ``examples(200)`` is 200 examples,
and tests without an explicit count get the profile's 50. A longer run scales them all:

    AUTOOPS_PROPERTY_SCALE=20 .venv/bin/python -m pytest -m property

(20 times the examples; the same command with a larger scale for a soak run).
"""

from __future__ import annotations

import os

from hypothesis import settings

SCALE = max(float(os.environ.get("AUTOOPS_PROPERTY_SCALE", "1") or 1), 0.01)
DEFAULT_EXAMPLES = 50


def examples(count: int) -> int:
    """A test's example count, scaled for longer runs."""
    return max(1, round(count * SCALE))


settings.register_profile("autoops", max_examples=examples(DEFAULT_EXAMPLES), deadline=None)
settings.load_profile("autoops")
