"""OTLP/HTTP encoding of span records (``ExportTraceServiceRequest``, protobuf).

The core's spans go to Langfuse as the SDK's would: one resource (service name, Langfuse
environment and release), one instrumentation scope named ``langfuse-sdk`` carrying the public
key (the SDK's tracer does the same, and Langfuse's ingestion keys SDK-specific handling on
that scope name), and per span the Langfuse attributes.

``encode_spans`` writes the protobuf wire format itself. Building the message through the
protobuf runtime (one ``KeyValue`` and ``AnyValue`` object per attribute) cost 170 us per
span, more than the agents and the tracer together, all of it holding the GIL the agents
need; the wire format of the handful of field types used here is short to write, and the
encoding of a repeated attribute (the trace's name, environment, session, tags, the
observation type ...) is kept and reused. ``tests/core/test_otlp_encoding.py`` checks the
bytes against the protobuf runtime's parse of them.
"""

from __future__ import annotations

import struct
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from config.json_values import unicode_text
from config.tracing.span_records import SpanRecord

SCOPE_NAME = "langfuse-sdk"


def scope_key_attributes(request: Any) -> Iterator[Any]:
    """The ``public_key`` attributes of the Langfuse scopes of a parsed
    ``ExportTraceServiceRequest``: the project a span batch was recorded for (read by the
    outbox for an older file's rows, rewritten by ``buffer flush --from``)."""
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            if scope_spans.scope.name == SCOPE_NAME:
                for attribute in scope_spans.scope.attributes:
                    if attribute.key == "public_key":
                        yield attribute


SPAN_KIND_INTERNAL = 1

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_VARINT_CACHE = [bytes([n]) for n in range(128)] + [
    bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(128, 1 << 14)
]
# Attribute values up to this length are cached encoded (per key and value): the propagated
# ones repeat on every span of a trace; observation inputs and outputs are longer and unique.
_CACHED_VALUE_CHARS = 64
_CACHE_LIMIT = 8192


def _varint(value: int) -> bytes:
    if 0 <= value < 1 << 14:
        return _VARINT_CACHE[value]
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _text(value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError:  # a lone surrogate: U+FFFD, as the local store writes it
        return unicode_text(value).encode()


def _any_value_bytes(value: Any) -> bytes:
    """The wire form of an OTLP ``AnyValue``."""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, (list, tuple)):
        values = b"".join(_field(b"\x0a", _any_value_bytes(v)) for v in value)
        return _field(b"\x2a", values)
    return _field(b"\x0a", _text(value if isinstance(value, str) else str(value)))


class AttributeEncoder:
    """Encodes attribute maps as repeated ``KeyValue`` fields, reusing repeated ones."""

    def __init__(self) -> None:
        self._keys: dict[str, bytes] = {}
        self._pairs: dict[tuple[Any, ...], bytes] = {}

    def key_value(self, key: str, value: Any) -> bytes:
        """One ``KeyValue`` message (without its enclosing field tag)."""
        prefix = self._keys.get(key)
        if prefix is None:
            # Bounded like the pairs: metadata keys built from data must not grow it forever.
            if len(self._keys) >= _CACHE_LIMIT:
                self._keys.clear()
            # proto3 leaves out a field at its default: an empty key is no field at all.
            prefix = self._keys[key] = _field(b"\x0a", _text(key)) if key else b""
        return prefix + _field(b"\x12", _any_value_bytes(value))

    def attributes(self, tag: bytes, attributes: Mapping[str, Any]) -> bytes:
        """The attributes as repeated fields ``tag`` (None values are left out)."""
        pairs = self._pairs
        parts = []
        for key, value in attributes.items():
            if value is None:
                continue
            kind = type(value)
            # The type is part of the key: True, 1 and 1.0 are equal as dict keys.
            if kind is str and len(value) <= _CACHED_VALUE_CHARS:
                cache_key: tuple[Any, ...] | None = (tag, key, value)
            elif kind in (bool, int, float):
                cache_key = (tag, key, kind, value)
            elif kind is list and len(value) <= 8 and all(type(v) is str for v in value):
                cache_key = (tag, key, list, tuple(value))
            else:
                cache_key = None
            if cache_key is None:
                parts.append(_field(tag, self.key_value(key, value)))
                continue
            cached = pairs.get(cache_key)
            if cached is None:
                if len(pairs) >= _CACHE_LIMIT:
                    pairs.clear()
                cached = pairs[cache_key] = _field(tag, self.key_value(key, value))
            parts.append(cached)
        return b"".join(parts)


_default_encoder = AttributeEncoder()


def _span_bytes(span: SpanRecord, encoder: AttributeEncoder) -> bytes:
    parts = [
        b"\x0a\x10" + bytes.fromhex(span.trace_id),
        b"\x12\x08" + bytes.fromhex(span.span_id),
    ]
    if span.parent_span_id:
        parts.append(b"\x22\x08" + bytes.fromhex(span.parent_span_id))
    if span.name:
        parts.append(_field(b"\x2a", _text(span.name)))
    parts.append(b"\x30\x01")  # kind: SPAN_KIND_INTERNAL
    if span.start_ns:
        parts.append(b"\x39" + _pack_fixed64(span.start_ns))
    if span.end_ns:
        parts.append(b"\x41" + _pack_fixed64(span.end_ns))
    parts.append(encoder.attributes(b"\x4a", span.attributes))
    status = b""
    if span.status_message:
        status += _field(b"\x12", _text(span.status_message))
    if span.status_code:
        status += b"\x18" + _varint(span.status_code)
    parts.append(_field(b"\x7a", status))
    return b"".join(parts)


def encode_spans(
    spans: Iterable[SpanRecord],
    *,
    resource: Mapping[str, Any],
    scope_version: str,
    scope_attributes: Mapping[str, Any] | None = None,
    encoder: AttributeEncoder | None = None,
) -> bytes:
    """Serialize spans as one protobuf ``ExportTraceServiceRequest``.

    Spans carrying their own ``resource`` (none of the core's do) are grouped by it.
    ``encoder`` keeps the encodings of repeated attributes between calls (one per thread:
    it is not locked); by default a module-wide one.
    """
    encoder = encoder or _default_encoder
    groups: dict[tuple[tuple[str, Any], ...], list[SpanRecord]] = defaultdict(list)
    shared_key: tuple[tuple[str, Any], ...] | None = None
    shared_resource: Mapping[str, Any] | None = None
    for span in spans:
        own = span.resource or resource
        if own is shared_resource and shared_key is not None:
            groups[shared_key].append(span)  # the common case: one resource object for all
            continue
        key = tuple(sorted((k, _hashable(v)) for k, v in own.items()))
        shared_resource, shared_key = own, key
        groups[key].append(span)
    scope = (
        _field(b"\x0a", _text(SCOPE_NAME))
        + (_field(b"\x12", _text(scope_version)) if scope_version else b"")
        + encoder.attributes(b"\x1a", scope_attributes or {})
    )
    out = []
    for resource_items, members in groups.items():
        spans_part = b"".join(_field(b"\x12", _span_bytes(span, encoder)) for span in members)
        scope_spans = _field(b"\x0a", scope) + spans_part
        resource_message = encoder.attributes(b"\x0a", dict(resource_items))
        resource_spans = _field(b"\x0a", resource_message) + _field(b"\x12", scope_spans)
        out.append(_field(b"\x0a", resource_spans))
    return b"".join(out)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value
