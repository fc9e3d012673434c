"""``DataMasker``: what trace data looks like after masking, for each switch."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from config.settings import DataMaskingConfig
from config.tracing.masking import MAX_DEPTH, MAX_OBJECTS, DataMasker
from tests.conftest import Figures
from tests.support.property_budget import examples

REASONING = (
    "Customer CUST-8812 (jane.doe@example.com, +1 415-555-0134) paid with 4111 1111 1111 1111"
)

OBSERVATION: dict[str, Any] = {
    "agent_id": "pricing_agent",
    "operation": "optimize_price",
    "input": {
        "current_price": 29.99,
        "competitor_price": 27.5,
        "unit_cost": 18.0,
        "current_stock": 50,
        "customer_id": "CUST-8812",
        "email": "jane.doe@example.com",
    },
    "reasoning": REASONING,
    "metadata": {"events": [{"note": "call +44 20 7946 0958", "gross_margin": 0.31}]},
    "tags": ("pricing", "evt-000042"),
}


def masker(*, pii: bool = True, customer: bool = True, financial: bool = True) -> DataMasker:
    # model_construct: the switches under test, without reading the developer's environment.
    config = DataMaskingConfig.model_construct(
        mask_pii=pii, mask_customer_data=customer, mask_financial_data=financial
    )
    return DataMasker(config)


ALL_ON = masker()


def with_luhn_check_digit(body: str) -> str:
    """Append the digit that makes ``body`` pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(body)):
        digit = int(char)
        if index % 2 == 0:  # doubled: the check digit will take position 0
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


# Full-width digits and punctuation, as Japanese and Chinese input methods type them.
FULL_WIDTH = str.maketrans(
    "0123456789:-()",
    "".join(chr(0xFF10 + digit) for digit in range(10)) + "\uff1a\uff0d\uff08\uff09",
)


# --- free text -----------------------------------------------------------------------------


def test_reasoning_sentence_is_masked_everywhere() -> None:
    assert ALL_ON.mask_text(REASONING) == (
        "Customer [CUSTOMER] ([EMAIL], [PHONE]) paid with [CARD]"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe@example.com now", "mail [EMAIL] now"),
        ("<Ops.Team+alerts@shop.example.co.uk>", "<[EMAIL]>"),
        ("a@b.io and x_y-z@sub.b.io", "[EMAIL] and [EMAIL]"),
        ("call +1 415-555-0134.", "call [PHONE]."),
        ("call +14155550134", "call [PHONE]"),
        ("call +44 20 7946 0958", "call [PHONE]"),
        ("call +49 (0)30 1234567", "call [PHONE]"),
        ("call +1 (415) 555-0134", "call [PHONE]"),
        ("call (415) 555-0134", "call [PHONE]"),
        ("call 415.555.0134", "call [PHONE]"),
        ("call 1-800-555-0199", "call [PHONE]"),
        ("call 415-555-0134/2 or +1 415 555 0134:1", "call [PHONE]/2 or [PHONE]:1"),
        ("call 020 7946 0958", "call [PHONE]"),
        ("appelez 06 12 34 56 78", "appelez [PHONE]"),
        ("card 4111111111111111", "card [CARD]"),
        ("card 4111-1111-1111-1111", "card [CARD]"),
        ("card 5555 5555 5555 4444 exp 12/27", "card [CARD] exp 12/27"),
        ("amex 3782 822463 10005", "amex [CARD]"),
        ("order 12 4111 1111 1111 1111 done", "order 12 [CARD] done"),
        # Written whole before: an internationalized domain, no-break spaces between groups.
        ("mail jörg@bücher.de or info@müller-shop.de", "mail [EMAIL] or [EMAIL]"),
        ("call +44\u00a020\u00a07946\u00a00958", "call [PHONE]"),
        ("card 4111\u00a01111\u00a01111\u00a01111", "card [CARD]"),
        # Glued to a word or to text of another script (no spaces in Chinese, Japanese):
        # still a card, where digits inside a hex id are none.
        ("卡号4111111111111111 visa4111111111111111", "卡号[CARD] visa[CARD]"),
        ("カード番号4111111111111111で 4111111111111111円", "カード番号[CARD]で [CARD]円"),
        # Beside a word of hex letters that is no id (only uuids and 16-64 hex digits are).
        ("paid 4111111111111111-cafe, ab4111111111111111", "paid [CARD]-cafe, ab[CARD]"),
        # The text after an address is not its domain.
        ("see bob@example.com_2024 or bob@example.com的账单", "see [EMAIL]_2024 or [EMAIL]的账单"),
        # A top-level domain in its own script (written whole when the top level was ASCII).
        ("ivan@пример.рф, 用户@例子.中国 and x@ελλάδα.ελ", "[EMAIL], [EMAIL] and [EMAIL]"),
        # Labels with vowel signs (combining marks, which \w leaves out): Indic and Thai.
        ("rahul@डाटामेल.भारत, a@ตัวอย่าง.com, a@example.বাংলা", "[EMAIL], [EMAIL], [EMAIL]"),
        # Groups separated by other no-break or thin spaces, digits of other scripts: masked
        # where they are, the rest of the text as written.
        ("carte 4111\u202f1111\u202f1111\u202f1111 ok", "carte [CARD] ok"),
        ("tél +33\u202f6\u202f12\u202f34\u202f56\u202f78", "tél [PHONE]"),
        ("card 4111\u20071111\u20071111\u20071111", "card [CARD]"),
        (
            "番号:4111 1111 1111 1111 注文12".translate(FULL_WIDTH),
            "番号:[CARD] 注文12".translate(FULL_WIDTH),
        ),
        ("رقم ٤١١١١١١١١١١١١١١١ ٠٦ ١٢ ٣٤ ٥٦ ٧٨", "رقم [CARD] [PHONE]"),
        # Full-width hyphens and parentheses, the ideographic space, other hyphens, spaces
        # and joiners between groups.
        ("電話 090-1234-5678 (020)7946 0958".translate(FULL_WIDTH), "電話 [PHONE] [PHONE]"),
        ("4111 1111 1111 1111".translate(FULL_WIDTH).replace(" ", "\u3000"), "[CARD]"),
        *(
            (f"card 4111{sep}1111{sep}1111{sep}1111", "card [CARD]")
            for sep in ("\u2011", "\u200a", "\u2060", "\uff0d")
        ),
    ],
)
def test_pii_in_text(text: str, expected: str) -> None:
    assert ALL_ON.mask_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "new price 29.99, competitor at 27.50, was 1,299.00",
        "stock 150 units, reorder 2000, lead time 14 days",
        "fiscal year 2026, Q3",
        "at 2026-11-20T08:15:00Z and 2026-11-20 08:15:00",
        # Sub-second times with a negative offset: 00.250000-05 has a phone's digit count.
        "2026-11-20T08:15:00.250000-05:00",
        "2026-11-20T08:15:00.5-03:30 and 2026-11-20 23:59:59.999999-12:00",
        "08:15:00.123-07:00",
        # A phone-shaped run that goes on as an id is an id.
        "ticket 415-555-0134-7 and ref 212-555-0100-02",
        "on 20.11.2026 and 11/20/2026 08:15",
        "PROD_123 evt-000042 SKU ABC-12345 order_987654321",
        "epoch 1732094100 and 1732094100000 ms",
        "Luhn fails: 4111111111111112",
        "host 192.168.100.200 version 10.0.19041",
        "quantities 150 200 300 400 500",
        "margin up +5.5% to +12.50",
        # Digits inside a uuid or a hex id were cut out as a card: event ids were changed.
        "event d2375d6a-2846-4400-9876-9823c924a2cd, trace 313874cddfbc423db246548991270564",
        # An EAN-13 barcode (the products' ids) was a [CARD]; a date with an hour a [PHONE].
        "product 5901234123457 on 01.12.2026 10:30 and 05-12-2026 08:15",
        "on 01.12.2026\u00a010:30",  # a no-break space before the hour
        "注文12 在庫150".translate(FULL_WIDTH)
        + " ٤٢ 29\u202f999,99 €",  # digits of other scripts, a grouped price
    ],
)
def test_ordinary_numbers_are_not_masked(text: str) -> None:
    assert ALL_ON.mask_text(text) == text
    assert ALL_ON.mask({"note": text}) == {"note": text}


def test_many_cards_among_many_hex_ids_are_each_judged_by_the_ids_around_them() -> None:
    # Each card is checked against the one id that can overlap it (found by bisection:
    # checking all of them made a text of many cards and ids take minutes).
    lines = [
        f"span {index:016x}deadbeef"[:21] + f" paid 4111111111111111 in a1b2c3d4{index:08x}"
        for index in range(2000)
    ]
    masked = ALL_ON.mask_text("\n".join(lines)).split("\n")
    assert masked == [line.replace("4111111111111111", "[CARD]") for line in lines]
    glued = "4111111111111111-deadbeefdeadbeef " * 500  # the card is no part of the id
    assert ALL_ON.mask_text(glued) == "[CARD]-deadbeefdeadbeef " * 500
    inside = "d2375d6a-2846-4400-9876-982341111111 " * 500  # digits inside a uuid
    assert ALL_ON.mask_text(inside) == inside


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("for CUST-123 and cust_456", "for [CUSTOMER] and [CUSTOMER]"),
        ("id CUST123, loyalty C-123456", "id [CUSTOMER], loyalty [CUSTOMER]"),
        ("grade C-1234 and SKU ABC-12345 stay", "grade C-1234 and SKU ABC-12345 stay"),
        ("the customer base grew", "the customer base grew"),
    ],
)
def test_customer_ids_in_text(text: str, expected: str) -> None:
    assert ALL_ON.mask_text(text) == expected


# --- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "email",
        "E-Mail",
        "e_mail",
        "Phone",
        "phone_number",
        "phoneNumber",
        "mobile",
        "card_number",
        "credit_card",
        "SSN",
        "address",
        "ip_address",
        "IPAddress",
        "billing_address",
        "contactEmail",
    ],
)
def test_pii_keys_are_redacted_whole(key: str) -> None:
    for value in ("anything", 12345, None, {"street": "Main St 1"}, ["a", "b"]):
        assert ALL_ON.mask({key: value}) == {key: "[REDACTED]"}


@pytest.mark.parametrize(
    "key",
    [
        "customer_id",
        "Customer",
        "customerName",
        "customer_email",
        "user_id",
        "userName",
        "loyalty_id",
        "account_id",
        "customer_segment",
    ],
)
def test_customer_keys_are_masked_whole(key: str) -> None:
    assert ALL_ON.mask({key: "Jane"}) == {key: "[CUSTOMER]"}
    assert ALL_ON.mask({key: 42}) == {key: "[CUSTOMER]"}


def test_financial_keys_are_masked_and_prices_stay() -> None:
    value = {
        "unit_cost": 18.0,
        "margin_pct": 0.4,
        "nested": [{"total_revenue": 100}],
        "current_price": 29.99,
    }
    assert ALL_ON.mask(value) == {
        "unit_cost": "[FINANCIAL]",
        "margin_pct": "[FINANCIAL]",
        "nested": [{"total_revenue": "[FINANCIAL]"}],
        "current_price": 29.99,
    }
    for key in ("grossMargin", "net_profit", "annual_income", "salary", "marketing_budget"):
        assert ALL_ON.mask({key: 1}) == {key: "[FINANCIAL]"}


def test_neutral_keys_and_scalars_pass() -> None:
    value = {"current_stock": 50, "in_stock": True, "price": 29.99, "discount": None}
    assert ALL_ON.mask(value) == value


def test_nested_metadata() -> None:
    value = {
        "metadata": {
            "events": [
                {"note": "mail jane.doe@example.com", "unit_cost": 18.0},
                [{"detail": {"customer_id": "CUST-1", "text": "card 4111111111111111"}}],
            ]
        }
    }
    assert ALL_ON.mask(value) == {
        "metadata": {
            "events": [
                {"note": "mail [EMAIL]", "unit_cost": "[FINANCIAL]"},
                [{"detail": {"customer_id": "[CUSTOMER]", "text": "card [CARD]"}}],
            ]
        }
    }


def test_card_number_given_as_int() -> None:
    assert ALL_ON.mask({"note": 4111111111111111}) == {"note": "[CARD]"}
    assert ALL_ON.mask([4111111111111111]) == ["[CARD]"]
    # Fails Luhn; a millisecond timestamp; a bool is not a number here.
    kept = {"note": 4111111111111112, "ts_ms": 1732094100000, "flag": True}
    assert ALL_ON.mask(kept) == kept


# --- switches ------------------------------------------------------------------------------


def test_pii_off_leaves_pii() -> None:
    masked = masker(pii=False).mask(OBSERVATION)
    assert masked["input"]["email"] == "jane.doe@example.com"
    assert masked["metadata"]["events"][0]["note"] == "call +44 20 7946 0958"
    assert masked["reasoning"] == (
        "Customer [CUSTOMER] (jane.doe@example.com, +1 415-555-0134) paid with 4111 1111 1111 1111"
    )
    assert masked["input"]["customer_id"] == "[CUSTOMER]"
    assert masked["input"]["unit_cost"] == "[FINANCIAL]"


def test_customer_off_leaves_customer_ids() -> None:
    masked = masker(customer=False).mask(OBSERVATION)
    assert masked["input"]["customer_id"] == "CUST-8812"
    assert masked["reasoning"] == "Customer CUST-8812 ([EMAIL], [PHONE]) paid with [CARD]"
    assert masked["input"]["email"] == "[REDACTED]"
    # A key that is both customer and personal falls back to the personal label.
    assert masker(customer=False).mask({"customer_email": "x"}) == {"customer_email": "[REDACTED]"}


def test_financial_off_leaves_money() -> None:
    masked = masker(financial=False).mask(OBSERVATION)
    assert masked["input"]["unit_cost"] == 18.0
    assert masked["metadata"]["events"][0]["gross_margin"] == 0.31
    assert masked["input"]["customer_id"] == "[CUSTOMER]"


def test_all_off_is_disabled_and_changes_nothing() -> None:
    off = masker(pii=False, customer=False, financial=False)
    assert off.enabled is False
    assert off.mask(OBSERVATION) == OBSERVATION
    assert off.mask_text(REASONING) == REASONING
    assert masker(pii=False, customer=False).enabled is True
    assert masker(pii=True, customer=False, financial=False).enabled is True


def test_config_defaults_are_honoured() -> None:
    # The seed's defaults: PII, customer and financial data masked; prices stay.
    default = DataMasker(DataMaskingConfig.model_construct())
    assert default.mask({"unit_cost": 1.0, "current_price": 9.5, "email": "a@b.co"}) == {
        "unit_cost": "[FINANCIAL]",
        "current_price": 9.5,
        "email": "[REDACTED]",
    }


# --- copies and odd input ------------------------------------------------------------------


def test_input_is_never_mutated_and_result_is_a_copy() -> None:
    original = copy.deepcopy(OBSERVATION)
    masked = ALL_ON.mask(OBSERVATION)
    assert original == OBSERVATION
    assert masked["input"] is not OBSERVATION["input"]
    off = masker(pii=False, customer=False, financial=False).mask(OBSERVATION)
    assert off["metadata"]["events"] is not OBSERVATION["metadata"]["events"]
    assert isinstance(masked["tags"], tuple)


def test_depth_limit_truncates_instead_of_recursing() -> None:
    deep: Any = "a@b.co"
    for _ in range(MAX_DEPTH + 50):
        deep = [deep]
    masked = ALL_ON.mask(deep)
    for _ in range(MAX_DEPTH):
        masked = masked[0]
    assert masked == "[TRUNCATED]"

    cycle: list[Any] = []
    cycle.append(cycle)
    assert "TRUNCATED" in json.dumps(ALL_ON.mask(cycle))


def test_non_string_keys_and_other_containers() -> None:
    value = {1: "a@b.co", None: {"email": 1}, 2.5: {4111111111111111}, (1, "x"): ("c@d.org",)}
    assert ALL_ON.mask(value) == {
        1: "[EMAIL]",
        None: {"email": "[REDACTED]"},
        2.5: ["[CARD]"],
        "(1, 'x')": ("[EMAIL]",),  # JSON has no tuple keys: written as the key's str()
    }


@dataclasses.dataclass
class Decision:
    customer_id: str
    reasoning: str
    new_price: float


class DecisionModel(BaseModel):
    unit_cost: float
    reasoning: str


def test_dataclasses_and_pydantic_models_become_masked_dicts() -> None:
    assert ALL_ON.mask({"decision": Decision("CUST-1", "mail a@b.co", 28.49)}) == {
        "decision": {"customer_id": "[CUSTOMER]", "reasoning": "mail [EMAIL]", "new_price": 28.49}
    }
    assert ALL_ON.mask([DecisionModel(unit_cost=1.0, reasoning="CUST-9")]) == [
        {"unit_cost": "[FINANCIAL]", "reasoning": "[CUSTOMER]"}
    ]


def test_a_broken_object_is_redacted_not_raised() -> None:
    class BadKey:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert ALL_ON.mask({BadKey(): "x"}) == "[REDACTED]"


# --- properties ----------------------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Strings that masking changes, repeated in the cache property.
SAMPLE_TEXTS = (
    "call +44 20 7946 0958",
    "mail bob@example.com",
    "card 4111 1111 1111 1111",
    "customer CUST-8812",
    "PROD_016",
)
# Where a card is written with separators, the layouts printed on real cards.
CARD_LAYOUTS = {14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


@st.composite
def card_numbers(draw: st.DrawFn) -> tuple[str, str]:
    """A Luhn-valid card number (14 to 19 digits: 13 are a retail barcode, EAN-13): its
    digits, and the digits as written in the text."""
    length = draw(st.integers(14, 19))
    first = draw(st.sampled_from("3456"))
    body = first + draw(st.text("0123456789", min_size=length - 2, max_size=length - 2))
    digits = with_luhn_check_digit(body)
    layout = CARD_LAYOUTS.get(length)
    separator = draw(st.sampled_from(["", " ", "-"]))
    if layout is None or not separator:
        return digits, digits
    groups, start = [], 0
    for size in layout:
        groups.append(digits[start : start + size])
        start += size
    return digits, separator.join(groups)


@st.composite
def nested_around(draw: st.DrawFn, leaf: Any, leaves: st.SearchStrategy[Any]) -> Any:
    """``leaf`` at a random depth in dicts and lists, beside arbitrary JSON that may repeat it."""
    siblings = st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=8), children, max_size=3)
        ),
        max_leaves=8,
    )
    value = leaf
    for _ in range(draw(st.integers(0, 12))):
        others = draw(st.lists(siblings, max_size=2))
        if draw(st.booleans()):
            others.insert(draw(st.integers(0, len(others))), value)
            value = others
        else:
            keys = draw(st.lists(st.text(max_size=8), min_size=len(others), max_size=len(others)))
            value = {**dict(zip(keys, others, strict=True)), draw(st.text(max_size=8)): value}
    return value


SLOW_OR_FIXTURE = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None, suppress_health_check=SLOW_OR_FIXTURE)
@given(data=st.data(), email=st.emails())
def test_property_no_email_survives(reliability: Figures, data: st.DataObject, email: str) -> None:
    reliability.tried()
    text = data.draw(st.text(max_size=20)) + email + data.draw(st.text(max_size=20))
    value = data.draw(nested_around(text, JSON_SCALARS | st.just(text)))
    assert email not in json.dumps(ALL_ON.mask(value))


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None, suppress_health_check=SLOW_OR_FIXTURE)
@given(data=st.data(), card=card_numbers())
def test_property_no_card_survives(
    reliability: Figures, data: st.DataObject, card: tuple[str, str]
) -> None:
    reliability.tried()
    digits, written = card
    # Glued to other digits a card is just part of a longer number, so a space separates it.
    text = data.draw(st.text(max_size=20)) + " " + written + " " + data.draw(st.text(max_size=20))
    value = data.draw(nested_around(text, JSON_SCALARS | st.just(text)))
    dumped = json.dumps(ALL_ON.mask(value))
    assert digits not in dumped
    assert written not in dumped


def same_shape(masked: Any, original: Any) -> bool:
    """Masking keeps every key and every list position; only leaves change."""
    if isinstance(original, dict):
        return (
            isinstance(masked, dict)
            and list(masked) == list(original)
            and all(
                isinstance(masked[key], str) or same_shape(masked[key], item)
                for key, item in original.items()
            )
        )
    if isinstance(original, list):
        return (
            isinstance(masked, list)
            and len(masked) == len(original)
            and all(same_shape(m, o) for m, o in zip(masked, original, strict=True))
        )
    return True


@settings(
    max_examples=examples(200),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(value=JSON_VALUES)
def test_property_any_json_is_masked_without_raising(reliability: Figures, value: Any) -> None:
    reliability.tried()
    original = copy.deepcopy(value)
    masked = ALL_ON.mask(value)
    json.dumps(masked)
    assert value == original
    # The never-raise fallback must not be what makes this pass.
    assert masked != "[REDACTED]" or value == "[REDACTED]"
    assert same_shape(masked, value)
    off = masker(pii=False, customer=False, financial=False)
    assert off.mask(value) == value


@settings(max_examples=examples(200), deadline=None)
@given(texts=st.lists(st.text(max_size=40) | st.sampled_from(SAMPLE_TEXTS), max_size=6))
def test_property_the_text_cache_answers_what_masking_would(texts: list[str]) -> None:
    """Short strings are masked once and then answered from a cache: always the same answer,
    however often a string comes and whatever came before it."""
    for text in texts + texts:
        assert ALL_ON.mask_text(text) == ALL_ON._mask_text(text)
        assert ALL_ON.mask({"note": text}) == {"note": ALL_ON._mask_text(text)}


@pytest.mark.parametrize(
    "key", ["password", "api_key", "apiKey", "db_password", "access_token", "client_secret"]
)
def test_credentials_are_redacted_whole(key: str) -> None:
    """A password or an API key in an agent's input was stored as it was."""
    assert masker().mask({key: "hunter2-xyz", "product_id": "P1"}) == {
        key: "[REDACTED]",
        "product_id": "P1",
    }


def test_a_secret_key_inside_any_string_is_masked() -> None:
    """A Langfuse secret key in a free-text input or output was stored verbatim, and so was
    the secret this process was configured with, whatever its shape."""
    from config.redaction import register_credentials

    register_credentials("pk-lf-mask-test", "plain-secret-0123456789")
    masked = masker().mask(
        {"note": "retry with sk-lf-1234567890abcdef", "raw": "key=plain-secret-0123456789"}
    )
    assert masked == {"note": "retry with sk-lf-****cdef", "raw": "key=****6789"}
    # In any case, or percent-encoded: the pattern masked them, but the quick test before
    # it let mixed case through (stored unmasked).
    for written in (
        "Sk-Lf-1234abcd5678efgh",
        "SK-LF-1234ABCD5678EFGH",
        "sk%2Dlf%2D1234abcd5678efgh",
    ):
        assert "1234" not in str(masker().mask({"note": f"token {written}"})), written
    assert masker(pii=False).mask({"note": "sk-lf-1234567890abcdef"}) == {
        "note": "sk-lf-1234567890abcdef"  # masking switched off: the user's choice
    }


def test_a_deque_and_dict_views_are_masked_as_the_lists_they_are_written_as() -> None:
    """A deque and a dict's views were written as their text: a password under its key
    (in a deque's dict, in ``items()``) was masked as text only, and stored whole."""
    import collections

    from config.tracing import attributes as la

    values = [collections.deque([{"password": "hunter2"}]), {"password": "hunter2"}.items(),
              {"k": "bob@example.com"}.values(), {"bob@example.com": 1}.keys()]  # fmt: skip
    written = [la.serialize_io(masker().mask(value)) for value in values]
    assert written == [
        '[{"password": "[REDACTED]"}]', '[["password", "[REDACTED]"]]', '["[EMAIL]"]', '["[EMAIL]"]'
    ]  # fmt: skip
    assert la.serialize_io(collections.deque([1, 2])) == "[1, 2]"  # as the SDK writes a deque


def test_a_configured_secret_is_masked_in_every_form_it_travels_in() -> None:
    """Base64 of the secret alone, every character percent-encoded, JSON-escaped hyphens,
    and a key of another alphabet (``/``, ``+``, ``=``: masked up to its first ``/`` only,
    the rest stored) got through."""
    import base64
    import urllib.parse

    from config.redaction import redact_secrets, register_credentials

    plain, odd = "sk-lf-local-ed909fb2-1234", "sk-lf-Ab/Cd+Ef=Gh.Zq98765"
    register_credentials("pk-lf-forms", plain)
    register_credentials("pk-lf-odd", odd)
    forms = [
        base64.b64encode(plain.encode()).decode(),
        "".join(f"%{ord(c):02X}" for c in plain),
        "".join(f"%{ord(c):02x}" for c in plain),
        plain.replace("-", "\\u002d"),
        urllib.parse.quote(odd, safe=""),
        odd.replace("/", "\\/"),  # JSON's optional escape (PHP's json_encode writes it)
        odd.upper().replace("/", "\\/"),
        "sk-lf-aB/cD+eF=gH",  # mixed case (a "." ends the pattern: "sk-lf-..." is a hint)
        "SK-LF-LOCAL-ED909FB2-1234",
        plain.encode().hex(),  # hex-encoded: a card cut out of it, the rest stored
    ]
    for form in forms:
        masked = str(masker().mask({"note": f"key {form} end"}))
        assert form not in masked and masked.endswith(" end'}"), masked
        assert "ed909fb2" not in masked.lower() and "zq98765" not in masked.lower(), masked
        assert "cd+ef" not in masked.lower() and "Cd%2BEf" not in masked, masked
    assert redact_secrets("must look like sk-lf-...") == "must look like sk-lf-..."
    # A key with a dot (a self-hosted Langfuse's own): masked whole in the forms above too.
    dotted = "sk-lf-my.project/secret+1"
    register_credentials("pk-lf-dotted", dotted)
    for form in (urllib.parse.quote(dotted), dotted.title(), dotted.replace("-", "\\u002d"),
                 urllib.parse.quote(dotted, safe="").lower()):  # fmt: skip
        assert "project" not in redact_secrets(f"key {form} end").lower(), form


def test_enums_and_array_likes_are_masked_as_the_values_they_are_written_as() -> None:
    """They are recorded as their value and their list; masking passed them by unmasked."""
    import enum

    class Owner(enum.Enum):
        ALICE = "alice@example.com"

    class Cards:
        def tolist(self) -> list[str]:
            return ["bob@example.com"]

    assert masker().mask({"owner": Owner.ALICE, "cards": Cards()}) == {
        "owner": "[EMAIL]",
        "cards": ["[EMAIL]"],
    }


def test_keys_bytes_and_plain_objects_are_masked_as_they_are_written() -> None:
    """A dict key, bytes (written as their str()) and an object that is neither a dataclass
    nor a model (written as its public attributes) were passed by and written whole: an
    e-mail address as a key, a card number in bytes or in an object's attribute."""
    from config.tracing.attributes import serialize_io

    class Customer:
        def __init__(self) -> None:
            self.email = "bob@example.com"
            self.note = "card 4111111111111111"
            self._secret = "never written"

    value = {
        "raw": b"from eve@example.com",
        "counts": {"frank@example.com": 2, "plain": 1},
        "buyer": Customer(),
    }
    masked = masker().mask(value)
    assert masked == {
        "raw": "b'from [EMAIL]'",
        "counts": {"[EMAIL]": 2, "plain": 1},
        "buyer": {"email": "[REDACTED]", "note": "card [CARD]"},
    }
    written = serialize_io(masked)
    for leaked in ("eve@", "frank@", "bob@", "4111111111111111"):
        assert leaked not in written
    # Twice: the second time from the key cache.
    assert masker().mask({"frank@example.com": {"x": "y"}}) == {"[EMAIL]": {"x": "y"}}
    repeated = masker()
    assert repeated.mask({"a@b.co": 1}) == repeated.mask({"a@b.co": 1}) == {"[EMAIL]": 1}
    # What is not masked is written as before.
    assert serialize_io(masker().mask({"k": b"plain"})) == serialize_io({"k": b"plain"})


def test_classes_float_cards_encoded_emails_and_memoryviews_are_masked_as_written() -> None:
    """Written with what they hold, these were passed by whole: a class (by its public
    attributes), a card number as a float (``4111111111111111.0``), an e-mail address
    percent-encoded in a URL, a memoryview (as its list of byte values)."""
    from config.tracing.attributes import serialize_io

    class Settings:
        admin_email = "leak.person@example.com"
        note = "card 4111 1111 1111 1111"

    value = {
        "settings": Settings,
        "card": 4.111111111111111e15,
        "cards": [4111111111111111.0],
        "price": 19.99,
        "large": 1e20,
        "link": "https://shop.example/unsubscribe?email=leak.person%40example.com&list=2",
        "raw": memoryview(b"from eve@example.com"),
        "view": memoryview(b"hello"),  # nothing masked: its items, as the SDK writes it
        "exponent": 2.99792458e17,  # written 2.99792458e+17: no card to read there
    }
    masked = ALL_ON.mask(value)
    assert masked == {
        "settings": {"admin_email": "[REDACTED]", "note": "card [CARD]"},
        "card": "[CARD]",
        "cards": ["[CARD]"],
        "price": 19.99,
        "large": 1e20,
        "link": "https://shop.example/unsubscribe?email=[EMAIL]&list=2",
        "raw": "b'from [EMAIL]'",
        "view": [104, 101, 108, 108, 111],
        "exponent": 2.99792458e17,
    }
    written = serialize_io(masked)
    for leaked in ("leak.person", "eve@", "4111111111111111", "1111 1111"):
        assert leaked not in written
    assert ALL_ON.mask("100%40 of them") == "100%40 of them"
    assert ALL_ON.mask("?email=bob%40example%2Ecom") == "?email=[EMAIL]"


def test_objects_that_link_to_each_other_are_masked_in_bounded_time() -> None:
    """Masked by their attributes without a bound, a class holding a logger (the logger, its
    manager, every other logger, ...) or a class referring to itself twice never finished:
    the traced call never returned."""
    import logging

    for index in range(30):
        logging.getLogger(f"masking-test-{index}")

    class Agent:
        log = logging.getLogger("masking-test")
        contact = "ann@example.com"

    class Loop:
        pass

    Loop.x = Loop  # type: ignore[attr-defined]
    Loop.y = Loop  # type: ignore[attr-defined]
    masked = ALL_ON.mask({"agent": Agent, "loop": Loop, "logger": logging.getLogger("x")})
    assert masked["loop"] == {"x": "[TRUNCATED]", "y": "[TRUNCATED]"}
    # The bound is per value, whatever holds the objects (it was per top-level object).
    plain = [Loop() for _ in range(MAX_OBJECTS + 10)]
    assert ALL_ON.mask(plain).count("[TRUNCATED]") == 10
    assert "[TRUNCATED]" not in ALL_ON.mask([Loop() for _ in range(1500)])  # data is whole
    assert masked["agent"]["contact"] == "[EMAIL]"
    assert "ann@example.com" not in json.dumps(masked, default=str)


def test_masked_keys_never_lose_a_value_and_int_keys_are_masked_as_written() -> None:
    """Two e-mail addresses as keys both became "[EMAIL]", the second value replacing the
    first; a card number as an int key was written whole (JSON writes it as its digits),
    and once seen, the same number as a text key was then kept whole too."""
    shared = masker()
    assert shared.mask({4111111111111111: "int key"}) == {"[CARD]": "int key"}
    assert shared.mask({"4111111111111111": "text key"}) == {"[CARD]": "text key"}
    assert masker().mask({"alice@example.com": 1, "bob@example.com": 2}) == {
        "[EMAIL]": 1,
        "[EMAIL] (2)": 2,
    }
    assert masker().mask({"note": "x", "carol@example.com": 1, "[EMAIL] (2)": 0}) == {
        "note": "x",
        "[EMAIL]": 1,
        "[EMAIL] (2)": 0,
    }
    assert masker().mask({"raw": b"x@y.com"}) == {"raw": "b'[EMAIL]'"}


def test_the_marks_of_e_mail_labels_never_overlap_their_letters() -> None:
    """The marks' class held whole script blocks, letters too: a label could match each Thai
    or Hindi letter two ways, and masking 41 characters after an "@" took 9 s, a replay of
    one such event for ever. Marks only, and a text of such letters is masked at once."""
    from config.tracing.masking import _MARKS

    marks = re.compile(f"[{_MARKS}]")
    letters = re.compile(r"[^\W_]")
    in_blocks = [chr(code) for code in range(0x0300, 0x1100) if marks.match(chr(code))]
    assert in_blocks and not [char for char in in_blocks if letters.match(char)]
    text = "ติดต่อ@" + "สวัสดีครับ" * 20 + " संपर्क@" + "नमस्तेदुनिया" * 20
    assert ALL_ON.mask_text(text) == text
