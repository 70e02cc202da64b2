"""Prometheus exposition of a snapshot: a custom collector that turns the latest snapshot into metric families.

Built per scrape from the snapshot (no client-side state), so values are the backends' own counters:
``*_total`` families are monotonic as long as the data dir is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from userstream.monitor.models import PipelineSnapshot

__all__ = ["SnapshotCollector", "render_metrics"]


class SnapshotCollector(Collector):
    """Yields the ``userstream_*`` families from ``get_snapshot()`` at every scrape."""

    def __init__(self, get_snapshot: Callable[[], PipelineSnapshot]) -> None:
        self._get_snapshot = get_snapshot

    def describe(self) -> list[Metric]:
        # no up-front description: registering must not trigger a collection (backends may be down)
        return []

    def collect(self) -> Iterator[Metric]:
        yield from snapshot_metrics(self._get_snapshot())


def snapshot_metrics(snap: PipelineSnapshot) -> Iterator[Metric]:
    records = CounterMetricFamily(
        "userstream_stage_records", "Records that reached each stage of the pipeline", labels=["stage"]
    )
    rates = GaugeMetricFamily(
        "userstream_stage_records_per_second", "Throughput of each stage since the previous snapshot", labels=["stage"]
    )
    for stage in snap.stages:
        if stage.count is not None:
            records.add_metric([stage.key], stage.count)
        if stage.rate is not None:
            rates.add_metric([stage.key], stage.rate)
    yield records
    yield rates

    # the watchdog's verdicts; a stage it could not measure (unknown) reports no stalled value
    stalled = GaugeMetricFamily(
        "userstream_stage_stalled", "1 when the stage's input waits while its output stands still", labels=["stage"]
    )
    backlog = GaugeMetricFamily("userstream_stage_backlog", "Records waiting at the stage's input", labels=["stage"])
    for verdict in snap.health.stages:
        if verdict.state != "unknown":
            stalled.add_metric([verdict.stage], 1.0 if verdict.state == "stalled" else 0.0)
        if verdict.backlog is not None:
            backlog.add_metric([verdict.stage], verdict.backlog)
    yield stalled
    yield backlog

    section_up = GaugeMetricFamily(
        "userstream_monitor_section_up", "1 when the monitor could read this section's backend", labels=["section"]
    )
    for name in ("ingest", "postgres", "kafka", "registry", "spark", "cassandra", "latency", "services", "health"):
        section = getattr(snap, name)
        section_up.add_metric([name], 0.0 if section.error else 1.0)
    yield section_up
    yield GaugeMetricFamily(
        "userstream_monitor_collect_seconds", "Time taken to collect the snapshot", value=snap.collect_ms / 1000.0
    )

    up = GaugeMetricFamily("userstream_service_up", "1 when the service's health probe passes", labels=["service"])
    for svc in snap.services.services:
        up.add_metric([svc.name], 1.0 if svc.healthy else 0.0)
    yield up

    # --- ingest and Postgres ---
    ingest = CounterMetricFamily("userstream_ingest_records", "Ingest run counters, summed over runs", labels=["kind"])
    for kind in ("requested", "landed", "duplicates", "rejected"):
        value = getattr(snap.ingest, kind)
        if value is not None:
            ingest.add_metric([kind], value)
    yield ingest
    if snap.ingest.runs is not None:
        yield CounterMetricFamily("userstream_ingest_runs", "Ingest runs started", value=snap.ingest.runs)
    pg_rows = GaugeMetricFamily("userstream_postgres_rows", "Rows in the staging tables", labels=["table"])
    if snap.postgres.users is not None:
        pg_rows.add_metric(["staging.users"], snap.postgres.users)
    if snap.postgres.rejected is not None:
        pg_rows.add_metric(["staging.rejected"], snap.postgres.rejected)
    yield pg_rows

    # --- Kafka ---
    end = GaugeMetricFamily(
        "userstream_kafka_end_offset", "Log end offset per topic partition", labels=["topic", "partition"]
    )
    start = GaugeMetricFamily(
        "userstream_kafka_start_offset", "First retained offset per topic partition", labels=["topic", "partition"]
    )
    retained = GaugeMetricFamily("userstream_kafka_retained_records", "Records retained per topic", labels=["topic"])
    for topic in snap.kafka.topics.values():
        if topic.error is not None:
            continue
        for p, offset in topic.partitions.items():
            end.add_metric([topic.topic, str(p)], offset)
        for p, offset in topic.start_offsets.items():
            start.add_metric([topic.topic, str(p)], offset)
        retained.add_metric([topic.topic], topic.retained)
    yield end
    yield start
    yield retained
    lag = GaugeMetricFamily(
        "userstream_kafka_consumer_lag",
        "Records not yet consumed, per consumer and topic",
        labels=["consumer", "topic"],
    )
    for item in snap.kafka.lags:
        if item.lag is not None:
            lag.add_metric([item.consumer, item.topic], item.lag)
    yield lag
    dlq = GaugeMetricFamily(
        "userstream_dlq_recent_reason_records", "Reasons among the newest DLQ records", labels=["reason"]
    )
    for reason in snap.kafka.dlq_reasons:
        dlq.add_metric([reason.reason], reason.count)
    yield dlq

    # --- registry ---
    versions = GaugeMetricFamily(
        "userstream_registry_subject_versions", "Schema versions registered per subject", labels=["subject"]
    )
    for subject in snap.registry.subjects:
        versions.add_metric([subject.name], len(subject.versions))
    yield versions

    # --- Spark ---
    spark = snap.spark
    families = {
        "batch_id": GaugeMetricFamily("userstream_spark_batch_id", "Last batch id", labels=["query"]),
        "num_input_rows": GaugeMetricFamily(
            "userstream_spark_batch_input_rows", "Input rows of the last batch", labels=["query"]
        ),
        "input_rows_per_second": GaugeMetricFamily(
            "userstream_spark_input_rows_per_second", "Input rate of the last batch", labels=["query"]
        ),
        "processed_rows_per_second": GaugeMetricFamily(
            "userstream_spark_processed_rows_per_second", "Processing rate of the last batch", labels=["query"]
        ),
        "batch_duration_ms": GaugeMetricFamily(
            "userstream_spark_batch_duration_seconds", "Duration of the last batch", labels=["query"]
        ),
        "offsets_behind": GaugeMetricFamily(
            "userstream_spark_offsets_behind", "Offsets the query is behind, as reported by the job", labels=["query"]
        ),
    }
    for q in spark.queries:
        for attr, family in families.items():
            value = getattr(q, attr)
            if value is not None:
                family.add_metric([q.name], value / 1000.0 if attr == "batch_duration_ms" else value)
    yield from families.values()
    totals = CounterMetricFamily("userstream_spark_records", "Records written by the streaming job", labels=["sink"])
    if spark.total_valid is not None:
        totals.add_metric(["cassandra"], spark.total_valid)
    if spark.total_dlq is not None:
        totals.add_metric(["dlq"], spark.total_dlq)
    yield totals
    if spark.progress_age_s is not None:
        yield GaugeMetricFamily(
            "userstream_spark_progress_age_seconds", "Age of the job's progress.json", value=spark.progress_age_s
        )
    job_latency = GaugeMetricFamily(
        "userstream_spark_latency_seconds", "End-to-end latency reported by the job", labels=["quantile"]
    )
    for key, value in spark.latency_ms.items():
        if key.startswith("p") and key[1:].isdigit():
            job_latency.add_metric([f"0.{key[1:]}"], value / 1000.0)
    yield job_latency

    # --- Cassandra and latency ---
    if snap.cassandra.users is not None:
        yield _one(
            "userstream_cassandra_rows",
            "Rows in Cassandra (cached exact count)",
            "table",
            "created_users",
            snap.cassandra.users,
        )
    lat = snap.latency
    sample = GaugeMetricFamily(
        "userstream_e2e_latency_sample_seconds",
        "fetched_at -> Cassandra WRITETIME over a sample of recently stored rows",
        labels=["quantile"],
    )
    for quantile, value in (("0.5", lat.p50_ms), ("0.95", lat.p95_ms), ("0.99", lat.p99_ms), ("1", lat.max_ms)):
        if value is not None:
            sample.add_metric([quantile], value / 1000.0)
    yield sample
    yield GaugeMetricFamily("userstream_e2e_latency_sample_size", "Rows in the latency sample", value=lat.sample_size)
    # cumulative buckets of the sample, `le` in seconds like a histogram's (a gauge: the sample is replaced)
    buckets = GaugeMetricFamily(
        "userstream_e2e_latency_sample_bucket", "Sampled rows with latency <= le", labels=["le"]
    )
    running = 0
    for edge, count in zip([*lat.buckets_ms, float("inf")], lat.counts, strict=False):
        running += count
        buckets.add_metric(["+Inf" if edge == float("inf") else f"{edge / 1000.0:g}"], running)
    yield buckets


def _one(name: str, doc: str, label: str, label_value: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    family.add_metric([label_value], value)
    return family


def render_metrics(get_snapshot: Callable[[], PipelineSnapshot]) -> bytes:
    """Prometheus text exposition for the snapshot returned by ``get_snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(get_snapshot))
    return generate_latest(registry)
