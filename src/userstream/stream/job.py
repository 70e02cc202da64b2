"""The Spark Structured Streaming job: users topic -> decode -> validate -> Cassandra / DLQ, plus aggregates.

Two queries in one application (driver = this module, under ``spark-submit``):

``users``
    Kafka ``settings.users_topic`` -> ``foreachBatch``: split the Confluent frame, decode each writer schema
    id with ``from_avro`` (schemas fetched from the registry once), validate, then write valid rows to
    ``created_users``, rejected records (original key/value bytes, reason + source coordinates in headers)
    to ``settings.dlq_topic``, and (id, nat, fetched_at) of valid rows to the job's accepted topic (fixed
    widths, :func:`accepted_value`).
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
import operator
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro
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
from userstream.stream import rules
from userstream.stream.control import JobPaths, job_paths
from userstream.stream.gateway import pin_jvm_names, require_gateway_token
from userstream.stream.keeper import QueryKeeper
from userstream.stream.offsets import OffsetCommitter
from userstream.stream.progress import ProgressTracker
from userstream.stream.registry import SchemaCache, registry_fetcher, subject_schema_ids

log = logging.getLogger("userstream.stream")

USERS_QUERY = "users"
AGGREGATE_QUERY = "country_minute"
CASSANDRA = "org.apache.spark.sql.cassandra"
USERS_TABLE = "created_users"
AGGREGATE_TABLE = "users_by_country_minute"
META = ("key", "value", "topic", "partition", "offset", "timestamp")
ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"  # the session time zone is UTC
AGGREGATE_START_DELAY_MAX_S = 120.0  # the aggregate query waits at most this long for the users query's first batch
KEEPER_TICK_S = 2.0  # how often the driver checks its queries (and writes its heartbeat)


# --- decoding ---------------------------------------------------------------------------------------------
def split_frame(raw: DataFrame) -> DataFrame:
    """Kafka rows + ``schema_id`` (null unless Confluent-framed) + ``payload`` + ``frame_reason``."""
    value = F.col("value")
    framed = value.isNotNull() & (F.length(value) >= rules.HEADER_SIZE) & (F.hex(F.substring(value, 1, 1)) == "00")
    schema_id = F.when(framed, F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long"))
    payload = F.when(framed, F.expr(f"substring(value, {rules.HEADER_SIZE + 1})"))
    reason = F.when(value.isNull(), F.lit(rules.REASON_NULL_VALUE)).when(~framed, F.lit(rules.REASON_NOT_FRAMED))
    return raw.select(*META, schema_id.alias("schema_id"), payload.alias("payload"), reason.alias("frame_reason"))


def decode(framed: DataFrame, schemas: dict[int, str], fields: dict[int, tuple[str, ...]]) -> DataFrame:
    """Each row read with ``from_avro`` and its own writer schema, projected to our columns, in one pass.

    One struct column per known schema id (null on the other rows), then each of our columns is the
    coalesce of that field over the structs that have it. One pass matters: a union of per-id groups would
    read the micro-batch from Kafka once per group. Rows with no frame, or an id not in ``schemas``, get
    every column null and a ``decode_reason``; ``unknown_id`` marks the framed ones (to ask the registry).
    """
    sid = F.col("schema_id")
    structs = {
        k: F.when(sid == k, from_avro(F.col("payload"), text, {"mode": "PERMISSIVE"})).alias(f"_r{k}")
        for k, text in sorted(schemas.items())
    }
    step = framed.select(*framed.columns, *structs.values())

    def field(k: int, name: str) -> Column:
        return F.col(f"_r{k}")[name]

    columns = []
    for c in rules.COLUMNS:
        found = [field(k, c).cast("string") for k in structs if c in fields[k]]
        columns.append((F.coalesce(*found) if found else F.lit(None).cast("string")).alias(c))
    found_ts = [field(k, rules.SOURCE_TS_FIELD).cast("long") for k in structs if rules.SOURCE_TS_FIELD in fields[k]]
    source_ts = F.coalesce(*found_ts) if found_ts else F.lit(None).cast("long")
    known = list(structs)
    unknown = sid.isNotNull() & (~sid.isin(known) if known else F.lit(True))
    failed = []
    for k in structs:
        # PERMISSIVE yields a row of nulls (not a null struct) for bytes that are not this schema's Avro
        every_null = F.col(f"_r{k}").isNull()
        if fields[k]:
            every_null = every_null | reduce(operator.and_, [field(k, name).isNull() for name in fields[k]])
        failed.append(F.when((sid == k) & every_null, F.lit(rules.undecodable(k))))
    reason = F.coalesce(
        F.col("frame_reason"),
        F.when(unknown, F.concat(F.lit("unknown schema id "), sid.cast("string"))),
        *failed,
    )
    meta = [F.col(c) for c in (*META, "schema_id")]
    return step.select(
        *meta, *columns, source_ts.alias("source_ts_ms"), reason.alias("decode_reason"), unknown.alias("unknown_id")
    )


# --- validation -------------------------------------------------------------------------------------------
def _ts(column: str) -> Column:
    """The ISO-8601 text as a timestamp. A trailing ``Z`` is cut first, to the same instant (the session time
    zone is UTC): Spark resolves a zone name with ``getZoneId``, which compiles two regexes per value, and
    that was the executor's largest cost (JFR: regex compilation in ~15 % of its samples)."""
    col = F.col(column)
    return F.when(col.endswith("Z"), col.substr(F.lit(1), F.length(col) - 1)).otherwise(col).cast("timestamp")


def problems(c: str) -> Column:
    """The reason column ``c`` fails (null when fine); mirrors :func:`rules.record_problems`."""
    col = F.col(c)
    check: Column | None = None
    message = ""
    if c == "id":
        check, message = col.rlike(rules.java_regex(rules.UUID_PATTERN)), rules.REASON_BAD_ID
    elif c == "email":
        check = (F.length(col) <= rules.EMAIL_MAX_LENGTH) & col.rlike(rules.java_regex(rules.EMAIL_PATTERN))
        message = rules.REASON_BAD_EMAIL
    elif c == "nat":
        check, message = col.rlike(rules.java_regex(rules.NAT_PATTERN)), rules.REASON_BAD_NAT
    elif c in rules.DATE_COLUMNS:
        check = col.rlike(rules.java_regex(rules.DATETIME_PATTERN)) & _ts(c).isNotNull()
        message = rules.unparseable(c)
    reason = F.when(col.isNull(), F.lit(rules.missing(c)))
    if check is not None:
        reason = reason.when(~check, F.lit(message))
    return reason


def validate(decoded: DataFrame) -> DataFrame:
    """Adds ``reason``: the decode failure, else every rule broken (joined), else null (valid)."""
    rule_reasons = F.concat_ws(rules.REASON_SEPARATOR, *[problems(c) for c in rules.COLUMNS])
    reason = F.coalesce(F.col("decode_reason"), F.nullif(rule_reasons, F.lit("")))
    return decoded.withColumn("reason", reason)


# --- sinks ------------------------------------------------------------------------------------------------
def users_rows(valid: DataFrame, processed_at: datetime) -> DataFrame:
    """``created_users`` rows: dates normalised to ISO-8601 UTC with milliseconds (``UserRow.as_json_dict``)."""
    cols = []
    for c in rules.COLUMNS:
        if c == "fetched_at":
            cols.append(_ts(c).alias(c))
        elif c in rules.DATE_COLUMNS:
            cols.append(F.date_format(_ts(c), ISO_MS).alias(c))
        else:
            cols.append(F.col(c))
    return valid.select(*cols, F.lit(processed_at).alias("processed_at"))


def dlq_headers(failed_at: str) -> Column:
    """Reason and source coordinates as Kafka headers (mirrors :func:`rules.dlq_headers`)."""
    values: dict[str, Column] = {
        rules.HEADER_REASON: F.col("reason"),
        rules.HEADER_TOPIC: F.col("topic"),
        rules.HEADER_PARTITION: F.col("partition").cast("string"),
        rules.HEADER_OFFSET: F.col("offset").cast("string"),
        rules.HEADER_TIMESTAMP: F.unix_millis(F.col("timestamp")).cast("string"),
        rules.HEADER_SCHEMA_ID: F.col("schema_id").cast("string"),
        rules.HEADER_FAILED_AT: F.lit(failed_at),
    }
    headers = F.array(
        *[F.struct(F.lit(n).alias("key"), values[n].cast("binary").alias("value")) for n in rules.HEADER_NAMES]
    )
    return F.filter(headers, lambda h: h["value"].isNotNull())


ACCEPTED_ID_LEN = 36  # a valid row's id is a UUID's text and its nat two letters, so the fields have fixed widths
ACCEPTED_NAT_LEN = 2
ACCEPTED_SCHEMA = "id STRING, nat STRING, fetched_at TIMESTAMP"  # JSON, as versions before the fixed widths wrote


def accepted_value() -> Column:
    """A valid row's id, nat and fetched_at (epoch ms) in fixed widths: what the aggregate query reads.

    Not JSON: parsing it (``from_json`` makes a reader per value) was an eighth of the executor's CPU."""
    return F.concat(F.col("id"), F.col("nat"), F.unix_millis(_ts("fetched_at")).cast("string"))


def accepted_fields(value: Column) -> list[Column]:
    """``id``, ``nat``, ``fetched_at`` of an :func:`accepted_value` (or of the JSON that earlier versions
    wrote, still in the topic after an upgrade)."""
    text = value.cast("string")
    legacy = F.from_json(text, ACCEPTED_SCHEMA)
    is_json = text.startswith("{")
    nat_at = ACCEPTED_ID_LEN + 1
    millis_at = nat_at + ACCEPTED_NAT_LEN
    return [
        F.when(is_json, legacy["id"]).otherwise(F.substring(text, 1, ACCEPTED_ID_LEN)).alias("id"),
        F.when(is_json, legacy["nat"]).otherwise(F.substring(text, nat_at, ACCEPTED_NAT_LEN)).alias("nat"),
        F.when(is_json, legacy["fetched_at"])
        .otherwise(F.timestamp_millis(F.substring(text, millis_at, 20).cast("long")))
        .alias("fetched_at"),
    ]


def dlq_rows(invalid: DataFrame, failed_at: str) -> DataFrame:
    """Original key/value bytes, with :func:`dlq_headers`."""
    return invalid.select("key", "value", dlq_headers(failed_at).alias("headers"))


def kafka_rows(checked: DataFrame, failed_at: str, dlq_topic: str, accepted: str) -> DataFrame:
    """Both Kafka outputs of a batch as one projection with a ``topic`` column: one write, one pass.

    Invalid rows -> ``dlq_topic`` (:func:`dlq_rows`); valid rows -> ``accepted``, keyed by id
    (:func:`accepted_value`).
    """
    is_valid = F.col("reason").isNull()
    return checked.select(
        F.when(is_valid, F.col("id").cast("binary")).otherwise(F.col("key")).alias("key"),
        F.when(is_valid, accepted_value().cast("binary")).otherwise(F.col("value")).alias("value"),
        F.when(~is_valid, dlq_headers(failed_at)).alias("headers"),
        F.when(is_valid, F.lit(accepted)).otherwise(F.lit(dlq_topic)).alias("topic"),
    )


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
    """

    def __init__(self, settings: Settings, schemas: SchemaCache, tracker: ProgressTracker) -> None:
        self.settings = settings
        self.schemas = schemas
        self.tracker = tracker
        self.accepted = settings.accepted_topic

    def _prepare(self, framed: DataFrame) -> DataFrame:
        known = self.schemas.known
        fields = {i: self.schemas.fields(i) for i in known}
        checked = validate(decode(framed, known, fields))
        return checked.persist(StorageLevel.MEMORY_AND_DISK)

    def _write_users(self, checked: DataFrame, processed_at: datetime) -> BatchStats:
        """Valid rows -> Cassandra; the batch's counts come back as observed metrics of that same write."""
        valid = F.col("reason").isNull()
        latency = (F.lit(int(processed_at.timestamp() * 1000)) - F.unix_millis(_ts("fetched_at"))).cast("double")
        observation = Observation()
        observed = checked.observe(
            observation,
            F.count(F.when(valid, 1)).alias("valid"),
            F.count(F.when(~valid, 1)).alias("invalid"),
            # observed metrics reach Python as scalars only: arrays travel as comma-joined strings
            F.array_join(F.collect_set(F.when(F.col("unknown_id"), F.col("schema_id"))), ",").alias("unknown_ids"),
            F.array_join(F.percentile_approx(F.when(valid, latency), [0.5, 0.95, 0.99], 1000), ",").alias("latency"),
        )
        users_rows(observed.filter(valid), processed_at).write.format(CASSANDRA).options(
            keyspace=self.settings.cassandra_keyspace, table=USERS_TABLE
        ).mode("append").save()
        got = observation.get
        latency_ms = [float(v) for v in (got.get("latency") or "").split(",") if v]
        p50, p95, p99 = latency_ms if len(latency_ms) == 3 else (None, None, None)
        return BatchStats(
            valid=int(got["valid"]),
            invalid=int(got["invalid"]),
            unknown_ids=tuple(int(i) for i in (got.get("unknown_ids") or "").split(",") if i),
            latency_ms=(p50, p95, p99),
        )

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        processed_at = datetime.now(UTC)
        framed = split_frame(batch)
        checked = self._prepare(framed)
        try:
            stats = self._write_users(checked, processed_at)
            if stats.unknown_ids and self.schemas.lookup(stats.unknown_ids):
                # a new writer schema (evolution) in this batch: decode again with it; the rows already
                # written are upserted again with the same values
                checked.unpersist()
                checked = self._prepare(framed)
                stats = self._write_users(checked, processed_at)
            if stats.valid or stats.invalid:
                failed_at = processed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                self._kafka(kafka_rows(checked, failed_at, self.settings.dlq_topic, self.accepted))
        finally:
            checked.unpersist()
        p50, p95, p99 = stats.latency_ms
        self.tracker.record_written(stats.valid, stats.invalid, {"p50": p50, "p95": p95, "p99": p99})
        log.info("batch %d: %d valid, %d to the DLQ", batch_id, stats.valid, stats.invalid)

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
            F.lit(datetime.now(UTC)).alias("updated_at"),
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
    spark.conf.set("spark.sql.session.timeZone", "UTC")  # _ts and ISO_MS read and write UTC
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
