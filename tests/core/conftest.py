"""Fixtures of the core's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def outside_any_trace() -> Iterator[None]:
    """Each test starts with no current observation, and leaves none behind.

    The current observation lives in a ContextVar, and pytest runs every test of a thread in
    the same context: a test that leaves an observation open would otherwise be the parent
    of the next test's traces.
    """
    from config.tracing.tracer import Tracer

    token = Tracer.set_current(None)
    yield
    Tracer.reset_current(token)
