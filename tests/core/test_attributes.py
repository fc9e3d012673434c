"""The encodings of input, output and metadata values (``config.tracing.attributes``)."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from config.tracing import attributes as la
from tests.support.property_budget import examples

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: they are written as strings
    | st.text()
)
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=4)
    ),
    max_leaves=20,
)


def finite(value: Any) -> Any:
    """What the SDK's serializer does with NaN and the infinities: strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


@settings(max_examples=examples(300), deadline=None)
@given(value=VALUES)
def test_property_the_encodings_are_json_dumps_byte_for_byte(value: Any) -> None:
    """The prebuilt C encoders write exactly what ``json.dumps`` writes (the SDK's input and
    output encoding, and the compact metadata one)."""
    if value is None or isinstance(value, str):
        assert la.serialize_io(value) == value
    else:
        assert la.serialize_io(value) == json.dumps(finite(value))
    assert la.to_json(value) == json.dumps(finite(value), separators=(",", ":"), ensure_ascii=False)


def test_a_cycle_is_written_as_its_text() -> None:
    """No cycle check in the shared encoder: a cyclic value (which masking cuts, but not
    with masking off) does not hang or crash, and is written as its text (it failed, and the
    observation holding it was dropped)."""
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for encode in (la.serialize_io, la.to_json):
        assert json.loads(encode(cyclic)) == "[[...]]"


def test_a_key_json_cannot_write_is_written_as_masking_writes_it() -> None:
    """With masking off, a tuple key (``{("store", 7): 120}``) made the encoder raise
    TypeError and the observation was dropped; it is written as its str(), as masking does."""
    from config.settings import DataMaskingConfig
    from config.tracing.masking import DataMasker

    value = {("store", 7): 120, "nested": [{frozenset(): 1.5, 2: float("nan")}]}
    masked = DataMasker(DataMaskingConfig.model_construct()).mask(value)
    assert la.serialize_io(value) == la.serialize_io(masked)
    assert json.loads(la.serialize_io(value)) == {
        "('store', 7)": 120, "nested": [{"frozenset()": 1.5, "2": "nan"}]
    }  # fmt: skip
    assert json.loads(la.to_json(value)) == json.loads(la.serialize_io(value))


def test_nan_in_a_deque_a_set_a_dict_view_or_an_object_is_written_as_text() -> None:
    """Written as lists since they are, a deque or a set holding NaN was written with a bare
    NaN (not JSON, read back as null); so was an object's attribute, with masking off."""
    import collections
    import types

    nan = float("nan")
    values = [collections.deque([1.5, nan]), {nan}, {1: nan}.values(), {"a": nan}.items(),
              types.SimpleNamespace(x=[nan])]  # fmt: skip
    for encode in (la.serialize_io, la.to_json):
        assert [json.loads(encode(v)) for v in values] == [  # strict JSON: no NaN literal
            [1.5, "nan"], ["nan"], ["nan"], [["a", "nan"]], {"x": ["nan"]}
        ]  # fmt: skip
        assert all("NaN" not in encode(v) for v in values)


def test_the_attribute_names_are_the_sdks() -> None:
    """Written out in the module (importing the SDK's costs half a second), checked here."""
    from langfuse._client.attributes import LangfuseOtelSpanAttributes as Sdk

    names = {
        name: value
        for name, value in vars(la).items()
        if name.isupper() and isinstance(value, str) and hasattr(Sdk, name)
    }
    assert len(names) == 24
    assert names == {name: getattr(Sdk, name) for name in names}
