"""The streaming job end to end on real services: Kafka (Avro via the registry) -> Spark -> Cassandra + DLQ.

One topic per test run; the job runs under supervisord exactly as ``userstream stream start`` runs it.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cassandra.cluster import Cluster, Session
from confluent_kafka import Producer, SerializingProducer
from confluent_kafka.schema_registry.avro import AvroSerializer

from userstream.cdc.topics import ensure_topics
from userstream.config import Settings
from userstream.kafka_clients import client_config
from userstream.registry_clients import registry_client
from userstream.runtime.process import ProcessManager
from userstream.runtime.stack import Stack
from userstream.store.cassandra import auth_provider
from userstream.stream import ensure_job_running, job_status, stop_job, synthetic
from userstream.stream.checks import read_topic
from userstream.stream.control import job_paths
from userstream.stream.progress import read_progress
from userstream.stream.rules import COLUMNS, REASON_BAD_EMAIL, REASON_BAD_ID, REASON_NOT_FRAMED, frame

pytestmark = pytest.mark.integration

N_VALID_V1 = 1200  # twice: before the job starts, and after the records of the evolved schema
N_VALID_V2 = 300  # written with an evolved schema (a new nullable column) while the job runs


@dataclass
class Produced:
    """What went into the topic: valid records by id, and the expected DLQ reason by (partition, offset)."""

    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[tuple[int, int], str] = field(default_factory=dict)
    value_id: int = 0


@pytest.fixture(scope="module")
def stream_settings(require_services: Callable[..., Stack], settings: Settings) -> Iterator[Settings]:
    require_services("kafka", "registry", "cassandra", "spark")
    run = uuid.uuid4().hex[:8]
    topic = f"test.stream.{run}"
    s = settings.model_copy(
        update={
            "users_topic": topic,
            "dlq_topic": f"{topic}.dlq",
            "cassandra_keyspace": f"test_stream_{run}",
            "spark_max_offsets_per_trigger": 300,  # many small batches: a kill lands mid-stream
            "spark_trigger_interval": "1 second",
        }
    )
    ensure_topics(s)
    yield s
    stop_job(s)
    session = Cluster(s.cassandra_hosts, port=s.cassandra_port, auth_provider=auth_provider(s, "admin")).connect()
    for ks in (s.cassandra_keyspace, f"{s.cassandra_keyspace}_b"):
        session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
    session.cluster.shutdown()


def _serializing_producer(s: Settings, schema: dict[str, Any]) -> SerializingProducer:
    client = registry_client(s, "admin")
    return SerializingProducer(
        {
            **client_config(s, "admin", "test"),
            "key.serializer": AvroSerializer(client, json.dumps(synthetic.key_schema())),
            "value.serializer": AvroSerializer(client, json.dumps(schema)),
            "acks": "all",
        }
    )


def produce(
    s: Settings, produced: Produced, records: list[tuple[dict[str, Any], str | None]], schema: dict[str, Any]
) -> None:
    producer = _serializing_producer(s, schema)
    for value, reason in records:

        def delivered(err: Any, msg: Any, value: dict[str, Any] = value, reason: str | None = reason) -> None:
            assert err is None, err
            if reason is None:
                produced.valid[value["id"]] = value
            else:
                produced.invalid[(msg.partition(), msg.offset())] = reason

        producer.produce(s.users_topic, key={"id": value["id"]}, value=value, on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0


def produce_raw(s: Settings, produced: Produced, records: list[tuple[bytes | None, bytes | None, str]]) -> None:
    producer = Producer({**client_config(s, "admin", "test"), "acks": "all"})
    for key, value, reason in records:

        def delivered(err: Any, msg: Any, reason: str = reason) -> None:
            assert err is None, err
            produced.invalid[(msg.partition(), msg.offset())] = reason

        producer.produce(s.users_topic, key=key, value=value, on_delivery=delivered)
    assert producer.flush(30) == 0


def fill(s: Settings, run: str, start: int, n: int, produced: Produced, schema: dict[str, Any] | None = None) -> None:
    base = (datetime.now(UTC) - timedelta(seconds=1)).replace(microsecond=123456)
    extra = {"nick": "nicky"} if schema else None
    records: list[tuple[dict[str, Any], str | None]] = []
    for i in range(start, start + n):
        # fetched_at spread over 3 minutes: several windows per country
        value = synthetic.user_value(i, run=run, fetched_at=base - timedelta(minutes=i % 3), extra=extra)
        records.append((value, None))
    produce(s, produced, records, schema or synthetic.value_schema())


def bad_records(run: str) -> list[tuple[dict[str, Any], str | None]]:
    now = datetime.now(UTC)
    out: list[tuple[dict[str, Any], str | None]] = []
    for i in range(5):
        out.append(
            (
                synthetic.user_value(10_000 + i, run=run, fetched_at=now) | {"email": f"nobody{i}-at-example"},
                REASON_BAD_EMAIL,
            )
        )
        out.append((synthetic.user_value(20_000 + i, run=run, fetched_at=now) | {"id": f"user-{i}"}, REASON_BAD_ID))
        out.append(
            (synthetic.user_value(30_000 + i, run=run, fetched_at=now) | {"dob": "31/12/1990"}, "unparseable dob")
        )
    return out  # fmt: skip


def expected_rows(produced: Produced) -> dict[uuid.UUID, dict[str, Any]]:
    return {uuid.UUID(k): synthetic.stored_row(v) for k, v in produced.valid.items()}


def table_rows(session: Session, keyspace: str) -> dict[uuid.UUID, dict[str, Any]]:
    rows = session.execute(f"SELECT * FROM {keyspace}.created_users", timeout=60)
    return {r.id: r._asdict() for r in rows}


def expected_counts(produced: Produced) -> Counter[tuple[str, datetime]]:
    counts: Counter[tuple[str, datetime]] = Counter()
    for v in produced.valid.values():
        ts = datetime.fromisoformat(v["fetched_at"]).astimezone(UTC).replace(second=0, microsecond=0)
        counts[(v["nat"], ts.replace(tzinfo=None))] += 1
    return counts


def table_counts(session: Session, keyspace: str) -> Counter[tuple[str, datetime]]:
    rows = session.execute(f"SELECT country, window_start, users FROM {keyspace}.users_by_country_minute")
    return Counter({(r.country, r.window_start): r.users for r in rows})


def wait_counts(session: Session, s: Settings, want: Counter[tuple[str, datetime]], timeout_s: float = 180) -> None:
    """Wait until users_by_country_minute holds exactly ``want``; on time-out say which windows differ."""
    got: Counter[tuple[str, datetime]] = Counter()

    def same() -> bool:
        nonlocal got
        got = table_counts(session, s.cassandra_keyspace)
        return got == want

    try:
        wait_until(same, timeout_s, "the per-minute counts", s)
    except AssertionError as exc:
        diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
        raise AssertionError(f"(window: (want, got)) {sorted(diff.items())[:20]}\n{exc}") from None


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, s: Settings) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    status = job_status(s)
    log = Path(status["log"])
    log_tail = "\n".join(log.read_text().splitlines()[-40:]) if log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; job {status['state']}\n{log_tail}")


def totals(s: Settings) -> dict[str, int]:
    """Rows written by the job's current run (zeros until it wrote its first progress document)."""
    progress = read_progress(job_paths(s).progress) or {}
    job = progress.get("job") or {}
    if (job.get("users_topic"), job.get("keyspace")) != (s.users_topic, s.cassandra_keyspace):
        return {"valid": 0, "dlq": 0}
    return dict(progress.get("totals") or {"valid": 0, "dlq": 0})


@pytest.fixture(scope="module")
def produced(stream_settings: Settings) -> Produced:
    """The topic's content before the job starts: valid v1 records, bad ones, garbage (v2 comes mid-stream)."""
    s = stream_settings
    run = s.users_topic
    out = Produced()
    fill(s, run, 0, N_VALID_V1, out)
    produce(s, out, bad_records(run), synthetic.value_schema())
    out.value_id = registry_client(s, "admin").get_latest_version(f"{s.users_topic}-value").schema_id
    huge_string = b"\xfe\xff\xff\xff\x0f"  # a 2 GB string length: must fail this record, not the executor
    produce_raw(s, out, [
        (b"k1", b"plain garbage", REASON_NOT_FRAMED),
        (None, b"\x00\x00", REASON_NOT_FRAMED),
        (b"k3", frame(2_000_000_000, b"abc"), "unknown schema id 2000000000"),
        (b"k4", frame(out.value_id, huge_string), f"undecodable Avro for schema id {out.value_id}"),
        (b"k5", frame(out.value_id, b"\x02"), f"undecodable Avro for schema id {out.value_id}"),
    ])  # fmt: skip
    return out


def test_job_kill_restart_evolution_and_dlq(stream_settings: Settings, produced: Produced) -> None:
    s = stream_settings
    session = Cluster(s.cassandra_hosts, port=s.cassandra_port, auth_provider=auth_provider(s, "admin")).connect()
    try:
        assert ensure_job_running(s) == "started"
        assert ensure_job_running(s) == "running"
        wait_until(lambda: totals(s)["valid"] >= 300, 240, "the first micro-batches", s)
        # a new schema version appears mid-stream (Debezium after ALTER TABLE ADD COLUMN), then more v1
        fill(s, s.users_topic, N_VALID_V1, N_VALID_V2, produced, synthetic.value_schema(["nick"]))
        v2_id = uuid.UUID(synthetic.user_value(N_VALID_V1, run=s.users_topic, fetched_at=datetime.now(UTC))["id"])
        fill(s, s.users_topic, N_VALID_V1 + N_VALID_V2, N_VALID_V1, produced)
        wait_until(lambda: v2_id in table_rows(session, s.cassandra_keyspace), 240, "a record of the new schema", s)
        # kill -9 of the driver mid-stream: supervisord restarts it, it resumes from the checkpoint
        processes = ProcessManager(s)
        pid = processes.pid("stream")
        assert pid is not None
        assert totals(s)["valid"] < len(produced.valid), "the job finished before the kill: slow it down"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: processes.pid("stream") not in (None, pid), 60, "supervisord to restart the job", s)
        want = expected_rows(produced)
        wait_until(lambda: len(table_rows(session, s.cassandra_keyspace)) >= len(want), 300, "every valid row", s)
        got = table_rows(session, s.cassandra_keyspace)
        assert set(got) == set(want)
        for key, row in want.items():
            stored = got[key]
            for c in COLUMNS:
                value = stored[c].replace(tzinfo=UTC) if c == "fetched_at" else stored[c]
                assert value == row[c], (key, c)
            assert stored["processed_at"] >= stored["fetched_at"]

        dlq = read_topic(s, s.dlq_topic, expect=len(produced.invalid), timeout_s=120)
        by_source: dict[tuple[int, int], set[str]] = {}
        for rec in dlq:
            h = rec["headers"]
            assert h["dlq.source.topic"] == s.users_topic
            by_source.setdefault((int(h["dlq.source.partition"]), int(h["dlq.source.offset"])), set()).add(
                h["dlq.reason"]
            )
        # at-least-once into the DLQ: a replayed batch may repeat a record, never lose one
        assert set(by_source) == set(produced.invalid)
        for source, reasons in by_source.items():
            assert len(reasons) == 1 and produced.invalid[source] in next(iter(reasons)), (source, reasons)
        garbage = next(r for r in dlq if r["value"] == b"plain garbage")
        assert garbage["key"] == b"k1" and "dlq.schema.id" not in garbage["headers"]

        wait_counts(session, s, expected_counts(produced))

        # a clean stop and a start resume from the checkpoint: only the new records are read
        assert stop_job(s)
        assert job_status(s)["running"] is False
        fill(s, s.users_topic, 50_000, 200, produced)
        assert ensure_job_running(s) == "started"
        want = expected_rows(produced)
        wait_until(lambda: len(table_rows(session, s.cassandra_keyspace)) >= len(want), 240, "the new rows", s)
        assert set(table_rows(session, s.cassandra_keyspace)) == set(want)
        wait_until(lambda: totals(s)["valid"] >= 200, 60, "progress of the new run", s)
        assert totals(s) == {"valid": 200, "dlq": 0}  # nothing replayed from before the stop
        wait_counts(session, s, expected_counts(produced))

        progress = read_progress(job_paths(s).progress)
        assert progress is not None and progress["state"] == "running"
        users = progress["queries"]["users"]
        assert users["offsets_behind"] == 0
        assert sum(users["end_offsets"][s.users_topic].values()) == len(produced.valid) + len(produced.invalid)
        assert progress["latency_ms"]["p50"] > 0
    finally:
        session.cluster.shutdown()


def test_same_job_into_a_second_empty_keyspace(stream_settings: Settings, produced: Produced) -> None:
    s = stream_settings
    other = s.model_copy(
        update={"cassandra_keyspace": f"{s.cassandra_keyspace}_b", "dlq_topic": f"{s.users_topic}.dlq.b",
                "spark_max_offsets_per_trigger": 100_000}
    )  # fmt: skip
    session = Cluster(s.cassandra_hosts, port=s.cassandra_port, auth_provider=auth_provider(s, "admin")).connect()
    try:
        assert ensure_job_running(other) == "started"  # other settings: the job restarts with them
        want = expected_rows(produced)
        wait_until(lambda: len(table_rows(session, other.cassandra_keyspace)) >= len(want), 300, "every row", other)
        first, second = table_rows(session, s.cassandra_keyspace), table_rows(session, other.cassandra_keyspace)
        strip = lambda rows: {k: {c: v[c] for c in COLUMNS} for k, v in rows.items()}  # noqa: E731
        assert strip(first) == strip(second)
        wait_counts(session, other, expected_counts(produced))
        dlq = read_topic(other, other.dlq_topic, expect=len(produced.invalid), timeout_s=60)
        assert len(dlq) == len(produced.invalid)  # no restart here: exactly once each
        assert {r["headers"]["dlq.source.topic"] for r in dlq} == {s.users_topic}
        wait_until(lambda: totals(other)["valid"] >= len(want), 60, "the progress totals", other)
        assert totals(other) == {"valid": len(want), "dlq": len(produced.invalid)}
    finally:
        session.cluster.shutdown()
        stop_job(other)
