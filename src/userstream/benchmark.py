"""`userstream bench pipeline`: the whole pipeline at its maximum sustained rate, then at fixed rates.

Each run ingests from the bundled source (a child process) into Postgres; the records flow through CDC,
Kafka and Spark into Cassandra. A run's users are those fetched during it; its latency is, per user,
Cassandra's WRITETIME minus ``fetched_at``. The slowest stage's standalone ceiling (ingest, measured with
the CDC connector paused so nothing else competes) is measured in the same invocation and reported as a
ratio.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from userstream.cdc.connector import CONNECTOR_NAME
from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.ingest import ingest
from userstream.ingest.bench import source_server
from userstream.ingest.run import page_size_for
from userstream.source import SourceClient


@dataclass
class RunResult:
    label: str
    target_rate: float | None
    duration_s: float
    landed: int
    stored: int
    ingest_rate: float
    end_to_end_rate: float
    cassandra_write_rate: float
    spark_rate: float | None
    latency_ms: dict[str, float] = field(default_factory=dict)
    latencies_sample: list[float] = field(default_factory=list, repr=False)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("latencies_sample")
        return d


@dataclass
class PipelineBench:
    started_at: str
    ceiling_stage: str
    ceiling_rate: float
    runs: list[RunResult]

    def as_dict(self) -> dict[str, Any]:
        return {
            "started_at": self.started_at,
            "ceiling": {"stage": self.ceiling_stage, "records_per_s": self.ceiling_rate},
            "runs": [r.row() for r in self.runs],
        }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _connector_pause(settings: Settings, pause: bool) -> None:
    verb = "pause" if pause else "resume"
    resp = httpx.put(f"{settings.connect_endpoint}/connectors/{CONNECTOR_NAME}/{verb}", timeout=30)
    if resp.status_code >= 400:
        raise ServiceError(f"could not {verb} the CDC connector: HTTP {resp.status_code} {resp.text[:300]}")


def _ids_fetched_between(settings: Settings, t0: datetime, t1: datetime) -> list[tuple[uuid.UUID, datetime]]:
    with psycopg.connect(settings.postgres_conninfo) as conn:
        rows = conn.execute(
            "SELECT id, fetched_at FROM staging.users WHERE fetched_at >= %s AND fetched_at <= %s", (t0, t1)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _writetimes(settings: Settings, ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    """id -> WRITETIME (microseconds) of the users already in Cassandra."""
    from cassandra.concurrent import execute_concurrent_with_args

    from userstream.store.cassandra import connect

    session = connect(settings)
    try:
        stmt = session.prepare(
            f"SELECT id, writetime(email) AS wt FROM {settings.cassandra_keyspace}.created_users WHERE id IN ?"
        )
        chunks = [(ids[i : i + 100],) for i in range(0, len(ids), 100)]
        out: dict[uuid.UUID, int] = {}
        for ok, result in execute_concurrent_with_args(session, stmt, chunks, concurrency=32):
            if ok:
                for row in result:
                    out[row.id] = int(row.wt)
        return out
    finally:
        session.cluster.shutdown()


def _wait_stored(settings: Settings, ids: list[uuid.UUID], timeout_s: float) -> dict[uuid.UUID, int]:
    deadline = time.monotonic() + timeout_s
    found: dict[uuid.UUID, int] = {}
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        found.update(_writetimes(settings, pending))
        pending = [i for i in pending if i not in found]
        if pending:
            time.sleep(2)
    return found


def _spark_rate(settings: Settings, since_ms: float) -> float | None:
    from userstream.stream import job_paths
    from userstream.stream.progress import read_progress

    progress = read_progress(job_paths(settings).progress) or {}
    batches = [
        b for b in progress.get("recent_batches", [])
        if isinstance(b, dict) and _ts_ms(b.get("ts")) >= since_ms and b.get("rows")
    ]  # fmt: skip
    rows = sum(int(b.get("rows") or 0) for b in batches)
    busy_ms = sum(float(b.get("duration_ms") or 0) for b in batches)
    return rows / (busy_ms / 1000) if busy_ms else None


def _ts_ms(value: object) -> float:
    if isinstance(value, int | float):
        return float(value) * (1000 if value < 1e11 else 1)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
        except ValueError:
            return 0.0
    return 0.0


def run_once(
    settings: Settings, url: str, label: str, rate: float | None, duration_s: float, drain_timeout_s: float
) -> RunResult:
    seed = f"pipe-{uuid.uuid4().hex[:8]}"
    t0 = datetime.now(UTC)
    page_size = page_size_for(rate, settings.source_page_size)
    with SourceClient(url, settings=settings, seed=seed, page_size=page_size) as client:
        report = ingest(settings, duration_s=duration_s, rate=rate, seed=seed, source=client)
    t1 = datetime.now(UTC)
    landed = _ids_fetched_between(settings, t0, t1)
    fetched = dict(landed)
    stored = _wait_stored(settings, list(fetched), drain_timeout_s)
    lat = [wt / 1000 - fetched[i].timestamp() * 1000 for i, wt in stored.items()]
    if stored:
        first_fetch = min(fetched[i] for i in stored).timestamp()
        last_write = max(stored.values()) / 1e6
        first_write = min(stored.values()) / 1e6
        e2e = len(stored) / max(last_write - first_fetch, 1e-3)
        cass = len(stored) / max(last_write - first_write, 1e-3)
    else:
        e2e = cass = 0.0
    return RunResult(
        label=label,
        target_rate=rate,
        duration_s=duration_s,
        landed=len(landed),
        stored=len(stored),
        ingest_rate=report.rate,
        end_to_end_rate=e2e,
        cassandra_write_rate=cass,
        spark_rate=_spark_rate(settings, t0.timestamp() * 1000),
        latency_ms={"p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "p99": _pct(lat, 0.99)},
        latencies_sample=lat[:: max(1, len(lat) // 5000)],
    )


def ingest_ceiling(settings: Settings, url: str, records: int) -> float:
    """Ingest flat out with the connector paused: the landing stage alone (what flows later is drained)."""
    _connector_pause(settings, True)
    try:
        with SourceClient(url, settings=settings, seed=f"ceiling-{uuid.uuid4().hex[:8]}") as client:
            report = ingest(settings, max_records=records, source=client, seed=client.seed)
    finally:
        _connector_pause(settings, False)
    return report.rate


def bench_pipeline(
    settings: Settings,
    *,
    max_duration_s: float = 60.0,
    rates: tuple[float, ...] = (100.0, 1000.0, 5000.0),
    rate_duration_s: float = 30.0,
    ceiling_records: int = 100_000,
    drain_timeout_s: float = 600.0,
    out_dir: Path | None = None,
) -> PipelineBench:
    """Needs the stack up and bootstrapped (`userstream up` + `userstream bootstrap`)."""
    started = datetime.now(UTC).isoformat()
    with source_server(settings) as url:
        ceiling = ingest_ceiling(settings, url, ceiling_records)
        # let the ceiling's records drain before timing anything
        time.sleep(5)
        runs = [run_once(settings, url, "max sustained", None, max_duration_s, drain_timeout_s)]
        for rate in rates:
            runs.append(run_once(settings, url, f"{rate:.0f} records/s", rate, rate_duration_s, drain_timeout_s))
    result = PipelineBench(started, "ingest (fetch+validate+COPY)", ceiling, runs)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "pipeline-bench.json").write_text(json.dumps(result.as_dict(), indent=2))
        plot(result, out_dir / "pipeline-bench.png")
    return result


def plot(result: PipelineBench, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [r.label for r in result.runs]
    ax1.bar(labels, [r.end_to_end_rate for r in result.runs], color="#4c72b0", label="end to end")
    ax1.axhline(result.ceiling_rate, color="#c44e52", linestyle="--", label=f"{result.ceiling_stage} ceiling")
    ax1.set_ylabel("records/s")
    ax1.set_title("throughput")
    ax1.legend()
    ax1.tick_params(axis="x", rotation=20)
    for r in result.runs:
        if r.latencies_sample:
            xs = sorted(v / 1000 for v in r.latencies_sample)
            ax2.plot(xs, [i / len(xs) for i in range(len(xs))], label=r.label)
    ax2.set_xlabel("latency fetched_at -> Cassandra write (s)")
    ax2.set_ylabel("share of records")
    ax2.set_title("latency CDF")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
