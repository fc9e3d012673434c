"""What a traced call records as its input: arguments by parameter name, as
``inspect.Signature.bind_partial`` binds them, whichever path computes it."""

from __future__ import annotations

from typing import Any

import pytest

from config.tracing.call_inputs import call_input


def method(self: Any, event: Any, context: Any = None, limit: int = 3) -> None:
    """An agent method's shape: plain parameters only."""


def class_method(cls: Any, size: int, *extra: Any) -> None:
    """A classmethod's function: its class is no input (it recorded the whole class)."""


def classified(value: Any, cls: Any = None) -> None:
    """A parameter named ``cls`` that is not the first: an input as any other."""


def flexible(first: Any, *rest: Any, flag: bool = False, **options: Any) -> None:
    """Every other kind of parameter."""


class Event:
    def as_dict(self) -> dict[str, Any]:
        return {"event_id": "evt-1"}


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "expected"),
    [
        (method, ("agent", 1), {}, {"event": 1}),
        (method, ("agent", Event()), {"limit": 5}, {"event": {"event_id": "evt-1"}, "limit": 5}),
        # in parameter order, not call order; parameters not passed are left out
        (method, ("agent",), {"limit": 5, "event": 1}, {"event": 1, "limit": 5}),
        (method, ("agent", 1, 2, 3), {}, {"event": 1, "context": 2, "limit": 3}),
        # arguments that do not bind: recorded as they came
        (method, ("agent", 1, 2, 3, 4), {}, {"args": ["agent", 1, 2, 3, 4], "kwargs": {}}),
        (method, ("agent", 1), {"event": 2}, {"args": ["agent", 1], "kwargs": {"event": 2}}),
        (method, ("agent",), {"unknown": 1}, {"args": ["agent"], "kwargs": {"unknown": 1}}),
        (class_method, (Event, 2, 3), {}, {"size": 2, "extra": (3,)}),
        (class_method, (Event,), {"size": 2}, {"size": 2}),
        (classified, (1, 2), {}, {"value": 1, "cls": 2}),
        (
            flexible,
            (1, 2, 3),
            {"flag": True, "x": Event()},
            {"first": 1, "rest": (2, 3), "flag": True, "options": {"x": Event()}},
        ),
    ],
)
def test_call_input_binds_as_bind_partial(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    found = call_input(function, args, kwargs)
    if function is flexible:  # objects inside **options stay as they are (not compared by value)
        assert list(found) == list(expected)
        assert found["options"]["x"].as_dict() == {"event_id": "evt-1"}
        found = {k: v for k, v in found.items() if k != "options"}
        expected = {k: v for k, v in expected.items() if k != "options"}
    assert found == expected
    assert list(found) == list(expected)
