"""Masked data never reaches the store file or the wire, wherever the agents put it.

The masker's own properties are in test_masking.py; here the whole path runs: the seed API
records an event, agent operations, decisions with free-text reasoning, nested metadata,
coordination messages and conflicts holding e-mail addresses, card numbers, customer ids and
money fields, into the local store (then the raw bytes of the SQLite file and its WAL are
searched) and over OTLP to a loopback Langfuse peer (then everything it received is searched).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.langfuse_integration import LangfuseIntegrationService
from config.models import AgentDecision
from config.settings import DataMaskingConfig, LangfuseConfig
from tests.conftest import KNOWN_PUBLIC, KNOWN_SECRET, Figures
from tests.core.test_masking import card_numbers
from tests.support.fake_langfuse import FakeLangfuse
from tests.support.property_budget import examples

WORDS = st.text(alphabet="abcdefghij klmnop", max_size=15)


@st.composite
def sensitive(draw: st.DrawFn) -> dict[str, Any]:
    """One of each kind of data that must be masked, with free text around it."""
    digits, written = draw(card_numbers())
    return {
        "email": draw(st.emails()),
        "card": written,
        "card_digits": digits,
        "customer": f"CUST-{draw(st.integers(10_000, 99_999_999))}",
        # A distinctive money value: nothing else in a trace prints these digits.
        "money": draw(st.integers(100_000, 999_999)) + 0.987,
        "secret": f"sk-lf-{draw(st.uuids())}",
        "before": draw(WORDS),
        "after": draw(WORDS),
    }


def record_one_trace(service: LangfuseIntegrationService, s: dict[str, Any]) -> None:
    """Put every sensitive value everywhere the AutoOps system can put data."""
    text = f"{s['before']} {s['email']} {s['card']} {s['customer']} {s['secret']} {s['after']}"
    event = {
        "event_id": "evt-1",
        # Names made from data too (the trace's, an operation's, a score's: stored whole).
        "event_type": f"demand_spike {s['email']} {s['secret']}",
        "product_id": "PROD_001",
        "severity": "high",
        "trigger_source": "crm",
        "customer_id": s["customer"],  # an unknown top-level field: trace metadata
        "data": {"notes": text, "unit_cost": s["money"], "deep": [{"margin": s["money"]}]},
    }
    trace_id = service.create_simulation_trace(event, session_id="masking")
    span_id = service.start_agent_span(
        "pricing_agent",
        "optimize_price",
        {"event": event},
        metadata={"notes": {"nested": [text]}, "revenue_estimate": s["money"]},
    )
    decision = AgentDecision(
        "pricing_agent",
        "price_hold",
        {"new_price": 10.0, "why": {"contact": s["email"], "unit_cost": s["money"]}},
        0.7,
        f"reasoning about {text}",
        ("competitor_feed",),
    )
    service.log_agent_decision(span_id, decision)
    service.end_agent_span(span_id, output=decision.as_dict())
    with service.track_collaboration(["pricing_agent", "promotion_agent"], "masking"):
        service.log_coordination_message(
            "pricing_agent", "promotion_agent", "price_proposal", {"note": text}
        )
        service.log_conflict("price_vs_discount", ["pricing_agent", "promotion_agent"],
                             {"customer_email": s["email"], "profit": s["money"]})  # fmt: skip
    with service.trace_operation(f"lookup {s['card']} {s['customer']}") as lookup:
        lookup.score(f"quality {s['email']}", 0.5)
    service.finalize_trace(trace_id, {"summary": text, "customer": s["customer"]})


def leaks(text: str, s: dict[str, Any]) -> list[str]:
    found = [k for k in ("email", "card", "card_digits", "customer", "secret") if s[k] in text]
    if repr(s["money"]) in text:
        found.append("money")
    return found


def masking() -> DataMaskingConfig:
    return DataMaskingConfig(mask_pii=True, mask_customer_data=True, mask_financial_data=True)


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(s=sensitive())
def test_nothing_sensitive_reaches_the_store_file(
    workdir: Path, reliability: Figures, s: dict[str, Any]
) -> None:
    store = workdir / f"store-{reliability.inputs}" / "traces.db"
    service = LangfuseIntegrationService(LangfuseConfig(), masking(), store_path=store)
    record_one_trace(service, s)
    service.shutdown()
    reliability.tried()
    raw = b"".join(p.read_bytes() for p in store.parent.glob("traces.db*"))
    assert b"masking" in raw  # the trace is there (its session id)
    assert leaks(raw.decode("utf-8", "replace"), s) == []


@settings(
    max_examples=examples(15),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(s=sensitive())
def test_nothing_sensitive_goes_over_the_wire(
    workdir: Path, reliability: Figures, s: dict[str, Any]
) -> None:
    peer = FakeLangfuse()
    try:
        config = LangfuseConfig(public_key=KNOWN_PUBLIC, secret_key=KNOWN_SECRET, host=peer.url)
        store = workdir / f"outbox-{reliability.inputs}" / "traces.db"
        service = LangfuseIntegrationService(config, masking(), store_path=store)
        record_one_trace(service, s)
        assert service.flush(timeout=60)  # returns once delivered; generous for a busy machine
        service.shutdown()
        reliability.tried()
        with peer.received.lock:
            spans = [
                (span.name, span.attributes, span.status_message) for span in peer.received.spans
            ]
            sent = json.dumps([spans, peer.received.scores], default=str)
        assert "pricing_agent.optimize_price" in sent
        assert leaks(sent, s) == []
        raw = b"".join(p.read_bytes() for p in store.parent.glob("traces.db*"))
        assert leaks(raw.decode("utf-8", "replace"), s) == []  # nor in the outbox
    finally:
        peer.close()
