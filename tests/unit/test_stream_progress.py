"""The progress file of the streaming job: summaries of Spark progress, totals, atomic writes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from userstream.stream.progress import (
    ProgressTracker,
    offsets_behind,
    parse_offsets,
    read_progress,
    summarize_progress,
    write_json_atomic,
)

# The shape of PySpark's StreamingQueryProgress.json for a Kafka source (offsets embedded as objects)
PROGRESS = {
    "id": "3f1c",
    "runId": "9a2b",
    "name": "users",
    "timestamp": "2026-11-25T02:43:22.070Z",
    "batchId": 7,
    "batchDuration": 6182,
    "numInputRows": 1996,  # a batch read twice: twice the records
    "inputRowsPerSecond": 166.4,
    "processedRowsPerSecond": "NaN",
    "durationMs": {"triggerExecution": 6182, "addBatch": 5900, "walCommit": 40},
    "eventTime": {},
    "sources": [
        {
            "description": "KafkaV2[Subscribe[users.raw]]",
            "startOffset": {"users.raw": {"0": 100, "1": 90}},
            "endOffset": {"users.raw": {"0": 600, "1": 588}},
            "latestOffset": {"users.raw": {"0": 1000, "1": 700}},
            "numInputRows": 1996,
        }
    ],
}


def test_offsets_parse_from_text_or_objects_and_tolerate_junk() -> None:
    assert parse_offsets('{"t": {"0": 5}}') == {"t": {"0": 5}}
    assert parse_offsets({"t": {"1": 7}}) == {"t": {"1": 7}}
    assert parse_offsets(None) == {} and parse_offsets("not json") == {} and parse_offsets([1]) == {}


def test_offsets_behind_sums_partitions_and_topics() -> None:
    latest = {"a": {"0": 10, "1": 20}, "b": {"0": 5}}
    end = {"a": {"0": 4, "1": 20}}
    assert offsets_behind(latest, end) == 6 + 0 + 5
    assert offsets_behind({"a": {"0": 3}}, {"a": {"0": 9}}) == 0  # never negative


def test_summary_of_a_kafka_progress() -> None:
    s = summarize_progress(PROGRESS)
    assert s["batch_id"] == 7
    assert s["num_input_rows"] == 500 + 498  # from the offsets, not Spark's double-counted 1996
    assert s["input_rows_per_second"] == 166.4
    assert s["processed_rows_per_second"] is None  # NaN is not JSON
    assert s["batch_duration_ms"] == 6182
    assert s["offsets_behind"] == 400 + 112
    assert s["end_offsets"] == {"users.raw": {"0": 600, "1": 588}}
    json.dumps(s, allow_nan=False)


def test_a_stateful_operators_figures_are_kept_and_missing_ones_are_none() -> None:
    progress = {
        **PROGRESS,
        "stateOperators": [
            {
                "operatorName": "dedupeWithinWatermark", "numRowsTotal": 0, "numRowsUpdated": 480,
                "numRowsRemoved": 12, "allUpdatesTimeMs": 35, "allRemovalsTimeMs": 4, "commitTimeMs": 60,
                "memoryUsedBytes": 9000, "customMetrics": {"rocksdbGetCount": 492, "rocksdbPutCount": 480},
            },
            {"operatorName": "stateStoreSave", "numRowsUpdated": 7},
        ],
    }  # fmt: skip
    dedup, save = summarize_progress(progress)["state"]
    assert dedup == {
        "operator": "dedupeWithinWatermark", "rows_total": 0, "rows_updated": 480, "rows_removed": 12,
        "update_ms": 35, "remove_ms": 4, "commit_ms": 60, "memory_bytes": 9000, "store_gets": 492, "store_puts": 480,
    }  # fmt: skip
    assert save["operator"] == "stateStoreSave" and save["rows_updated"] == 7
    assert save["commit_ms"] is None and save["store_gets"] is None
    assert summarize_progress(PROGRESS)["state"] == []


def test_summary_without_offsets_falls_back_to_spark_counts() -> None:
    s = summarize_progress({"name": "q", "batchId": 0, "numInputRows": 3, "durationMs": {"triggerExecution": 9}})
    assert (s["num_input_rows"], s["batch_duration_ms"], s["offsets_behind"]) == (3, 9, None)


def test_tracker_document(tmp_path: Path) -> None:
    path = tmp_path / "stream" / "progress.json"
    tracker = ProgressTracker(path, {"name": "stream", "keyspace": "ks"}, recent=3, clock=lambda: 1_700_000_000.0)
    tracker.write()
    doc = read_progress(path)
    assert doc is not None
    assert doc["state"] == "starting" and doc["queries"] == {} and doc["latency_ms"] is None
    assert doc["updated_at"] == "2023-11-14T22:13:20.000Z"
    tracker.record_written(10, 2, {"p50": 1200.04, "p95": 1500.0, "p99": None})
    tracker.record_written(5, 0, {"p50": None, "p95": None, "p99": None})  # an all-DLQ batch keeps the last
    for batch in range(5):
        tracker.record_progress(PROGRESS | {"batchId": batch})
    tracker.record_progress(PROGRESS | {"name": "country_minute", "batchId": 9, "sources": [], "numInputRows": 0})
    tracker.write()
    doc = read_progress(path)
    assert doc is not None
    assert doc["state"] == "running"
    assert doc["totals"] == {"valid": 15, "dlq": 2}
    assert doc["latency_ms"] == {"p50": 1200.0, "p95": 1500.0, "p99": None, "rows": 10}
    assert set(doc["queries"]) == {"users", "country_minute"}
    # last 3 non-empty batches only (the idle country_minute trigger is not listed)
    assert [(b["query"], b["batch_id"]) for b in doc["recent_batches"]] == [("users", 2), ("users", 3), ("users", 4)]
    assert doc["recent_batches"][0] == {
        "query": "users", "batch_id": 2, "rows": 998, "duration_ms": 6182,
        "phases_ms": {"triggerExecution": 6182, "addBatch": 5900, "walCommit": 40}, "ts": "2026-11-25T02:43:22.070Z",
    }  # fmt: skip
    tracker.set_state("failed", "boom")
    assert tracker.snapshot()["error"] == "boom"


def test_atomic_write_leaves_no_temp_files_and_readers_see_whole_documents(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            if path.exists():
                text = path.read_text()
                try:
                    json.loads(text)
                except ValueError:
                    bad.append(text)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(300):
            write_json_atomic(path, {"i": i, "pad": "x" * 5000})
    finally:
        stop.set()
        t.join()
    assert not bad
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]
    assert read_progress(tmp_path / "absent.json") is None
