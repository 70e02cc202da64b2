"""Snapshot models and the per-stage counters derived from their sections."""

from __future__ import annotations

from userstream.monitor.models import (
    STAGES,
    IngestSection,
    KafkaSection,
    PipelineSnapshot,
    PostgresSection,
    SparkSection,
    TopicOffsets,
)
from userstream.monitor.stages import LATENCY_BUCKETS_MS, build_stages, latency_histogram


def test_empty_snapshot_has_every_section_and_round_trips_through_json() -> None:
    snap = PipelineSnapshot(taken_at=1.0)
    again = PipelineSnapshot.model_validate_json(snap.model_dump_json())
    assert again == snap
    for name in ("ingest", "postgres", "kafka", "registry", "spark", "cassandra", "latency", "services"):
        section = getattr(again, name)
        assert section.error is None and section.stale is False
    assert again.stage("landed") is None


def test_topic_partitions_survive_json_with_int_keys() -> None:
    topic = TopicOffsets(topic="users.raw", partitions={0: 5, 1: 7}, end_total=12)
    assert TopicOffsets.model_validate_json(topic.model_dump_json()).partitions == {0: 5, 1: 7}


def test_build_stages_maps_sections_to_stage_counters_in_pipeline_order() -> None:
    snap = PipelineSnapshot(
        taken_at=10.0,
        ingest=IngestSection(requested=100, measured_at=9.0),
        postgres=PostgresSection(users=90, rejected=4, users_measured_at=8.0),
        kafka=KafkaSection(
            measured_at=9.5,
            topics={
                "users.raw": TopicOffsets(topic="users.raw", partitions={0: 40, 1: 45}, end_total=85),
                "users.dlq": TopicOffsets(topic="users.dlq", error="topic does not exist"),
            },
        ),
        spark=SparkSection(total_valid=70, total_dlq=3, measured_at=9.9),
    )
    stages = {s.key: s for s in build_stages(snap, "users.raw", "users.dlq")}
    assert [s[0] for s in STAGES] == list(stages)
    assert stages["fetched"].count == 100 and stages["fetched"].measured_at == 9.0
    assert stages["landed"].count == 90 and stages["landed"].measured_at == 8.0
    assert stages["kafka"].count == 85
    assert stages["spark"].count == 73
    assert stages["rejected"].count == 4
    assert stages["dlq"].count is None and stages["dlq"].error == "topic does not exist"
    assert stages["cassandra"].count is None


def test_build_stages_reports_each_backend_error_on_its_own_stages() -> None:
    snap = PipelineSnapshot(
        taken_at=1.0,
        postgres=PostgresSection(error="OperationalError: connection refused"),
        kafka=KafkaSection(error="Kafka unreachable"),
        spark=SparkSection(progress_error="no progress.json yet"),
    )
    stages = {s.key: s for s in build_stages(snap, "users.raw", "users.dlq")}
    assert stages["landed"].error == stages["rejected"].error == "OperationalError: connection refused"
    assert stages["kafka"].error == stages["dlq"].error == "Kafka unreachable"
    assert stages["spark"].error == "no progress.json yet" and stages["spark"].count is None
    assert stages["fetched"].error is None


def test_latency_histogram_buckets_and_percentiles() -> None:
    section = latency_histogram([100, 200, 900, 1500, 2500, 400_000, -50], sample="test", measured_at=5.0)
    assert section.sample_size == 7 and section.sample == "test"
    assert section.buckets_ms == list(LATENCY_BUCKETS_MS)
    assert len(section.counts) == len(LATENCY_BUCKETS_MS) + 1
    assert sum(section.counts) == 7
    assert section.counts[0] == 3  # -50 (clock skew, counted as 0), 100, 200 are all <= 250 ms
    assert section.counts[-1] == 1  # 400 s is past the last bound
    assert section.p50_ms == 900
    assert section.max_ms == 400_000 and section.p99_ms == 400_000


def test_latency_histogram_of_nothing_has_no_percentiles() -> None:
    section = latency_histogram([])
    assert section.sample_size == 0 and sum(section.counts) == 0
    assert section.p50_ms is None and section.p99_ms is None
