"""Spans of other instrumentations, mapped as Langfuse's OTel ingestion maps them."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from config.store.local_store import LocalStore
from config.store.otel_conventions import usage_details
from config.tracing import attributes as la
from config.tracing.span_records import SpanRecord


def test_a_langfuse_sdk_span_keeps_lean_metadata_with_its_trace_metadata(tmp_path: Any) -> None:
    """The SDK's (and the core's) spans: their own metadata and the trace metadata they
    carry, without the span's other attributes (Langfuse keeps those only for foreign spans)."""
    store = LocalStore(tmp_path / "traces.db")
    now = time.time_ns()
    attributes = {
        la.OBSERVATION_TYPE: "chain",
        la.OBSERVATION_METADATA_PREFIX + "step": '"route"',
        la.TRACE_METADATA_PREFIX + "event_type": '"demand_spike"',
        la.TRACE_METADATA_PREFIX + "step": '"trace wins"',
        "gen_ai.usage.input_tokens": 5,
    }
    sdk_scope = {"name": "langfuse-sdk", "version": "5.2.0", "attributes": {}}
    for span_id, scope in (("1" * 16, None), ("2" * 16, sdk_scope)):
        store.write(
            [
                SpanRecord(
                    "a" * 32, span_id, None, "root", now, now + 1000, dict(attributes), scope=scope
                )
            ]
        )
    rows = store.query("SELECT metadata, usage_details FROM observations ORDER BY id")
    store.close()
    for row in rows:
        assert json.loads(row["metadata"]) == {"step": "trace wins", "event_type": "demand_spike"}
        assert row["usage_details"] is None


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        (
            {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 4},
            {"input": 10, "output": 4},
        ),
        (
            {"gen_ai.usage.prompt_tokens": "12", "gen_ai.usage.total_tokens": 20},
            {"input": 12, "total": 20},
        ),
        (
            {
                "llm.token_count.prompt": 9,
                "llm.token_count.completion": 3,
                "llm.token_count.total": 12,
            },
            {"input": 9, "output": 3, "total": 12},
        ),
        (
            {"gen_ai.usage.output_tokens": 50, "gen_ai.usage.reasoning.output_tokens": 20},
            {"output": 30, "output_reasoning_tokens": 20},
        ),
        ({"gen_ai.usage.input_tokens": "many"}, {}),
        ({"gen_ai.usage.cost": 0.5}, {}),
    ],
)
def test_usage_is_normalised_as_langfuse_does(attributes: dict, expected: dict) -> None:
    assert usage_details(attributes) == expected
