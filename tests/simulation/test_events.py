"""The simulation event format: one line's validation, the streaming reader, the docs."""

from __future__ import annotations

import codecs
import gzip
import hashlib
import io
import json
import math
import re
import sqlite3
import types
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoops_cli.simulation.event_types import EVENT_TYPES, KIND_NAMES
from autoops_cli.simulation.events import (
    KNOWN_FIELDS,
    MAX_LINE_BYTES,
    MAX_NESTING,
    SEVERITIES,
    EventFileFormatError,
    EventReader,
    EventValidationError,
    RejectedLine,
    SimulationEvent,
    parse_event,
    parse_event_line,
    read_events,
)
from autoops_cli.simulation.generator import generate_events, write_events
from config.errors import ExitCode, LocalFileError
from tests.conftest import Figures
from tests.support.paths import REPO_ROOT
from tests.support.property_budget import examples

EXAMPLE = (
    b'{"event_id": "evt-000042", "timestamp": "2026-11-20T08:15:00Z", "event_type": '
    b'"demand_spike", "trigger_source": "iot_sensor", "product_id": "PROD_123", "severity": '
    b'"high", "data": {"current_stock": 50, "forecast_demand": 150, "current_price": 29.99}}'
)
KNOWN_LIST = (
    "competitor_price_change, demand_spike, inventory_low, seasonal_trend, "
    "slow_moving_inventory, supply_delay"
)
# The brief's table, written out again so a changed default fails a test.
EXPECTED_DEFAULTS: dict[str, dict[str, Any]] = {
    "demand_spike": {
        "current_stock": 100,
        "forecast_demand": 150,
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
    "inventory_low": {
        "current_stock": 10,
        "reorder_point": 25,
        "daily_demand": 5.0,
        "lead_time_days": 7,
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
    "competitor_price_change": {
        "current_price": 29.99,
        "competitor_price": 27.99,
        "competitor_id": "COMP_1",
        "unit_cost": 18.0,
        "current_stock": 100,
    },
    "supply_delay": {
        "current_stock": 60,
        "delay_days": 5,
        "daily_demand": 8.0,
        "supplier_id": "SUP_1",
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
    "seasonal_trend": {
        "season": "holiday",
        "demand_multiplier": 1.3,
        "current_stock": 100,
        "forecast_demand": 130,
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
    "slow_moving_inventory": {
        "current_stock": 300,
        "days_since_last_sale": 45,
        "weekly_sales": 3.0,
        "current_price": 29.99,
        "unit_cost": 18.0,
    },
}


def minimal(**fields: Any) -> dict[str, Any]:
    """The smallest valid event object, with ``fields`` added or replaced."""
    obj: dict[str, Any] = {
        "event_type": "demand_spike",
        "timestamp": "2026-11-20T08:15:00Z",
        "product_id": "PROD_001",
    }
    obj.update(fields)
    return obj


def line(**fields: Any) -> bytes:
    return json.dumps(minimal(**fields)).encode()


def reason_of(raw: bytes) -> str:
    with pytest.raises(EventValidationError) as info:
        parse_event_line(raw)
    return info.value.reason


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


# --- one line -------------------------------------------------------------------------------


def test_valid_line_round_trip() -> None:
    event = parse_event_line(EXAMPLE, 7)
    assert event == SimulationEvent(
        event_id="evt-000042",
        timestamp=datetime(2026, 11, 20, 8, 15, tzinfo=UTC),
        event_type="demand_spike",
        trigger_source="iot_sensor",
        product_id="PROD_123",
        severity="high",
        data={
            "current_stock": 50,
            "forecast_demand": 150,
            "current_price": 29.99,
            "unit_cost": 18.0,
        },
        extra={},
        line_number=7,
    )
    as_dict = event.as_dict()
    assert as_dict["timestamp"] == "2026-11-20T08:15:00Z"
    assert parse_event_line(json.dumps(as_dict).encode(), 7) == event


@pytest.mark.parametrize("event_type", sorted(EXPECTED_DEFAULTS))
def test_defaults_are_filled(event_type: str) -> None:
    event = parse_event_line(line(event_type=event_type))
    assert event.data == EXPECTED_DEFAULTS[event_type]
    assert [type(value) for value in event.data.values()] == [
        type(value) for value in EXPECTED_DEFAULTS[event_type].values()
    ]
    assert event.severity == "medium"
    assert event.trigger_source == "simulation"
    assert event.extra == {}
    assert event.line_number == 0


def test_default_event_id_is_a_hash_of_the_line_without_its_ending() -> None:
    raw = line()
    expected = "evt-" + hashlib.sha256(raw).hexdigest()[:16]
    assert parse_event_line(raw).event_id == expected
    assert parse_event_line(raw + b"\n").event_id == expected
    assert parse_event_line(raw + b"\r\n").event_id == expected
    assert parse_event_line(line(product_id="PROD_002")).event_id != expected


def test_parse_event_without_raw_hashes_canonical_json() -> None:
    first = parse_event(minimal(product_id="P"))
    second = parse_event(dict(reversed(list(minimal(product_id="P").items()))))
    assert first.event_id == second.event_id
    assert re.fullmatch(r"evt-[0-9a-f]{16}", first.event_id)


def test_unknown_fields_are_kept() -> None:
    event = parse_event_line(line(source_run=3, data={"current_stock": 5, "note": ["a", None]}))
    assert event.extra == {"source_run": 3}
    assert event.data["note"] == ["a", None]
    assert event.data["current_stock"] == 5
    assert event.as_dict()["source_run"] == 3
    assert list(event.as_dict())[-1] == "source_run"


def test_timestamp_keeps_its_offset() -> None:
    event = parse_event_line(line(timestamp="2026-11-20T09:15:00+01:00"))
    assert event.timestamp.utcoffset() == timedelta(hours=1)
    assert event.timestamp == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
    assert event.as_dict()["timestamp"] == "2026-11-20T09:15:00+01:00"


def test_integral_float_is_accepted_as_int_and_int_as_float() -> None:
    event = parse_event_line(line(data={"current_stock": 50.0, "current_price": 30}))
    assert event.data["current_stock"] == 50
    assert type(event.data["current_stock"]) is int
    assert event.data["current_price"] == 30.0
    assert type(event.data["current_price"]) is float


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (
            {"current_stock": True},
            "field 'data.current_stock' must be a non-negative integer, got true",
        ),
        (
            {"current_price": False},
            "field 'data.current_price' must be a finite non-negative number, got false",
        ),
        (
            {"current_stock": -5},
            "field 'data.current_stock' must be a non-negative integer, got -5",
        ),
        (
            {"current_stock": 50.5},
            "field 'data.current_stock' must be a non-negative integer, got 50.5",
        ),
        (
            {"current_stock": "50"},
            "field 'data.current_stock' must be a non-negative integer, got '50'",
        ),
        (
            {"current_price": -0.01},
            "field 'data.current_price' must be a finite non-negative number, got -0.01",
        ),
        (
            {"current_price": None},
            "field 'data.current_price' must be a finite non-negative number, got null",
        ),
        (
            {"forecast_demand": [1]},
            "field 'data.forecast_demand' must be a non-negative integer, got an array",
        ),
    ],
)
def test_bad_data_values_are_rejected(data: dict[str, Any], reason: str) -> None:
    assert reason_of(line(data=data)) == reason


def test_string_fields_must_be_strings() -> None:
    raw = line(event_type="seasonal_trend", data={"season": 3})
    assert reason_of(raw) == "field 'data.season' must be a string, got 3"


@pytest.mark.parametrize(
    ("text", "name"), [("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "-Infinity")]
)
def test_non_finite_numbers_are_rejected(text: str, name: str) -> None:
    raw = line().replace(b"}", b', "data": {"current_price": ' + text.encode() + b"}}")
    assert reason_of(raw) == f"non-finite number {name} is not allowed"


def test_overflowing_float_is_rejected() -> None:
    raw = line().replace(b"}", b', "data": {"current_price": 1e400}}')
    assert reason_of(raw) == "number 1e400 is out of range"


def test_non_finite_numbers_from_python_objects_are_rejected() -> None:
    for value in (math.nan, math.inf):
        with pytest.raises(EventValidationError, match=r"data\.current_price"):
            parse_event(minimal(data={"current_price": value}))
    with pytest.raises(EventValidationError, match=r"data\.current_price"):
        parse_event(minimal(data={"current_price": 10**400}))


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {"timestamp": "2026-11-20T08:15:00"},
            "field 'timestamp' must include a UTC offset or Z, got '2026-11-20T08:15:00'",
        ),
        (
            {"timestamp": "2026-11-20"},
            "field 'timestamp' must include a UTC offset or Z, got '2026-11-20'",
        ),
        (
            {"timestamp": "yesterday"},
            "field 'timestamp' must be an ISO 8601 string with a UTC offset or Z, got 'yesterday'",
        ),
        (
            {"timestamp": 1700000000},
            "field 'timestamp' must be an ISO 8601 string with a UTC offset or Z, got 1700000000",
        ),
        (
            {"severity": "urgent"},
            "field 'severity' must be one of low, medium, high, critical, got 'urgent'",
        ),
        (
            {"severity": "HIGH"},
            "field 'severity' must be one of low, medium, high, critical, got 'HIGH'",
        ),
        ({"event_type": "foo"}, f"unknown event_type 'foo' (known: {KNOWN_LIST})"),
        ({"event_type": 42}, "field 'event_type' must be a non-empty string, got 42"),
        ({"product_id": ""}, "field 'product_id' must be a non-empty string, got ''"),
        ({"product_id": None}, "field 'product_id' must be a non-empty string, got null"),
        ({"event_id": ""}, "field 'event_id' must be a non-empty string, got ''"),
        ({"trigger_source": 1}, "field 'trigger_source' must be a non-empty string, got 1"),
        ({"data": [1, 2]}, "field 'data' must be an object, got an array"),
        ({"data": None}, "field 'data' must be an object, got null"),
    ],
)
def test_invalid_fields_are_rejected_with_their_reason(fields: dict[str, Any], reason: str) -> None:
    assert reason_of(line(**fields)) == reason


@pytest.mark.parametrize("name", ["event_type", "timestamp", "product_id"])
def test_missing_required_field(name: str) -> None:
    obj = minimal()
    del obj[name]
    assert reason_of(json.dumps(obj).encode()) == f"missing required field '{name}'"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "line is blank"),
        (b"   \t", "line is blank"),
        (b"hello", "not valid JSON: Expecting value (column 1)"),
        (b'{"event_type": ', "not valid JSON: Expecting value (column 16)"),
        (b"[1, 2]", "line is not a JSON object (got array)"),
        (b'"text"', "line is not a JSON object (got string)"),
        (b"null", "line is not a JSON object (got null)"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "integer longer than 4300 digits"),
        (b'{"a": "\xff"}', "invalid UTF-8 at byte 7"),
        (b'{"a": "\\ud800"}', "a string holds an unpaired UTF-16 surrogate"),
        (
            b"\xef\xbb\xbf" + line(),
            "not valid JSON: Unexpected UTF-8 BOM (decode using utf-8-sig) (column 1)",
        ),
    ],
)
def test_bad_lines_are_rejected(raw: bytes, reason: str) -> None:
    assert reason_of(raw) == reason


def test_deep_nesting_inside_data_is_rejected() -> None:
    raw = line().replace(b"}", b', "data": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}")
    assert reason_of(raw) == "nested too deeply"


def nested(depth: int) -> bytes:
    """An event whose data nests ``depth`` levels deep, the event object counted."""
    inner = "[" * (depth - 2) + "]" * (depth - 2)
    return line().replace(b"}", b', "data": {"x": ' + inner.encode() + b"}}")


def test_nesting_is_bounded_alike_at_any_depth_of_the_callers_stack() -> None:
    """The bound is MAX_NESTING, not where the parser's recursion runs out: a replay worker
    parses lower in its stack than its parent and must judge every line as it does."""

    def at_stack_depth(frames: int, raw: bytes) -> str | None:
        if frames:
            return at_stack_depth(frames - 1, raw)
        try:
            parse_event_line(raw)
        except EventValidationError as exc:
            return exc.reason
        return None

    for frames in (0, 300):
        assert at_stack_depth(frames, nested(MAX_NESTING)) is None
        assert at_stack_depth(frames, nested(MAX_NESTING + 1)) == "nested too deeply"
    # Brackets inside strings do not count.
    assert parse_event_line(line(note="[" * 5000)).extra["note"] == "[" * 5000


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x0c", "not valid JSON: Expecting value (column 1)"),
        ("\u00a0\u3000".encode(), "not valid JSON: Expecting value (column 1)"),
        (b" \t\r", "line is blank"),
    ],
)
def test_blank_is_spaces_tabs_and_carriage_returns_only(raw: bytes, reason: str) -> None:
    """As events.md says: other white space is no more blank to JSON than to the reader."""
    assert reason_of(raw) == reason


def test_paired_surrogate_escapes_are_fine() -> None:
    event = parse_event_line(line(product_id="\U0001f600"))  # json.dumps writes \ud83d\ude00
    assert event.product_id == "\U0001f600"


def test_reasons_quote_at_most_80_characters_of_a_value() -> None:
    reason = reason_of(line(severity="x" * 5000))
    assert reason.endswith("...")
    assert len(reason) <= 80 + len(
        "field 'severity' must be one of low, medium, high, critical, got "
    )
    assert "\n" not in reason_of(line(event_type="a\nb"))


def test_top_level_that_is_not_an_object_from_python() -> None:
    with pytest.raises(EventValidationError, match=r"not a JSON object \(got array\)"):
        parse_event([minimal()])
    with pytest.raises(EventValidationError, match="field names in the event must be strings"):
        parse_event({**minimal(), 1: "x"})


# --- property tests -------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
all_data_fields = sorted({f.name for spec in EVENT_TYPES.values() for f in spec.fields})
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_type": st.sampled_from(sorted(EVENT_TYPES)) | json_values,
        "timestamp": st.sampled_from(
            ["2026-11-20T08:15:00Z", "2026-11-20T08:15:00", "2026-13-01T00:00:00Z"]
        )
        | st.text(max_size=30)
        | json_values,
        "product_id": st.text(max_size=5) | json_values,
        "event_id": st.text(max_size=5) | json_values,
        "severity": st.sampled_from(SEVERITIES) | json_values,
        "trigger_source": st.text(max_size=5) | json_values,
        "data": st.dictionaries(
            st.sampled_from(all_data_fields) | st.text(max_size=5), json_values, max_size=6
        )
        | json_values,
        "other": json_values,
    },
)


def assert_parses_or_rejects(call: Any, *args: Any) -> None:
    try:
        event = call(*args)
    except EventValidationError as exc:
        assert exc.reason
        assert "\n" not in exc.reason
        assert len(exc.reason) < 250
    else:
        assert isinstance(event, SimulationEvent)
        assert event.timestamp.utcoffset() is not None
        spec = EVENT_TYPES[event.event_type]
        assert set(spec.field_names()) <= set(event.data)


FIXTURE_OK = [HealthCheck.function_scoped_fixture]


def mutate(raw: bytes, position: int, replacement: bytes) -> bytes:
    position %= len(raw) + 1
    return raw[:position] + replacement + raw[position + 1 :]


@settings(max_examples=examples(200), deadline=None, suppress_health_check=FIXTURE_OK)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_validation_errors(reliability: Figures, raw: bytes) -> None:
    reliability.tried()
    assert_parses_or_rejects(parse_event_line, raw)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=FIXTURE_OK)
@given(st.integers(min_value=0), st.binary(max_size=3))
def test_mutated_valid_lines_only_raise_validation_errors(
    reliability: Figures, position: int, junk: bytes
) -> None:
    reliability.tried()
    assert_parses_or_rejects(parse_event_line, mutate(EXAMPLE, position, junk))


@settings(max_examples=examples(200), deadline=None, suppress_health_check=FIXTURE_OK)
@given(json_values | event_like)
def test_arbitrary_json_only_raises_validation_errors(reliability: Figures, value: Any) -> None:
    reliability.tried(2)
    assert_parses_or_rejects(parse_event, value)
    assert_parses_or_rejects(parse_event_line, json.dumps(value).encode())


@st.composite
def valid_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], datetime]:
    """A valid event object, the ``data`` it must validate to, and its timestamp."""
    spec = draw(st.sampled_from(list(EVENT_TYPES.values())))
    given_data: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for field in spec.fields:
        if field.kind == "str":
            value: Any = draw(st.text(max_size=10))
            expected_value: Any = value
        elif field.kind == "int":
            expected_value = draw(st.integers(0, 2**53))
            value = draw(st.sampled_from([expected_value, float(expected_value)]))
        else:
            value = draw(st.integers(0, 10**6) | st.floats(0, 1e12))
            expected_value = float(value)
        if draw(st.booleans()):
            given_data[field.name] = value
            expected[field.name] = expected_value
        else:
            expected[field.name] = field.default
    unknown = draw(
        st.dictionaries(
            st.text(max_size=8).filter(lambda k: k not in spec.field_names()),
            json_values.filter(
                lambda v: "NaN" not in json.dumps(v) and "Infinity" not in json.dumps(v)
            ),
            max_size=3,
        )
    )
    given_data.update(unknown)
    expected.update(unknown)
    offset = timedelta(minutes=draw(st.integers(-23 * 60 - 59, 23 * 60 + 59)))
    moment = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    moment = moment.replace(tzinfo=timezone(offset))
    text = moment.isoformat()
    if offset == timedelta(0) and draw(st.booleans()):
        text = text.removesuffix("+00:00") + "Z"
    obj: dict[str, Any] = {
        "event_type": spec.name,
        "timestamp": text,
        "product_id": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
        "data": given_data,
    }
    if draw(st.booleans()):
        obj["severity"] = draw(st.sampled_from(SEVERITIES))
    if draw(st.booleans()):
        obj["event_id"] = draw(st.text(min_size=1, max_size=10).filter(str.strip))
    if draw(st.booleans()):
        obj["trigger_source"] = draw(st.text(min_size=1, max_size=10).filter(str.strip))
    return obj, expected, moment


@pytest.mark.slow
@settings(max_examples=examples(200), deadline=None)
@given(valid_events())
def test_valid_events_always_parse(case: tuple[dict[str, Any], dict[str, Any], datetime]) -> None:
    obj, expected_data, moment = case
    event = parse_event_line(json.dumps(obj).encode(), 3)
    assert event.data == expected_data
    assert [type(v) for v in event.data.values()] == [type(v) for v in expected_data.values()]
    assert event.timestamp == moment
    assert event.timestamp.utcoffset() == moment.utcoffset()
    assert event.product_id == obj["product_id"]
    assert event.severity == obj.get("severity", "medium")
    assert event.trigger_source == obj.get("trigger_source", "simulation")
    assert event.line_number == 3
    assert parse_event(event.as_dict(), line_number=3) == event


# --- the reader -----------------------------------------------------------------------------


def test_read_events_yields_events_and_rejections_with_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", line() + b"\n" + b"oops\n" + line(product_id="B") + b"\n")
    items = list(read_events(path))
    assert [type(item) for item in items] == [SimulationEvent, RejectedLine, SimulationEvent]
    assert [item.line_number for item in items] == [1, 2, 3]
    assert items[1] == RejectedLine(2, "not valid JSON: Expecting value (column 1)")


def test_a_repeated_event_id_is_read_under_the_next_free_numbered_id(tmp_path: Path) -> None:
    # A replay's trace id comes from the run id and the event id: a repeat would replace
    # the first event's trace while both were counted.
    path = write(
        tmp_path / "e.jsonl",
        line(event_id="a") + b"\n" + line(event_id="b") + b"\n" + line(event_id="a") + b"\n"
        # An id the input has itself: the third "a" skips it.
        + line(event_id="a#3") + b"\n" + line(event_id="a") + b"\n"
        # No event_id: the id is the line's hash, so a line repeated word for word repeats it.
        + line(product_id="C") + b"\n" + line(product_id="C") + b"\n",
    )  # fmt: skip
    reader = EventReader(path)
    items = list(reader)
    reader.close()
    assert all(isinstance(item, SimulationEvent) for item in items)
    ids = [item.event_id for item in items if isinstance(item, SimulationEvent)]
    assert ids[:5] == ["a", "b", "a#2", "a#3", "a#4"]
    assert ids[6] == ids[5] + "#2"
    assert len(set(ids)) == len(ids)
    assert reader.events_renamed == 3
    # What a worker is handed: the event under its new id, which parses back to the same.
    from autoops_cli.actions.replay_workers import worker_line

    renamed = [item for item in items if isinstance(item, SimulationEvent)][6]
    assert parse_event(json.loads(worker_line(renamed)), line_number=7) == renamed


def test_event_ids_are_checked_in_memory_when_no_temporary_file_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autoops_cli.simulation import events

    def no_temporary_file(self: Any, event_id: str) -> None:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(events.EventIds, "_repeats_on_disk", no_temporary_file)
    path = write(tmp_path / "e.jsonl", line(event_id="a") + b"\n" + line(event_id="a") + b"\n")
    assert [item.event_id for item in read_events(path) if isinstance(item, SimulationEvent)] == [
        "a",
        "a#2",
    ]


def test_bom_on_first_line_is_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", b"\xef\xbb\xbf" + line() + b"\n")
    (event,) = read_events(path)
    assert isinstance(event, SimulationEvent)
    # The id does not depend on the BOM: the same line without it has the same id.
    assert event.event_id == parse_event_line(line()).event_id


def test_bom_on_a_later_line_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", line() + b"\n\xef\xbb\xbf" + line() + b"\n")
    items = list(read_events(path))
    assert isinstance(items[1], RejectedLine)
    assert items[1].line_number == 2


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", line() + b"\r\n" + line(product_id="B") + b"\r\n")
    items = list(read_events(path))
    assert [item.product_id for item in items if isinstance(item, SimulationEvent)] == [
        "PROD_001",
        "B",
    ]


def test_blank_lines_are_skipped_and_still_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", b"\n   \n\t\r\n" + line() + b"\n\n" + line())
    items = list(read_events(path))
    assert [(type(item), item.line_number) for item in items] == [
        (SimulationEvent, 4),
        (SimulationEvent, 6),
    ]


def test_over_long_line_is_rejected_and_reading_continues(tmp_path: Path) -> None:
    long_line = line(padding="x" * 200_000)  # several skip chunks
    path = write(
        tmp_path / "e.jsonl", line() + b"\n" + long_line + b"\n" + line(product_id="B") + b"\n"
    )
    items = list(read_events(path, max_line_bytes=500))
    assert items[1] == RejectedLine(2, "line longer than 500 bytes")
    assert isinstance(items[2], SimulationEvent)
    assert (items[2].line_number, items[2].product_id) == (3, "B")


def test_line_length_limit_boundaries(tmp_path: Path) -> None:
    base = line(padding="")
    exact = line(padding="x" * (300 - len(base)))
    assert len(exact) == 300
    one_more = line(padding="x" * (301 - len(base)))
    content = exact + b"\r\n" + one_more + b"\n" + exact + b"\n" + one_more
    items = list(read_events(write(tmp_path / "e.jsonl", content), max_line_bytes=300))
    assert [type(item) for item in items] == [
        SimulationEvent,
        RejectedLine,
        SimulationEvent,
        RejectedLine,
    ]
    assert [item.line_number for item in items] == [1, 2, 3, 4]


def test_default_line_limit_is_one_mebibyte() -> None:
    assert MAX_LINE_BYTES == 1_048_576


def test_invalid_utf8_line_is_rejected_and_reading_continues(tmp_path: Path) -> None:
    bad = line().replace(b'"PROD_001"', b'"caf\xe9"')  # latin-1, not UTF-8
    offset = bad.index(b"\xe9")
    path = write(tmp_path / "e.jsonl", line() + b"\n" + bad + b"\n" + line(product_id="B") + b"\n")
    items = list(read_events(path))
    assert items[1] == RejectedLine(2, f"invalid UTF-8 at byte {offset}")
    assert isinstance(items[2], SimulationEvent)
    assert items[2].line_number == 3


def test_invalid_utf8_offset_counts_the_bom(tmp_path: Path) -> None:
    path = write(tmp_path / "e.jsonl", b'\xef\xbb\xbf{"a": "\xff"}\n')
    assert list(read_events(path)) == [RejectedLine(1, "invalid UTF-8 at byte 10")]


def test_ten_bad_lines_among_good_ones(tmp_path: Path) -> None:
    bad_lines = {3, 7, 8, 15, 22, 23, 40, 41, 42, 50}
    bad_kinds = [
        b"not json",
        b"[]",
        line(severity="urgent"),
        line(event_type="nope"),
        line(timestamp="2026-11-20T08:15:00"),
        b'{"x": NaN}',
        line(data={"current_stock": -1}),
        b"\xff\xfe",
        line(product_id=""),
        line(data={"current_price": True}),
    ]
    kinds = iter(bad_kinds)
    content = b"".join(
        (next(kinds) if number in bad_lines else line(product_id=f"P{number}")) + b"\n"
        for number in range(1, 51)
    )
    items = list(read_events(write(tmp_path / "e.jsonl", content)))
    assert len(items) == 50
    assert {item.line_number for item in items if isinstance(item, RejectedLine)} == bad_lines


def test_gzip_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl.gz"
    path.write_bytes(gzip.compress(line() + b"\nbad\n" + line(product_id="B") + b"\n"))
    items = list(read_events(path))
    assert [type(item) for item in items] == [SimulationEvent, RejectedLine, SimulationEvent]


def test_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = types.SimpleNamespace(buffer=io.BytesIO(line() + b"\n" + line(product_id="B")))
    monkeypatch.setattr("sys.stdin", stdin)
    items = list(read_events("-"))
    assert [item.product_id for item in items if isinstance(item, SimulationEvent)] == [
        "PROD_001",
        "B",
    ]
    assert not stdin.buffer.closed  # the reader does not close what it does not own


def test_missing_file_raises_local_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(LocalFileError) as info:
        list(read_events(missing))
    assert str(missing) in info.value.message
    assert "No such file or directory" in info.value.message
    assert info.value.exit_code == ExitCode.LOCAL_FILE


def test_directory_raises_local_file_error(tmp_path: Path) -> None:
    with pytest.raises(LocalFileError, match=re.escape(str(tmp_path))):
        list(read_events(tmp_path))


def test_gzip_is_told_by_its_first_bytes_not_by_its_name(tmp_path: Path) -> None:
    plain = write(tmp_path / "e.jsonl.gz", line() + b"\n")  # named .gz, but plain text
    assert [type(item) for item in read_events(plain)] == [SimulationEvent]
    compressed = write(tmp_path / "e.jsonl", gzip.compress(line() + b"\n"))  # gzip, named .jsonl
    assert [type(item) for item in read_events(compressed)] == [SimulationEvent]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"", "no events (the file is empty)"),
        (b"\n  \n", "no events (the file is empty)"),
        (b'[{"event_id": "e1"}]\n', "a JSON array, not JSON Lines"),
        (b'{\n  "event_id": "e1"\n}\n', "a JSON document over several lines"),
        (b"event_id,event_type,product_id\ne1,demand_spike,P1\n", "CSV, not JSON Lines"),
        (b"hello world\n", "text, not JSON Lines (line 1 starts 'hello world')"),
        (b"\x00\x01binary", "binary data, not JSON Lines"),
    ],
)
def test_what_is_not_json_lines_is_named_before_any_event(
    tmp_path: Path, content: bytes, said: str
) -> None:
    for name, data in (("f.jsonl", content), ("f.jsonl.gz", gzip.compress(content))):
        path = write(tmp_path / name, data)
        with pytest.raises(EventFileFormatError) as info:
            next(iter(read_events(path)))
        assert info.value.message.startswith(f"{path}: {said}")
        assert int(info.value.exit_code) == 6
    if "array" in said:
        assert "jq -c '.[]'" in info.value.message


def test_a_bad_first_line_before_a_long_event_is_judged_line_by_line(tmp_path: Path) -> None:
    """Only the first 4 KB are sampled: an event longer than that still makes it JSON Lines
    (found by the hostile-input property test)."""
    event = next(iter(generate_events(1, seed=1)))
    event["data"]["note"] = "x" * 5000
    path = write(tmp_path / "f.jsonl", b"null\n" + json.dumps(event).encode() + b"\n")
    items = list(read_events(path))
    assert isinstance(items[0], RejectedLine) and items[0].line_number == 1
    assert isinstance(items[1], SimulationEvent)


@pytest.mark.parametrize(
    "prefix",
    [b"\n" * 4100, (b" " * 100 + b"\n") * 50, b"[1, 2, 3]\n" * 700],
    ids=["blank-lines", "lines-of-spaces", "json-lines-of-arrays"],
)
def test_what_fills_the_first_4_kb_before_the_events_does_not_refuse_the_file(
    tmp_path: Path, prefix: bytes
) -> None:
    """4 KB of blank lines first made the file "empty" (docs/events.md: blank lines are
    skipped), and 4 KB of whole JSON values that are not events a "JSON array": the events
    after them were never read."""
    events = b"".join(line(event_id=f"e{n}") + b"\n" for n in range(3))
    for name, data in (
        ("f.jsonl", prefix + events),
        ("f.jsonl.gz", gzip.compress(prefix + events)),
    ):
        items = list(read_events(write(tmp_path / name, data)))
        assert [item.event_id for item in items if isinstance(item, SimulationEvent)] == [
            "e0", "e1", "e2"
        ]  # fmt: skip
        rejected = [item for item in items if isinstance(item, RejectedLine)]
        assert len(rejected) == (700 if prefix.startswith(b"[") else 0)


def test_gzip_stream_breaking_mid_file_keeps_what_was_read(tmp_path: Path) -> None:
    whole = tmp_path / "whole.jsonl.gz"
    write_events(whole, generate_events(3000, seed=1))
    path = write(tmp_path / "cut.jsonl.gz", whole.read_bytes()[: whole.stat().st_size // 2])
    seen: list[SimulationEvent | RejectedLine] = []
    with pytest.raises(LocalFileError) as info:
        for item in read_events(path):
            seen.append(item)
    assert len(seen) > 100
    assert all(isinstance(item, SimulationEvent) for item in seen)
    assert [item.line_number for item in seen] == list(range(1, len(seen) + 1))
    assert str(path) in info.value.message
    assert f"line {len(seen) + 1}" in info.value.message


def test_gzip_stream_breaking_in_its_first_kilobytes_keeps_the_lines_before(
    tmp_path: Path,
) -> None:
    """The first KB are read ahead to tell the format: a break there still gives the lines
    before it (GzipFile.peek fails as a whole), and one before any whole line is refused
    at once, before anything is recorded."""
    noise = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(400)]  # incompressible
    content = b"".join(line(event_id=f"e{n}", note=noise[n]) + b"\n" for n in range(400))
    path = write(tmp_path / "broken.jsonl.gz", gzip.compress(content)[:1500])
    seen: list[SimulationEvent | RejectedLine] = []
    with pytest.raises(LocalFileError) as info:
        for item in read_events(path):
            seen.append(item)
    assert seen and all(isinstance(item, SimulationEvent) for item in seen)
    assert [item.event_id for item in seen if isinstance(item, SimulationEvent)] == [
        f"e{n}" for n in range(len(seen))
    ]
    assert f"at line {len(seen) + 1}:" in info.value.message
    broken_at_once = bytearray(gzip.compress(line() + b"\n"))
    broken_at_once[12:16] = b"\xff\xff\xff\xff"
    with pytest.raises(LocalFileError, match="at line 1:"):
        EventReader(write(tmp_path / "at-once.jsonl.gz", bytes(broken_at_once)))


def test_reader_streams_a_large_file_one_event_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "large.jsonl"
    assert write_events(path, generate_events(10_000, seed=7)) == 10_000
    items = read_events(path)
    first = next(items)
    assert isinstance(first, SimulationEvent)
    assert first.event_id == "evt-000001"
    count = 1
    last = first
    for item in items:
        assert isinstance(item, SimulationEvent)
        count += 1
        last = item
    assert count == 10_000
    assert last.line_number == 10_000


def test_max_line_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_line_bytes"):
        list(read_events(tmp_path / "x", max_line_bytes=0))


# --- the documentation ----------------------------------------------------------------------


def test_docs_describe_every_event_type_and_field() -> None:
    text = (REPO_ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    for name in KNOWN_FIELDS:
        assert f"`{name}`" in text
    for spec in EVENT_TYPES.values():
        section = text.split(f"### `{spec.name}`", 1)[1].split("\n### ", 1)[0]
        assert spec.description in section
        for field in spec.fields:
            row = f"| `{field.name}` | {KIND_NAMES[field.kind]} | `{json.dumps(field.default)}` |"
            assert row in section, f"{spec.name}: {row}"
    table = {
        spec.name: {field.name: field.default for field in spec.fields}
        for spec in EVENT_TYPES.values()
    }
    assert table == EXPECTED_DEFAULTS


@pytest.mark.parametrize("zeroed", [100, 4096, 10_000])
def test_a_zeroed_block_before_the_events_is_one_bad_line(tmp_path: Path, zeroed: int) -> None:
    """A block a crash left zeroed at the start of a file: with 4 KB of it (all the format
    check samples), the whole file was refused as binary data; it is line 1, rejected, and
    the events after it are read."""
    events = [json.dumps(event).encode() for event in generate_events(3, seed=2)]
    path = write(tmp_path / "f.jsonl", b"\x00" * zeroed + b"\n" + b"\n".join(events) + b"\n")
    items = list(read_events(path))
    assert isinstance(items[0], RejectedLine) and items[0].line_number == 1
    assert [type(item) for item in items[1:]] == [SimulationEvent] * 3


def test_lines_held_back_as_maybe_binary_count_as_read_only_once_handed_out(
    tmp_path: Path,
) -> None:
    """Binary lines before the first event are held back until the file is judged: a run
    stopping at the first (--strict) was told that the lines read ahead were read (neither
    rejected nor left unread, an event among them lost); a read failure after them dropped
    them unreported."""
    events = [json.dumps(event).encode() for event in generate_events(3, seed=2)]
    path = write(tmp_path / "f.jsonl", b"\x00" * 100 + b"\n\x00\x00\n\x00x\n" + b"\n".join(events))
    reader = EventReader(path)
    first = next(iter(reader))
    assert isinstance(first, RejectedLine) and first.line_number == 1
    assert (reader.lines_read, reader.count_lines_left()) == (1, 5)
    reader.close()
    import random

    padded = {**json.loads(events[0]), "pad": random.Random(4).randbytes(50_000).hex()}
    whole = gzip.compress(b"\x00\x00\n" * 3 + json.dumps(padded).encode() + b"\n")
    cut = write(tmp_path / "cut.jsonl.gz", whole[: len(whole) // 2])  # inside line 4
    reader = EventReader(cut)
    handed: list[SimulationEvent | RejectedLine] = []
    with pytest.raises(LocalFileError, match="at line"):
        handed.extend(reader)
    assert [item.line_number for item in handed if isinstance(item, RejectedLine)] == [1, 2, 3]
    reader.close()


def test_a_disk_image_starting_with_zeros_is_binary_data_not_a_rejection_per_line(
    tmp_path: Path,
) -> None:
    """Zeros first pass the format check (a crash's zeroed block must not refuse the file):
    a disk image then gave a rejection per line, over a thousand of them. Binary lines in a
    row before any event make it binary data again, refused as one error."""
    import random

    noise = random.Random(3).randbytes(200_000)
    path = write(tmp_path / "disk.img", b"\x00" * 32_768 + noise)
    items: list[SimulationEvent | RejectedLine] = []
    with pytest.raises(EventFileFormatError, match="binary data, not JSON Lines"):
        items.extend(read_events(path))
    assert items == []


def test_a_latin_1_export_is_rejected_line_by_line_not_refused_as_binary(
    tmp_path: Path,
) -> None:
    """Text in another encoding is no disk image: twelve Latin-1 lines first made the whole
    file "binary data" (8 lines read, none counted, the good events after them never
    replayed). Each is a bad line (invalid UTF-8), and the events after them are read."""
    latin = [
        ('{"event_type": "demand_spike", "timestamp": "2026-11-20T08:15:00Z", '
         f'"product_id": "Caf\xe9_{n}"}}').encode("latin-1")
        for n in range(12)
    ]  # fmt: skip
    events = [json.dumps(event).encode() for event in generate_events(3, seed=2)]
    path = write(tmp_path / "latin1.jsonl", b"\n".join(latin + events) + b"\n")
    items = list(read_events(path))
    assert [item.line_number for item in items[:12]] == list(range(1, 13))
    assert all(isinstance(item, RejectedLine) and "invalid UTF-8" in item.reason
               for item in items[:12])  # fmt: skip
    assert [type(item) for item in items[12:]] == [SimulationEvent] * 3


def test_a_first_line_at_the_longest_length_may_carry_a_bom(tmp_path: Path) -> None:
    """The BOM the reader ignores counted toward the line limit of line 1."""
    event = next(iter(generate_events(1, seed=5)))
    text = json.dumps(event).encode()
    longest = len(text) + 4
    line = text[:-1] + b" " * (longest - len(text)) + b"}"
    path = write(tmp_path / "bom.jsonl", codecs.BOM_UTF8 + line + b"\n")
    assert [type(item) for item in read_events(path, max_line_bytes=longest)] == [SimulationEvent]
