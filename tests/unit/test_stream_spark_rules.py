"""The job's Spark expressions agree with the pure-Python rules (one local SparkSession, a few seconds)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pyspark.sql import Observation, SparkSession
from pyspark.sql import functions as F

from userstream.stream import rules, synthetic, transform
from userstream.stream.progress import iso_ms

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK for a local SparkSession")

CASES: list[tuple[str, str | None]] = [
    ("email", "bad"), ("email", "a b@example.com"), ("email", "a@example..com"), ("email", "a@example.com\n"),
    ("email", "x" * 65 + "@example.com"), ("email", "ok.o'neil+tag@sub.example.co.uk"),
    ("id", "not-a-uuid"), ("id", "5C8EE30D-2166-5024-ADFD-6100F8D90075"), ("id", None),
    ("nat", "gb"), ("nat", "GB\n"), ("nat", None),
    ("dob", "yesterday"), ("dob", "2020-02-30T00:00:00Z"), ("dob", "2020-01-01"), ("dob", "2020-01-01T00:00:00"),
    ("dob", "2020-01-01T00:00Z"), ("dob", "2020-01-01T00:00:00.123456+05:30"), ("dob", "0000-01-01T00:00:00Z"),
    ("registered_date", "2020-01-01T25:00:00Z"), ("registered_date", "2020-01-01T00:00:60Z"),
    ("fetched_at", "2020-01-01T00:00:00+19:00"), ("fetched_at", "2020-01-01T00:00:00-18:00"),
    ("fetched_at", "2020-01-01T00:00:00.1234567Z"), ("fetched_at", None), ("phone", None),
]  # fmt: skip


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    # py4j logs its connection shutdown at interpreter exit, after pytest closed the captured streams
    logging.getLogger("py4j").setLevel(logging.WARNING)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("userstream-unit")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    yield session
    session.stop()


def records() -> list[dict[str, Any]]:
    fetched = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    out = [synthetic.user_value(0, run="parity", fetched_at=fetched)]
    for i, (column, value) in enumerate(CASES, start=1):
        out.append(synthetic.user_value(i, run="parity", fetched_at=fetched) | {column: value})
    return out


def test_validate_matches_record_problems(spark: Any) -> None:
    recs = records()
    schema = ", ".join(f"{c} string" for c in rules.COLUMNS) + ", n int, decode_reason string"
    df = spark.createDataFrame([(*tuple(r[c] for c in rules.COLUMNS), n, None) for n, r in enumerate(recs)], schema)
    got = {row["n"]: row["reason"] for row in transform.validate(df).select("n", "reason").collect()}
    want = {n: rules.reason_text(rules.record_problems(r)) for n, r in enumerate(recs)}
    assert got == want
    assert want[0] is None and sum(v is None for v in want.values()) > 2  # some variants are valid


def test_users_rows_and_dlq_headers_match_the_python_helpers(spark: Any) -> None:
    rec = synthetic.user_value(3, run="parity", fetched_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    rec["dob"] = "1990-05-06T07:08:09.123456+02:00"
    schema = ", ".join(f"{c} string" for c in rules.COLUMNS)
    schema += f", {transform.BATCH_AT} string"
    processed = iso_ms(datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC))
    row = transform.users_rows(spark.createDataFrame([(*(rec[c] for c in rules.COLUMNS), processed)], schema)).first()
    want = synthetic.stored_row(rec)
    for c in rules.COLUMNS:
        got = row[c]
        if c == "fetched_at":  # Cassandra keeps milliseconds of the microseconds Spark hands it
            got = got.replace(tzinfo=UTC, microsecond=got.microsecond // 1000 * 1000)
        assert got == (str(want[c]) if c == "id" else want[c]), c
    assert row["processed_at"] == datetime(2026, 1, 2, 3, 4, 9)  # the session's zone is UTC

    ts = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    bad = spark.createDataFrame(
        [
            (b"k", b"v", "users.raw", 1, 42, ts, 3, "malformed email", processed),
            (None, b"junk", "users.raw", 0, 7, ts, None, "x", processed),
        ],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
        f"schema_id long, reason string, {transform.BATCH_AT} string",
    )
    out = transform.dlq_rows(bad).collect()
    headers = [[(h["key"], bytes(h["value"])) for h in r["headers"]] for r in out]
    ms = int(ts.timestamp() * 1000)
    assert headers[0] == rules.dlq_headers(
        "malformed email", "users.raw", 1, 42, timestamp_ms=ms, schema_id=3, failed_at="2026-01-02T03:04:09.000Z"
    )
    assert headers[1] == rules.dlq_headers(
        "x", "users.raw", 0, 7, timestamp_ms=ms, failed_at="2026-01-02T03:04:09.000Z"
    )
    assert (bytes(out[0]["key"]), bytes(out[0]["value"]), out[1]["key"]) == (b"k", b"v", None)


def test_kafka_rows_route_valid_to_accepted_and_invalid_to_the_dlq_with_original_bytes(spark: Any) -> None:
    ts = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
    uid = "5c8ee30d-2166-4024-adfd-6100f8d90075"
    checked = spark.createDataFrame(
        [
            (b"k1", b"good", "users.raw", 0, 1, ts, 3, uid, "GB", "2026-01-02T03:04:05.678Z", None, "x"),
            (b"k2", b"\x00bad", "users.raw", 1, 2, ts, 3, None, None, None, "missing id", "x"),
        ],
        "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, schema_id long, "
        f"id string, nat string, fetched_at string, reason string, {transform.BATCH_AT} string",
    )
    out = transform.kafka_rows(checked, "users.dlq", "users.accepted").collect()
    by_topic = {r["topic"]: r for r in out}
    assert sorted(by_topic) == ["users.accepted", "users.dlq"]
    accepted, dlq = by_topic["users.accepted"], by_topic["users.dlq"]
    assert bytes(accepted["key"]) == uid.encode() and accepted["headers"] is None
    # the aggregate query reads back what was written, and the JSON earlier versions wrote, alike
    legacy = json.dumps({"id": uid, "nat": "GB", "fetched_at": "2026-01-02T03:04:05.678Z"}).encode()
    values = spark.createDataFrame([(bytes(accepted["value"]),), (legacy,)], "value binary")
    read = values.select(*transform.accepted_fields(values["value"])).collect()
    expected = (uid, "GB", datetime(2026, 1, 2, 3, 4, 5, 678000))  # the session's zone is UTC
    assert [(r["id"], r["nat"], r["fetched_at"]) for r in read] == [expected, expected]
    assert (bytes(dlq["key"]), bytes(dlq["value"])) == (b"k2", b"\x00bad")
    assert dict((h["key"], bytes(h["value"])) for h in dlq["headers"])[rules.HEADER_REASON] == b"missing id"


def test_every_micro_batch_runs_the_same_generated_code(spark: Any) -> None:
    """A batch's time must not be a literal Spark writes into generated Java (as longs and timestamps are):
    then each micro-batch compiled its own code, two Janino compiles on the driver and the executor each."""
    compiles = spark.sparkContext._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
    reason, observed = transform.reason_column(), transform.observed_columns()
    users, kafka = transform.users_columns(), transform.kafka_columns("users.dlq", "users.accepted")
    schema = ", ".join(f"{c} string" for c in rules.COLUMNS) + ", decode_reason string, unknown_id boolean, "
    schema += "key binary, value binary, topic string, partition int, offset long, timestamp timestamp, schema_id long"

    def one_batch(n: int) -> None:
        at = datetime(2026, 1, 2, 3, 4, n, tzinfo=UTC)
        recs = [synthetic.user_value(i, run="codegen", fetched_at=at) for i in range(n * 10, n * 10 + 5)]
        rows = [(*(r[c] for c in rules.COLUMNS), None, False, b"k", b"v", "users.raw", 0, i, at, 1)
                for i, r in enumerate(recs)]  # fmt: skip
        batch_at = iso_ms(at)
        checked = spark.createDataFrame(rows, schema).select("*", reason, F.lit(batch_at).alias(transform.BATCH_AT))
        checked = checked.persist()  # as BatchPlan.checked: the writes read batch_at from the cached batch
        observation = Observation()
        valid = checked.observe(observation, *observed).filter(F.col("reason").isNull())
        stored = valid.select(*users).collect()
        assert [r["processed_at"] for r in stored] == [at.replace(tzinfo=None)] * 5  # the session's zone is UTC
        assert observation.get["valid"] == 5
        assert len(checked.select(*kafka).collect()) == 5
        checked.unpersist()

    one_batch(1)
    before = compiles.getCount()
    for n in (2, 3):
        one_batch(n)
    assert compiles.getCount() == before, "a later micro-batch compiled new code"
