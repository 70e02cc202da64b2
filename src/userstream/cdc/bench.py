"""`userstream bench cdc`: rate and lag from a Postgres commit to the record in the users topic."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace

import psycopg
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from userstream.cdc.connector import COMMIT_TS_FIELD
from userstream.config import Settings
from userstream.ingest.land import LandedUser, land_batch
from userstream.ingest.run import RateLimiter
from userstream.kafka_clients import client_config
from userstream.model import to_row, validate_user
from userstream.registry_clients import registry_client
from userstream.source import UserGenerator


@dataclass
class LagResult:
    label: str
    records: int
    seconds: float
    lag_ms: list[float]

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.lag_ms:
            return float("nan")
        ordered = sorted(self.lag_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _synthetic_users(total: int, tag: str) -> list[LandedUser]:
    """Generated users, made beforehand so generation does not limit the landing rate; tagged by username."""
    gen = UserGenerator()
    users: list[LandedUser] = []
    page = 0
    while len(users) < total:
        page += 1
        for raw in gen.users(tag, page, min(5000, total - len(users))):
            row = to_row(validate_user(raw))
            users.append(LandedUser(replace(row, username=f"{tag}-{row.username}"), "{}"))
    return users


def _land(settings: Settings, users: list[LandedUser], rate: float | None) -> None:
    """Land at ``rate`` records/s (None: flat out), in transactions of up to 1,000 rows."""
    batch = 1000 if rate is None or rate >= 1000 else max(1, int(rate / 10))
    limiter = RateLimiter(rate)
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        for start in range(0, len(users), batch):
            chunk = users[start : start + batch]
            limiter.wait_for(len(chunk))
            land_batch(conn, chunk)


class _TopicTail(threading.Thread):
    """Reads the users topic from its current end; keeps (receive ms, commit ms) of records whose username
    starts with the tag."""

    def __init__(self, settings: Settings, tag: str) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.tag = tag
        self.seen: list[tuple[float, float]] = []
        self.positioned = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        s = self.settings
        consumer = Consumer(
            client_config(
                s,
                "admin",
                "bench",
                **{"group.id": f"bench-{uuid.uuid4()}", "enable.auto.commit": False, "fetch.wait.max.ms": 20},
            )
        )
        try:
            meta = consumer.list_topics(s.users_topic, timeout=10).topics[s.users_topic]
            assign = []
            for p in meta.partitions:
                _low, high = consumer.get_watermark_offsets(TopicPartition(s.users_topic, p), timeout=10)
                assign.append(TopicPartition(s.users_topic, p, high))
            consumer.assign(assign)
            decode = AvroDeserializer(registry_client(s, "admin"))
            ctx = SerializationContext(s.users_topic, MessageField.VALUE)
            self.positioned.set()
            while not self.stop.is_set():
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    if msg.error():
                        continue
                    now_ms = time.time() * 1000
                    value = decode(msg.value(), ctx)
                    if value and str(value.get("username", "")).startswith(self.tag):
                        self.seen.append((now_ms, float(value.get(COMMIT_TS_FIELD) or now_ms)))
        finally:
            self.positioned.set()
            consumer.close()


def bench_cdc(settings: Settings, rate: float | None, records: int, timeout_s: float = 300.0) -> LagResult:
    """Land ``records`` at ``rate`` and measure when each reaches Kafka (Postgres commit -> consumer)."""
    tag = f"cdcbench{uuid.uuid4().hex[:8]}"
    users = _synthetic_users(records, tag)
    tail = _TopicTail(settings, tag)
    tail.start()
    tail.positioned.wait(30)
    t0 = time.perf_counter()
    _land(settings, users, rate)
    deadline = time.monotonic() + timeout_s
    while len(tail.seen) < records and time.monotonic() < deadline:
        time.sleep(0.05)
    seconds = time.perf_counter() - t0
    tail.stop.set()
    tail.join(10)
    label = f"{rate:.0f} records/s" if rate else "max rate"
    return LagResult(label, len(tail.seen), seconds, [recv - commit for recv, commit in tail.seen])
