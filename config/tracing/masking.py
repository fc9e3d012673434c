"""Masking of personal, customer and financial data before any trace data leaves the process.

``DataMasker`` applies the three switches of ``DataMaskingConfig`` to an observation's input,
output or metadata and returns a masked copy:

- ``mask_pii``: e-mail addresses, phone numbers and payment card numbers (Luhn-checked,
  with a card's leading digit) inside any string become ``[EMAIL]``, ``[PHONE]`` and
  ``[CARD]``; values under obviously personal keys (``email``, ``phone``, ``address``,
  ``ssn``, ...) and under credentials' keys (``password``, ``api_key``, ``*_token``, ...)
  become ``[REDACTED]``, and Langfuse secret keys (or the keys this process was configured
  with) inside any string are masked as everywhere else (``sk-lf-****abcd``).
- ``mask_customer_data``: values under customer-identifying keys (``customer_id``,
  ``user_id``, ``customer_*``, ...) and identifiers such as ``CUST-8812`` or ``C-123456``
  inside any string become ``[CUSTOMER]``.
- ``mask_financial_data``: values under keys naming a cost, margin, revenue, profit, income,
  salary or budget become ``[FINANCIAL]``. Prices are not masked: they are what the pricing
  agent decides, and a trace without them is useless.

This runs on every traced observation, so the regular expressions are compiled once, key
names are classified once (cached), and strings that cannot hold a match skip the regex work.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import enum
import re
import threading
import unicodedata
from collections import deque
from collections.abc import ItemsView, KeysView, Mapping, ValuesView
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

from config.redaction import contains_secret, redact_secrets
from config.tracing.attributes import JSON_KEY_TYPES

if TYPE_CHECKING:
    from config.settings import DataMaskingConfig

EMAIL_MASK: Final = "[EMAIL]"
PHONE_MASK: Final = "[PHONE]"
CARD_MASK: Final = "[CARD]"
REDACTED_MASK: Final = "[REDACTED]"
CUSTOMER_MASK: Final = "[CUSTOMER]"
FINANCIAL_MASK: Final = "[FINANCIAL]"
TRUNCATED_MASK: Final = "[TRUNCATED]"

# Containers nested deeper than this are replaced rather than walked: a self-referencing or
# pathological payload must not cost unbounded time or hit the recursion limit.
MAX_DEPTH: Final = 64
# Objects masked by their attributes in one value (see DataMasker._mask_attributes): far
# more than data holds (a list of 1,500 items lost its last 500 at 1,000), far fewer than a
# graph of linked objects reaches (a logger: its manager, every logger, their handlers).
MAX_OBJECTS: Final = 10_000
# The objects being masked by their attributes, per thread: the path to the current one.
_OBJECTS = threading.local()

# --- key names -----------------------------------------------------------------------------

_KEY_PII: Final = 1
_KEY_CUSTOMER: Final = 2
_KEY_FINANCIAL: Final = 4

_PII_KEYS: Final = frozenset(
    {
        "email",
        "e_mail",
        "email_address",
        "phone",
        "phone_number",
        "telephone",
        "mobile",
        "mobile_number",
        "card_number",
        "credit_card",
        "credit_card_number",
        "ssn",
        "address",
        "ip_address",
        # Credentials: never a secret in a stored trace (their values, whatever their shape).
        "password",
        "passwd",
        "secret",
        "secret_key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "private_key",
        "client_secret",
    }
)
# Compound names (``billing_address``, ``contact_email``) are as personal as the bare ones.
_PII_KEY_SUFFIXES: Final = (
    "_email",
    "_e_mail",
    "_phone",
    "_phone_number",
    "_mobile",
    "_address",
    "_card_number",
    "_ssn",
    "_password",
    "_secret",
    "_secret_key",
    "_api_key",
    "_token",
    "_private_key",
)
_CUSTOMER_KEYS: Final = frozenset(
    {
        "customer",
        "customer_id",
        "customerid",
        "customer_name",
        "customer_email",
        "user_id",
        "userid",
        "user_name",
        "username",
        "loyalty_id",
        "account_id",
    }
)
_FINANCIAL_WORDS: Final = re.compile("cost|margin|revenue|profit|income|salary|budget")
# camelCase and PascalCase boundaries (``customerId``, ``IPAddress``), so one spelling list
# serves every naming style.
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM: Final = re.compile(r"[^a-z0-9]+")


_KEY_CACHE_SIZE: Final = 4096
_TEXT_CACHE_SIZE: Final = 4096
_CACHED_TEXT_CHARS: Final = 256  # longer texts (reasoning, notes) are masked each time
# Marks a key not yet in a masker's cache (None is a cached "not masked").
_UNKNOWN: Final = "\0unknown"


@lru_cache(maxsize=_KEY_CACHE_SIZE)
def _classify_key(key: str) -> int:
    """The categories (``_KEY_*`` bits) a key name belongs to; cached, keys repeat a lot."""
    name = _NON_ALNUM.sub("_", _CAMEL_BOUNDARY.sub("_", key).lower()).strip("_")
    flags = 0
    if name in _PII_KEYS or name.endswith(_PII_KEY_SUFFIXES):
        flags |= _KEY_PII
    if name in _CUSTOMER_KEYS or name.startswith("customer_"):
        flags |= _KEY_CUSTOMER
    if _FINANCIAL_WORDS.search(name) is not None:
        flags |= _KEY_FINANCIAL
    return flags


# --- text patterns -------------------------------------------------------------------------


def _combining_marks() -> str:
    r"""A character class's ranges of the combining marks (categories Mn, Mc, Me) of the
    scripts written with them: the vowel signs of Indic and Thai words (डाटामेल, ตัวอย่าง),
    diacritics and points. Marks only, never letters or digits: a class overlapping
    ``[^\W_]`` let a label match each letter two ways, and masking a short Thai text with an
    "@" took seconds, longer ones for ever."""
    blocks = (
        (0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05C7), (0x0610, 0x061A),
        (0x064B, 0x065F), (0x0670, 0x0670), (0x06D6, 0x06ED), (0x0900, 0x0DFF),
        (0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF),
        (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF), (0x3099, 0x309A),
        (0xFE20, 0xFE2F),
    )  # fmt: skip
    marks = [
        code
        for first, last in blocks
        for code in range(first, last + 1)
        if unicodedata.category(chr(code)).startswith("M")
    ]
    ranges: list[list[int]] = []
    for code in marks:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in ranges)


_MARKS: Final = _combining_marks()
_EMAIL_LOCAL = rf"[\w{_MARKS}.!#$%&'*+/=?^`{{|}}~-]"
# The lookbehind makes a match start only where a local part starts: inside a long word the
# search would otherwise rescan the word from every position.
# Labels of letters (any script, with their marks), digits and hyphens, no "_". The top
# level is ASCII letters, punycode (xn--p1ai) or letters of another script only (.рф, .中国,
# .भारत): never both, so the text after an address is not taken for its domain
# (``bob@example.com的账单``).
_DOMAIN_LABEL = rf"[^\W_](?:[^\W_]|[{_MARKS}]|-)*"
_EMAIL: Final = re.compile(
    rf"(?<!{_EMAIL_LOCAL}){_EMAIL_LOCAL}+@(?:{_DOMAIN_LABEL}\.)+"
    rf"(?:[Xx][Nn]--[A-Za-z0-9-]+|[A-Za-z]{{2,63}}|(?:(?![A-Za-z])(?:[^\W\d_]|[{_MARKS}])){{2,63}})"
)
# Percent-encoded, in a URL's query: its local part stops at the URL's own punctuation
# (``?email=``), and may hold other escapes (``bob%2Bnews%40example.com``).
_EMAIL_PERCENT_ENCODED: Final = re.compile(
    r"(?<![\w.%+-])[\w.%+-]+%40[A-Za-z0-9-]+(?:(?:\.|%2[Ee])[A-Za-z0-9-]+)+"
)
_CUSTOMER_ID: Final = re.compile(
    r"(?<![A-Za-z0-9])(?:cust[-_]?[0-9]+|c-[0-9]{5,})", re.IGNORECASE | re.ASCII
)
# Anything that could be a phone or card number has 8+ characters of digits and separators.
_NUMBER_LIKE: Final = re.compile("[0-9(+][0-9 \u00a0().+-]{7,}")
# A maximal run of digits joined by single spaces or dashes, holding 14+ digits; the
# lookbehinds start it at the run's first digit only, so a failed run is scanned once.
# A no-break space (what word processors put between groups) separates as a space does.
_DIGIT_RUN: Final = re.compile("(?<![0-9])(?<![0-9][ \u00a0-])[0-9](?:[ \u00a0-]?[0-9]){13,}")
_DIGIT_GROUP: Final = re.compile(r"[0-9]+")
_PHONE: Final = re.compile(
    r"""
    (?<![\w+])(?<!\w[.-])                   # not the tail of a word, an id or a number
    (?<![0-9]:)                             # nor of a time (08:15:00.250000-05:00)
    (?:
        \+[0-9]+                            # +country code ...
        (?:[ .\u00a0-]?\([0-9]+\)[ .\u00a0-]?[0-9]+)?   # ... an optional (area) or (0) ...
        (?:[ .\u00a0-][0-9]+)*                    # ... groups, each after one separator
      | \([0-9]{2,5}\)[ .\u00a0-]?[0-9]+(?:[ .\u00a0-][0-9]+)*  # (020) 7946 0958
      | 0[0-9]{1,4}(?:[ .\u00a0-][0-9]+)+                  # 020 7946 0958, 06 12 34 56 78
      | (?:1[ .\u00a0-])?[1-9][0-9]{2}[ .\u00a0-][0-9]{3}[ .\u00a0-][0-9]{4}  # 415-555-0134
    )
    (?!\w)(?![.-][0-9])                     # not followed by more of a number or id
    (?!(?<=[ T\u00a0][0-9]):[0-9]{2})(?!(?<=[ T\u00a0][0-9]{2}):[0-9]{2})  # nor a date's hour
                                            # (01.12.2026 10:30; +1 415 555 0134:1 is one)
    """,
    re.VERBOSE | re.ASCII,
)
# Every repeated group needs its separator, so a failing match is given up without the
# exponential backtracking of patterns such as (?:[ -]?[0-9]+)*.


def _has_digit(text: str) -> bool:
    """Whether ``text`` holds an ASCII digit.

    Ten substring tests run at memchr speed; a regex character class costs several times
    more on the long reasoning texts that make up most of the traced bytes.
    """
    return (
        "0" in text
        or "1" in text
        or "2" in text
        or "3" in text
        or "4" in text
        or "5" in text
        or "6" in text
        or "7" in text
        or "8" in text
        or "9" in text
    )


# 14: a 13-digit number is a retail barcode (EAN-13, the products' ids) far more often than
# one of the old 13-digit Visa cards, and masked as one it hid the product.
_CARD_MIN_DIGITS: Final = 14
_CARD_MAX_DIGITS: Final = 19


# Luhn doubles every second digit from the right and sums the digits of the product:
# 0->0, 1->2, ..., 5->1 (10), ..., 9->9 (18).
_LUHN_DOUBLED: Final = bytes.maketrans(b"0123456789", b"0246813579")


def _luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of ASCII digits.

    Summed as bytes (each byte is 48 + the digit): C-level loops, since this runs for every
    candidate number.
    """
    backwards = digits.encode("ascii")[::-1]
    total = sum(backwards[::2]) + sum(backwards[1::2].translate(_LUHN_DOUBLED))
    return (total - 48 * len(backwards)) % 10 == 0


def _is_card_number(digits: str) -> bool:
    """True for 14-19 digits that pass Luhn and start like a payment card.

    The leading digit (2-6, or 1 for the 15-digit UATP cards) keeps millisecond timestamps
    and most numeric ids out: one in ten random numbers passes Luhn on its own.
    """
    if not _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS:
        return False
    first = digits[0]
    if not ("2" <= first <= "6" or (first == "1" and len(digits) == 15)):
        return False
    return _luhn_valid(digits)


def _card_end(groups: list[str], first: int) -> int:
    """The last group of a card number starting at group ``first``, or -1 if there is none.

    A card is one unbroken group, or a first group of four followed by groups of three to
    six (4-4-4-4, 4-6-5, 4-6-4, 4-4-4-4-3): space-separated lists of quantities are not
    cards, and the layout rule also lets most groups be rejected without any Luhn work.
    """
    size = len(groups[first])
    if size >= _CARD_MIN_DIGITS:
        return first if _is_card_number(groups[first]) else -1
    if size != 4:
        return -1
    digits = groups[first]
    for last in range(first + 1, len(groups)):
        group = groups[last]
        if not 3 <= len(group) <= 6:
            return -1
        digits += group
        if len(digits) > _CARD_MAX_DIGITS:
            return -1
        if len(digits) >= _CARD_MIN_DIGITS and _is_card_number(digits):
            return last
    return -1


# Ids whose digits are no card: a uuid, or a word of 16, 24, 32, 40 or 64 hex digits holding
# a hex letter (span and trace ids, object ids, digests). Cards were cut out of event ids;
# sparing any word with a hex letter near the digits let ``4111111111111111-cafe`` through.
_HEX_ID: Final = re.compile(
    r"(?<![0-9A-Za-z-])"
    r"(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|(?=[0-9a-fA-F]*[a-fA-F])(?:[0-9a-fA-F]{64}|[0-9a-fA-F]{40}|[0-9a-fA-F]{32}"
    r"|[0-9a-fA-F]{24}|[0-9a-fA-F]{16}))"
    r"(?![0-9A-Za-z-])"
)


class _HexIds:
    """The spans of a text's hex ids, found once and only when a card candidate asks (most
    texts holding digits have none: a scan of each cost the replay a few per cent)."""

    __slots__ = ("_ends", "_starts", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts: list[int] = []
        self._ends: list[int] | None = None

    def overlap(self, start: int, end: int) -> bool:
        """Whether ``start:end`` of the text overlaps one of its hex ids."""
        if self._ends is None:
            self._ends = []
            for found in _HEX_ID.finditer(self._text):
                self._starts.append(found.start())
                self._ends.append(found.end())
        # The ids do not overlap, so their ends are in order too: the first id ending after
        # ``start`` is the only one that can overlap (a text of many cards and ids stays linear).
        index = bisect.bisect_right(self._ends, start)
        return index < len(self._ends) and self._starts[index] < end


def _span(run: re.Match[str], group: re.Match[str]) -> tuple[int, int]:
    """Where a group of the run's digits is in the whole text."""
    return run.start() + group.start(), run.start() + group.end()


def _card_spans(match: re.Match[str], hex_ids: _HexIds) -> list[tuple[int, int]]:
    """Where the card numbers are in one run of digit groups (none inside a hex id), in the
    run.

    A card can sit in a longer run ("order 12 4111 1111 1111 1111"), so each group is tried
    as the start of a card, left to right; digits are never split inside a group.
    """
    found = list(_DIGIT_GROUP.finditer(match.group()))
    groups = [group.group() for group in found]
    spans: list[tuple[int, int]] = []
    index = 0
    while index < len(groups):
        last = _card_end(groups, index)
        if last < 0 or hex_ids.overlap(_span(match, found[index])[0], _span(match, found[last])[1]):
            index += 1
            continue
        spans.append((found[index].start(), found[last].end()))
        index = last + 1
    return spans


def _mask_card_run(match: re.Match[str], hex_ids: _HexIds) -> str:
    """One run of digit groups with its card numbers replaced."""
    return _replaced(match.group(), _card_spans(match, hex_ids), CARD_MASK)


def _replaced(text: str, spans: list[tuple[int, int]], mask: str) -> str:
    """``text`` with each of the ordered, separate ``spans`` replaced by ``mask``."""
    if not spans:
        return text
    pieces: list[str] = []
    kept_from = 0
    for start, end in spans:
        pieces.append(text[kept_from:start])
        pieces.append(mask)
        kept_from = end
    pieces.append(text[kept_from:])
    return "".join(pieces)


def _mask_numbers(text: str) -> str:
    """``text`` with its card and phone numbers masked (ASCII digits)."""
    if _NUMBER_LIKE.search(text) is None:
        return text
    # Cards first: a spaced card number must not be taken for a phone number.
    hex_ids = _HexIds(text)
    text = _DIGIT_RUN.sub(lambda run: _mask_card_run(run, hex_ids), text)
    return _PHONE.sub(_mask_phone, text)


def _mask_numbers_read_as_ascii(text: str) -> str:
    """``text`` with its card and phone numbers masked, digits of any script and groups
    separated by any no-break or thin space read as ASCII digits and a no-break space.

    They are found in a copy of the text translated character for character (so of the same
    length) and masked at the same places in the text itself, the rest left as written.
    """
    shadow = text.translate(_NUMBER_FORMS)
    if _NUMBER_LIKE.search(shadow) is None:
        return text
    hex_ids = _HexIds(shadow)
    cards = [
        (run.start() + start, run.start() + end)
        for run in _DIGIT_RUN.finditer(shadow)
        for start, end in _card_spans(run, hex_ids)
    ]
    shadow, text = _replaced(shadow, cards, CARD_MASK), _replaced(text, cards, CARD_MASK)
    phones = [
        found.span() for found in _PHONE.finditer(shadow) if _mask_phone(found) != found.group()
    ]
    return _replaced(text, phones, PHONE_MASK)


# What separates digit groups besides ASCII's space, dash, dot and parentheses: spaces of
# any width (U+202F is what French number formatting puts between groups, U+3000 the
# ideographic space) and word joiners read as U+00A0; hyphens and minus signs (U+2011, the
# full-width U+FF0D) as "-"; full-width parentheses, plus and dot as ASCII's.
_NUMBER_SPACES: Final = "\u2000-\u200a\u202f\u205f\u2060\u3000\ufeff"
_NUMBER_PUNCTUATION: Final = {
    **dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2212\ufe63\uff0d"), ord("-")),
    ord("\uff08"): ord("("),
    ord("\uff09"): ord(")"),
    ord("\uff0b"): ord("+"),
    ord("\uff0e"): ord("."),
}


class _AsciiNumberForms(dict[int, int]):
    """A ``str.translate`` table: a digit of any script (full-width, Arabic-Indic) to its
    ASCII digit, another space between groups to U+00A0, other hyphens and full-width
    punctuation of numbers to ASCII's (``_NUMBER_SPACES``, ``_NUMBER_PUNCTUATION``), anything
    else to itself. Filled as characters are met."""

    def __missing__(self, code: int) -> int:
        char = chr(code)
        value = unicodedata.decimal(char, None)
        if value is not None:
            translated = ord("0") + value
        elif _NUMBER_SPACE.match(char):
            translated = 0xA0
        else:
            translated = _NUMBER_PUNCTUATION.get(code, code)
        if len(self) < _NUMBER_FORMS_SIZE:
            self[code] = translated
        return translated


_NUMBER_FORMS_SIZE: Final = 4096
_NUMBER_FORMS: Final = _AsciiNumberForms()
_NUMBER_SPACE: Final = re.compile(f"[{_NUMBER_SPACES}]")
# Digits that are not ASCII, and the other spaces and punctuation of digit groups.
_OTHER_NUMBER_FORMS: Final = re.compile(
    f"(?![0-9])\\d|[{_NUMBER_SPACES}\u2010\u2011\u2012\u2212\ufe63\uff08\uff09\uff0b\uff0d\uff0e]"
)


def _mask_phone(match: re.Match[str]) -> str:
    """Replace a phone-shaped match that has a phone's number of digits."""
    text = match.group()
    digits = sum(char.isdigit() for char in text)
    # E.164 allows at most 15 digits; national numbers with fewer than 9 are mostly codes.
    minimum = 8 if text[0] == "+" else 9
    return PHONE_MASK if minimum <= digits <= 15 else text


_FLOAT_DIGITS_LIMIT: Final = 1e16  # repr() writes floats below this with all their digits
_CARD_INT_MIN: Final = 10 ** (_CARD_MIN_DIGITS - 1)
_CARD_INT_LIMIT: Final = 10**_CARD_MAX_DIGITS


def _free_key(key: str, masked: dict[Any, Any], original: Mapping[Any, Any]) -> str:
    """``key``, or ``key (2)``, ``key (3)``, ... when a value is already kept under it or the
    mapping has that key itself: two e-mail addresses as keys both became "[EMAIL]", and
    the second value replaced the first."""
    if key not in masked and key not in original:
        return key
    number = 2
    while f"{key} ({number})" in masked or f"{key} ({number})" in original:
        number += 1
    return f"{key} ({number})"


class _MaskedKey:
    """A dict key that holds personal data, masked (``{"bob@example.com": 2}`` becomes
    ``{"[EMAIL]": 2}``; see ``_free_key`` for two keys masked alike), and the label of the
    values under it."""

    __slots__ = ("key", "label")

    def __init__(self, key: str, label: str | None) -> None:
        self.key = key
        self.label = label


class DataMasker:
    """Masks trace data according to a ``DataMaskingConfig``; one instance serves all calls."""

    __slots__ = (
        "_customer",
        "_enabled",
        "_key_labels",
        "_labels_by_key",
        "_masked_texts",
        "_pii",
        "_text",
    )

    def __init__(self, config: DataMaskingConfig) -> None:
        """Read the three switches once and precompute the label for every key category."""
        self._pii = bool(config.mask_pii)
        self._customer = bool(config.mask_customer_data)
        financial = bool(config.mask_financial_data)
        self._text = self._pii or self._customer
        self._enabled = self._text or financial
        labels: list[str | None] = []
        for flags in range(8):
            label: str | None = None
            # A key such as customer_email is both: the customer label says more.
            if self._customer and flags & _KEY_CUSTOMER:
                label = CUSTOMER_MASK
            elif self._pii and flags & _KEY_PII:
                label = REDACTED_MASK
            elif financial and flags & _KEY_FINANCIAL:
                label = FINANCIAL_MASK
            labels.append(label)
        self._key_labels: tuple[str | None, ...] = tuple(labels)
        # The final label per key name: one dict lookup per key on the hot path.
        self._labels_by_key: dict[str, str | _MaskedKey | None] = {}
        # Short strings masked before (agent names, ids, event types repeat in every trace).
        self._masked_texts: dict[str, str] = {}

    @property
    def enabled(self) -> bool:
        """False when all three switches are off: callers can skip masking altogether."""
        return self._enabled

    def mask(self, value: Any) -> Any:
        """Return a masked deep copy of a JSON-like value; the input is never modified.

        Dict keys are kept (those JSON cannot write, such as tuples, as their ``str()``;
        text keys masked as text is) and their values masked; lists and sets come back as
        lists, tuples as tuples; dataclasses, pydantic models and other objects as masked
        dicts; bytes and the like as their masked ``str()``. Containers nested deeper than
        ``MAX_DEPTH`` become ``"[TRUNCATED]"``. Never raises.
        """
        _OBJECTS.count = 0  # MAX_OBJECTS is per value
        try:
            return self._mask_value(value, 0)
        except Exception:
            # Only foreign code can fail here (a key's __str__, a mapping's items(), a dict
            # changed by another thread): tracing must go on, and nothing may leak.
            return REDACTED_MASK

    def mask_text(self, text: str) -> str:
        """Mask the e-mail addresses, phone, card and customer numbers inside ``text``."""
        if len(text) > _CACHED_TEXT_CHARS:
            return self._mask_text(text)
        masked = self._masked_texts.get(text)
        if masked is None:
            masked = self._mask_text(text)
            # Bounded: strings built from data (ids, numbers) must not grow it forever.
            if len(self._masked_texts) >= _TEXT_CACHE_SIZE:
                self._masked_texts.clear()
            self._masked_texts[text] = masked
        return masked

    def _mask_text(self, text: str) -> str:
        if self._pii and contains_secret(text):  # a Langfuse key, or this process's own
            text = redact_secrets(text)
        if self._pii and "@" in text:
            text = _EMAIL.sub(EMAIL_MASK, text)
        if self._pii and "%40" in text:  # in a URL (?email=bob%40example.com)
            text = _EMAIL_PERCENT_ENCODED.sub(EMAIL_MASK, text)
        if not self._text:
            return text
        # Digits of other scripts are rare: looked for only in text that is not ASCII.
        other_forms = not text.isascii() and _OTHER_NUMBER_FORMS.search(text) is not None
        if not other_forms and not _has_digit(text):
            return text
        if self._customer:
            lowered = text.lower()
            if "cust" in lowered or "c-" in lowered:
                text = _CUSTOMER_ID.sub(CUSTOMER_MASK, text)
        if self._pii:
            text = _mask_numbers_read_as_ascii(text) if other_forms else _mask_numbers(text)
        return text

    def _mask_value(self, value: Any, depth: int) -> Any:
        # Exact type checks first: they are the common case and cheaper than isinstance.
        kind = type(value)
        if kind is str:
            return self.mask_text(value) if self._text else value
        if kind is dict:
            return self._mask_mapping(value, depth)
        if kind is list:
            return self._mask_items(value, depth)
        if value is None or kind is bool:
            return value
        if kind is float:
            return self._mask_float(value)
        if kind is int:
            return self._mask_int(value)
        return self._mask_other(value, depth)

    def _mask_mapping(self, value: Mapping[Any, Any], depth: int) -> Any:
        if depth >= MAX_DEPTH:
            return TRUNCATED_MASK
        labels = self._labels_by_key
        masked: dict[Any, Any] = {}
        mask_text = self.mask_text if self._text else None
        for key, item in value.items():
            # The cached label inline (a call per key shows at this rate); the rest classifies.
            label = labels.get(key, _UNKNOWN) if type(key) is str else _UNKNOWN
            if label is _UNKNOWN:
                if type(key) is not str and not isinstance(key, JSON_KEY_TYPES):
                    # JSON has no tuple keys (one dropped the whole observation): the mapping
                    # again, such keys written as their str().
                    return self._mask_mapping(
                        {
                            k if isinstance(k, JSON_KEY_TYPES) else str(k): v
                            for k, v in value.items()
                        },
                        depth,
                    )
                label = self._label_for_key(key)
            if label is not None:
                if type(label) is _MaskedKey:  # a key holding personal data: masked too
                    masked[_free_key(label.key, masked, value)] = (
                        self._mask_value(item, depth + 1) if label.label is None else label.label
                    )
                    continue
                masked[key] = label
            # The common leaves are handled inline: a call per value shows up at this rate.
            elif type(item) is str:
                masked[key] = item if mask_text is None else mask_text(item)
            elif (
                item is None
                or type(item) is bool
                or (type(item) is float and -_CARD_INT_MIN < item < _CARD_INT_MIN)
            ):
                masked[key] = item
            else:
                masked[key] = self._mask_value(item, depth + 1)
        return masked

    def _label_for_key(self, key: Any) -> Any:
        """The mask of the values under ``key`` (None: masked as any value), or a
        ``_MaskedKey`` when the key itself holds personal data (an e-mail address as a key)."""
        name = key if type(key) is str else str(key)
        label = self._labels_by_key.get(name, _UNKNOWN)
        if label is _UNKNOWN:
            label = self._key_labels[_classify_key(name)]
            # The key as JSON writes it (an int as its digits): a card number as an int key
            # was written whole, and a text key equal to it then found its "not masked".
            if self._text and self.mask_text(name) != name:
                label = _MaskedKey(self.mask_text(name), label)
            # Bounded: keys built from data (ids as keys) must not grow the cache forever.
            if len(self._labels_by_key) < _KEY_CACHE_SIZE:
                self._labels_by_key[name] = label
        return label

    def _mask_items(self, value: Any, depth: int) -> Any:
        if depth >= MAX_DEPTH:
            return TRUNCATED_MASK
        return [self._mask_value(item, depth + 1) for item in value]

    def _mask_int(self, value: int) -> Any:
        # Only an int with a card's number of digits can be a card number.
        if (
            self._pii
            and _CARD_INT_MIN <= abs(value) < _CARD_INT_LIMIT
            and _is_card_number(str(abs(int(value))))
        ):
            return CARD_MASK
        return value

    def _mask_memoryview(self, value: memoryview, depth: int) -> Any:
        """Written as its list of items (as the SDK writes it), unless its bytes hold what is
        masked: a list of byte values is still readable (an e-mail, byte by byte), so it
        is then written as masked bytes."""
        text = str(value.tobytes())
        masked = self.mask_text(text[2:-1]) if self._text else text[2:-1]
        if masked != text[2:-1]:
            return text[:2] + masked + text[-1]
        return self._mask_value(value.tolist(), depth + 1)

    def _mask_attributes(self, value: Any, depth: int) -> Any:
        """An object (or a class) by its public attributes, as the serializer writes it.

        Objects link to each other (a logger to its manager, the manager to every logger):
        one already being masked on the way here is ``[TRUNCATED]``, and so is every object
        past ``MAX_OBJECTS`` in one value, or masking such a value never ended.
        """
        path = _OBJECTS.__dict__.setdefault("path", set())
        count = _OBJECTS.__dict__.get("count", 0)
        if id(value) in path or count >= MAX_OBJECTS:
            return TRUNCATED_MASK
        _OBJECTS.count = count + 1
        path.add(id(value))
        try:
            public = {k: v for k, v in vars(value).items() if not k.startswith("_")}
            return self._mask_mapping(public, depth + 1)
        finally:
            path.discard(id(value))

    def _mask_float(self, value: float) -> Any:
        # A card number held as a float (``4.111111111111111e15``) is written with its
        # digits (``4111111111111111.0``): masked as that int would be. From 1e16 on a
        # float is written with an exponent (``2.99792458e+17``): no card to be read there.
        if _CARD_INT_MIN <= abs(value) < _FLOAT_DIGITS_LIMIT and value.is_integer():
            return CARD_MASK if self._mask_int(int(value)) == CARD_MASK else value
        return value

    def _mask_other(self, value: Any, depth: int) -> Any:
        """Subclasses of the JSON types, other containers, dataclasses and pydantic models."""
        if isinstance(value, str):
            return self.mask_text(value) if self._text else value
        if isinstance(value, bool):
            return value
        if isinstance(value, float):
            return self._mask_float(value)
        if isinstance(value, int):
            return self._mask_int(value)
        if isinstance(value, Mapping):
            return self._mask_mapping(value, depth)
        if isinstance(value, tuple):
            masked = self._mask_items(value, depth)
            return tuple(masked) if isinstance(masked, list) else masked
        if isinstance(value, list | set | frozenset):
            return self._mask_items(value, depth)
        if not self._enabled:
            return value
        # Written as lists (attributes._json_default): masked as such, a pair's key counting.
        if isinstance(value, deque | KeysView | ValuesView):
            return self._mask_items(list(value), depth)
        if isinstance(value, ItemsView):
            pairs = self._mask_mapping(dict(value), depth)
            return [[k, v] for k, v in pairs.items()] if isinstance(pairs, dict) else pairs
        try:
            # Written as their value and their list (attributes._json_default): masked as such.
            if isinstance(value, enum.Enum):
                return self._mask_value(value.value, depth + 1)
            if isinstance(value, memoryview):
                return self._mask_memoryview(value, depth)
            if callable(getattr(type(value), "tolist", None)):
                return self._mask_value(value.tolist(), depth + 1)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return self._mask_value(dataclasses.asdict(value), depth + 1)
            # Looked up on the type: an object that makes up attributes (a test's MagicMock)
            # answered model_dump() with another such object, without end.
            model_dump = getattr(type(value), "model_dump", None)
            if callable(model_dump):
                return self._mask_value(model_dump(value), depth + 1)
            if isinstance(value, datetime.date):  # written as its isoformat(): no free text
                return value
            # The rest as attributes._json_default writes it: an object by its public
            # attributes, anything else (bytes, Decimal, UUID) by its str(). Passed on as
            # they were, they were written whole: an e-mail in bytes, a card in an object.
            if hasattr(value, "__dict__"):
                return self._mask_attributes(value, depth)
            if not self._text:
                return value
            text = str(value)
            if isinstance(value, bytes):  # b'...': its quotes are no part of an address
                return text[:2] + self.mask_text(text[2:-1]) + text[-1]
            return self.mask_text(text)
        except Exception:
            # A broken object must not break tracing, and must not leak what it holds.
            return REDACTED_MASK
