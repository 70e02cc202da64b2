"""`userstream bench pipeline`: the whole pipeline at its maximum sustained rate, then at fixed rates.

Each run ingests from the bundled source (a child process) into Postgres; the records flow through CDC,
Kafka and Spark into Cassandra. A run's users are those fetched during it; its latency is, per user,
Cassandra's WRITETIME minus ``fetched_at``. Each stage's standalone ceiling is measured in the same
invocation (:func:`stage_ceilings`: ingest alone, then CDC alone; the stream stage from the flat-out run,
where the warm job drains the backlog alone once ingest and CDC are done), and the end-to-end rate is
reported as a ratio of the slowest.

Every run also reports the CPU it cost, per process tree, in microseconds per record: on a machine where
every stage shares the same cores, their sum bounds the end-to-end rate (cores / CPU per record).
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg
from cassandra.concurrent import execute_concurrent_with_args
from confluent_kafka import Consumer, TopicPartition

from userstream.cdc.connector import CONNECTOR_NAME
from userstream.config import Settings
from userstream.cpu_budget import BudgetRow, Calibration, budget_rows, calibrate
from userstream.errors import ServiceError
from userstream.ingest import ingest
from userstream.ingest.bench import source_server
from userstream.ingest.run import page_size_for
from userstream.kafka_clients import client_config
from userstream.pipeline import stop_flow
from userstream.runtime.bench import cpu_seconds
from userstream.runtime.connect import rest_client
from userstream.runtime.process import ProcessManager
from userstream.source import SourceClient
from userstream.store.cassandra import connect
from userstream.stream import job_paths
from userstream.stream.control import ensure_job_running, job_health, stop_job
from userstream.stream.progress import read_progress

log = logging.getLogger(__name__)

# the benchmark's own process is the ingest client; its children (the source server) are counted apart
INGEST_CLIENT = "ingest client (this process)"
SOURCE_SERVER = "source server"


@dataclass
class RunResult:
    label: str
    target_rate: float | None
    duration_s: float
    landed: int
    stored: int
    ingest_rate: float
    end_to_end_rate: float
    cassandra_write_rate: float
    spark_rate: float | None
    spark_alone_rate: float | None = None  # the job's rate once ingest and CDC were done (it drained alone)
    latency_ms: dict[str, float] = field(default_factory=dict)
    batch_ms: dict[str, float] = field(default_factory=dict)  # the users query's batches: mean rows and phases
    cpu_us_per_record: dict[str, float] = field(default_factory=dict)
    latencies_sample: list[float] = field(default_factory=list, repr=False)

    @property
    def cpu_us_total(self) -> float:
        return sum(self.cpu_us_per_record.values())

    @property
    def cpu_bound_rate(self) -> float | None:
        """records/s the machine's cores could carry at this run's CPU cost per record."""
        total = self.cpu_us_total
        return (os.cpu_count() or 1) / (total / 1e6) if total else None

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("latencies_sample")
        d["cpu_us_total"] = self.cpu_us_total
        d["cpu_bound_rate"] = self.cpu_bound_rate
        return d


@dataclass
class PipelineBench:
    started_at: str
    ceilings: dict[str, float]  # stage -> records/s alone (at least one)
    runs: list[RunResult]
    calibration: Calibration | None = None
    warmup: RunResult | None = None  # run before the measured ones, left out of them (cold JVMs compiling)
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)

    @property
    def ceiling_stage(self) -> str:
        """The slowest stage alone."""
        return min(self.ceilings, key=lambda stage: self.ceilings[stage])

    @property
    def ceiling_rate(self) -> float:
        return self.ceilings[self.ceiling_stage]

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "cpus": self.cpus,
            "ceiling": {"stage": self.ceiling_stage, "records_per_s": self.ceiling_rate},
            "stage_ceilings": self.ceilings,
            "runs": [r.row() for r in self.runs],
            "warmup": self.warmup.row() if self.warmup else None,
            "calibration": self.calibration.as_dict() if self.calibration else None,
            "cpu_budget": [
                {"group": b.group, "us_per_record": round(b.us_per_record, 1), "target_us": b.target_us,
                 "normalized_us": round(b.normalized_us, 1), "within": b.within}
                for b in self.budget
            ],
        }  # fmt: skip

    @property
    def budget(self) -> list[BudgetRow]:
        """The flat-out run's costs against the CPU budget (and scaled to the reference machine)."""
        return budget_rows(self.runs[0].cpu_us_per_record, self.calibration) if self.runs else []


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _connector_pause(settings: Settings, pause: bool) -> None:
    verb = "pause" if pause else "resume"
    with rest_client(settings) as http:
        resp = http.put(f"/connectors/{CONNECTOR_NAME}/{verb}")
    if resp.status_code >= 400:
        raise ServiceError(f"could not {verb} the CDC connector: HTTP {resp.status_code} {resp.text[:300]}")


def _ids_fetched_between(settings: Settings, t0: datetime, t1: datetime) -> list[tuple[uuid.UUID, datetime]]:
    """(id, fetched_at) of the users landed between ``t0`` and ``t1``, oldest first."""
    with psycopg.connect(settings.postgres_conninfo) as conn:
        rows = conn.execute(
            "SELECT id, fetched_at FROM staging.users WHERE fetched_at >= %s AND fetched_at <= %s ORDER BY fetched_at",
            (t0, t1),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


class StoredUsers:
    """Reads users' Cassandra WRITETIMEs with one session; waits for a drain without loading Cassandra."""

    def __init__(self, settings: Settings) -> None:
        self.session = connect(settings, "monitor")
        self.stmt = self.session.prepare(
            f"SELECT id, writetime(email) AS wt FROM {settings.cassandra_keyspace}.created_users WHERE id IN ?"
        )

    def __enter__(self) -> StoredUsers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.cluster.shutdown()

    def writetimes(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
        """id -> WRITETIME (microseconds) of those of ``ids`` already in Cassandra."""
        chunks = [(ids[i : i + 100],) for i in range(0, len(ids), 100)]
        out: dict[uuid.UUID, int] = {}
        # a chunk that times out (a loaded cluster) stays pending: the callers read again what is missing
        results = execute_concurrent_with_args(
            self.session, self.stmt, chunks, concurrency=32, raise_on_first_error=False
        )
        for ok, result in results:
            if ok:
                for row in result:
                    out[row.id] = int(row.wt)
        return out

    def wait_drained(self, ids: list[uuid.UUID], deadline: float, newest: int = 200) -> None:
        """Until the ``newest`` of ``ids`` (oldest first) are stored: polling every pending id instead would
        load Cassandra as much as the writes being measured."""
        tail = ids[-newest:]
        while tail and time.monotonic() < deadline and len(self.writetimes(tail)) < len(tail):
            time.sleep(1)

    def collect(self, ids: list[uuid.UUID], deadline: float) -> dict[uuid.UUID, int]:
        """WRITETIMEs of all ``ids``, re-reading the missing ones until they are there or the deadline."""
        found: dict[uuid.UUID, int] = {}
        pending = list(ids)
        while pending:
            found.update(self.writetimes(pending))
            pending = [i for i in pending if i not in found]
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(2)
        return found


def _wait_stored(settings: Settings, ids: list[uuid.UUID], timeout_s: float) -> dict[uuid.UUID, int]:
    deadline = time.monotonic() + timeout_s
    with StoredUsers(settings) as stored:
        stored.wait_drained(ids, deadline)
        return stored.collect(ids, deadline)


def _users_batches(settings: Settings, since_ms: float) -> list[dict[str, Any]]:
    """The users query's non-empty micro-batches that started since ``since_ms`` (progress file)."""
    progress = read_progress(job_paths(settings).progress) or {}
    return [
        b for b in progress.get("recent_batches", [])
        if isinstance(b, dict) and b.get("query") == "users" and _ts_ms(b.get("ts")) >= since_ms and b.get("rows")
    ]  # fmt: skip


def _batch_phases(settings: Settings, since_ms: float) -> dict[str, float]:
    """Where a users micro-batch's time went, on average over those since ``since_ms``: ``batches``, ``rows``,
    ``duration`` and Spark's phases (``addBatch`` is our foreachBatch: decode, validate, both writes)."""
    batches = _users_batches(settings, since_ms)
    if not batches:
        return {}
    out = {
        "batches": float(len(batches)),
        "rows": statistics.fmean(float(b["rows"]) for b in batches),
        "duration": statistics.fmean(float(b.get("duration_ms") or 0) for b in batches),
    }
    phases = sorted({k for b in batches for k in (b.get("phases_ms") or {}) if k != "triggerExecution"})
    for phase in phases:
        out[phase] = statistics.fmean(float((b.get("phases_ms") or {}).get(phase) or 0) for b in batches)
    return out


def _spark_rate(settings: Settings, since_ms: float) -> float | None:
    """Rows over the busy time of the users query's batches that started since ``since_ms``."""
    batches = _users_batches(settings, since_ms)
    rows = sum(int(b.get("rows") or 0) for b in batches)
    busy_ms = sum(float(b.get("duration_ms") or 0) for b in batches)
    return rows / (busy_ms / 1000) if busy_ms else None


def _ts_ms(value: object) -> float:
    if isinstance(value, int | float):
        return float(value) * (1000 if value < 1e11 else 1)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return 0.0
    return 0.0


def _cpu_snapshot(settings: Settings) -> dict[str, float]:
    me = psutil.Process()
    own = me.cpu_times()
    out = cpu_seconds(ProcessManager(settings).running_pids())
    out[INGEST_CLIENT] = own.user + own.system
    out[SOURCE_SERVER] = sum(cpu_seconds({str(c.pid): c.pid for c in me.children()}).values())
    return out


def _cpu_per_record(before: dict[str, float], after: dict[str, float], records: int) -> dict[str, float]:
    """CPU microseconds per record by process between two snapshots, the costliest first."""
    spent = {k: after[k] - before.get(k, 0.0) for k in after}
    n = max(records, 1)
    return {k: v / n * 1e6 for k, v in sorted(spent.items(), key=lambda kv: -kv[1]) if v > 0}


def run_once(
    settings: Settings, url: str, label: str, rate: float | None, duration_s: float, drain_timeout_s: float
) -> RunResult:
    """Ingest for ``duration_s`` (at ``rate``, or flat out), wait until those users are in Cassandra, measure.

    The CPU figures cover ingest up to the drain, not the final read of every WRITETIME.
    """
    cpu_before = _cpu_snapshot(settings)
    seed = f"pipe-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC)
    page_size = page_size_for(rate, settings.source_page_size)
    with SourceClient(url, settings=settings, seed=seed, page_size=page_size) as client:
        report = ingest(settings, duration_s=duration_s, rate=rate, seed=seed, source=client)
    t1 = datetime.now(UTC)
    landed = _ids_fetched_between(settings, t0, t1)
    fetched = dict(landed)
    deadline = time.monotonic() + drain_timeout_s
    cdc_done_ms = _wait_topic_settled(settings, deadline)
    with StoredUsers(settings) as reader:
        reader.wait_drained(list(fetched), deadline)
        cpu_after = _cpu_snapshot(settings)
        stored = reader.collect(list(fetched), deadline)
    lat = [wt / 1000 - fetched[i].timestamp() * 1000 for i, wt in stored.items()]
    if stored:
        first_fetch = min(fetched[i] for i in stored).timestamp()
        last_write = max(stored.values()) / 1e6
        first_write = min(stored.values()) / 1e6
        e2e = len(stored) / max(last_write - first_fetch, 1e-3)
        cass = len(stored) / max(last_write - first_write, 1e-3)
    else:
        e2e = cass = 0.0
    return RunResult(
        label=label,
        target_rate=rate,
        duration_s=duration_s,
        landed=len(landed),
        stored=len(stored),
        ingest_rate=report.rate,
        end_to_end_rate=e2e,
        cassandra_write_rate=cass,
        spark_rate=_spark_rate(settings, t0.timestamp() * 1000),
        spark_alone_rate=_spark_rate(settings, cdc_done_ms) if cdc_done_ms is not None else None,
        batch_ms=_batch_phases(settings, t0.timestamp() * 1000),
        latency_ms={"p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99)},
        cpu_us_per_record=_cpu_per_record(cpu_before, cpu_after, len(stored)),
        latencies_sample=lat[:: max(1, len(lat) // 5000)],
    )


INGEST_STAGE = "ingest (fetch+validate+COPY into Postgres)"
CDC_STAGE = "CDC (Postgres WAL -> Debezium -> Kafka)"
STREAM_STAGE = "stream (Kafka -> Spark -> Cassandra)"


def _topic_end(settings: Settings) -> int:
    """Sum of the users topic's end offsets."""
    consumer = Consumer(client_config(settings, "admin", "bench", **{"group.id": "userstream-bench"}))
    try:
        meta = consumer.list_topics(settings.users_topic, timeout=10).topics[settings.users_topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(settings.users_topic, p), timeout=10)[1]
            for p in meta.partitions
        )
    finally:
        consumer.close()


def _wait_topic_settled(settings: Settings, deadline: float, quiet_s: float = 2.0) -> float | None:
    """Once ingest has ended: the moment (epoch ms) the users topic stopped growing, i.e. CDC has delivered
    everything landed. The streaming job's batches after it ran alone (the stream stage's ceiling). None when
    the topic cannot be read (e.g. a client without the admin login): the run's other figures still stand."""
    try:
        return _topic_settled_at(settings, deadline, quiet_s)
    except Exception as exc:  # confluent_kafka raises KafkaException and others
        log.warning("could not follow the users topic's end offsets (%s): no stream-alone rate", exc)
        return None


def _topic_settled_at(settings: Settings, deadline: float, quiet_s: float) -> float | None:
    last, since = _topic_end(settings), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        end = _topic_end(settings)
        if end != last:
            last, since = end, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return time.time() * 1000 - (time.monotonic() - since) * 1000
    return None


def _committed_offsets(settings: Settings) -> int | None:
    """Sum of the users topic offsets up to which the streaming job has committed a micro-batch (from its
    checkpoint: ``commits/<id>`` marks batch ``id`` done, ``offsets/<id>`` ends with its end offsets)."""
    checkpoint = job_paths(settings).users_checkpoint
    done = [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*") if p.name.isdigit()]
    if not done:
        return None
    try:
        last = (checkpoint / "offsets" / str(max(done))).read_text().strip().splitlines()[-1]
        ends = json.loads(last).get(settings.users_topic, {})
    except (OSError, ValueError, IndexError):
        return None
    return sum(int(v) for v in ends.values())


def _wait_job_caught_up(settings: Settings, timeout_s: float) -> None:
    """Until the streaming job has committed the users topic to its end (nothing left from before)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _committed_offsets(settings) == _topic_end(settings):
            return
        time.sleep(1)
    log.warning("the streaming job is still behind after %.0fs; the ceilings include that backlog", timeout_s)


def stage_ceilings(settings: Settings, url: str, records: int, drain_timeout_s: float) -> dict[str, float]:
    """Ingest's and CDC's records/s alone, one after the other, on the same ``records`` users.

    Once the streaming job has caught up it is stopped (a job of our own stack; an external one keeps
    running). With the CDC connector paused, ingest lands the users (the source, the ingest client and
    Postgres work; the rest idles). Then the connector is resumed and streams that backlog into Kafka, timed
    to the users topic's end offset. Then the job is started again and drains it. The stream stage's own
    ceiling comes from the flat-out run (:attr:`RunResult.spark_alone_rate`): once ingest and CDC are done
    there, the warm job drains the rest alone. Timed here, on a job just started, it measured its JIT
    compilers more than its work (half of its CPU), and end to end came out above it. Returns once every
    user is in Cassandra.
    """
    ceilings: dict[str, float] = {}
    _wait_job_caught_up(settings, drain_timeout_s)
    t0 = datetime.now(UTC)
    # a job of our own stack is stopped meanwhile, so that each stage runs alone
    alone = stop_job(settings)
    _connector_pause(settings, True)
    try:
        with SourceClient(url, settings=settings, seed=f"ceiling-{uuid.uuid4().hex[:8]}") as client:
            report = ingest(settings, max_records=records, source=client, seed=client.seed)
        ceilings[INGEST_STAGE] = report.rate
        end = _topic_end(settings) + report.landed
    finally:
        _connector_pause(settings, False)
    resumed = time.monotonic()
    deadline = resumed + drain_timeout_s
    try:
        while _topic_end(settings) < end and time.monotonic() < deadline:
            time.sleep(0.1)
        ceilings[CDC_STAGE] = report.landed / (time.monotonic() - resumed)
    finally:
        if alone:
            ensure_job_running(settings)
    _wait_stored(settings, [i for i, _ in _ids_fetched_between(settings, t0, datetime.now(UTC))], drain_timeout_s)
    if alone:
        _wait_job_healthy(settings, drain_timeout_s)  # the next run meets a running job, not a starting one
    return ceilings


def _wait_job_healthy(settings: Settings, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ok, _detail = job_health(settings)
        if ok:
            return
        time.sleep(1)
    log.warning("the streaming job is not healthy after %.0fs", timeout_s)


def _pause_ingest_dag(settings: Settings) -> None:
    """The demo's ingest DAG would compete with the timed runs: pause it (`userstream up --demo` resumes)."""
    try:
        stop_flow(settings)
    except Exception as exc:  # Airflow external or down: nothing of ours is ingesting then
        log.warning("could not pause the users_ingest DAG (%s); make sure nothing else ingests", exc)


def bench_pipeline(
    settings: Settings,
    *,
    max_duration_s: float = 60.0,
    rates: tuple[float, ...] = (100.0, 1000.0, 5000.0),
    rate_duration_s: float = 30.0,
    ceiling_records: int = 100_000,
    warmup_s: float = 20.0,
    drain_timeout_s: float = 600.0,
    out_dir: Path | None = None,
) -> PipelineBench:
    """Needs the stack up and bootstrapped (`userstream up` + `userstream bootstrap`).

    The ceilings restart the streaming job, so a flat-out ``warmup_s`` run comes first and is left out of
    the figures: the new driver's and executor's JIT compilers took as much CPU as their work in its
    first minute (per-thread CPU: C1 + C2 ~ 0.9 of the driver's ``stream execution`` thread), which is a
    cost paid once per start, not per record.
    """
    started = datetime.now(UTC).isoformat()
    calibration = calibrate()  # first: the stack is idle then
    _pause_ingest_dag(settings)
    with source_server(settings) as url:
        ceilings = stage_ceilings(settings, url, ceiling_records, drain_timeout_s)
        warmup = run_once(settings, url, "warm-up", None, warmup_s, drain_timeout_s) if warmup_s > 0 else None
        runs = [run_once(settings, url, "max sustained", None, max_duration_s, drain_timeout_s)]
        for rate in rates:
            runs.append(run_once(settings, url, f"{rate:.0f} records/s", rate, rate_duration_s, drain_timeout_s))
    flat_out = runs[0]
    if flat_out.spark_alone_rate is not None:
        ceilings[STREAM_STAGE] = flat_out.spark_alone_rate
    else:  # no progress file (an external job): its writes over their span
        ceilings[STREAM_STAGE] = flat_out.cassandra_write_rate
    result = PipelineBench(started, ceilings, runs, calibration, warmup)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "pipeline-bench.json").write_text(json.dumps(result.as_dict(), indent=2))
        plot(result, out_dir / "pipeline-bench.png")
    return result


def plot(result: PipelineBench, path: Path) -> None:
    import matplotlib  # kept local: heavy, and only plotting needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(18, 4.5))
    labels = [r.label for r in result.runs]
    ax1.bar(labels, [r.end_to_end_rate for r in result.runs], color="#4c72b0", label="end to end")
    ax1.axhline(result.ceiling_rate, color="#c44e52", linestyle="--", label=f"{result.ceiling_stage} ceiling")
    ax1.set_ylabel("records/s")
    ax1.set_title("throughput")
    ax1.legend()
    ax1.tick_params(axis="x", rotation=20)
    for r in result.runs:
        if r.latencies_sample:
            xs = sorted(v / 1000 for v in r.latencies_sample)
            ax2.plot(xs, [i / len(xs) for i in range(len(xs))], label=r.label)
    ax2.set_xlabel("latency fetched_at -> Cassandra write (s)")
    ax2.set_ylabel("share of records")
    ax2.set_title("latency CDF")
    ax2.legend()
    cpu = result.runs[0].cpu_us_per_record
    names = list(reversed(cpu))
    ax3.barh(names, [cpu[n] for n in names], color="#55a868")
    ax3.set_xlabel("CPU microseconds per record")
    ax3.set_title(f"CPU cost by process ({result.runs[0].label})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
