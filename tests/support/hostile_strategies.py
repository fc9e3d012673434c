"""Hypothesis strategies for hostile input: JSON garbage, odd numbers and text, mutated bytes.

Shared by the property tests of whatever reads untrusted input (``tests/hostile/test_hostile_input.py``).
Every strategy keeps its examples small: the tests around them run real commands and servers.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# Text a careless producer (or an attacker) puts in a string: right-to-left overrides,
# zero-width characters, a BOM, combining marks, emoji, control characters, line separators.
ODD_CHARACTERS = (
    "\u202e",  # right-to-left override
    "\u200f",  # right-to-left mark
    "\u200b",  # zero-width space
    "\u200d",  # zero-width joiner
    "\ufeff",  # a BOM inside a string
    "\u0301",  # a combining accent with nothing to combine with
    "\U0001f600",  # an emoji (a surrogate pair in JSON's \u escapes)
    "\u2028",  # line separator
    "\x00",
    "\x1b[31m",  # a terminal escape
    "ש",
    "ل",
)

odd_text = st.lists(
    st.sampled_from(ODD_CHARACTERS) | st.text(max_size=4), min_size=1, max_size=6
).map("".join)

# Numbers as they arrive from a sloppy API: strings, huge, tiny, negative, not numbers at all.
NUMBER_TEXTS = ("12", "1e3", "NaN", "nan", "Infinity", "-inf", "x", "", " 7 ", "0x10", "1_000")
hostile_numbers: st.SearchStrategy[Any] = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**63, 2**64 - 1, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 1.7976931348623157e308]),
    st.sampled_from(NUMBER_TEXTS),
    st.booleans(),
    st.none(),
)

json_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), hostile_numbers, st.text(max_size=20), odd_text
)


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Arbitrary JSON-like values (NaN and infinities included), small."""
    return st.recursive(
        json_scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=max_leaves,
    )


def nested(depth: int, leaf: str = "0") -> str:
    """JSON text of arrays nested ``depth`` deep."""
    return "[" * depth + leaf + "]" * depth


def dumps(value: Any) -> str:
    """JSON text of a value; NaN and infinities as Python's json writes them (not JSON)."""
    return json.dumps(value, allow_nan=True)


@st.composite
def mutated_bytes(draw: st.DrawFn, original: bytes, *, max_edits: int = 4) -> bytes:
    """``original`` with a few bytes flipped, inserted or deleted, possibly truncated."""
    data = bytearray(original)
    for _ in range(draw(st.integers(min_value=1, max_value=max_edits))):
        edit = draw(st.sampled_from(("flip", "insert", "delete", "truncate")))
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        if edit == "flip" and data:
            data[position] ^= draw(st.integers(min_value=1, max_value=255))
        elif edit == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif edit == "delete" and data:
            del data[position : position + draw(st.integers(min_value=1, max_value=4))]
        elif edit == "truncate":
            del data[position:]
    return bytes(data)
