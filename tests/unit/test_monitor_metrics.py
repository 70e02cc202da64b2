"""The Prometheus exposition of a snapshot parses as Prometheus text and carries the expected families."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from userstream.monitor.metrics import render_metrics
from userstream.monitor.models import (
    ConsumerLag,
    IngestSection,
    KafkaSection,
    PipelineSnapshot,
    PostgresSection,
    ReasonCount,
    RegistrySection,
    ServiceHealth,
    ServicesSection,
    SparkQuery,
    SparkSection,
    Subject,
    TopicOffsets,
)
from userstream.monitor.stages import apply_rates, build_stages, latency_histogram


def sample_snapshot() -> PipelineSnapshot:
    snap = PipelineSnapshot(
        taken_at=100.0,
        collect_ms=42.0,
        ingest=IngestSection(runs=2, requested=120, landed=110, duplicates=6, rejected=4, measured_at=99.0),
        postgres=PostgresSection(users=110, rejected=4, users_measured_at=99.0),
        kafka=KafkaSection(
            measured_at=99.5,
            topics={
                "users.raw": TopicOffsets(
                    topic="users.raw",
                    partitions={0: 50, 1: 55},
                    start_offsets={0: 0, 1: 5},
                    end_total=105,
                    retained=100,
                ),
                "users.dlq": TopicOffsets(topic="users.dlq", partitions={0: 3}, start_offsets={0: 0}, end_total=3),
            },
            lags=[ConsumerLag(consumer="spark:sink", topic="users.raw", lag=5, source="broker - batch end")],
            dlq_reasons=[ReasonCount(reason='email: "bad" value', count=3)],
        ),
        registry=RegistrySection(subjects=[Subject(name="users.raw-value", versions=[1, 2], latest_schema_id=7)]),
        spark=SparkSection(
            queries=[SparkQuery(name="sink", batch_id=9, batch_duration_ms=1500, processed_rows_per_second=800.0)],
            total_valid=97,
            total_dlq=3,
            latency_ms={"p50": 700, "p99": 2000},
            measured_at=99.8,
        ),
        latency=latency_histogram([100, 900, 1800]),
        services=ServicesSection(
            services=[ServiceHealth(name="postgres", healthy=True), ServiceHealth(name="kafka", healthy=False)]
        ),
    )
    snap.cassandra.error = "Cassandra unreachable"
    previous = PipelineSnapshot(
        taken_at=90.0,
        stages=[
            s.model_copy(update={"count": 10, "measured_at": 89.0})
            for s in build_stages(snap, "users.raw", "users.dlq")
        ],
    )
    snap.stages = apply_rates(previous, build_stages(snap, "users.raw", "users.dlq"))
    return snap


def families() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = render_metrics(sample_snapshot).decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_exposition_parses_and_has_stage_counters() -> None:
    f = families()
    stages = f["userstream_stage_records_total"]
    assert stages[(("stage", "landed"),)] == 110
    assert stages[(("stage", "kafka"),)] == 105
    assert stages[(("stage", "spark"),)] == 100
    assert stages[(("stage", "dlq"),)] == 3
    assert (("stage", "cassandra"),) not in stages  # unknown counts are left out, not reported as 0
    assert f["userstream_stage_records_per_second"][(("stage", "landed"),)] == 10.0  # (110-10)/(99-89)


def test_services_sections_and_backends() -> None:
    f = families()
    assert f["userstream_service_up"] == {(("service", "postgres"),): 1.0, (("service", "kafka"),): 0.0}
    assert f["userstream_monitor_section_up"][(("section", "cassandra"),)] == 0.0
    assert f["userstream_monitor_section_up"][(("section", "kafka"),)] == 1.0
    assert f["userstream_kafka_end_offset"][(("partition", "1"), ("topic", "users.raw"))] == 55
    assert f["userstream_kafka_consumer_lag"][(("consumer", "spark:sink"), ("topic", "users.raw"))] == 5
    assert f["userstream_dlq_recent_reason_records"][(("reason", 'email: "bad" value'),)] == 3
    assert f["userstream_spark_batch_duration_seconds"][(("query", "sink"),)] == 1.5
    assert f["userstream_spark_latency_seconds"][(("quantile", "0.99"),)] == 2.0
    assert f["userstream_registry_subject_versions"][(("subject", "users.raw-value"),)] == 2
    assert f["userstream_ingest_records_total"][(("kind", "duplicates"),)] == 6
    assert f["userstream_postgres_rows"][(("table", "staging.users"),)] == 110


def test_latency_sample_buckets_are_cumulative() -> None:
    f = families()
    buckets = f["userstream_e2e_latency_sample_bucket"]
    assert buckets[(("le", "0.25"),)] == 1
    assert buckets[(("le", "1"),)] == 2
    assert buckets[(("le", "+Inf"),)] == 3
    assert f["userstream_e2e_latency_sample_seconds"][(("quantile", "0.5"),)] == 0.9


def test_empty_snapshot_still_parses() -> None:
    text = render_metrics(lambda: PipelineSnapshot(taken_at=0.0)).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert "userstream_stage_records" in names and "userstream_service_up" in names
