"""Collect one :class:`PipelineSnapshot` from every backend, each through its own client.

Design:
- every section runs in its own worker thread with a deadline; a backend that is down or slow yields its
  section with ``error`` (or the previous answer marked ``stale``) and never holds up the others;
- at most one query per section is in flight, so a hung backend cannot pile up threads;
- exact counts of the big tables (``staging.users``, ``created_users``) run in a background thread and are
  cached: they are refreshed at most every ``dashboard_count_interval_s`` (Cassandra) and never take more
  than ~10% of the wall time (the interval grows with the count's own duration);
- rates come from differences with the previous snapshot, kept in the collector.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import httpx
import psycopg
from pydantic import BaseModel, Field

from userstream.config import Settings
from userstream.monitor.models import (
    CassandraSection,
    ConsumerLag,
    CountryWindow,
    IngestRun,
    IngestSection,
    KafkaSection,
    LatencySection,
    PipelineSnapshot,
    PostgresSection,
    ReasonCount,
    RecentReason,
    RegistrySection,
    Section,
    ServiceHealth,
    ServicesSection,
    SparkApp,
    SparkSection,
    StoredUser,
    Subject,
    TopicOffsets,
)
from userstream.monitor.progress import progress_path, read_progress
from userstream.monitor.stages import apply_rates, build_stages, latency_histogram
from userstream.runtime.base import tcp_open

__all__ = ["ALL_SECTIONS", "COUNT_SECTIONS", "BackgroundValue", "Collector", "collect_snapshot", "links"]

log = logging.getLogger(__name__)

ALL_SECTIONS = ("ingest", "postgres", "kafka", "registry", "spark", "cassandra", "services")
# what the terminal view needs: only the per-stage counters
COUNT_SECTIONS = ("ingest", "postgres", "kafka", "spark", "cassandra")

# DLQ header names that may carry the failure reason, most specific first
_REASON_HEADERS = ("dlq.reason", "reason", "error", "error.message", "x-reason", "exception")

T = TypeVar("T")

_COUNT_PROFILE = "userstream-monitor-count"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def _epoch(value: Any) -> float | None:
    """Unix seconds of a datetime (naive values are UTC, as the Cassandra driver returns them)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


class BackgroundValue(Generic[T]):
    """A value that is slow to compute (an exact count), refreshed in its own thread and cached.

    A refresh starts when the previous one finished at least ``max(min_interval_s, duration / duty)``
    seconds ago, so a count that takes 3 s runs at most every 30 s with the default duty of 10%.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        *,
        min_interval_s: float,
        duty: float = 0.1,
        clock: Callable[[], float] = time.time,
        name: str = "count",
    ) -> None:
        self._compute = compute
        self.min_interval_s = min_interval_s
        self.duty = duty
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started_at: float | None = None
        self._duration_s = 0.0
        self.value: T | None = None
        self.measured_at: float | None = None
        self.error: str | None = None

    def _due(self) -> bool:
        if self._started_at is None:
            return True
        interval = max(self.min_interval_s, self._duration_s / self.duty if self.duty > 0 else 0.0)
        return self._clock() - self._started_at >= interval

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            value = self._compute()
        except Exception as exc:
            with self._lock:
                self.error = _short(exc)
        else:
            with self._lock:
                self.value, self.measured_at, self.error = value, self._clock(), None
        finally:
            with self._lock:
                self._duration_s = time.monotonic() - t0

    def refresh(self) -> None:
        """Start a refresh in the background if one is due and none is running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if not self._due():
                return
            self._started_at = self._clock()
            self._thread = threading.Thread(target=self._run, name=f"monitor-{self._name}", daemon=True)
            self._thread.start()

    def get(self, wait_s: float = 0.0) -> tuple[T | None, float | None, str | None]:
        """(value, measured_at, error); waits up to ``wait_s`` when there is no value yet."""
        self.refresh()
        thread = self._thread
        if self.value is None and self.error is None and thread is not None and wait_s > 0:
            thread.join(wait_s)
        with self._lock:
            return self.value, self.measured_at, self.error


@dataclass
class _Slot:
    name: str
    fn: Callable[[], BaseModel]
    default: Callable[[], BaseModel]
    min_interval_s: float
    future: Future[BaseModel] | None = None
    last: BaseModel | None = None
    started: float = field(default=-1e18)


class _CassandraResult(Section):
    cassandra: CassandraSection = Field(default_factory=CassandraSection)
    latency: LatencySection = Field(default_factory=LatencySection)


def links(settings: Settings) -> dict[str, str]:
    """Human-facing UIs of the stack."""
    out = {"Airflow UI": settings.airflow_endpoint}
    if settings.spark_master_url is None:
        out["Spark master UI"] = f"http://{settings.bind_host}:{settings.spark_master_ui_port}"
    out["Schema registry"] = settings.registry_endpoint.rstrip("/") + "/subjects"
    out["Kafka Connect"] = settings.connect_endpoint + "/connectors"
    return out


class Collector:
    """Builds snapshots; keep one per process (it holds the clients, caches and the previous snapshot)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sections: Iterable[str] | None = None,
        timeout_s: float = 4.0,
        min_age_s: float = 0.0,
        sample_size: int = 100,
    ) -> None:
        self.settings = settings
        self.sections = tuple(sections) if sections is not None else ALL_SECTIONS
        unknown = set(self.sections) - set(ALL_SECTIONS)
        if unknown:
            raise ValueError(f"unknown monitor sections: {sorted(unknown)}")
        self.timeout_s = timeout_s
        self.min_age_s = min_age_s
        self.sample_size = sample_size
        self.previous: PipelineSnapshot | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=len(self.sections) + 1, thread_name_prefix="monitor")
        self._kafka_lock = threading.Lock()
        self._consumer: Any = None
        self._admin: Any = None
        self._dlq_cache: tuple[int, list[ReasonCount]] | None = None
        # one plain-HTTP client for local UIs: a new httpx client loads the CA bundle (~20 ms CPU) each time
        self._http = httpx.Client(timeout=2.0, verify=False)
        self._cass_lock = threading.Lock()
        self._cass_session: Any = None
        self._pg_counts = BackgroundValue(self._count_postgres, min_interval_s=2.0, name="pg-count")
        self._cass_count = BackgroundValue(
            self._count_cassandra, min_interval_s=settings.dashboard_count_interval_s, name="cassandra-count"
        )
        fns: dict[str, tuple[Callable[[], BaseModel], Callable[[], BaseModel], float]] = {
            "ingest": (self.collect_ingest, IngestSection, 0.0),
            "postgres": (self.collect_postgres, PostgresSection, 0.0),
            "kafka": (self.collect_kafka, KafkaSection, 0.0),
            "registry": (self.collect_registry, RegistrySection, 10.0),
            "spark": (self.collect_spark, SparkSection, 0.0),
            "cassandra": (self._collect_cassandra_all, _CassandraResult, 2.0),
            "services": (self.collect_services, ServicesSection, 5.0),
        }
        self._slots = [_Slot(n, *fns[n]) for n in self.sections]

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        with self._kafka_lock:
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    self._consumer.close()
                self._consumer = None
            self._admin = None
        with self._cass_lock:
            if self._cass_session is not None:
                with contextlib.suppress(Exception):
                    self._cass_session.cluster.shutdown()
                self._cass_session = None

    # --- the snapshot --------------------------------------------------------------------------
    def snapshot(self) -> PipelineSnapshot:
        """A new snapshot (or the last one if younger than ``min_age_s``: many viewers, one collection)."""
        with self._lock:
            if self.previous is not None and time.time() - self.previous.taken_at < self.min_age_s:
                return self.previous
            snap = self._collect()
            self.previous = snap
            return snap

    def _guarded(self, slot: _Slot) -> BaseModel:
        try:
            return slot.fn()
        except Exception as exc:  # a section never raises: it reports
            log.debug("monitor section %s failed", slot.name, exc_info=True)
            model = slot.default()
            if isinstance(model, Section):
                model.error = _short(exc)
                model.measured_at = time.time()
            return model

    def _collect(self) -> PipelineSnapshot:
        t0 = time.monotonic()
        for slot in self._slots:
            idle = slot.future is None or slot.future.done()
            if idle and t0 - slot.started >= slot.min_interval_s:
                slot.started = t0
                slot.future = self._pool.submit(self._guarded, slot)
        pending = [s.future for s in self._slots if s.future is not None and not s.future.done()]
        if pending:
            wait_futures(pending, timeout=max(0.0, t0 + self.timeout_s - time.monotonic()))
        results: dict[str, BaseModel] = {}
        for slot in self._slots:
            fut = slot.future
            if fut is not None and fut.done() and not fut.cancelled():
                slot.last = fut.result()
            running = fut is not None and not fut.done()
            if slot.last is None:
                model = slot.default()
                if isinstance(model, Section):
                    model.error = f"no answer within {self.timeout_s:.0f}s"
                results[slot.name] = model
            elif running:
                results[slot.name] = slot.last.model_copy(update={"stale": True})
            else:
                results[slot.name] = slot.last
        snap = PipelineSnapshot(taken_at=time.time(), links=links(self.settings))
        for name in ("ingest", "postgres", "kafka", "registry", "spark", "services"):
            if name in results:
                setattr(snap, name, results[name])
        cass = results.get("cassandra")
        if isinstance(cass, _CassandraResult):
            snap.cassandra = cass.cassandra.model_copy(update={"stale": cass.stale})
            snap.latency = cass.latency.model_copy(update={"stale": cass.stale})
            if cass.error:
                snap.cassandra.error = snap.cassandra.error or cass.error
        snap.kafka = snap.kafka.model_copy(
            update={"lags": [*snap.kafka.lags, *spark_lags(snap.spark, snap.kafka)]}, deep=True
        )
        stages = build_stages(snap, self.settings.users_topic, self.settings.dlq_topic)
        snap.stages = apply_rates(self.previous, stages, now=snap.taken_at)
        snap.collect_ms = (time.monotonic() - t0) * 1000.0
        return snap

    # --- Postgres: ingest runs, staging.users, staging.rejected ----------------------------------
    def _pg(self, statement_timeout_ms: int = 5000) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            self.settings.postgres_conninfo,
            autocommit=True,
            connect_timeout=2,
            options=f"-c statement_timeout={statement_timeout_ms}",
            application_name="userstream-monitor",
        )

    def collect_ingest(self) -> IngestSection:
        with self._pg() as conn:
            agg = conn.execute(
                "SELECT count(*), coalesce(sum(requested), 0), coalesce(sum(landed), 0), "
                "coalesce(sum(duplicates), 0), coalesce(sum(rejected), 0) FROM staging.ingest_runs"
            ).fetchone()
            latest = conn.execute(
                "SELECT run_id, seed, status, requested, landed, duplicates, rejected, "
                "extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8 "
                "FROM staging.ingest_runs ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
        section = IngestSection(measured_at=time.time())
        if agg is not None:
            section.runs, section.requested, section.landed, section.duplicates, section.rejected = (
                int(v) for v in agg
            )
        if latest is not None:
            section.latest_run = IngestRun(
                run_id=latest[0], seed=latest[1], status=latest[2], requested=latest[3], landed=latest[4],
                duplicates=latest[5], rejected=latest[6], started_at=latest[7], finished_at=latest[8],
            )  # fmt: skip
        return section

    def _count_postgres(self) -> tuple[int, int]:
        # a full count of millions of rows takes seconds: it runs in the background, throttled
        with self._pg(statement_timeout_ms=120_000) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM staging.users), (SELECT count(*) FROM staging.rejected)"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    def collect_postgres(self) -> PostgresSection:
        with self._pg() as conn:
            reasons = conn.execute(
                "SELECT reason, extract(epoch FROM rejected_at)::float8, source FROM staging.rejected "
                "ORDER BY rejected_id DESC LIMIT 5"
            ).fetchall()
        counts, counted_at, count_error = self._pg_counts.get(wait_s=min(2.0, self.timeout_s / 2))
        section = PostgresSection(
            measured_at=time.time(),
            recent_rejects=[RecentReason(reason=r[0], at=r[1], source=r[2] or "") for r in reasons],
            error=count_error if counts is None else None,
        )
        if counts is not None:
            section.users, section.rejected = counts
            section.users_measured_at = counted_at
        return section

    def recent_landed_ids(self, limit: int) -> list[UUID]:
        """Ids of the most recently landed users, cheaply: the table is append-only, so they sit in its
        last heap pages; a TID range scan reads only those instead of sorting the whole table."""
        with self._pg() as conn:
            row = conn.execute(
                "SELECT pg_relation_size('staging.users') / current_setting('block_size')::int"
            ).fetchone()
            pages = int(row[0]) if row else 0
            # raw JSON makes a row ~1-2 KiB: 4-8 rows per page; read enough pages for `limit` rows
            first_page = max(0, pages - max(8, limit // 2))
            rows = conn.execute(
                "SELECT id FROM staging.users WHERE ctid >= %s::tid ORDER BY landed_at DESC LIMIT %s",
                (f"({first_page},0)", limit),
            ).fetchall()
        return [r[0] for r in rows]

    # --- Kafka ------------------------------------------------------------------------------------
    def _kafka_clients(self) -> tuple[Any, Any]:
        from confluent_kafka import Consumer
        from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

        if self._consumer is None:
            quiet = logging.getLogger("userstream.monitor.librdkafka")
            quiet.setLevel(logging.CRITICAL)
            common: dict[str, Any] = {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "socket.timeout.ms": 3000,
                "socket.connection.setup.timeout.ms": 2000,
                "reconnect.backoff.max.ms": 2000,
                "log.connection.close": False,
                "logger": quiet,
            }
            self._consumer = Consumer(
                {
                    **common,
                    # only assign() is used: nothing is ever committed, the group never shows up as a consumer
                    "group.id": "userstream-monitor",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                }
            )
            self._admin = AdminClient(common)
        return self._consumer, self._admin

    def collect_kafka(self) -> KafkaSection:
        s = self.settings
        if s.kafka_bootstrap is None and not tcp_open(s.bind_host, s.kafka_port, timeout_s=1.0):
            return KafkaSection(error=f"Kafka {s.kafka_bootstrap_servers} unreachable", measured_at=time.time())
        with self._kafka_lock:
            consumer, admin = self._kafka_clients()
            section = KafkaSection()
            metadata = consumer.list_topics(timeout=3)
            for topic in (s.users_topic, s.dlq_topic):
                section.topics[topic] = self._topic_offsets(consumer, metadata, topic)
            section.measured_at = time.time()
            with contextlib.suppress(Exception):  # group lags are a bonus: Spark commits no offsets
                section.lags = self._group_lags(admin, section.topics)
            dlq = section.topics.get(s.dlq_topic)
            if dlq is not None and dlq.error is None and dlq.retained > 0:
                try:
                    section.dlq_reasons = self._dlq_reasons(consumer, dlq)
                except Exception as exc:
                    section.dlq_reasons = [ReasonCount(reason=f"(headers unreadable: {_short(exc)})", count=0)]
        return section

    @staticmethod
    def _topic_offsets(consumer: Any, metadata: Any, topic: str) -> TopicOffsets:
        from confluent_kafka import TopicPartition

        meta = metadata.topics.get(topic)
        if meta is None:
            return TopicOffsets(topic=topic, error="topic does not exist")
        if meta.error is not None:
            return TopicOffsets(topic=topic, error=str(meta.error))
        out = TopicOffsets(topic=topic)
        for p in sorted(meta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=3, cached=False)
            out.partitions[p] = int(high)
            out.start_offsets[p] = int(low)
        out.end_total = sum(out.partitions.values())
        out.retained = out.end_total - sum(out.start_offsets.values())
        return out

    def _group_lags(self, admin: Any, topics: dict[str, TopicOffsets]) -> list[ConsumerLag]:
        from confluent_kafka import ConsumerGroupTopicPartitions

        listing = admin.list_consumer_groups(request_timeout=2).result()
        lags: list[ConsumerLag] = []
        groups = [g.group_id for g in listing.valid if g.group_id != "userstream-monitor"][:10]
        for group in groups:
            futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=2)
            committed = futures[group].result()
            per_topic: dict[str, int] = {}
            for tp in committed.topic_partitions or []:
                offsets = topics.get(tp.topic)
                if offsets is None or tp.offset < 0 or tp.partition not in offsets.partitions:
                    continue
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, offsets.partitions[tp.partition] - tp.offset)
            lags += [
                ConsumerLag(consumer=group, topic=t, lag=lag, source="committed offsets")
                for t, lag in per_topic.items()
            ]
        return lags

    def _dlq_reasons(self, consumer: Any, dlq: TopicOffsets, newest: int = 50) -> list[ReasonCount]:
        """Reasons (from headers) of the newest DLQ records; re-read only when the DLQ grew."""
        from confluent_kafka import TopicPartition

        if self._dlq_cache is not None and self._dlq_cache[0] == dlq.end_total:
            return self._dlq_cache[1]
        per_partition = max(1, newest // max(1, len(dlq.partitions)))
        assignment = []
        remaining: set[int] = set()
        for p, high in dlq.partitions.items():
            start = max(dlq.start_offsets.get(p, 0), high - per_partition)
            if start < high:
                assignment.append(TopicPartition(dlq.topic, p, start))
                remaining.add(p)
        reasons: Counter[str] = Counter()
        consumer.assign(assignment)
        try:
            deadline = time.monotonic() + 2.0
            while remaining and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() == -191:  # _PARTITION_EOF: that partition is read to its end
                        remaining.discard(msg.partition())
                    continue
                # one record may break several rules, joined by "; ": count each rule
                for reason in _reason_from_headers(msg.headers()).split("; "):
                    reasons[reason] += 1
                if msg.offset() + 1 >= dlq.partitions.get(msg.partition(), 0):
                    remaining.discard(msg.partition())
        finally:
            consumer.unassign()
        result = [ReasonCount(reason=r, count=c) for r, c in reasons.most_common(8)]
        self._dlq_cache = (dlq.end_total, result)
        return result

    # --- schema registry --------------------------------------------------------------------------
    def collect_registry(self) -> RegistrySection:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.error import SchemaRegistryError

        s = self.settings
        section = RegistrySection(url=s.registry_endpoint)
        if s.registry_url is None and not tcp_open(s.bind_host, s.registry_port, timeout_s=1.0):
            section.error = f"registry {s.registry_endpoint} unreachable"
            section.measured_at = time.time()
            return section
        # a fresh client each time: the client caches "latest version" answers
        client = SchemaRegistryClient({"url": s.registry_endpoint, "timeout": 3, "max.retries": 0})
        with contextlib.suppress(SchemaRegistryError):
            section.compatibility = str(client.get_compatibility())
        for name in sorted(client.get_subjects())[:30]:
            subject = Subject(name=name, versions=sorted(int(v) for v in client.get_versions(name)))
            with contextlib.suppress(SchemaRegistryError):
                schema_id = client.get_latest_version(name).schema_id
                subject.latest_schema_id = int(schema_id) if schema_id is not None else None
            with contextlib.suppress(SchemaRegistryError):  # no subject-level override: the global level
                subject.compatibility = str(client.get_compatibility(subject_name=name))
            section.subjects.append(subject)
        section.measured_at = time.time()
        return section

    # --- Spark -----------------------------------------------------------------------------------
    def collect_spark(self) -> SparkSection:
        s = self.settings
        section = read_progress(progress_path(s))
        if s.spark_master_url is not None:
            section.master_url = s.spark_master
            section.master_error = "external master: its web UI address is not configured"
            return section
        url = f"http://{s.bind_host}:{s.spark_master_ui_port}/json/"
        section.master_url = url
        try:
            response = self._http.get(url)
            response.raise_for_status()
            state = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            section.master_error = _short(exc)
            return section
        section.master_status = state.get("status")
        section.workers_alive = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")
        apps = [*state.get("activeapps", []), *state.get("completedapps", [])[-5:]]
        for app in apps:
            duration = app.get("duration")
            section.apps.append(
                SparkApp(
                    id=str(app.get("id", "?")),
                    name=str(app.get("name", "?")),
                    state=str(app.get("state", "?")),
                    cores=app["cores"] if isinstance(app.get("cores"), int) else None,
                    duration_s=duration / 1000.0 if isinstance(duration, int | float) else None,
                )
            )
        return section

    # --- Cassandra --------------------------------------------------------------------------------
    def _cassandra(self) -> Any:
        with self._cass_lock:
            if self._cass_session is None:
                from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile

                s = self.settings
                if s.cassandra_contact_points is None and not tcp_open(s.bind_host, s.cassandra_port, 1.0):
                    raise ConnectionError(f"Cassandra {s.bind_host}:{s.cassandra_port} unreachable")
                logging.getLogger("cassandra").setLevel(logging.ERROR)  # no reconnect warnings in our log
                # short client timeouts for the page's queries; a long one for the background count
                profiles = {
                    EXEC_PROFILE_DEFAULT: ExecutionProfile(request_timeout=5.0),
                    _COUNT_PROFILE: ExecutionProfile(request_timeout=60.0),
                }
                cluster = Cluster(
                    s.cassandra_hosts,
                    port=s.cassandra_port,
                    connect_timeout=3,
                    control_connection_timeout=3,
                    execution_profiles=profiles,
                )
                self._cass_session = cluster.connect()
            return self._cass_session

    def _count_cassandra(self) -> int:
        """Exact row count by token range: ``count(*)`` over the whole table times out on the server at
        millions of rows; 64 sub-range counts each stay well within the read timeout."""
        from cassandra.concurrent import execute_concurrent_with_args

        session = self._cassandra()
        ks = self.settings.cassandra_keyspace
        stmt = session.prepare(f"SELECT count(*) FROM {ks}.created_users WHERE token(id) > ? AND token(id) <= ?")
        lo, hi, splits = -(2**63), 2**63 - 1, 64
        step = (hi - lo) // splits
        bounds = [(lo + i * step, hi if i == splits - 1 else lo + (i + 1) * step) for i in range(splits)]
        results = execute_concurrent_with_args(
            session, stmt, bounds, concurrency=2, raise_on_first_error=True, execution_profile=_COUNT_PROFILE
        )
        return sum(int(r.result_or_exc.one()[0]) for r in results)

    def _collect_cassandra_all(self) -> _CassandraResult:
        out = _CassandraResult()
        try:
            out.cassandra = self.collect_cassandra()
        except Exception as exc:
            out.cassandra = CassandraSection(error=_short(exc), measured_at=time.time())
            out.latency = LatencySection(error=out.cassandra.error, measured_at=time.time())
            return out
        try:
            out.latency, out.cassandra.latest_users = self.collect_latency()
        except Exception as exc:
            out.latency = LatencySection(error=_short(exc), measured_at=time.time())
        return out

    def collect_cassandra(self) -> CassandraSection:
        session = self._cassandra()
        ks = self.settings.cassandra_keyspace
        section = CassandraSection(count_method="exact, by 64 token ranges, cached")
        count, counted_at, count_error = self._cass_count.get(wait_s=min(2.0, self.timeout_s / 2))
        section.users, section.users_measured_at = count, counted_at
        section.count_error = count_error if count is None or count_error else None
        if count is None and count_error is None:
            section.count_error = "counting..."
        # the clustering order is window_start DESC: PER PARTITION LIMIT reads each country's newest windows
        try:
            rows = session.execute(
                f"SELECT country, window_start, window_end, users FROM {ks}.users_by_country_minute "
                "PER PARTITION LIMIT 2"
            )
        except Exception as exc:  # the aggregate table is optional for the rest of the section
            section.windows_error = _short(exc)
            rows = []
        windows = [
            CountryWindow(country=r.country, window_start=_epoch(r.window_start) or 0.0,
                          window_end=_epoch(r.window_end), users=int(r.users or 0))
            for r in rows
        ]  # fmt: skip
        windows.sort(key=lambda w: (-w.window_start, -w.users, w.country))
        section.latest_windows = windows[:15]
        section.measured_at = time.time()
        return section

    def collect_latency(self) -> tuple[LatencySection, list[StoredUser]]:
        """Latency histogram and latest users from a sample: the most recently landed ids that are already
        in Cassandra (a token-order sample when Postgres is unavailable or Spark is far behind)."""
        from cassandra.concurrent import execute_concurrent_with_args

        session = self._cassandra()
        ks = self.settings.cassandra_keyspace
        cols = "id, first_name, last_name, email, nat, fetched_at, writetime(email) AS written"
        rows: list[Any] = []
        sample = ""
        with contextlib.suppress(Exception):
            ids = self.recent_landed_ids(self.sample_size)
            if ids:
                stmt = session.prepare(f"SELECT {cols} FROM {ks}.created_users WHERE id = ?")
                results = execute_concurrent_with_args(session, stmt, [(i,) for i in ids], concurrency=20)
                rows = [row for r in results if r.success for row in r.result_or_exc]
                sample = f"{len(rows)} of the {len(ids)} most recently landed users"
        if len(rows) < 10:
            rows += list(session.execute(f"SELECT {cols} FROM {ks}.created_users LIMIT {self.sample_size}"))
            sample = f"{len(rows)} rows in token order (recent landed rows not stored yet)"
        latencies = [
            r.written / 1000.0 - (_epoch(r.fetched_at) or 0.0) * 1000.0
            for r in rows
            if r.written is not None and r.fetched_at is not None
        ]
        histogram = latency_histogram(latencies, sample=sample, measured_at=time.time())
        seen: set[str] = set()
        users: list[StoredUser] = []
        for r in sorted(rows, key=lambda r: r.written or 0, reverse=True):
            if str(r.id) in seen:
                continue
            seen.add(str(r.id))
            users.append(
                StoredUser(
                    id=str(r.id),
                    name=f"{r.first_name or ''} {r.last_name or ''}".strip(),
                    email=r.email,
                    nat=r.nat,
                    fetched_at=_epoch(r.fetched_at),
                    written_at=r.written / 1e6 if r.written else None,
                )
            )
            if len(users) == 10:
                break
        return histogram, users

    # --- services ---------------------------------------------------------------------------------
    def collect_services(self) -> ServicesSection:
        from userstream.runtime.stack import Stack

        statuses = Stack(self.settings).status()
        return ServicesSection(
            measured_at=time.time(),
            services=[
                ServiceHealth(
                    name=st.name, external=st.external, running=st.running, healthy=st.health.healthy,
                    detail=st.health.detail, urls=_public_urls(st.urls),
                )
                for st in statuses
            ],
        )  # fmt: skip


def _public_urls(urls: dict[str, str]) -> dict[str, str]:
    # the dashboard's own URL carries its token: the page never shows it back
    return {k: v.split("?token=")[0] for k, v in urls.items()}


def _reason_from_headers(headers: list[tuple[str, bytes | None]] | None) -> str:
    if not headers:
        return "(no reason header)"
    by_key = {k.lower(): v for k, v in headers}
    for key in _REASON_HEADERS:
        if by_key.get(key) is not None:
            return _decode(by_key[key])
    for key, value in headers:  # unknown naming: the first header that looks like a reason
        if value is not None and ("reason" in key.lower() or "error" in key.lower()):
            return _decode(value)
    return "(no reason header)"


def _decode(value: bytes | None) -> str:
    text = (value or b"").decode("utf-8", errors="replace").strip()
    return text[:200] or "(empty reason)"


def spark_lags(spark: SparkSection, kafka: KafkaSection) -> list[ConsumerLag]:
    """The streaming job's lag per query: the broker's end offsets minus the offsets its last batch reached
    (Spark keeps offsets in its checkpoint, not in a consumer group); the job's own figure otherwise."""
    lags = []
    for q in spark.queries:
        if q.end_offsets:
            for topic, parts in q.end_offsets.items():
                broker = kafka.topics.get(topic)
                if broker is None or broker.error is not None or not broker.partitions:
                    continue
                lag = sum(max(0, end - parts.get(str(p), 0)) for p, end in broker.partitions.items())
                lags.append(ConsumerLag(consumer=f"spark:{q.name}", topic=topic, lag=lag, source="broker - batch end"))
        elif q.offsets_behind is not None:
            lags.append(
                ConsumerLag(consumer=f"spark:{q.name}", topic="?", lag=q.offsets_behind, source="job's offsets_behind")
            )
    return lags


def collect_snapshot(
    settings: Settings, *, sections: Iterable[str] | None = None, timeout_s: float = 5.0
) -> PipelineSnapshot:
    """One snapshot with fresh clients (rates need two: keep a :class:`Collector` for that)."""
    with Collector(settings, sections=sections, timeout_s=timeout_s) as collector:
        return collector.snapshot()
