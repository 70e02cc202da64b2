"""What makes a users record acceptable, and how a rejected one is labelled in the dead-letter topic.

Everything here is pure Python. The Spark job builds its column expressions from the same constants
(:mod:`userstream.stream.job`), and :func:`record_problems` is the reference implementation the unit tests
pin down; ``tests/unit/test_stream_rules.py`` also checks that both give the same verdicts.

Regexes are written once, without anchors, in the common subset of Python ``re`` and ``java.util.regex``:
Python applies them with ``fullmatch``; Spark wraps them as ``^(?:...)\\z`` (``$`` would let a trailing
newline through in both languages).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from userstream.model import UserRow

#: The record's columns as they arrive in Avro (all strings) and are stored, in ``UserRow.COLUMNS`` order.
COLUMNS: tuple[str, ...] = UserRow.COLUMNS
#: ISO-8601 date-time columns (Debezium ``io.debezium.time.ZonedTimestamp`` strings).
DATE_COLUMNS: tuple[str, ...] = ("dob", "registered_date", "fetched_at")
#: Debezium's unwrap transform adds the Postgres commit time; optional (older schemas may lack it).
SOURCE_TS_FIELD = "__source_ts_ms"

UUID_PATTERN = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# One '@', no whitespace, a dotted domain without empty labels. Deliberately not RFC 5322: it rejects what
# is plainly broken and keeps every address the random-user API produces.
EMAIL_PATTERN = r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+"
EMAIL_MAX_LENGTH = 254
# A full date-time with an explicit offset (AwareDatetime in the model); [0-9], not \d: Python's \d
# matches every Unicode digit. Seconds required (Spark's cast refuses "T10:00Z"); fractions up to
# microseconds, the precision of Postgres timestamptz.
DATETIME_PATTERN = (
    r"(?!0000)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
NAT_PATTERN = r"[A-Z]{2}"

_UUID = re.compile(UUID_PATTERN)
_EMAIL = re.compile(EMAIL_PATTERN)
_DATETIME = re.compile(DATETIME_PATTERN)
_NAT = re.compile(NAT_PATTERN)


def java_regex(pattern: str) -> str:
    """The same pattern for Spark's ``rlike`` (a find, not a match): anchored at both ends."""
    return rf"^(?:{pattern})\z"


# --- reasons (the text of the dlq.reason header) ----------------------------------------------------
def missing(column: str) -> str:
    return f"missing {column}"


REASON_BAD_ID = "id is not a UUID"
REASON_BAD_EMAIL = "malformed email"
REASON_BAD_NAT = "nat is not a 2-letter country code"


def unparseable(column: str) -> str:
    return f"unparseable {column} (want ISO-8601 date-time with offset)"


REASON_NULL_VALUE = "null value (tombstone)"
REASON_NOT_FRAMED = "not Confluent-framed Avro (want magic byte 0 + 4-byte schema id)"


def unknown_schema(schema_id: int) -> str:
    return f"unknown schema id {schema_id}"


def undecodable(schema_id: int) -> str:
    return f"undecodable Avro for schema id {schema_id}"


REASON_SEPARATOR = "; "


# --- the rules ------------------------------------------------------------------------------------
def parse_datetime(text: str) -> datetime | None:
    """The aware datetime of a well-formed ISO-8601 string, else None (bad shape or impossible date)."""
    if not _DATETIME.fullmatch(text):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    offset = parsed.utcoffset()
    # java.time.ZoneOffset (Spark's parser) stops at +-18:00, Python at +-24:00: agree on Java's range
    if offset is None or abs(offset) > timedelta(hours=18):
        return None
    return parsed


def valid_email(text: str) -> bool:
    return len(text) <= EMAIL_MAX_LENGTH and _EMAIL.fullmatch(text) is not None


def record_problems(record: Mapping[str, object]) -> list[str]:
    """Every reason ``record`` (a decoded value: column -> string or None) is rejected; empty when valid.

    One reason per column at most, in column order: absent, else the format check of that column.
    """
    problems: list[str] = []
    for column in COLUMNS:
        value = record.get(column)
        if value is None:
            problems.append(missing(column))
            continue
        text = str(value)
        if column == "id" and not _UUID.fullmatch(text):
            problems.append(REASON_BAD_ID)
        elif column == "email" and not valid_email(text):
            problems.append(REASON_BAD_EMAIL)
        elif column == "nat" and not _NAT.fullmatch(text):
            problems.append(REASON_BAD_NAT)
        elif column in DATE_COLUMNS and parse_datetime(text) is None:
            problems.append(unparseable(column))
    return problems


def reason_text(problems: Sequence[str]) -> str | None:
    return REASON_SEPARATOR.join(problems) or None


# --- Confluent wire format ----------------------------------------------------------------------------
MAGIC_BYTE = 0
HEADER_SIZE = 5  # magic byte + 4-byte big-endian schema id


@dataclass(frozen=True)
class Frame:
    schema_id: int
    payload: bytes


def parse_frame(value: bytes | None) -> Frame | str:
    """The schema id and Avro body of a Confluent-framed value, or the reason it is not one."""
    if value is None:
        return REASON_NULL_VALUE
    if len(value) < HEADER_SIZE or value[0] != MAGIC_BYTE:
        return REASON_NOT_FRAMED
    return Frame(int.from_bytes(value[1:HEADER_SIZE], "big"), bytes(value[HEADER_SIZE:]))


def frame(schema_id: int, payload: bytes) -> bytes:
    return bytes([MAGIC_BYTE]) + schema_id.to_bytes(4, "big") + payload


# --- dead-letter headers ----------------------------------------------------------------------------
HEADER_REASON = "dlq.reason"
HEADER_TOPIC = "dlq.source.topic"
HEADER_PARTITION = "dlq.source.partition"
HEADER_OFFSET = "dlq.source.offset"
HEADER_TIMESTAMP = "dlq.source.timestamp"  # the source record's Kafka timestamp, epoch ms
HEADER_SCHEMA_ID = "dlq.schema.id"  # only when the value was Confluent-framed
HEADER_FAILED_AT = "dlq.failed.at"  # ISO-8601 UTC, when the job rejected it
#: Header order on every DLQ record (a header whose value is absent is left out).
HEADER_NAMES: tuple[str, ...] = (
    HEADER_REASON,
    HEADER_TOPIC,
    HEADER_PARTITION,
    HEADER_OFFSET,
    HEADER_TIMESTAMP,
    HEADER_SCHEMA_ID,
    HEADER_FAILED_AT,
)


def dlq_headers(
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    *,
    timestamp_ms: int | None = None,
    schema_id: int | None = None,
    failed_at: str | None = None,
) -> list[tuple[str, bytes]]:
    """Kafka headers of a dead-letter record: every value UTF-8 text, numbers in decimal."""
    values: dict[str, object | None] = {
        HEADER_REASON: reason,
        HEADER_TOPIC: topic,
        HEADER_PARTITION: partition,
        HEADER_OFFSET: offset,
        HEADER_TIMESTAMP: timestamp_ms,
        HEADER_SCHEMA_ID: schema_id,
        HEADER_FAILED_AT: failed_at,
    }
    return [(name, str(values[name]).encode()) for name in HEADER_NAMES if values[name] is not None]


def read_dlq_headers(headers: object) -> dict[str, str]:
    """The ``dlq.*`` headers of a consumed record (confluent-kafka's list of pairs) as name -> text."""
    out: dict[str, str] = {}
    for name, value in headers if isinstance(headers, list) else []:
        if str(name).startswith("dlq."):
            out[str(name)] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")
    return out
