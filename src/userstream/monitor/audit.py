"""The audit: every id acked in Postgres must be in Cassandra or in the DLQ, once.

Used by `userstream verify` and the `pipeline_audit` DAG. Rows landed in the last ``grace_s`` seconds
may still be in flight and are not counted as missing.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from userstream.config import Settings
from userstream.errors import UserstreamError
from userstream.kafka_clients import MONITOR_GROUP_PREFIX, client_config
from userstream.registry_clients import registry_client
from userstream.store.cassandra import connect
from userstream.store.postgres import conninfo


class AuditFailed(UserstreamError):
    """Ids acked by Postgres are in neither Cassandra nor the DLQ."""


@dataclass
class AuditReport:
    checked_at: datetime
    landed: int  # ids in Postgres old enough to be checked
    in_flight: int  # ids landed within the grace period, not checked
    in_cassandra: int
    in_dlq: int
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)  # in both Cassandra and the DLQ
    dlq_repeats: int = 0  # DLQ records of an id already dead-lettered (at-least-once replays)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.duplicated

    def summary(self) -> str:
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"audit {verdict}: {self.landed} ids landed in Postgres (+{self.in_flight} in flight), "
            f"{self.in_cassandra} in Cassandra, {self.in_dlq} in the DLQ; missing={len(self.missing)} "
            f"duplicated={len(self.duplicated)} dlq_repeats={self.dlq_repeats}"
            + (f"; first missing: {', '.join(self.missing[:5])}" if self.missing else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "ok": self.ok,
            "landed": self.landed,
            "in_flight": self.in_flight,
            "in_cassandra": self.in_cassandra,
            "in_dlq": self.in_dlq,
            "missing": len(self.missing),
            "missing_sample": self.missing[:20],
            "duplicated": len(self.duplicated),
            "duplicated_sample": self.duplicated[:20],
            "dlq_repeats": self.dlq_repeats,
        }

    def raise_if_missing(self) -> None:
        if not self.ok:
            raise AuditFailed(
                self.summary(),
                fix="check `userstream status`, the connector (`userstream logs connect`) and the stream job "
                "(`userstream stream status`); missing ids are still in staging.users and can be replayed",
            )


def postgres_ids(settings: Settings, cutoff: datetime) -> tuple[set[str], int]:
    """(ids landed before ``cutoff``, number landed after it)."""
    old: set[str] = set()
    recent = 0
    with psycopg.connect(conninfo(settings, "monitor")) as conn, conn.cursor(name="audit_ids") as cur:
        cur.itersize = 50_000
        cur.execute("SELECT id::text, landed_at < %s FROM staging.users", (cutoff,))
        for ident, is_old in cur:
            if is_old:
                old.add(ident)
            else:
                recent += 1
    return old, recent


def cassandra_ids(settings: Settings, keyspace: str | None = None) -> set[str]:
    session = connect(settings, "monitor")
    try:
        table = f"{keyspace or settings.cassandra_keyspace}.created_users"
        # the job writes at LOCAL_QUORUM: a read at the driver's LOCAL_ONE can ask a replica that was down and
        # has not been given the row yet (its hint not replayed), and report a stored user as missing
        stmt = SimpleStatement(
            f"SELECT id FROM {table}", fetch_size=5000, consistency_level=ConsistencyLevel.LOCAL_QUORUM
        )
        return {str(row.id) for row in session.execute(stmt, timeout=120)}
    finally:
        session.cluster.shutdown()


def dlq_ids(settings: Settings, timeout_s: float = 60.0) -> tuple[set[str], int]:
    """Ids of the DLQ's records (from the Avro key, else an ``id`` header) and how many repeated."""
    consumer = Consumer(
        client_config(
            settings,
            "monitor",
            "audit",
            **{"group.id": f"{MONITOR_GROUP_PREFIX}-audit-{uuid.uuid4()}", "enable.auto.commit": False},
        )
    )
    decode = AvroDeserializer(registry_client(settings, "monitor"))
    ctx = SerializationContext(settings.users_topic, MessageField.KEY)
    ids: set[str] = set()
    repeats = 0
    try:
        meta = consumer.list_topics(settings.dlq_topic, timeout=10).topics.get(settings.dlq_topic)
        if meta is None or meta.error is not None:
            return ids, 0
        ends: dict[int, int] = {}
        assign = []
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(settings.dlq_topic, p), timeout=10)
            if high > low:
                ends[p] = high
                assign.append(TopicPartition(settings.dlq_topic, p, low))
        if not assign:
            return ids, 0
        consumer.assign(assign)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error():
                    continue
                ident = _dlq_record_id(msg, decode, ctx)
                if ident is not None:
                    if ident in ids:
                        repeats += 1
                    ids.add(ident)
                part, offset = msg.partition() or 0, msg.offset() or 0
                if offset + 1 >= ends.get(part, 0):
                    ends.pop(part, None)
    finally:
        consumer.close()
    return ids, repeats


def _dlq_record_id(msg: Any, decode: AvroDeserializer, ctx: SerializationContext) -> str | None:
    for name, value in msg.headers() or []:
        if name == "id" and value:
            return str(value.decode() if isinstance(value, bytes) else value)
    key = msg.key()
    if key:
        try:
            decoded = decode(key, ctx)
        except Exception:  # a garbage key: the record has no id we can audit
            return None
        if isinstance(decoded, dict) and decoded.get("id"):
            return str(decoded["id"])
    return None


def run_audit(settings: Settings, grace_s: float = 60.0) -> AuditReport:
    cutoff = datetime.now(UTC) - timedelta(seconds=grace_s)
    landed, in_flight = postgres_ids(settings, cutoff)
    stored = cassandra_ids(settings)
    dead, repeats = dlq_ids(settings)
    missing = sorted(landed - stored - dead)
    duplicated = sorted(stored & dead)
    return AuditReport(
        checked_at=datetime.now(UTC),
        landed=len(landed),
        in_flight=in_flight,
        in_cassandra=len(landed & stored),
        in_dlq=len(landed & dead),
        missing=missing,
        duplicated=duplicated,
        dlq_repeats=repeats,
    )


def wait_until_drained(settings: Settings, timeout_s: float = 300.0, grace_s: float = 0.0) -> AuditReport:
    """Audit repeatedly until nothing is missing, or until ``timeout_s``; returns the last report."""
    deadline = time.monotonic() + timeout_s
    while True:
        report = run_audit(settings, grace_s=grace_s)
        if report.ok or time.monotonic() >= deadline:
            return report
        time.sleep(3)
