"""``autoops serve``'s memory is bounded by its body limit, and given back afterwards.

Four parallel maximum-size requests (OTLP exports of about 100 KB of gzip that inflate to
a 100 MB attribute, as in the issue) must keep the server below 4 x the decompressed body
limit plus 100 MB above its idle baseline, and its resident memory must come back close to
that baseline once they are answered. Measured on the server process through /proc: its
peak resident set (``VmHWM``, reset after a warm-up request) and its resident set.
"""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.serve_process import ServeHandle, start_serve, stop_serve

MIB = 1024 * 1024
DEFAULT_DECOMPRESSED_LIMIT = 128 * MIB  # limits.MAX_DECOMPRESSED_BYTES
RETURNED_MARGIN = 64 * MIB  # what may stay resident after the requests (allocator noise)


def memory(pid: int) -> dict[str, int]:
    """The process's resident set and its peak since the last reset, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


def reset_peak(pid: int) -> None:
    """Start measuring the peak from now (Linux: 5 to clear_refs resets VmHWM)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def export_with(attribute_bytes: int, index: int) -> bytes:
    """A gzip OTLP export of one span of another instrumentation carrying a huge attribute."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

    now = time.time_ns()
    span = Span(
        trace_id=bytes([index + 1]) * 16,
        span_id=bytes([index + 1]) * 8,
        name="huge",
        start_time_unix_nano=now,
        end_time_unix_nano=now + 1000,
        attributes=[KeyValue(key="payload", value=AnyValue(string_value="A" * attribute_bytes))],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(),
                scope_spans=[ScopeSpans(scope=InstrumentationScope(name="app"), spans=[span])],
            )
        ]
    )
    return gzip.compress(request.SerializeToString(), compresslevel=9)


def post_in_parallel(handle: ServeHandle, bodies: list[bytes]) -> list[int]:
    statuses: list[int] = []

    def post(body: bytes) -> None:
        response = httpx.post(
            handle.url + "/api/public/otel/v1/traces",
            content=body,
            headers={"content-type": "application/x-protobuf", "content-encoding": "gzip"},
            auth=handle.auth,
            timeout=600,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def measure(handle: ServeHandle, bodies: list[bytes]) -> tuple[int, int, int]:
    """(baseline, peak, after) resident bytes of the server around the parallel requests."""
    pid = handle.process.pid
    assert post_in_parallel(handle, [export_with(1000, 99)]) == [200]  # imports, first pages
    time.sleep(0.5)
    reset_peak(pid)
    baseline = memory(pid)["VmRSS"]
    assert post_in_parallel(handle, bodies) == [200] * len(bodies)
    peak = memory(pid)["VmHWM"]
    time.sleep(1.0)
    return baseline, peak, memory(pid)["VmRSS"]


@pytest.mark.slow
def test_four_parallel_maximum_size_requests_stay_within_the_bound(workdir: Path) -> None:
    bodies = [export_with(100_000_000, index) for index in range(4)]
    assert all(len(body) < 200_000 for body in bodies)  # the issue's ~119 KB of gzip
    handle = start_serve(workdir / "memory" / "traces.db")
    try:
        baseline, peak, after = measure(handle, bodies)
        stored = httpx.get(
            handle.url + "/api/public/v2/observations",
            params={"fields": "core,metadata", "limit": 10},
            auth=handle.auth,
            timeout=60,
        ).json()["data"]
    finally:
        stop_serve(handle)
    bound = 4 * DEFAULT_DECOMPRESSED_LIMIT + 100 * MIB
    assert peak - baseline < bound, f"peak {(peak - baseline) / MIB:.0f} MiB above idle"
    assert after - baseline < RETURNED_MARGIN, f"{(after - baseline) / MIB:.0f} MiB kept"
    assert len([o for o in stored if o["id"] != (bytes([100]) * 8).hex()]) == 4


@pytest.mark.slow
def test_the_bound_follows_the_configured_limit(workdir: Path) -> None:
    limit = 24 * MIB
    bodies = [export_with(20_000_000, index) for index in range(4)]
    handle = start_serve(
        workdir / "memory-small" / "traces.db", "--max-decompressed-bytes", str(limit)
    )
    try:
        baseline, peak, after = measure(handle, bodies)
        too_big = post_in_parallel(handle, [export_with(30_000_000, 7)])
    finally:
        stop_serve(handle)
    assert peak - baseline < 4 * limit + 100 * MIB, f"peak {(peak - baseline) / MIB:.0f} MiB"
    assert after - baseline < RETURNED_MARGIN, f"{(after - baseline) / MIB:.0f} MiB kept"
    assert too_big == [413]


def export_of_tiny_spans(size: int) -> bytes:
    """An uncompressed OTLP export of ``size`` bytes of the smallest spans (ids, a name, a
    start), written by hand: the protobuf classes take minutes for hundreds of thousands."""

    def varint(number: int) -> bytes:
        out = b""
        while True:
            low, number = number & 0x7F, number >> 7
            out += bytes([low | 0x80]) if number else bytes([low])
            if not number:
                return out

    spans, written, index = [], 0, 0
    start = time.time_ns()
    while written < size - 64:
        index += 1
        span = (b"\x0a\x10" + index.to_bytes(16, "big") + b"\x12\x08" + index.to_bytes(8, "big")
                + b"\x2a\x01s\x39" + (start + index).to_bytes(8, "little"))  # fmt: skip
        spans.append(b"\x12" + varint(len(span)) + span)
        written += len(spans[-1])
    scope_spans = b"".join(spans)
    resource_spans = b"\x12" + varint(len(scope_spans)) + scope_spans
    return b"\x0a" + varint(len(resource_spans)) + resource_spans


@pytest.mark.slow
def test_an_export_of_many_small_spans_stays_within_the_bound(workdir: Path) -> None:
    """The bound counted body bytes; decoded, a small span costs some fifty times its bytes,
    and an export of 8 MB of them took 460 MB at once. Decoded and written some thousands
    of spans at a time, it stays within the bound of its limit."""
    limit = 12 * MIB
    handle = start_serve(
        workdir / "memory-spans" / "traces.db", "--max-decompressed-bytes", str(limit)
    )
    try:
        pid = handle.process.pid
        assert post_in_parallel(handle, [export_with(1000, 99)]) == [200]  # imports
        time.sleep(0.5)
        reset_peak(pid)
        baseline = memory(pid)["VmRSS"]
        answered = httpx.post(
            handle.url + "/api/public/otel/v1/traces",
            content=export_of_tiny_spans(8 * MIB),
            headers={"content-type": "application/x-protobuf"},
            auth=handle.auth,
            timeout=600,
        )
        peak = memory(pid)["VmHWM"]
        stored = httpx.get(handle.url + "/api/public/v2/observations", params={"limit": 1},
                           auth=handle.auth, timeout=60).json()  # fmt: skip
    finally:
        stop_serve(handle)
    assert answered.status_code == 200, answered.text
    assert peak - baseline < 4 * limit + 100 * MIB, f"peak {(peak - baseline) / MIB:.0f} MiB"
    assert stored["data"], stored
