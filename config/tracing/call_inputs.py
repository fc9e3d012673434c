"""What a traced function call records as its input: its arguments, by parameter name.

Used by the ``observe`` and ``agent_operation`` decorators. An argument that knows its JSON
form (an ``as_dict()`` method, as ``AgentDecision`` and ``SimulationEvent`` have) is recorded
as that form: the masker works on plain data.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


@functools.lru_cache(maxsize=256)
def _signature(function: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(function)
    except (TypeError, ValueError):
        return None


@functools.lru_cache(maxsize=256)
def _plain_parameters(function: Callable[..., Any]) -> tuple[str, ...] | None:
    """The parameter names when every parameter is a plain positional-or-keyword one (the
    usual agent method or tool), else None."""
    signature = _signature(function)
    if signature is None:
        return None
    names = []
    for parameter in signature.parameters.values():
        if parameter.kind is not inspect.Parameter.POSITIONAL_OR_KEYWORD:
            return None
        names.append(parameter.name)
    return tuple(names)


def plain(value: Any) -> Any:
    """A value's JSON form when its class has one (``as_dict()``), else the value itself.

    The method is looked up on the type: an object that makes up its attributes (a
    ``MagicMock`` passed to an agent in a test) is not called, so its calls stay its own.
    """
    as_dict = getattr(type(value), "as_dict", None)
    return as_dict(value) if callable(as_dict) else value


# The first parameter of a method and of a classmethod: the object or class, not an input
# (a classmethod's recorded the whole class, its attributes and methods).
_RECEIVERS = frozenset({"self", "cls"})


def call_input(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by parameter name, a first ``self`` or ``cls`` left out.

    When the signature is unknown or does not bind them: ``{"args": [...], "kwargs": {...}}``.
    """
    names = _plain_parameters(function)
    if (
        names is not None
        and len(args) <= len(names)
        and all(name in names[len(args) :] for name in kwargs)
    ):
        # What bind_partial gives for such a signature, without its per-call machinery:
        # the arguments in parameter order, those not passed left out.
        found: dict[str, Any] = {}
        for index, name in enumerate(names):
            if index < len(args):
                value = args[index]
            elif name in kwargs:
                value = kwargs[name]
            else:
                continue
            if name not in _RECEIVERS or index:
                found[name] = plain(value)
        return found
    signature = _signature(function)
    try:
        bound = signature.bind_partial(*args, **kwargs) if signature is not None else None
    except TypeError:
        bound = None
    if bound is None:
        return {
            "args": [plain(a) for a in args],
            "kwargs": {k: plain(v) for k, v in kwargs.items()},
        }
    return {
        k: plain(v)
        for index, (k, v) in enumerate(bound.arguments.items())
        if k not in _RECEIVERS or index
    }
