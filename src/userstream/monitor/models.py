"""The snapshot of the whole pipeline: one pydantic model per section, JSON-ready for the dashboard.

Every section carries ``error``: a backend that cannot be reached yields its section with ``error`` set
and its fields left at their defaults, never an exception, so the rest of the page still renders.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = [
    "STAGES",
    "CassandraSection",
    "ConsumerLag",
    "CountryWindow",
    "IngestRun",
    "IngestSection",
    "KafkaSection",
    "LatencySection",
    "PipelineSnapshot",
    "PostgresSection",
    "ReasonCount",
    "RecentReason",
    "RegistrySection",
    "Section",
    "ServiceHealth",
    "ServicesSection",
    "SparkApp",
    "SparkBatch",
    "SparkQuery",
    "SparkSection",
    "StageHealth",
    "StageHealthSection",
    "StageStat",
    "StoredUser",
    "Subject",
    "TopicOffsets",
]

# (key, label, how it is counted), in pipeline order; the branches (rejected, dlq) come last
STAGES: tuple[tuple[str, str, str], ...] = (
    ("fetched", "fetched from the API", "sum of staging.ingest_runs.requested"),
    ("landed", "landed in Postgres", "rows in staging.users"),
    ("kafka", "in Kafka", "end offsets of the users topic, summed over partitions"),
    ("spark", "processed by Spark", "valid + DLQ totals of the streaming job (progress.json)"),
    ("cassandra", "in Cassandra", "rows in created_users (cached exact count)"),
    ("rejected", "rejected at ingest", "rows in staging.rejected"),
    ("dlq", "dead-lettered", "end offsets of the DLQ topic, summed over partitions"),
)


class Section(BaseModel):
    """Common part of every section: what went wrong (if anything) and when it was measured."""

    error: str | None = None
    measured_at: float | None = Field(None, description="unix seconds when the backend answered")
    stale: bool = Field(False, description="the backend did not answer in time: this is the previous answer")


# --- source / ingest -----------------------------------------------------------------------------


class IngestRun(BaseModel):
    run_id: int
    seed: str
    status: str
    requested: int
    landed: int
    duplicates: int
    rejected: int
    started_at: float | None = None
    finished_at: float | None = None
    limited_by: str | None = Field(None, description="what held the run back: rate, quota, ... (newer schemas)")


class IngestSection(Section):
    runs: int | None = None
    requested: int | None = None
    landed: int | None = None
    duplicates: int | None = None
    rejected: int | None = None
    latest_run: IngestRun | None = None


# --- Postgres ------------------------------------------------------------------------------------


class RecentReason(BaseModel):
    reason: str
    at: float | None = None
    source: str = ""


class PostgresSection(Section):
    users: int | None = None
    users_measured_at: float | None = None
    rejected: int | None = None
    recent_rejects: list[RecentReason] = Field(default_factory=list)


# --- Kafka ---------------------------------------------------------------------------------------


class TopicOffsets(BaseModel):
    topic: str
    partitions: dict[int, int] = Field(default_factory=dict, description="partition -> end offset")
    start_offsets: dict[int, int] = Field(default_factory=dict, description="partition -> first retained offset")
    end_total: int = 0
    retained: int = 0
    error: str | None = None


class ConsumerLag(BaseModel):
    consumer: str = Field(description="a consumer group, or `spark:<query>` for the streaming job")
    topic: str
    lag: int | None = None
    source: str = Field("", description="how the lag was obtained")


class ReasonCount(BaseModel):
    reason: str
    count: int


class KafkaSection(Section):
    topics: dict[str, TopicOffsets] = Field(default_factory=dict)
    lags: list[ConsumerLag] = Field(default_factory=list)
    dlq_reasons: list[ReasonCount] = Field(default_factory=list, description="reasons of the newest DLQ records")


# --- registry ------------------------------------------------------------------------------------


class Subject(BaseModel):
    name: str
    versions: list[int] = Field(default_factory=list)
    latest_schema_id: int | None = None
    compatibility: str | None = None


class RegistrySection(Section):
    url: str = ""
    compatibility: str | None = None
    subjects: list[Subject] = Field(default_factory=list)


# --- Spark ---------------------------------------------------------------------------------------


class SparkQuery(BaseModel):
    name: str
    batch_id: int | None = None
    num_input_rows: int | None = None
    input_rows_per_second: float | None = None
    processed_rows_per_second: float | None = None
    batch_duration_ms: float | None = None
    offsets_behind: int | None = None
    end_offsets: dict[str, dict[str, int]] = Field(default_factory=dict, description="topic -> partition -> offset")


class SparkBatch(BaseModel):
    batch_id: int | None = None
    rows: int | None = None
    duration_ms: float | None = None
    ts: str | None = None


class SparkApp(BaseModel):
    id: str
    name: str
    state: str
    cores: int | None = None
    duration_s: float | None = None


class SparkSection(Section):
    progress_file: str = ""
    progress_error: str | None = Field(None, description="progress.json missing or unreadable")
    updated_at: str | None = None
    progress_age_s: float | None = None
    job_state: str | None = Field(None, description="the job's own state: starting, running, failed, ...")
    job_error: str | None = None
    queries: list[SparkQuery] = Field(default_factory=list)
    total_valid: int | None = None
    total_dlq: int | None = None
    recent_batches: list[SparkBatch] = Field(default_factory=list)
    latency_ms: dict[str, float] = Field(default_factory=dict, description="p50/p95/p99 reported by the job")
    master_url: str | None = None
    master_error: str | None = None
    master_status: str | None = None
    workers_alive: int | None = None
    apps: list[SparkApp] = Field(default_factory=list)


# --- Cassandra -----------------------------------------------------------------------------------


class CountryWindow(BaseModel):
    country: str
    window_start: float
    window_end: float | None = None
    users: int


class StoredUser(BaseModel):
    id: str
    name: str
    email: str | None = None
    nat: str | None = None
    fetched_at: float | None = None
    written_at: float | None = None


class CassandraSection(Section):
    users: int | None = None
    users_measured_at: float | None = None
    count_method: str = ""
    count_error: str | None = None
    latest_windows: list[CountryWindow] = Field(default_factory=list)
    windows_error: str | None = None
    latest_users: list[StoredUser] = Field(default_factory=list)


class LatencySection(Section):
    """End-to-end latency, fetched_at -> Cassandra WRITETIME, of a sample of recently stored rows."""

    sample: str = Field("", description="which rows were sampled")
    sample_size: int = 0
    buckets_ms: list[float] = Field(default_factory=list, description="upper bounds; the last bucket is open")
    counts: list[int] = Field(default_factory=list, description="rows per bucket (len(buckets_ms) + 1)")
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


# --- services ------------------------------------------------------------------------------------


class ServiceHealth(BaseModel):
    name: str
    external: bool = False
    running: bool = False
    healthy: bool = False
    detail: str = ""
    urls: dict[str, str] = Field(default_factory=dict)


class ServicesSection(Section):
    services: list[ServiceHealth] = Field(default_factory=list)


# --- stalled stages (the watchdog's verdicts) ----------------------------------------------------


class StageHealth(BaseModel):
    """One verdict of :class:`userstream.monitor.stall.StallRule`, as the watchdog wrote it."""

    stage: str = Field(description="ingest, cdc or stream")
    state: str = Field(description="idle, flowing, stalled or unknown")
    backlog: int | None = None
    output: int | None = None
    waiting_s: float | None = None
    detail: str = ""


class StageHealthSection(Section):
    """``error`` is set when there is no fresh verdict (the watchdog is not running, or its file is old)."""

    stages: list[StageHealth] = Field(default_factory=list)


# --- the whole snapshot ----------------------------------------------------------------------------


class StageStat(BaseModel):
    key: str
    label: str
    count: int | None = None
    rate: float | None = Field(None, description="records/s since the previous snapshot's measurement")
    measured_at: float | None = None
    counted_by: str = ""
    error: str | None = None
    state: str | None = Field(None, description="the watchdog's verdict on the step feeding this counter")
    state_detail: str = ""


class PipelineSnapshot(BaseModel):
    taken_at: float
    collect_ms: float = 0.0
    stages: list[StageStat] = Field(default_factory=list)
    ingest: IngestSection = Field(default_factory=IngestSection)
    postgres: PostgresSection = Field(default_factory=PostgresSection)
    kafka: KafkaSection = Field(default_factory=KafkaSection)
    registry: RegistrySection = Field(default_factory=RegistrySection)
    spark: SparkSection = Field(default_factory=SparkSection)
    cassandra: CassandraSection = Field(default_factory=CassandraSection)
    latency: LatencySection = Field(default_factory=LatencySection)
    services: ServicesSection = Field(default_factory=ServicesSection)
    health: StageHealthSection = Field(default_factory=StageHealthSection)
    links: dict[str, str] = Field(default_factory=dict)

    def stage(self, key: str) -> StageStat | None:
        return next((s for s in self.stages if s.key == key), None)
