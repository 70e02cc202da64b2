"""Records shaped like the CDC's, for the stream's tests and benchmark (no Postgres/Debezium needed).

The value schema mirrors what Debezium's unwrap transform registers for ``staging.users``: the table's
columns in order (uuid as ``io.debezium.data.Uuid`` string, timestamptz as ``io.debezium.time.ZonedTimestamp``
ISO strings), then ``__source_ts_ms`` added by the transform. A column added to the table later lands
before ``__source_ts_ms``, so a second version is not a prefix of the first: readers must use the writer
schema of each record, which is what the job does.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema

from userstream.config import Settings
from userstream.model import NATIONALITIES
from userstream.registry_clients import registry_client
from userstream.stream import rules

NAMESPACE = "userstream.staging.users"
_TEXT_COLUMNS = ("first_name", "last_name", "gender", "address", "post_code", "email", "username")
_FIRST = ("Jennie", "Ahmet", "Louis", "Mia", "Noah", "Aino", "Lucas", "Sofia", "Oskar", "Ines", "Arjun", "Maya")
_LAST = ("Nichols", "Yilmaz", "Martin", "Schulz", "Silva", "Korhonen", "Jensen", "Garcia", "Smith", "Patel")


def _string(connect_name: str | None = None) -> dict[str, Any] | str:
    if connect_name is None:
        return "string"
    return {"type": "string", "connect.version": 1, "connect.name": connect_name}


def value_schema(extra_columns: Sequence[str] = ()) -> dict[str, Any]:
    """Debezium-like value schema; ``extra_columns`` are nullable text columns added to the table later."""
    zoned = "io.debezium.time.ZonedTimestamp"
    fields: list[dict[str, Any]] = [{"name": "id", "type": _string("io.debezium.data.Uuid")}]
    fields += [{"name": c, "type": _string()} for c in _TEXT_COLUMNS]
    fields += [{"name": c, "type": _string(zoned)} for c in ("dob", "registered_date")]
    fields += [{"name": c, "type": _string()} for c in ("phone", "picture", "nat")]
    fields += [{"name": c, "type": _string(zoned)} for c in ("fetched_at", "landed_at")]
    fields += [{"name": c, "type": ["null", "string"], "default": None} for c in extra_columns]
    fields.append({"name": rules.SOURCE_TS_FIELD, "type": ["null", "long"], "default": None})
    return {"type": "record", "name": "Value", "namespace": NAMESPACE, "fields": fields,
            "connect.name": f"{NAMESPACE}.Value"}  # fmt: skip


def key_schema() -> dict[str, Any]:
    return {"type": "record", "name": "Key", "namespace": NAMESPACE,
            "fields": [{"name": "id", "type": _string("io.debezium.data.Uuid")}],
            "connect.name": f"{NAMESPACE}.Key"}  # fmt: skip


def iso(ts: datetime) -> str:
    """Debezium's ZonedTimestamp text: UTC, 'Z', microseconds when there are any."""
    text = ts.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def user_value(i: int, *, run: str, fetched_at: datetime, extra: dict[str, str | None] | None = None) -> dict[str, Any]:
    """A deterministic valid record number ``i`` of run ``run`` (same arguments, same record)."""
    uid = uuid.uuid5(uuid.NAMESPACE_URL, f"userstream:{run}:{i}")
    first, last = _FIRST[i % len(_FIRST)], _LAST[(i // len(_FIRST)) % len(_LAST)]
    nat = NATIONALITIES[i % len(NATIONALITIES)]
    born = datetime(1950, 1, 1, tzinfo=UTC) + timedelta(days=(i * 37) % 18000, seconds=(i * 7919) % 86400)
    registered = datetime(2005, 1, 1, tzinfo=UTC) + timedelta(days=(i * 13) % 7000, milliseconds=i % 1000)
    value: dict[str, Any] = {
        "id": str(uid),
        "first_name": first,
        "last_name": last,
        "gender": "female" if i % 2 else "male",
        "address": f"{i % 9999 + 1} Main Street, Springfield, State, {nat}",
        "post_code": f"{10000 + i % 89999}",
        "email": f"{first.lower()}.{last.lower()}.{i}@example.com",
        "username": f"{first.lower()}{i}",
        "dob": iso(born),
        "registered_date": iso(registered),
        "phone": f"0{i % 10}-{i % 10000:04d}-{i % 997:03d}",
        "picture": f"https://randomuser.me/api/portraits/med/{'women' if i % 2 else 'men'}/{i % 100}.jpg",
        "nat": nat,
        "fetched_at": iso(fetched_at),
        "landed_at": iso(fetched_at + timedelta(milliseconds=5)),
        rules.SOURCE_TS_FIELD: int(fetched_at.timestamp() * 1000) + 10,
    }
    if extra:
        value.update(extra)
    return value


class AvroEncoder:
    """Confluent-framed Avro bytes of one writer schema (fastavro; ~10x faster than a SerializingProducer)."""

    def __init__(self, schema: dict[str, Any], schema_id: int) -> None:
        self._schema = fastavro.parse_schema(json.loads(json.dumps(schema)))
        self._writer = fastavro.schemaless_writer
        self.schema_id = schema_id

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        self._writer(buf, self._schema, record)
        return rules.frame(self.schema_id, buf.getvalue())


def register(settings: Settings, subject: str, schema: dict[str, Any]) -> int:
    """Register (or find) ``schema`` under ``subject`` as the admin identity; returns the id the Confluent API
    hands out."""
    client = registry_client(settings, "admin")
    return int(client.register_schema(subject, Schema(json.dumps(schema), "AVRO")))


def stored_row(value: dict[str, Any]) -> dict[str, Any]:
    """What the job should store in ``created_users`` for a valid record (dates: ISO UTC, milliseconds)."""
    out: dict[str, Any] = {}
    for c in rules.COLUMNS:
        v = value[c]
        if c in rules.DATE_COLUMNS:
            ts = datetime.fromisoformat(v).astimezone(UTC)
            ts = ts.replace(microsecond=ts.microsecond // 1000 * 1000)
            out[c] = ts if c == "fetched_at" else ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
        elif c == "id":
            out[c] = uuid.UUID(v)
        else:
            out[c] = v
    return out


def batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))
