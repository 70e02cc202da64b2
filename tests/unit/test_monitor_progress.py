"""progress.json of the streaming job is read tolerantly: missing, partial or broken files never raise."""

from __future__ import annotations

import json
from pathlib import Path

from userstream.monitor.collect import spark_lags
from userstream.monitor.models import KafkaSection, SparkQuery, SparkSection, TopicOffsets
from userstream.monitor.progress import parse_progress, read_progress

FULL = {
    "updated_at": "2026-01-01T00:00:10+00:00",
    "queries": {
        "users_sink": {
            "batch_id": 41,
            "num_input_rows": 5000,
            "input_rows_per_second": 2500.5,
            "processed_rows_per_second": 3100.0,
            "batch_duration_ms": 1600,
            "offsets_behind": 12,
            "end_offsets": {"users.raw": {"0": 100, "1": 200}},
        }
    },
    "totals": {"valid": 9000, "dlq": 12},
    "recent_batches": [{"batch_id": 40, "rows": 4000, "duration_ms": 1500, "ts": "2026-01-01T00:00:08Z"}],
    "latency_ms": {"p50": 800, "p95": 1500.5, "p99": 2100},
}


def test_full_document() -> None:
    now = 1767225610.0 + 5  # 5 s after updated_at
    section = parse_progress(FULL, now=now)
    assert section.progress_error is None
    assert section.progress_age_s is not None and abs(section.progress_age_s - 5) < 1e-6
    (q,) = section.queries
    assert q.name == "users_sink" and q.batch_id == 41 and q.num_input_rows == 5000
    assert q.input_rows_per_second == 2500.5 and q.batch_duration_ms == 1600.0
    assert q.end_offsets == {"users.raw": {"0": 100, "1": 200}}
    assert (section.total_valid, section.total_dlq) == (9000, 12)
    assert section.recent_batches[0].rows == 4000
    assert section.latency_ms == {"p50": 800.0, "p95": 1500.5, "p99": 2100.0}


def test_missing_file(tmp_path: Path) -> None:
    section = read_progress(tmp_path / "stream" / "progress.json")
    assert section.progress_error is not None and "no progress.json" in section.progress_error
    assert section.queries == [] and section.total_valid is None and section.error is None


def test_truncated_file_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text(json.dumps(FULL)[:57])
    section = read_progress(path)
    assert section.progress_error is not None and "not valid JSON" in section.progress_error


def test_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "progress.json"
    path.write_text("[1, 2]")
    assert read_progress(path).progress_error == "progress.json is not a JSON object"


def test_partial_and_ill_typed_fields_become_none() -> None:
    doc = {
        "queries": {"q": {"batch_id": "7", "num_input_rows": None, "input_rows_per_second": "fast"}, "bad": 3},
        "totals": {"valid": 10},
        "recent_batches": [{"rows": 3}, "junk"],
        "latency_ms": {"p50": "NaN", "p99": True},
        "end_offsets": 5,
    }
    section = parse_progress(doc)
    assert section.updated_at is None and section.progress_age_s is None
    by_name = {q.name: q for q in section.queries}
    assert by_name["q"].batch_id == 7
    assert by_name["q"].num_input_rows is None and by_name["q"].input_rows_per_second is None
    assert by_name["bad"] == SparkQuery(name="bad")
    assert (section.total_valid, section.total_dlq) == (10, None)
    assert [b.rows for b in section.recent_batches] == [3]
    assert section.latency_ms == {}


def test_empty_object_and_epoch_millis_timestamp() -> None:
    assert parse_progress({}).queries == []
    section = parse_progress({"updated_at": 1_700_000_000_000}, now=1_700_000_002.0)
    assert section.measured_at == 1_700_000_000.0 and section.progress_age_s == 2.0


def test_end_offsets_as_spark_json_string() -> None:
    doc = {"queries": {"q": {"end_offsets": '{"users.raw": {"0": 5, "1": 6}}'}}}
    assert parse_progress(doc).queries[0].end_offsets == {"users.raw": {"0": 5, "1": 6}}


def test_spark_lag_from_broker_end_offsets_or_job_figure() -> None:
    kafka = KafkaSection(topics={"users.raw": TopicOffsets(topic="users.raw", partitions={0: 150, 1: 200})})
    spark = SparkSection(
        queries=[
            SparkQuery(name="sink", end_offsets={"users.raw": {"0": 100, "1": 200}}),
            SparkQuery(name="agg", offsets_behind=7),
            SparkQuery(name="idle"),
        ]
    )
    lags = {lag.consumer: lag for lag in spark_lags(spark, kafka)}
    assert lags["spark:sink"].lag == 50 and lags["spark:sink"].topic == "users.raw"
    assert lags["spark:agg"].lag == 7
    assert "spark:idle" not in lags


def test_document_as_the_job_writes_it() -> None:
    # shape of userstream.stream.progress.ProgressTracker.snapshot(), with its extra keys
    doc = {
        "version": 1,
        "updated_at": "2026-01-01T00:00:10.000Z",
        "state": "failed",
        "error": "StreamingQueryException: boom",
        "job": {"app": "userstream-stream", "started_at": "2026-01-01T00:00:00.000Z"},
        "queries": {
            "users": {
                "batch_id": 3,
                "timestamp": "2026-01-01T00:00:09.000Z",
                "num_input_rows": 10,
                "input_rows_per_second": None,
                "processed_rows_per_second": 12.5,
                "batch_duration_ms": 800,
                "offsets_behind": None,
                "end_offsets": {"users.raw": {"0": 4, "1": 6}},
                "watermark": "2026-01-01T00:00:00.000Z",
            }
        },
        "totals": {"valid": 9, "dlq": 1},
        "recent_batches": [{"query": "users", "batch_id": 3, "rows": 10, "duration_ms": None, "ts": "x"}],
        "latency_ms": {"p50": 300.0, "p95": None, "p99": 900.5, "rows": 9},
    }
    section = parse_progress(doc, now=1767225612.0)
    assert section.job_state == "failed" and section.job_error == "StreamingQueryException: boom"
    assert section.progress_age_s == 2.0
    assert section.latency_ms == {"p50": 300.0, "p99": 900.5}  # "rows" is not a percentile
    assert section.queries[0].processed_rows_per_second == 12.5
    assert section.recent_batches[0].duration_ms is None
    assert parse_progress({**doc, "latency_ms": None}).latency_ms == {}
