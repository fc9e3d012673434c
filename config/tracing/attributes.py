"""Langfuse's OTel span attribute names, the SDK's own, and their encodings.

The names are those of ``langfuse._client.attributes.LangfuseOtelSpanAttributes`` (the SDK's
constants; ``tests/core/test_attributes.py`` checks them against the installed SDK), so what
the core records carries exactly the attributes the SDK would send. They are written out
here rather than imported: the SDK's module imports the whole SDK (about half a second),
which neither the tracer nor the store's writer process needs.
The value encodings mirror the SDK 5 rules (API-NOTES.md section 9): input and output are
JSON strings (plain strings as they are); every metadata value is JSON-encoded on its own,
strings included, under ``<prefix>.<key>``.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import ItemsView, KeysView, ValuesView
from datetime import date, datetime
from enum import Enum
from json.encoder import encode_basestring as _encode_string
from json.encoder import encode_basestring_ascii as _encode_string_ascii
from typing import Any, Final

TRACE_NAME: Final = "langfuse.trace.name"
TRACE_USER_ID: Final = "user.id"
TRACE_SESSION_ID: Final = "session.id"
TRACE_TAGS: Final = "langfuse.trace.tags"
TRACE_PUBLIC: Final = "langfuse.trace.public"
TRACE_METADATA: Final = "langfuse.trace.metadata"
OBSERVATION_TYPE: Final = "langfuse.observation.type"
OBSERVATION_METADATA: Final = "langfuse.observation.metadata"
OBSERVATION_LEVEL: Final = "langfuse.observation.level"
OBSERVATION_STATUS_MESSAGE: Final = "langfuse.observation.status_message"
OBSERVATION_INPUT: Final = "langfuse.observation.input"
OBSERVATION_OUTPUT: Final = "langfuse.observation.output"
OBSERVATION_MODEL: Final = "langfuse.observation.model.name"
OBSERVATION_MODEL_PARAMETERS: Final = "langfuse.observation.model.parameters"
OBSERVATION_USAGE_DETAILS: Final = "langfuse.observation.usage_details"
OBSERVATION_COST_DETAILS: Final = "langfuse.observation.cost_details"
OBSERVATION_COMPLETION_START_TIME: Final = "langfuse.observation.completion_start_time"
OBSERVATION_PROMPT_NAME: Final = "langfuse.observation.prompt.name"
OBSERVATION_PROMPT_VERSION: Final = "langfuse.observation.prompt.version"
ENVIRONMENT: Final = "langfuse.environment"
RELEASE: Final = "langfuse.release"
VERSION: Final = "langfuse.version"
# A span the SDK starts in a chosen trace (``trace_context={"trace_id": ...}``) gets an
# invented remote parent and this mark: Langfuse takes it for the trace's root.
AS_ROOT: Final = "langfuse.internal.as_root"
# The SDK's first span under a parent span it does not export (a web framework's): its
# application's root, a root of the trace to Langfuse.
IS_APP_ROOT: Final = "langfuse.internal.is_app_root"

# Prefixes of the per-key metadata attributes.
OBSERVATION_METADATA_PREFIX: Final = OBSERVATION_METADATA + "."
TRACE_METADATA_PREFIX: Final = TRACE_METADATA + "."
# The core's order of an observation within its trace (`autoops traces show` sorts ties by
# it): metadata of the observation, not of its trace.
OBSERVATION_SEQUENCE: Final = OBSERVATION_METADATA_PREFIX + "sequence"

# Observation types Langfuse knows (lowercase on the wire, uppercase in the API).
OBSERVATION_TYPES: Final = frozenset(
    {
        "span",
        "generation",
        "event",
        "embedding",
        "agent",
        "tool",
        "chain",
        "retriever",
        "guardrail",
        "evaluator",
    }
)
LEVELS: Final = ("DEBUG", "DEFAULT", "WARNING", "ERROR")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Enum):  # its value (its attributes are all private: it was {})
        return value.value
    if callable(getattr(type(value), "tolist", None)):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple, deque, KeysView, ValuesView)):
        return list(value)  # a deque and dict views as the lists they are, as the SDK
    if isinstance(value, ItemsView):  # writes a deque (their text hid a password's key)
        return [list(pair) for pair in value]
    if hasattr(type(value), "model_dump"):  # on the type: see masking._mask_other
        return value.model_dump()
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


# One encoder object per format, made once: ``json.dumps`` with arguments builds a new
# ``JSONEncoder`` on every call, and these run for every input, output and metadata value.
# ``encode`` is what ``json.dumps`` calls, so the bytes are the same.
_COMPACT = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False
)
_COMPACT_FINITE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_json_default)
_IO = json.JSONEncoder(default=_json_default, allow_nan=False)
_IO_FINITE = json.JSONEncoder(default=_json_default)


def _chunks_encoder(encoder: json.JSONEncoder, encode_string: Any) -> Any:
    """The C encoder ``encoder.encode`` builds anew on every call, built once (or None).

    ``encode`` makes a new one per call (with a dict of the containers in progress, to catch
    cycles), a quarter of the encoding's cost on the small values traced here. This one
    has no such dict, so it is stateless and shared by every thread: a cycle ends in a
    ``RecursionError`` instead of a ``ValueError`` (the slower path then says the same).
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return None
    return make(
        None,
        encoder.default,
        encode_string,
        None,
        encoder.key_separator,
        encoder.item_separator,
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan: NaN and Infinity take the path that writes them as strings
    )


_COMPACT_CHUNKS = _chunks_encoder(_COMPACT, _encode_string)
_IO_CHUNKS = _chunks_encoder(_IO, _encode_string_ascii)


def _encode(fast: Any, encoder: json.JSONEncoder, finite: json.JSONEncoder, value: Any) -> str:
    """``encoder.encode(value)``, through the prebuilt C encoder when there is one; NaN and
    Infinity anywhere (and cycles) go to ``finite``, as strings."""
    try:
        return "".join(fast(value, 0)) if fast is not None else encoder.encode(value)
    except (ValueError, RecursionError, TypeError):  # TypeError: a key JSON has no form for
        try:
            return finite.encode(nonfinite_as_text(value))
        except (ValueError, RecursionError, TypeError):
            # A cycle through objects, which masking cuts (``[TRUNCATED]``): with masking
            # off, the observation was dropped ("Circular reference detected"). Its text.
            return finite.encode(str(value))


# Keys JSON writes as they are (as strings); any other key is written as its str() (json
# raises TypeError).
JSON_KEY_TYPES: Final = (str, int, float, bool, type(None))


def nonfinite_as_text(value: Any) -> Any:
    """``value`` with NaN and infinities (anywhere in its dicts and lists) as the strings
    ``"nan"``, ``"inf"``: JSON has no literal for them, and the SDK's serializer writes them
    as strings too. A key JSON cannot write (a tuple) becomes its ``str()``, as masking
    writes it (with masking off, such a key dropped the whole observation)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {
            k if isinstance(k, JSON_KEY_TYPES) else str(k): nonfinite_as_text(v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):  # a tuple is a JSON array too
        return [nonfinite_as_text(v) for v in value]
    if value is None or isinstance(value, (str, int, float)):
        return value
    # Anything else as _json_default writes it (a deque, a set, an object by its attributes),
    # its NaN too: a NaN in a deque or an object's attribute was written as a bare NaN.
    return nonfinite_as_text(_json_default(value))


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept, odd types converted (never raises on JSON-like data).

    Scalars take a fast path (this runs for every metadata value of every observation);
    containers go through ``json.dumps``. Output is identical either way.
    """
    kind = type(value)
    if kind is str:
        return _encode_string(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float and math.isfinite(value):
        return repr(value)
    if value is None:
        return "null"
    return _encode(_COMPACT_CHUNKS, _COMPACT, _COMPACT_FINITE, value)


def serialize_io(value: Any) -> str | None:
    """Encode an input or output value: strings as they are, everything else as JSON.

    Exactly as the SDK does (``json.dumps`` with its default separators and ASCII escapes),
    unlike metadata values, which the SDK writes compactly with raw non-ASCII.
    """
    if value is None or isinstance(value, str):
        return value
    return _encode(_IO_CHUNKS, _IO, _IO_FINITE, value)


def metadata_attributes(metadata: dict[str, Any] | None, prefix: str) -> dict[str, str]:
    """``{prefix + key: JSON(value)}`` for every key whose value is not None."""
    if not metadata:
        return {}
    return {
        f"{prefix}{key}": to_json(value) for key, value in metadata.items() if value is not None
    }
