"""``userstream bench stream``: the job's throughput next to a Cassandra write ceiling, and its latency.

1. A fresh topic is pre-filled with N Debezium-shaped Avro records (Confluent framing, schema registered).
2. Ceiling: the same N rows inserted with cassandra-driver (prepared INSERT, many in flight) into a table of
   the same definition, before the job starts so neither disturbs the other. Row generation is not timed.
3. Job: started under supervisord against the topic; throughput = N / (end of the last micro-batch - start
   of the first), from the job's own progress file; the wall time from ``spark-submit`` is reported too.
4. Latency: the job keeps running while records are produced at a fixed rate (default 1,000/s for 60 s);
   batch durations come from the progress file, per-record latency (processed_at - fetched_at) from the
   rows read back from Cassandra.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args
from confluent_kafka import Producer

from userstream.cdc.topics import admin, ensure_topics
from userstream.config import Settings
from userstream.kafka_clients import client_config
from userstream.runtime.process import ProcessManager
from userstream.store.cassandra import apply_cassandra_schema, cluster_options, connect
from userstream.stream import synthetic
from userstream.stream.checks import count_rows, rows_by_id
from userstream.stream.control import ensure_job_running, job_conf, job_paths, stop_job
from userstream.stream.progress import read_progress
from userstream.stream.rules import COLUMNS

PROGRAM = "stream-bench"
BENCH_KEYSPACE = "bench_stream"
CEILING_KEYSPACE = "bench_stream_ceiling"
CHUNK = 20_000


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class StreamBench:
    records: int
    produce_rows_per_s: float = 0.0
    ceiling_records: int = 0
    ceiling_rows_per_s: float = 0.0
    ceiling_concurrency: int = 0
    ceiling_processes: int = 1
    job_rows_per_s: float = 0.0
    job_seconds: float = 0.0
    job_wall_seconds: float = 0.0  # from spark-submit to the last row written (JVM start, first planning)
    job_batches: int = 0
    # CPU seconds the local Cassandra spent in each phase (None when external): whether a phase was bound by
    # Cassandra or by its client shows here, not in the rates
    ceiling_cassandra_cpu_s: float | None = None
    job_cassandra_cpu_s: float | None = None
    rows_in_cassandra: int = 0
    ratio: float = 0.0
    latency_rate: float = 0.0
    latency_records: int = 0
    batch_ms: dict[str, float | None] = field(default_factory=dict)
    record_latency_ms: dict[str, float | None] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- producing -------------------------------------------------------------------------------------------
def _producer(settings: Settings) -> Any:
    return Producer(
        client_config(
            settings,
            "admin",  # the bench's producer stands in for Connect on the bench's own topic
            "bench",
            **{
                "linger.ms": 20,
                "batch.size": 1_000_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 500_000,
                "acks": "all",
            },
        )
    )


def _produce(producer: Any, topic: str, key: bytes, value: bytes) -> None:
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            return
        except BufferError:  # local queue full: let librdkafka send some
            producer.poll(0.05)


class Encoders:
    def __init__(self, settings: Settings) -> None:
        value_id = synthetic.register(settings, f"{settings.users_topic}-value", synthetic.value_schema())
        key_id = synthetic.register(settings, f"{settings.users_topic}-key", synthetic.key_schema())
        self.value = synthetic.AvroEncoder(synthetic.value_schema(), value_id)
        self.key = synthetic.AvroEncoder(synthetic.key_schema(), key_id)

    def encode(self, record: dict[str, Any]) -> tuple[bytes, bytes]:
        return self.key.encode({"id": record["id"]}), self.value.encode(record)


def prefill(settings: Settings, encoders: Encoders, n: int, run: str, fetched_at: datetime) -> float:
    """Produce records 0..n-1 of ``run``; returns records/s."""
    producer = _producer(settings)
    t0 = time.monotonic()
    for i in range(n):
        key, value = encoders.encode(synthetic.user_value(i, run=run, fetched_at=fetched_at))
        _produce(producer, settings.users_topic, key, value)
        if i % 5000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("the producer could not deliver every record within 120 s")
    return n / (time.monotonic() - t0)


def produce_at_rate(settings: Settings, encoders: Encoders, rate: float, seconds: float, run: str) -> list[uuid.UUID]:
    """Produce ``rate`` records/s for ``seconds``, each with fetched_at = its production time; returns ids."""
    producer = _producer(settings)
    ids: list[uuid.UUID] = []
    t0 = time.monotonic()
    tick = 0.01
    i = 0
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(elapsed * rate) + 1
        while i < due:
            record = synthetic.user_value(i, run=run, fetched_at=datetime.now(UTC))
            key, value = encoders.encode(record)
            _produce(producer, settings.users_topic, key, value)
            ids.append(uuid.UUID(record["id"]))
            i += 1
        producer.poll(0)
        time.sleep(tick)
    producer.flush(60)
    return ids


# --- the ceiling -----------------------------------------------------------------------------------------
def _insert_rows(settings: Settings, keyspace: str, run: str, start: int, stop: int, concurrency: int) -> float:
    """Insert rows start..stop-1 with a prepared statement, ``concurrency`` in flight; returns seconds spent
    inserting (generation excluded)."""
    cluster = Cluster(settings.cassandra_hosts, **cluster_options(settings, "admin"))
    try:
        session = cluster.connect()
        cols = (*COLUMNS, "processed_at")
        insert = session.prepare(
            f"INSERT INTO {keyspace}.created_users ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        )
        now = datetime.now(UTC)
        fetched_at = datetime.now(UTC)
        spent = 0.0
        for lo in range(start, stop, CHUNK):
            rows = []
            for i in range(lo, min(stop, lo + CHUNK)):
                row = synthetic.stored_row(synthetic.user_value(i, run=run, fetched_at=fetched_at))
                rows.append((*(row[c] for c in COLUMNS), now))
            t0 = time.monotonic()
            for ok, result in execute_concurrent_with_args(session, insert, rows, concurrency=concurrency):
                if not ok:
                    raise result
            spent += time.monotonic() - t0
        return spent
    finally:
        cluster.shutdown()


def _insert_worker(args: tuple[dict[str, Any], str, str, int, int, int]) -> float:
    settings_data, keyspace, run, start, stop, concurrency = args
    return _insert_rows(Settings(**settings_data), keyspace, run, start, stop, concurrency)


def cassandra_ceiling(settings: Settings, n: int, run: str, concurrency: int, processes: int) -> float:
    """Rows/s of prepared async inserts of the benchmark's rows (``processes`` clients side by side)."""
    apply_cassandra_schema(settings, keyspace=CEILING_KEYSPACE)
    session = connect(settings)
    try:
        session.execute(f"TRUNCATE {CEILING_KEYSPACE}.created_users", timeout=120)
    finally:
        session.cluster.shutdown()
    if processes <= 1:
        return n / _insert_rows(settings, CEILING_KEYSPACE, run, 0, n, concurrency)
    data = settings.model_dump(mode="json") | {"data_dir": str(settings.root)}
    step = -(-n // processes)
    jobs = [(data, CEILING_KEYSPACE, run, lo, min(n, lo + step), concurrency) for lo in range(0, n, step)]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        # each client times its own inserts; they run side by side, so the slowest one bounds the rate
        spent = pool.map(_insert_worker, jobs)
    return n / max(spent)


def cassandra_cpu_s(settings: Settings) -> float | None:
    """User+system CPU seconds of our local Cassandra process so far (None when external or unknown)."""
    if settings.cassandra_contact_points:
        return None
    pid = ProcessManager(settings).pid("cassandra")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _delta(after: float | None, before: float | None) -> float | None:
    return round(after - before, 1) if after is not None and before is not None else None


# --- the job ---------------------------------------------------------------------------------------------
def _users_batches(progress: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [b for b in (progress or {}).get("recent_batches", []) if b.get("query") == "users"]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_for_rows(
    settings: Settings, target: int, timeout_s: float, seen: dict[int, dict[str, Any]], say: Callable[[str], None]
) -> dict[str, Any]:
    """Poll the progress file until ``totals.valid`` reaches ``target``; collects users batches in ``seen``."""
    path = job_paths(settings, PROGRAM).progress
    deadline = time.monotonic() + timeout_s
    last_report = 0.0
    while time.monotonic() < deadline:
        progress = read_progress(path)
        for b in _users_batches(progress):
            seen[b["batch_id"]] = b
        valid = int(((progress or {}).get("totals") or {}).get("valid", 0))
        if progress and progress.get("state") == "failed":
            raise RuntimeError(f"the job failed: {progress.get('error')}")
        if valid >= target:
            return progress or {}
        if time.monotonic() - last_report > 15:
            say(f"  {valid:,}/{target:,} rows written")
            last_report = time.monotonic()
        time.sleep(0.5)
    raise TimeoutError(f"the job wrote fewer than {target:,} rows in {timeout_s:.0f}s (see `userstream logs`)")


def bench_stream(
    settings: Settings,
    *,
    records: int = 1_000_000,
    ceiling_records: int | None = None,
    ceiling_concurrency: int = 256,
    ceiling_processes: int = 1,
    latency_rate: float = 1000.0,
    latency_seconds: float = 60.0,
    keep: bool = False,
    say: Callable[[str], None] = print,
) -> StreamBench:
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    topic = f"bench.stream.{run}"
    bench = settings.model_copy(
        update={"users_topic": topic, "dlq_topic": f"{topic}.dlq", "cassandra_keyspace": BENCH_KEYSPACE}
    )
    result = StreamBench(records=records, ceiling_concurrency=ceiling_concurrency, ceiling_processes=ceiling_processes)
    conf = job_conf(bench)
    result.config = {
        "spark.cores.max": conf["spark.cores.max"],
        "maxOffsetsPerTrigger": bench.spark_max_offsets_per_trigger,
        "trigger": bench.spark_trigger_interval,
        "executor_memory": bench.spark_executor_memory,
        **{k: v for k, v in conf.items() if k.startswith("spark.cassandra.output")},
    }
    say(f"topic {topic}: producing {records:,} records")
    ensure_topics(bench)
    encoders = Encoders(bench)
    fetched_at = datetime.now(UTC)
    result.produce_rows_per_s = prefill(bench, encoders, records, run, fetched_at)
    say(f"  {result.produce_rows_per_s:,.0f} records/s produced")

    n_ceiling = ceiling_records or records
    say(f"ceiling: {n_ceiling:,} prepared inserts, {ceiling_concurrency} in flight x {ceiling_processes} client(s)")
    result.ceiling_records = n_ceiling
    cpu0 = cassandra_cpu_s(bench)
    result.ceiling_rows_per_s = cassandra_ceiling(bench, n_ceiling, run, ceiling_concurrency, ceiling_processes)
    result.ceiling_cassandra_cpu_s = _delta(cassandra_cpu_s(bench), cpu0)
    say(f"  {result.ceiling_rows_per_s:,.0f} rows/s; Cassandra CPU {result.ceiling_cassandra_cpu_s}s")

    apply_cassandra_schema(bench)
    session = connect(bench)
    try:
        for table in ("created_users", "users_by_country_minute"):
            session.execute(f"TRUNCATE {BENCH_KEYSPACE}.{table}", timeout=120)
        job_paths(bench, PROGRAM).progress.unlink(missing_ok=True)
        say("job: spark-submit")
        t_submit = time.time()
        cpu0 = cassandra_cpu_s(bench)
        ensure_job_running(bench, name=PROGRAM)
        seen: dict[int, dict[str, Any]] = {}
        try:
            progress = wait_for_rows(bench, records, timeout_s=max(600.0, records / 500), seen=seen, say=say)
            t_done = time.time()
            result.job_cassandra_cpu_s = _delta(cassandra_cpu_s(bench), cpu0)
            batches = sorted(seen.values(), key=lambda b: b["batch_id"])
            first = _ts(batches[0]["ts"])
            last = max(_ts(b["ts"]) + (b["duration_ms"] or 0) / 1000 for b in batches)
            result.job_seconds = last - first
            result.job_rows_per_s = records / result.job_seconds
            result.job_wall_seconds = t_done - t_submit
            result.job_batches = len(batches)
            result.ratio = result.job_rows_per_s / result.ceiling_rows_per_s
            result.rows_in_cassandra = count_rows(session, BENCH_KEYSPACE, "created_users")
            say(
                f"  {records:,} rows in {result.job_seconds:.1f}s of micro-batches ({result.job_batches}): "
                f"{result.job_rows_per_s:,.0f} rows/s; {result.rows_in_cassandra:,} rows in created_users; "
                f"Cassandra CPU {result.job_cassandra_cpu_s}s"
            )
            if latency_seconds > 0:
                say(f"latency: producing {latency_rate:,.0f} records/s for {latency_seconds:.0f}s")
                before = set(seen)
                t_start = time.time()
                ids = produce_at_rate(bench, encoders, latency_rate, latency_seconds, f"{run}-lat")
                base = int((progress.get("totals") or {}).get("valid", records))
                wait_for_rows(bench, base + len(ids), timeout_s=300, seen=seen, say=say)
                durations = [
                    float(b["duration_ms"])
                    for k, b in seen.items()
                    if k not in before and _ts(b["ts"]) >= t_start - 1 and b["duration_ms"] is not None
                ]
                rows = rows_by_id(session, BENCH_KEYSPACE, "created_users", ids, ["fetched_at", "processed_at"])
                lat = [(r.processed_at - r.fetched_at).total_seconds() * 1000 for r in rows]
                result.latency_rate = latency_rate
                result.latency_records = len(rows)
                result.batch_ms = _summary(durations)
                result.record_latency_ms = _summary(lat)
        finally:
            stop_job(bench, name=PROGRAM)
    finally:
        session.cluster.shutdown()
        if not keep:
            client = admin(bench)
            client.delete_topics([topic, bench.dlq_topic, bench.accepted_topic], operation_timeout=30)
    return result


def _summary(values: Sequence[float]) -> dict[str, float | None]:
    return {
        "count": float(len(values)),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
        "mean": statistics.fmean(values) if values else None,
    }
