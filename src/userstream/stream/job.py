"""The Spark Structured Streaming job: users topic -> decode -> validate -> Cassandra / DLQ, plus aggregates.

Two queries in one application (driver = this module, under ``spark-submit``):

``users``
    Kafka ``settings.users_topic`` -> ``foreachBatch``: split the Confluent frame, decode each writer schema
    id with ``from_avro`` (schemas fetched from the registry once), validate, then write valid rows to
    ``created_users``, rejected records (original key/value bytes, reason + source coordinates in headers)
    to ``settings.dlq_topic``, and (id, nat, fetched_at) of valid rows to the job's accepted topic (fixed
    widths, :func:`transform.accepted_value`).
``country_minute``
    accepted topic -> watermark on fetched_at -> drop duplicate ids within the watermark -> count per
    (nat, 1-minute window) -> update mode -> upsert ``users_by_country_minute``.

Why two queries: a streaming aggregation needs a streaming DataFrame, and records whose writer schema can
change mid-stream can only be decoded batch by batch. The accepted topic hands the decoded, validated rows
to a native event-time aggregation (exactly-once state in the checkpoint); replays of the users query can
re-send rows to it, which the dedup on id absorbs. Every write is an upsert by natural key, so a replayed
micro-batch rewrites the same rows: no loss, no duplicates.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryListener,
)
from pyspark.sql.streaming.query import StreamingQuery

from userstream.cdc.topics import ensure_topics
from userstream.config import Settings
from userstream.kafka_clients import jvm_client_props
from userstream.registry_clients import registry_client_config
from userstream.runtime.signals import stop_on_signals
from userstream.store.cassandra import spark_auth_conf, spark_tls_conf
from userstream.stream.control import JobPaths, job_paths
from userstream.stream.gateway import pin_jvm_names, require_gateway_token
from userstream.stream.keeper import QueryKeeper
from userstream.stream.offsets import OffsetCommitter
from userstream.stream.progress import ProgressTracker, iso_ms
from userstream.stream.registry import SchemaCache, registry_fetcher, subject_schema_ids
from userstream.stream.transform import LATENCY_RANKS, BatchPlan, accepted_fields

log = logging.getLogger("userstream.stream")

USERS_QUERY = "users"
AGGREGATE_QUERY = "country_minute"
CASSANDRA = "org.apache.spark.sql.cassandra"
USERS_TABLE = "created_users"
AGGREGATE_TABLE = "users_by_country_minute"
AGGREGATE_START_DELAY_MAX_S = 120.0  # the aggregate query waits at most this long for the users query's first batch
KEEPER_TICK_S = 2.0  # how often the driver checks its queries (and writes its heartbeat)


@dataclass(frozen=True)
class BatchStats:
    valid: int
    invalid: int
    unknown_ids: tuple[int, ...]
    latency_ms: tuple[float | None, float | None, float | None]


class UsersBatch:
    """The ``foreachBatch`` function of the users query.

    Two Spark actions per micro-batch, Cassandra first (it is what latency is measured to): the valid rows
    to ``created_users`` with the batch's counts observed on the way, then DLQ and accepted rows to Kafka
    in one write. Fewer actions is most of a small batch's time: each costs a plan, a job and a round trip.
    The columns are built once per set of known writer schemas (:class:`transform.BatchPlan`).
    """

    def __init__(self, settings: Settings, schemas: SchemaCache, tracker: ProgressTracker) -> None:
        self.settings = settings
        self.schemas = schemas
        self.tracker = tracker
        self._plans: dict[tuple[int, ...], BatchPlan] = {}

    def _plan(self) -> BatchPlan:
        known = self.schemas.known
        key = tuple(sorted(known))
        if key not in self._plans:
            fields = {i: self.schemas.fields(i) for i in known}
            self._plans = {  # a new schema set replaces the old: plans hold py4j references
                key: BatchPlan.build(known, fields, self.settings.dlq_topic, self.settings.accepted_topic)
            }
        return self._plans[key]

    def _write_users(self, plan: BatchPlan, checked: DataFrame, processed_ms: int) -> BatchStats:
        """Valid rows -> Cassandra; the batch's counts come back as observed metrics of that same write."""
        observation = Observation()
        observed = checked.observe(observation, *plan.observed)
        plan.users_rows(observed.filter(F.col("reason").isNull())).write.format(CASSANDRA).options(
            keyspace=self.settings.cassandra_keyspace, table=USERS_TABLE
        ).mode("append").save()
        got = observation.get
        # fetched_at at ranks 0.5, 0.05, 0.01 -> latency p50, p95, p99
        fetched_ms = [float(v) for v in (got.get("fetched_ms") or "").split(",") if v]
        latency = tuple(processed_ms - v for v in fetched_ms)
        p50, p95, p99 = latency if len(latency) == len(LATENCY_RANKS) else (None, None, None)
        return BatchStats(
            valid=int(got["valid"]),
            invalid=int(got["invalid"]),
            unknown_ids=tuple(int(i) for i in (got.get("unknown_ids") or "").split(",") if i),
            latency_ms=(p50, p95, p99),
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        processed_at = datetime.now(UTC)
        processed_ms = int(processed_at.timestamp() * 1000)
        batch_at = iso_ms(processed_at)
        started = time.perf_counter()
        plan = self._plan()
        checked = plan.checked(batch, batch_at)
        kafka_s = 0.0
        try:
            stats = self._write_users(plan, checked, processed_ms)
            if stats.unknown_ids and self.schemas.lookup(stats.unknown_ids):
                # a new writer schema (evolution) in this batch: decode again with it; the rows already
                # written are upserted again with the same values
                checked.unpersist()
                plan = self._plan()
                checked = plan.checked(batch, batch_at)
                stats = self._write_users(plan, checked, processed_ms)
            users_s = time.perf_counter() - started
            if stats.valid or stats.invalid:
                self._kafka(plan.kafka_rows(checked))
                kafka_s = time.perf_counter() - started - users_s
        finally:
            checked.unpersist()
        p50, p95, p99 = stats.latency_ms
        self.tracker.record_written(stats.valid, stats.invalid, {"p50": p50, "p95": p95, "p99": p99})
        log.info(
            "batch %d: %d valid, %d to the DLQ (Cassandra %.0f ms, Kafka %.0f ms)",
            batch_id, stats.valid, stats.invalid, users_s * 1000, kafka_s * 1000,
        )  # fmt: skip

    def _kafka(self, df: DataFrame) -> None:
        """Rows with a ``topic`` column, each to its topic."""
        (
            df.write.format("kafka")
            .option("kafka.bootstrap.servers", self.settings.kafka_bootstrap_servers)
            .options(**jvm_client_props(self.settings, "stream", "kafka."))
            .option("kafka.acks", "all")
            .option("kafka.linger.ms", "20")
            .option("kafka.compression.type", "lz4")
            .option("kafka.reconnect.backoff.max.ms", "5000")
            .save()
        )


def write_windows(settings: Settings) -> Any:
    def write(batch: DataFrame, batch_id: int) -> None:
        rows = batch.select(
            F.col("country"),
            F.col("window.start").alias("window_start"),
            F.col("window.end").alias("window_end"),
            F.col("users"),
            F.lit(iso_ms(datetime.now(UTC))).alias("updated_at"),  # text: see transform,
        )
        rows.write.format(CASSANDRA).options(keyspace=settings.cassandra_keyspace, table=AGGREGATE_TABLE).mode(
            "append"
        ).save()

    return write


# --- queries ----------------------------------------------------------------------------------------------
def kafka_stream(spark: SparkSession, settings: Settings, topic: str, max_offsets: int | None = None) -> DataFrame:
    """``max_offsets`` caps records per micro-batch; ``None`` reads all that is there at each trigger."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap_servers)
        .options(**jvm_client_props(settings, "stream", "kafka."))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
    )
    if max_offsets is not None:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets))
    return (
        reader
        # a pooled consumer's pipelined fetch past the end of the last range blocks the next task's fetch
        # for up to fetch.max.wait.ms (500 ms by default): that was most of a small micro-batch's time
        .option("kafka.fetch.max.wait.ms", "20")
        # a restarted broker is found again within seconds (the client's default backoff grows to 1 s)
        .option("kafka.reconnect.backoff.max.ms", "5000")
        # records deleted by retention before we read them are skipped (logged at start), not fatal
        .option("failOnDataLoss", "false")
        .load()
    )


def start_users_query(
    spark: SparkSession,
    settings: Settings,
    paths: JobPaths,
    schemas: SchemaCache,
    tracker: ProgressTracker,
) -> StreamingQuery:
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", USERS_QUERY)  # the query's thread inherits it
    return (
        kafka_stream(spark, settings, settings.users_topic, settings.spark_max_offsets_per_trigger)
        .writeStream.queryName(USERS_QUERY)
        .foreachBatch(UsersBatch(settings, schemas, tracker))
        .option("checkpointLocation", str(paths.users_checkpoint))
        .trigger(processingTime=settings.spark_trigger_interval)
        .start()
    )


def start_aggregate_query(spark: SparkSession, settings: Settings, paths: JobPaths) -> StreamingQuery:
    # uncapped: it triggers seldom, so a cap sized for the users query would leave it ever further behind
    accepted = kafka_stream(spark, settings, settings.accepted_topic).select(*accepted_fields(F.col("value")))
    counts = (
        accepted.withWatermark("fetched_at", settings.stream_watermark)
        .dropDuplicatesWithinWatermark(["id"])
        .groupBy(F.window("fetched_at", "1 minute"), F.col("nat").alias("country"))
        .agg(F.count(F.lit(1)).alias("users"))
    )
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", AGGREGATE_QUERY)
    return (
        counts.writeStream.queryName(AGGREGATE_QUERY)
        .outputMode("update")
        .foreachBatch(write_windows(settings))
        .option("checkpointLocation", str(paths.aggregate_checkpoint))
        # less often than the users query: each of its batches shuffles and commits state, on the same cores
        .trigger(processingTime=settings.stream_aggregate_trigger)
        .start()
    )


class ProgressListener(StreamingQueryListener):
    """Streaming progress of both queries into the progress file (dashboard), and the users query's
    processed offsets to its Kafka consumer group (:mod:`userstream.stream.offsets`)."""

    def __init__(self, tracker: ProgressTracker, committer: OffsetCommitter | None = None) -> None:
        self.tracker = tracker
        self.committer = committer

    def onQueryStarted(self, event: QueryStartedEvent) -> None:
        log.info("query %s started (id %s, run %s)", event.name, event.id, event.runId)

    def onQueryProgress(self, event: QueryProgressEvent) -> None:
        try:
            progress = json.loads(event.progress.json)
            self.tracker.record_progress(progress)
            self.tracker.write()
            if self.committer is not None and progress.get("name") == USERS_QUERY:
                for source in progress.get("sources") or []:
                    end = source.get("endOffset")
                    self.committer.commit(json.loads(end) if isinstance(end, str) else end or {})
        except Exception:  # a listener error must never disturb the queries
            log.exception("progress listener")

    def onQueryIdle(self, event: QueryIdleEvent) -> None:
        pass

    def onQueryTerminated(self, event: QueryTerminatedEvent) -> None:
        if event.exception:
            log.error("query %s failed: %s", event.id, event.exception)


def ensure_job_topics(settings: Settings) -> None:
    """The job's topics, with its own login: the control plane (``ensure_job_running``) made them and their
    ACLs; here their retention is kept in line, and the accepted topic, the one this login may create, is
    made if it went missing. A job started before the CDC must not crash-loop on a missing topic."""
    try:
        for topic, outcome in ensure_topics(settings, identity="stream").items():
            if outcome != "exists":
                log.info("topic %s: %s", topic, outcome)
    except Exception as exc:  # e.g. no rights on an external cluster: the query reports what is missing
        log.warning("could not ensure the job's topics: %s", exc)


def load_settings(path: Path) -> Settings:
    return Settings(**json.loads(path.read_text()))


def run(settings: Settings, name: str) -> int:
    paths = job_paths(settings, name)
    tracker = ProgressTracker(
        paths.progress,
        {
            "name": name,
            "users_topic": settings.users_topic,
            "dlq_topic": settings.dlq_topic,
            "accepted_topic": settings.accepted_topic,
            "keyspace": settings.cassandra_keyspace,
            "checkpoint": str(paths.checkpoint),
            "trigger_interval": settings.spark_trigger_interval,
            "max_offsets_per_trigger": settings.spark_max_offsets_per_trigger,
        },
    )
    tracker.write()
    spark = SparkSession.builder.appName(f"userstream-{name}").getOrCreate()
    require_gateway_token(spark)  # before any query: the JVM calls back into this process
    pin_jvm_names(spark.sparkContext._jvm)
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # transform.ts and ISO_MS read and write UTC
    # login and TLS read here, never on a command line
    for key, value in {**spark_auth_conf(settings, "stream"), **spark_tls_conf(settings)}.items():
        spark.conf.set(key, value)
    ensure_job_topics(settings)
    log.warning(
        "failOnDataLoss=false: offsets of %s removed by retention before the job read them are skipped "
        "with a Spark warning, not failed on",
        settings.users_topic,
    )
    committer = OffsetCommitter(settings)
    spark.streams.addListener(ProgressListener(tracker, committer))
    registry_config = registry_client_config(settings, "stream")  # reads only
    schemas = SchemaCache(registry_fetcher(registry_config))
    try:
        # the subject's versions up front: the first micro-batch then decodes in one pass, not two
        schemas.lookup(subject_schema_ids(registry_config, f"{settings.users_topic}-value"))
    except Exception as exc:  # the batches look ids up themselves; this is only a head start
        log.warning("could not preload the schemas of %s-value: %s", settings.users_topic, exc)
    stop = stop_on_signals()

    def asked_to_stop() -> bool:
        return stop.is_set() or paths.stop_file.exists()

    keeper = QueryKeeper()
    keeper.start(USERS_QUERY, lambda: start_users_query(spark, settings, paths, schemas, tracker))
    tracker.set_state("running")
    tracker.write()
    try:
        # the aggregate query restores its state store and shuffles: started together on a cold JVM it takes
        # the cores the users query's first micro-batch needs, so it starts once that batch is done
        deadline = time.monotonic() + AGGREGATE_START_DELAY_MAX_S
        users = keeper.queries[0]
        while users.lastProgress is None and time.monotonic() < deadline and users.isActive:  # type: ignore[attr-defined]
            if asked_to_stop():
                break
            time.sleep(0.5)
            tracker.write()  # the heartbeat goes on while the first batch runs (a minute or more, cold)
        if not asked_to_stop():
            keeper.start(AGGREGATE_QUERY, lambda: start_aggregate_query(spark, settings, paths))
        while not asked_to_stop():
            time.sleep(KEEPER_TICK_S)
            if keeper.check():
                spark.streams.resetTerminated()
            failures = keeper.failures()
            if failures:
                tracker.set_state("restarting", "; ".join(f"{n}: {e}" for n, e in failures.items()))
            elif tracker.state == "restarting":
                tracker.set_state("running")
            tracker.write()  # a heartbeat: updated_at moves while the job is idle
    finally:
        keeper.stop_all()
        committer.close()
        tracker.set_state("stopped")
        tracker.write()
        spark.stop()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="userstream-stream")
    parser.add_argument("--settings", type=Path, required=True, help="settings JSON written by the launcher")
    parser.add_argument("--name", default="stream")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    started = time.monotonic()
    code = run(load_settings(args.settings), args.name)
    log.info("job %s exits %d after %.0fs", args.name, code, time.monotonic() - started)
    logging.shutdown()
    sys.exit(code)
