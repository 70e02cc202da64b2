"""Per-stage counters derived from a snapshot's sections, and their rates between consecutive snapshots."""

from __future__ import annotations

import math

from userstream.monitor.models import STAGES, LatencySection, PipelineSnapshot, StageHealthSection, StageStat

__all__ = ["LATENCY_BUCKETS_MS", "VERDICT_STAGES", "apply_health", "apply_rates", "build_stages", "latency_histogram"]

# the watchdog's stage -> the counter its output moves: ingest lands rows, the CDC fills the topic, the job
# processes it
VERDICT_STAGES: dict[str, str] = {"ingest": "landed", "cdc": "kafka", "stream": "spark"}

# upper bounds of the end-to-end latency histogram, in ms; one more open bucket follows
LATENCY_BUCKETS_MS: tuple[float, ...] = (250, 500, 1000, 2000, 3000, 5000, 10_000, 30_000, 60_000, 300_000)


def build_stages(snap: PipelineSnapshot, users_topic: str, dlq_topic: str) -> list[StageStat]:
    """One StageStat per entry of STAGES (rates not yet filled in)."""
    kafka_error = snap.kafka.error
    users_offsets = snap.kafka.topics.get(users_topic)
    dlq_offsets = snap.kafka.topics.get(dlq_topic)
    spark = snap.spark
    spark_count = None
    if spark.total_valid is not None or spark.total_dlq is not None:
        spark_count = (spark.total_valid or 0) + (spark.total_dlq or 0)
    values: dict[str, tuple[int | None, float | None, str | None]] = {
        "fetched": (snap.ingest.requested, snap.ingest.measured_at, snap.ingest.error),
        "landed": (snap.postgres.users, snap.postgres.users_measured_at, snap.postgres.error),
        "kafka": (
            users_offsets.end_total if users_offsets and users_offsets.error is None else None,
            snap.kafka.measured_at,
            kafka_error or (users_offsets.error if users_offsets else None),
        ),
        "spark": (
            spark_count,
            spark.measured_at,
            spark.progress_error or (spark.job_error if spark.job_state == "failed" else None),
        ),
        "cassandra": (
            snap.cassandra.users,
            snap.cassandra.users_measured_at,
            snap.cassandra.error or snap.cassandra.count_error,
        ),
        "rejected": (snap.postgres.rejected, snap.postgres.users_measured_at, snap.postgres.error),
        "dlq": (
            dlq_offsets.end_total if dlq_offsets and dlq_offsets.error is None else None,
            snap.kafka.measured_at,
            kafka_error or (dlq_offsets.error if dlq_offsets else None),
        ),
    }
    out = []
    for key, label, counted_by in STAGES:
        count, measured_at, error = values[key]
        out.append(
            StageStat(key=key, label=label, count=count, measured_at=measured_at, counted_by=counted_by, error=error)
        )
    return out


def apply_rates(
    previous: PipelineSnapshot | None,
    stages: list[StageStat],
    *,
    now: float | None = None,
    max_carry_s: float = 120.0,
) -> list[StageStat]:
    """Fill ``rate`` (records/s) from the difference with the previous snapshot.

    Rates use each counter's own measurement time, not the snapshot time: a cached count (Cassandra's is
    refreshed every few seconds) would otherwise read as 0/s then as a spike. When a counter was not
    re-measured since the previous snapshot, its previous rate is carried over, but not for a measurement
    older than ``max_carry_s`` at ``now`` (a streaming job that stopped reporting has no current rate).
    """
    out = []
    for stage in stages:
        rate: float | None = None
        prev = previous.stage(stage.key) if previous is not None else None
        comparable = prev is not None and stage.count is not None and prev.count is not None
        if comparable and prev is not None and stage.measured_at is not None and prev.measured_at is not None:
            dt = stage.measured_at - prev.measured_at
            if dt > 0:
                delta = (stage.count or 0) - (prev.count or 0)
                # a counter going down means a reset (new data dir, truncated table): no rate
                rate = delta / dt if delta >= 0 else None
            elif dt == 0 and (now is None or now - stage.measured_at <= max_carry_s):
                rate = prev.rate
        out.append(stage.model_copy(update={"rate": rate}))
    return out


def apply_health(stages: list[StageStat], health: StageHealthSection) -> list[StageStat]:
    """Each counter gets the watchdog's verdict (state and detail) on the step that feeds it."""
    by_key = {VERDICT_STAGES[v.stage]: v for v in health.stages if v.stage in VERDICT_STAGES}
    out = []
    for stage in stages:
        verdict = by_key.get(stage.key)
        if verdict is None:
            out.append(stage)
        else:
            out.append(stage.model_copy(update={"state": verdict.state, "state_detail": verdict.detail}))
    return out


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_histogram(
    latencies_ms: list[float], *, sample: str = "", measured_at: float | None = None
) -> LatencySection:
    """Histogram and percentiles of end-to-end latencies (negative ones, from clock skew, count as 0)."""
    values = sorted(max(0.0, v) for v in latencies_ms)
    counts = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    for v in values:
        idx = next((i for i, edge in enumerate(LATENCY_BUCKETS_MS) if v <= edge), len(LATENCY_BUCKETS_MS))
        counts[idx] += 1
    section = LatencySection(
        sample=sample,
        sample_size=len(values),
        buckets_ms=list(LATENCY_BUCKETS_MS),
        counts=counts,
        measured_at=measured_at,
    )
    if values:
        section.p50_ms = _percentile(values, 50)
        section.p95_ms = _percentile(values, 95)
        section.p99_ms = _percentile(values, 99)
        section.max_ms = values[-1]
    return section
