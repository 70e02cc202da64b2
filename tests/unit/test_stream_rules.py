"""Validation rules, Confluent framing and DLQ headers of the streaming job (pure Python)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from userstream.stream import rules, synthetic


def valid_record() -> dict[str, object]:
    return synthetic.user_value(1, run="unit", fetched_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))


def test_a_synthetic_record_is_valid() -> None:
    assert rules.record_problems(valid_record()) == []


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("email", "bad", rules.REASON_BAD_EMAIL),
        ("email", "a b@example.com", rules.REASON_BAD_EMAIL),
        ("email", "a@@example.com", rules.REASON_BAD_EMAIL),
        ("email", "a@example", rules.REASON_BAD_EMAIL),
        ("email", "a@example..com", rules.REASON_BAD_EMAIL),
        ("email", "a@example.com\n", rules.REASON_BAD_EMAIL),
        ("email", "x" * 65 + "@example.com", rules.REASON_BAD_EMAIL),
        ("id", "not-a-uuid", rules.REASON_BAD_ID),
        ("id", "5c8ee30d-2166-5024-adfd-6100f8d9007", rules.REASON_BAD_ID),
        ("id", "5c8ee30d21665024adfd6100f8d90075", rules.REASON_BAD_ID),
        ("nat", "gb", rules.REASON_BAD_NAT),
        ("nat", "GBR", rules.REASON_BAD_NAT),
        ("dob", "yesterday", rules.unparseable("dob")),
        ("dob", "2020-02-30T00:00:00Z", rules.unparseable("dob")),
        ("dob", "2020-01-01", rules.unparseable("dob")),
        ("dob", "2020-01-01T00:00:00", rules.unparseable("dob")),  # no offset: not an aware time
        ("dob", "2020-01-01T00:00Z", rules.unparseable("dob")),  # no seconds
        ("registered_date", "2020-01-01T25:00:00Z", rules.unparseable("registered_date")),
        ("fetched_at", "0000-01-01T00:00:00Z", rules.unparseable("fetched_at")),
        ("fetched_at", "2020-01-01T00:00:00+19:00", rules.unparseable("fetched_at")),
        ("fetched_at", "2020-01-01T00:00:00.1234567Z", rules.unparseable("fetched_at")),
        ("fetched_at", "\uff12\uff10\uff12\uff10-01-01T00:00:00Z", rules.unparseable("fetched_at")),  # fullwidth
    ],
)
def test_each_rule_rejects_with_its_reason(column: str, value: str, reason: str) -> None:
    record = valid_record() | {column: value}
    assert rules.record_problems(record) == [reason]


@pytest.mark.parametrize(
    "value",
    ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.1Z", "2020-01-01T00:00:00.123456+05:30", "1950-12-31T23:59:59-03:00"],
)
def test_iso_variants_are_accepted(value: str) -> None:
    assert rules.record_problems(valid_record() | {"dob": value}) == []


def test_missing_fields_are_listed_in_column_order() -> None:
    record = valid_record() | {"phone": None, "email": None}
    del record["nat"]
    assert rules.record_problems(record) == ["missing email", "missing phone", "missing nat"]
    assert rules.reason_text(rules.record_problems(record)) == "missing email; missing phone; missing nat"
    assert rules.reason_text([]) is None


def test_java_regex_is_anchored_against_trailing_newlines() -> None:
    assert rules.java_regex("ab") == r"^(?:ab)\z"
    # Python's own `$` would accept this, hence fullmatch here and \z in Java
    assert re.search(r"^(?:[A-Z]{2})$", "GB\n") is not None
    assert re.fullmatch(rules.NAT_PATTERN, "GB\n") is None


def test_confluent_frame_round_trip_and_rejects() -> None:
    framed = rules.frame(70000, b"avro")
    assert framed == b"\x00\x00\x01\x11\x70avro"
    parsed = rules.parse_frame(framed)
    assert parsed == rules.Frame(70000, b"avro")
    assert rules.parse_frame(None) == rules.REASON_NULL_VALUE
    assert rules.parse_frame(b"\x00\x00\x01") == rules.REASON_NOT_FRAMED
    assert rules.parse_frame(b"\x01\x00\x00\x00\x01avro") == rules.REASON_NOT_FRAMED
    assert rules.parse_frame(rules.frame(1, b"")) == rules.Frame(1, b"")


def test_dlq_headers_order_text_and_absent_values() -> None:
    headers = rules.dlq_headers("malformed email", "users.raw", 1, 42, timestamp_ms=1700000000000, schema_id=3)
    assert headers == [
        ("dlq.reason", b"malformed email"),
        ("dlq.source.topic", b"users.raw"),
        ("dlq.source.partition", b"1"),
        ("dlq.source.offset", b"42"),
        ("dlq.source.timestamp", b"1700000000000"),
        ("dlq.schema.id", b"3"),
    ]
    unframed = rules.dlq_headers(rules.REASON_NOT_FRAMED, "t", 0, 0, failed_at="2026-01-01T00:00:00.000Z")
    assert [k for k, _ in unframed] == ["dlq.reason", "dlq.source.topic", "dlq.source.partition",
                                        "dlq.source.offset", "dlq.failed.at"]  # fmt: skip
    assert rules.read_dlq_headers([*headers, ("other", b"x"), ("dlq.reason", None)])["dlq.source.offset"] == "42"
    assert rules.read_dlq_headers(None) == {}


def test_stored_row_normalises_dates_to_utc_milliseconds() -> None:
    record = valid_record() | {"dob": "1990-05-06T07:08:09.123456+02:00"}
    row = synthetic.stored_row(record)
    assert row["dob"] == "1990-05-06T05:08:09.123Z"
    assert row["fetched_at"] == datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert str(row["id"]) == record["id"]
