"""What the users query does to a micro-batch, as Spark columns: decode, validate, and the rows of each sink.

:class:`BatchPlan` builds every column once per set of known writer schemas and applies them to each
micro-batch. Two per-batch costs it avoids, both measured on the job's driver:

- building the columns: each ``F.*`` call is a py4j round trip, several hundred per batch (0.1-1 s);
- compiling generated code: Spark writes a long or timestamp literal into its generated Java, so a batch
  time given as a timestamp literal made every batch compile its own code (two Janino compiles per batch).
  The batch time is a string column (``batch_at``) of the cached batch instead: strings are passed to
  generated code by reference, so the code, and its compiled classes, are the same for every batch.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from userstream.stream import rules

META = ("key", "value", "topic", "partition", "offset", "timestamp")
FRAMED = (*META, "schema_id", "payload", "frame_reason")
ISO_MS = "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"  # the session time zone is UTC
BATCH_AT = "batch_at"  # the micro-batch's processing time, ISO-8601 text: processed_at and the DLQ's failed_at
ACCEPTED_ID_LEN = 36  # a valid row's id is a UUID's text and its nat two letters, so the fields have fixed widths
ACCEPTED_NAT_LEN = 2
ACCEPTED_SCHEMA = "id STRING, nat STRING, fetched_at TIMESTAMP"  # JSON, as versions before the fixed widths wrote
LATENCY_RANKS = (0.5, 0.05, 0.01)  # of fetched_at: p50, p95, p99 of processed_at - fetched_at


# --- decoding ---------------------------------------------------------------------------------------------
def frame_columns() -> list[Column]:
    """Kafka rows + ``schema_id`` (null unless Confluent-framed) + ``payload`` + ``frame_reason``."""
    value = F.col("value")
    framed = value.isNotNull() & (F.length(value) >= rules.HEADER_SIZE) & (F.hex(F.substring(value, 1, 1)) == "00")
    schema_id = F.when(framed, F.conv(F.hex(F.substring(value, 2, 4)), 16, 10).cast("long"))
    payload = F.when(framed, F.expr(f"substring(value, {rules.HEADER_SIZE + 1})"))
    reason = F.when(value.isNull(), F.lit(rules.REASON_NULL_VALUE)).when(~framed, F.lit(rules.REASON_NOT_FRAMED))
    return [*map(F.col, META), schema_id.alias("schema_id"), payload.alias("payload"), reason.alias("frame_reason")]


def decode_columns(
    schemas: Mapping[int, str], fields: Mapping[int, tuple[str, ...]]
) -> tuple[list[Column], list[Column]]:
    """The two projections that read each row with ``from_avro`` and its own writer schema, in one pass.

    First one struct column per known schema id (null on the other rows), then each of our columns is the
    coalesce of that field over the structs that have it. One pass matters: a union of per-id groups would
    read the micro-batch from Kafka once per group. Rows with no frame, or an id not in ``schemas``, get
    every column null and a ``decode_reason``; ``unknown_id`` marks the framed ones (to ask the registry).
    """
    sid = F.col("schema_id")
    structs = {
        k: F.when(sid == k, from_avro(F.col("payload"), text, {"mode": "PERMISSIVE"})).alias(f"_r{k}")
        for k, text in sorted(schemas.items())
    }

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
    step = [*map(F.col, FRAMED), *structs.values()]
    return step, [
        *meta, *columns, source_ts.alias("source_ts_ms"), reason.alias("decode_reason"), unknown.alias("unknown_id")
    ]  # fmt: skip


# --- validation -------------------------------------------------------------------------------------------
def ts(column: str) -> Column:
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
        check = col.rlike(rules.java_regex(rules.DATETIME_PATTERN)) & ts(c).isNotNull()
        message = rules.unparseable(c)
    reason = F.when(col.isNull(), F.lit(rules.missing(c)))
    if check is not None:
        reason = reason.when(~check, F.lit(message))
    return reason


def reason_column() -> Column:
    """The decode failure, else every rule broken (joined), else null (valid)."""
    rule_reasons = F.concat_ws(rules.REASON_SEPARATOR, *[problems(c) for c in rules.COLUMNS])
    return F.coalesce(F.col("decode_reason"), F.nullif(rule_reasons, F.lit(""))).alias("reason")


def validate(decoded: DataFrame) -> DataFrame:
    """Adds ``reason`` (:func:`reason_column`)."""
    return decoded.select("*", reason_column())


# --- sinks ------------------------------------------------------------------------------------------------
def users_columns() -> list[Column]:
    """``created_users`` columns: dates normalised to ISO-8601 UTC with milliseconds (``UserRow.as_json_dict``);
    ``processed_at`` is ``batch_at`` read per row from the cached batch (:meth:`BatchPlan.checked`). Not the
    text itself: the Cassandra connector parses text with a formatter it builds per value (a tenth of the
    executor's CPU at 1,000 records/s)."""
    cols = []
    for c in rules.COLUMNS:
        if c == "fetched_at":
            cols.append(ts(c).alias(c))
        elif c in rules.DATE_COLUMNS:
            cols.append(F.date_format(ts(c), ISO_MS).alias(c))
        else:
            cols.append(F.col(c))
    return [*cols, ts(BATCH_AT).alias("processed_at")]


def users_rows(valid: DataFrame) -> DataFrame:
    return valid.select(*users_columns())


def dlq_headers() -> Column:
    """Reason and source coordinates as Kafka headers (mirrors :func:`rules.dlq_headers`)."""
    values: dict[str, Column] = {
        rules.HEADER_REASON: F.col("reason"),
        rules.HEADER_TOPIC: F.col("topic"),
        rules.HEADER_PARTITION: F.col("partition").cast("string"),
        rules.HEADER_OFFSET: F.col("offset").cast("string"),
        rules.HEADER_TIMESTAMP: F.unix_millis(F.col("timestamp")).cast("string"),
        rules.HEADER_SCHEMA_ID: F.col("schema_id").cast("string"),
        rules.HEADER_FAILED_AT: F.col(BATCH_AT),
    }
    headers = F.array(
        *[F.struct(F.lit(n).alias("key"), values[n].cast("binary").alias("value")) for n in rules.HEADER_NAMES]
    )
    return F.filter(headers, lambda h: h["value"].isNotNull())


def accepted_value() -> Column:
    """A valid row's id, nat and fetched_at (epoch ms) in fixed widths: what the aggregate query reads.

    Not JSON: parsing it (``from_json`` makes a reader per value) was an eighth of the executor's CPU."""
    return F.concat(F.col("id"), F.col("nat"), F.unix_millis(ts("fetched_at")).cast("string"))


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


def dlq_rows(invalid: DataFrame) -> DataFrame:
    """Original key/value bytes, with :func:`dlq_headers`."""
    return invalid.select("key", "value", dlq_headers().alias("headers"))


def kafka_columns(dlq_topic: str, accepted: str) -> list[Column]:
    """Both Kafka outputs of a batch as one projection with a ``topic`` column: one write, one pass.

    Invalid rows -> ``dlq_topic`` (:func:`dlq_rows`); valid rows -> ``accepted``, keyed by id
    (:func:`accepted_value`).
    """
    is_valid = F.col("reason").isNull()
    return [
        F.when(is_valid, F.col("id").cast("binary")).otherwise(F.col("key")).alias("key"),
        F.when(is_valid, accepted_value().cast("binary")).otherwise(F.col("value")).alias("value"),
        F.when(~is_valid, dlq_headers()).alias("headers"),
        F.when(is_valid, F.lit(accepted)).otherwise(F.lit(dlq_topic)).alias("topic"),
    ]


def kafka_rows(checked: DataFrame, dlq_topic: str, accepted: str) -> DataFrame:
    return checked.select(*kafka_columns(dlq_topic, accepted))


def observed_columns() -> list[Column]:
    """The batch's counts, read back as observed metrics of its Cassandra write: valid, invalid, the unknown
    schema ids, and fetched_at's :data:`LATENCY_RANKS` in epoch ms (the latency is the batch time minus
    these; no batch time in the plan, see the module's docstring)."""
    valid = F.col("reason").isNull()
    fetched_ms = F.unix_millis(ts("fetched_at"))
    return [
        F.count(F.when(valid, 1)).alias("valid"),
        F.count(F.when(~valid, 1)).alias("invalid"),
        # observed metrics reach Python as scalars only: arrays travel as comma-joined strings
        F.array_join(F.collect_set(F.when(F.col("unknown_id"), F.col("schema_id"))), ",").alias("unknown_ids"),
        F.array_join(F.percentile_approx(F.when(valid, fetched_ms), list(LATENCY_RANKS), 1000), ",").alias(
            "fetched_ms"
        ),
    ]


@dataclass(frozen=True)
class BatchPlan:
    """Every column of the users query's micro-batch, built once for one set of known writer schemas."""

    frame: tuple[Column, ...]
    structs: tuple[Column, ...]
    decoded: tuple[Column, ...]
    reason: Column
    observed: tuple[Column, ...]
    users: tuple[Column, ...]
    kafka: tuple[Column, ...]

    @classmethod
    def build(
        cls, schemas: Mapping[int, str], fields: Mapping[int, tuple[str, ...]], dlq_topic: str, accepted: str
    ) -> BatchPlan:
        structs, decoded = decode_columns(schemas, fields)
        return cls(
            frame=tuple(frame_columns()),
            structs=tuple(structs),
            decoded=tuple(decoded),
            reason=reason_column(),
            observed=tuple(observed_columns()),
            users=tuple(users_columns()),
            kafka=tuple(kafka_columns(dlq_topic, accepted)),
        )

    def checked(self, batch: DataFrame, batch_at: str) -> DataFrame:
        """The micro-batch decoded and validated (``reason`` null when valid), with its ``batch_at``, cached
        for the batch's two writes (unpersist it after them).

        The cache also keeps ``batch_at`` a column for the writes' plans: through a plain projection Spark
        would fold ``ts(batch_at)`` into a timestamp literal, and compile new code for every batch."""
        decoded = batch.select(*self.frame).select(*self.structs).select(*self.decoded)
        checked = decoded.select("*", self.reason, F.lit(batch_at).alias(BATCH_AT))
        return checked.persist(StorageLevel.MEMORY_AND_DISK)

    def users_rows(self, valid: DataFrame) -> DataFrame:
        return valid.select(*self.users)

    def kafka_rows(self, checked: DataFrame) -> DataFrame:
        return checked.select(*self.kafka)
