"""Probes run inside the cluster's containers (a node's own health, or a client's load and audit), each
printing one JSON line: `python -m userstream.deploy.probe COMMAND ...`.

The load commands write at a steady rate through the standard clients with the cluster's guarantees
(Kafka: acks=all, idempotent, min.insync.replicas=2 of 3; Cassandra: LOCAL_QUORUM of RF 3), retrying what
fails, and report the longest gap between two successful writes: what a node's loss cost the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import threading
import time
from typing import Annotated

import typer
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from userstream.benchmark import run_once
from userstream.cdc import connector_status
from userstream.cdc.topics import admin
from userstream.config import Settings
from userstream.kafka_clients import client_config
from userstream.monitor.audit import wait_until_drained
from userstream.pipeline import stop_flow
from userstream.runtime.stack import load_service_class
from userstream.store.cassandra import connect

app = typer.Typer(no_args_is_help=True, add_completion=False)
PROBE_KEYSPACE = "failover_probe"


def _print(result: dict[str, object]) -> None:
    print(json.dumps(result), flush=True)


def _max_gap(times: list[float], start: float, end: float) -> float:
    marks = [start, *sorted(times), end]
    return max((b - a for a, b in itertools.pairwise(marks)), default=0.0)


@app.command()
def health(service: str) -> None:
    """This node's own probe of SERVICE (the runtime contract's health()); exit 1 when unhealthy (a container
    health probe)."""
    result = load_service_class(service)(Settings()).health()
    _print({"healthy": result.healthy, "detail": result.detail})
    raise typer.Exit(0 if result.healthy else 1)


@app.command("kafka-load")
def kafka_load(
    topic: str,
    count: Annotated[int, typer.Option()] = 20_000,
    rate: Annotated[float, typer.Option(help="records per second")] = 200.0,
) -> None:
    """Create TOPIC (6 partitions, RF 3, min ISR 2) and produce COUNT numbered records at RATE."""
    settings = Settings()
    client = admin(settings)
    if topic not in client.list_topics(timeout=30).topics:
        spec = NewTopic(topic, 6, settings.kafka_replication, config={"min.insync.replicas": "2"})
        client.create_topics([spec])[topic].result(60)
    producer = Producer(
        client_config(
            settings, "admin", "probe", **{"acks": "all", "enable.idempotence": True, "delivery.timeout.ms": 300_000}
        )
    )
    delivered: list[float] = []
    failed: list[str] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            delivered.append(time.monotonic())
        else:
            failed.append(str(err))

    t0 = time.monotonic()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=str(i).encode(), value=str(i).encode(), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.5)
        producer.poll(0)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    producer.flush(300)
    end = time.monotonic()
    _print({"sent": count, "delivered": len(delivered), "failed": len(failed), "errors": failed[:5],
            "seconds": round(end - t0, 1), "max_gap_s": round(_max_gap(delivered, t0, end), 2)})  # fmt: skip


@app.command("kafka-audit")
def kafka_audit(topic: str, count: Annotated[int, typer.Option()] = 20_000) -> None:
    """Read TOPIC from the start: how many of 0..COUNT-1 are there, missing, twice."""
    settings = Settings()
    consumer = Consumer(
        client_config(
            settings, "admin", "probe", **{"group.id": f"probe-{time.time_ns()}", "enable.auto.commit": False}
        )
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    seen: dict[int, int] = {}
    done: set[int] = {p for p, end in ends.items() if end == 0}
    deadline = time.monotonic() + 300
    while len(done) < len(ends) and time.monotonic() < deadline:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        n = int(msg.value() or b"-1")
        seen[n] = seen.get(n, 0) + 1
        if (msg.offset() or 0) + 1 >= ends[msg.partition() or 0]:
            done.add(msg.partition() or 0)
    consumer.close()
    missing = [i for i in range(count) if i not in seen]
    _print({"expected": count, "found": len(seen), "missing": len(missing), "first_missing": missing[:10],
            "duplicated": sum(1 for v in seen.values() if v > 1)})  # fmt: skip


def _session(settings: Settings):  # type: ignore[no-untyped-def]
    session = connect(settings, "admin")
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {PROBE_KEYSPACE} WITH replication = {settings.cassandra_replication}",
        timeout=60,
    )
    session.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_KEYSPACE}.writes (id int PRIMARY KEY, at double)", timeout=60)
    return session


@app.command("cassandra-load")
def cassandra_load(
    count: Annotated[int, typer.Option()] = 6_000,
    rate: Annotated[float, typer.Option(help="rows per second")] = 100.0,
) -> None:
    """Write COUNT numbered rows at RATE, each at LOCAL_QUORUM, retried until it succeeds."""
    settings = Settings()
    session = _session(settings)
    insert = session.prepare(f"INSERT INTO {PROBE_KEYSPACE}.writes (id, at) VALUES (?, ?)")
    insert.consistency_level = ConsistencyLevel.LOCAL_QUORUM
    written: list[float] = []
    retries = 0
    t0 = time.monotonic()
    for i in range(count):
        while True:
            try:
                session.execute(insert, (i, time.time()), timeout=10)
                written.append(time.monotonic())
                break
            except Exception:  # Unavailable, WriteTimeout, NoHostAvailable while a node goes: write again
                retries += 1
                time.sleep(0.5)
        time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
    end = time.monotonic()
    session.cluster.shutdown()
    _print({"sent": count, "written": len(written), "retries": retries, "seconds": round(end - t0, 1),
            "max_gap_s": round(_max_gap(written, t0, end), 2)})  # fmt: skip


@app.command("cassandra-audit")
def cassandra_audit(count: Annotated[int, typer.Option()] = 6_000) -> None:
    """Read the rows back at LOCAL_QUORUM: how many of 0..COUNT-1 are there."""
    session = _session(Settings())
    query = SimpleStatement(f"SELECT id FROM {PROBE_KEYSPACE}.writes", fetch_size=5000,
                            consistency_level=ConsistencyLevel.LOCAL_QUORUM)  # fmt: skip
    ids = {row.id for row in session.execute(query, timeout=60)}
    session.cluster.shutdown()
    missing = [i for i in range(count) if i not in ids]
    _print({"expected": count, "found": len(ids), "missing": len(missing), "first_missing": missing[:10]})


@app.command("delivery")
def delivery(
    seconds: Annotated[float, typer.Option(help="how long to watch")] = 600.0,
    every: Annotated[float, typer.Option(help="seconds between two readings")] = 2.0,
) -> None:
    """Every EVERY seconds for SECONDS (or until SIGTERM), how many users the job has stored: the end offsets
    of its accepted topic, which it writes each batch only after that batch's rows are in Cassandra (a count
    of the table took a minute under load). (wall time, stored, in users.raw) samples: each loss's longest
    delivery gap, and where a stall was (CDC into Kafka, or the job)."""
    settings = Settings()
    stored, landed = _EndOffsets(settings, settings.accepted_topic), _EndOffsets(settings, settings.users_topic)
    samples: list[tuple[float, int, int]] = []
    stopping = threading.Event()  # `podman stop` (SIGTERM to PID 1): report what was watched
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stopping.set())
    end = time.monotonic() + seconds
    while time.monotonic() < end and not stopping.is_set():
        total = stored.total()
        if total is not None:
            samples.append((time.time(), total, landed.total() or 0))
        stopping.wait(every)
    stored.close()
    landed.close()
    _print({"samples": samples})


@app.command("wait-delivering")
def wait_delivering(
    steady: Annotated[float, typer.Option(help="seconds of uninterrupted delivery wanted")] = 20.0,
    timeout: Annotated[float, typer.Option(help="seconds to wait at most")] = 600.0,
) -> None:
    """Wait until users reach Cassandra steadily: no 10 s without a new one for STEADY seconds (a freshly
    started job's first batches come in bursts); exit 1 after TIMEOUT."""
    settings = Settings()
    stored = _EndOffsets(settings, settings.accepted_topic)
    landed = _EndOffsets(settings, settings.users_topic)  # said on failure: is CDC or the stream stuck?
    t0 = time.monotonic()
    last = stored.total() or 0
    streak_start = last_growth = -1e9  # the current run of growths, each within 10 s of the one before
    try:
        while time.monotonic() - t0 < timeout:
            total, now = stored.total(), time.monotonic()
            if total is not None and total > last:
                if now - last_growth > 10:
                    streak_start = now
                last, last_growth = total, now
            if now - last_growth <= 10 and now - streak_start >= steady:
                _print({"delivering": True, "stored": last, "after_s": round(now - t0, 1)})
                return
            time.sleep(1)
        in_kafka = landed.total()
    finally:
        stored.close()
        landed.close()
    _print({"delivering": False, "stored": last, "in_kafka": in_kafka, "after_s": round(time.monotonic() - t0, 1)})
    raise typer.Exit(1)


class _EndOffsets:
    """A topic's end offsets summed, each partition read on its own: a partition whose leader has just gone
    keeps its last reading (its new leader answers a later one), so the others still show growth."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.topic = topic
        self.consumer = Consumer(client_config(settings, "admin", "probe", **{"group.id": f"probe-{time.time_ns()}"}))
        self.ends: dict[int, int] = {}

    def total(self) -> int | None:
        """None until every partition has been read once."""
        with contextlib.suppress(Exception):
            partitions = self.consumer.list_topics(self.topic, timeout=5).topics[self.topic].partitions
            for p in partitions:
                with contextlib.suppress(Exception):
                    self.ends[p] = self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=2)[1]
            if len(self.ends) >= len(partitions) > 0:
                return sum(self.ends.values())
        return None

    def close(self) -> None:
        self.consumer.close()


@app.command("cdc-worker")
def cdc_worker() -> None:
    """Which Connect worker runs the CDC task now (its node name), from Connect's own status."""
    tasks = connector_status(Settings()).get("tasks", [])
    workers = [str(t.get("worker_id", "")).rsplit(":", 1)[0] for t in tasks if t.get("state") == "RUNNING"]
    _print({"worker": workers[0] if workers else None})


@app.command("pipeline-run")
def pipeline_run(
    label: Annotated[str, typer.Option()] = "run",
    rate: Annotated[float, typer.Option(help="users/s; 0: flat out")] = 0.0,
    seconds: Annotated[float, typer.Option(help="seconds of ingest")] = 30.0,
) -> None:
    """`bench pipeline`'s measurement from this client: ingest from the cluster's source for SECONDS, wait for
    those users in Cassandra, report rates, latencies and this process's CPU (the nodes' is read outside)."""
    settings = Settings()
    result = run_once(settings, settings.source_url, label, rate or None, seconds, drain_timeout_s=600)
    _print(result.row())


@app.command("stored")
def stored() -> None:
    """How many users the pipeline's table holds, read at LOCAL_QUORUM (as the job writes them)."""
    settings = Settings()
    session = connect(settings, "admin")
    query = SimpleStatement(f"SELECT id FROM {settings.cassandra_keyspace}.created_users", fetch_size=5000,
                            consistency_level=ConsistencyLevel.LOCAL_QUORUM)  # fmt: skip
    ids = {row.id for row in session.execute(query, timeout=120)}
    session.cluster.shutdown()
    _print({"stored": len(ids)})


@app.command("drain-audit")
def drain_audit(timeout: Annotated[float, typer.Option(help="seconds to wait for the backlog")] = 900.0) -> None:
    """Pause ingest, wait until every landed user is in Cassandra or the DLQ (or TIMEOUT), audit."""
    settings = Settings()
    stop_flow(settings)
    report = wait_until_drained(settings, timeout_s=timeout)
    _print({"landed": report.landed, "stored": report.in_cassandra, "dlq": report.in_dlq,
            "missing": len(report.missing), "duplicated": len(report.duplicated), "ok": report.ok})  # fmt: skip


if __name__ == "__main__":
    app()
