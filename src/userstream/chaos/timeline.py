"""What the pipeline does over time, read from outside: a sampler thread and the reads it is made of.

Every ~1 s the sampler records the users landed (the ingest runs' counters), the rows the streaming job
wrote (its progress file, summed over restarts of the job), and a cohort: the newest users landed. A
cohort's latency (max Cassandra WRITETIME - fetched_at over its users) is filled in once its users are in
Cassandra, so the latency curve is by landing time and a stalled stage shows as a gap, then a peak.

The reads are cheap on purpose (the benchmark notes that polling every pending id loads Cassandra as much
as the writes measured): the newest users sit in the last heap pages of the append-only staging.users,
which a TID range scan reads without touching the rest of the table.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent_with_args

from userstream.config import Settings
from userstream.store.cassandra import cluster_options
from userstream.store.postgres import conninfo
from userstream.stream import job_paths
from userstream.stream.progress import read_progress

UserRow = tuple[uuid.UUID, float]  # id, fetched_at (epoch seconds)

COHORT_SIZE = 50
# rows land in the table's last pages, but VACUUM may give an earlier page free space: look a little back
PAGE_MARGIN = 256


class PipelineProbe:
    """Postgres and Cassandra reads, each connection (re)opened on demand: a killed server only fails the
    reads until it is back. One per thread."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._session: Any = None
        self._stmt: Any = None
        self._next_connect = 0.0

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
        if self._session is not None:
            with contextlib.suppress(Exception):
                self._session.cluster.shutdown()
        self._conn = self._session = None

    # --- Postgres --------------------------------------------------------------------------------
    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                conninfo(self.settings, "monitor"), autocommit=True, connect_timeout=2,
                options="-c statement_timeout=10000", application_name="userstream-chaos",
            )  # fmt: skip
        try:
            return self._conn.execute(sql, params).fetchall()
        except psycopg.Error:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
            raise

    def pages(self) -> int:
        """Heap pages of staging.users: the users landed from now on are at or after this page."""
        rows = self._query("SELECT pg_relation_size('staging.users') / current_setting('block_size')::int")
        return int(rows[0][0])

    def landed_total(self) -> int:
        rows = self._query("SELECT coalesce(sum(landed), 0) FROM staging.ingest_runs")
        return int(rows[0][0])

    def newest(self, limit: int = COHORT_SIZE) -> list[UserRow]:
        first_page = max(0, self.pages() - max(8, limit // 2))
        rows = self._query(
            "SELECT id, fetched_at FROM staging.users WHERE ctid >= %s::tid ORDER BY landed_at DESC LIMIT %s",
            (f"({first_page},0)", limit),
        )
        return [(r[0], r[1].timestamp()) for r in rows]

    def fetched_between(self, t0: float, t1: float, from_page: int, limit: int | None = None) -> list[UserRow]:
        """Users fetched in (t0, t1], oldest first, among those stored at or after ``from_page``."""
        sql = (
            "SELECT id, fetched_at FROM staging.users WHERE ctid >= %s::tid AND fetched_at > %s AND fetched_at <= %s "
            "ORDER BY fetched_at" + (f" LIMIT {int(limit)}" if limit else "")
        )
        start = f"({max(0, from_page - PAGE_MARGIN)},0)"
        rows = self._query(sql, (start, datetime.fromtimestamp(t0, UTC), datetime.fromtimestamp(t1, UTC)))
        return [(r[0], r[1].timestamp()) for r in rows]

    # --- Cassandra -------------------------------------------------------------------------------
    def _cassandra(self) -> Any:
        if self._session is None:
            if time.monotonic() < self._next_connect:
                raise ConnectionError("Cassandra unreachable at the last attempt")
            self._next_connect = time.monotonic() + 5  # a down node: do not retry the connect every second
            cluster = Cluster(
                self.settings.cassandra_hosts, connect_timeout=5, **cluster_options(self.settings, "monitor")
            )
            try:
                session = cluster.connect()
            except Exception:
                cluster.shutdown()  # a failed connect leaves the cluster's threads running
                raise
            session.default_timeout = 5
            self._stmt = session.prepare(
                f"SELECT id, writetime(email) AS wt FROM {self.settings.cassandra_keyspace}.created_users WHERE id IN ?"
            )
            self._session = session
        return self._session

    def writetimes(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
        """id -> WRITETIME (epoch seconds) of those of ``ids`` in Cassandra; raises if a read failed."""
        if not ids:
            return {}
        session = self._cassandra()
        chunks = [(ids[i : i + 100],) for i in range(0, len(ids), 100)]
        out: dict[uuid.UUID, float] = {}
        results = execute_concurrent_with_args(session, self._stmt, chunks, concurrency=16, raise_on_first_error=False)
        for ok, result in results:
            if not ok:
                raise ConnectionError(f"Cassandra read failed: {result}")
            for row in result:
                if row.wt is not None:
                    out[row.id] = int(row.wt) / 1e6
        return out


@dataclass
class Sample:
    t: float  # epoch seconds
    landed: int | None  # users landed in Postgres, all runs (a counter: only differences mean something)
    stored: int | None  # rows the streaming job wrote (Cassandra + DLQ), summed over its restarts
    pages: int | None  # heap pages of staging.users at t
    latency_s: float | None = None  # this sample's cohort: max WRITETIME - fetched_at, once stored
    cohort_size: int = 0
    cohort_lost: bool = False  # never (fully) stored within the sampler's patience
    cohort: list[UserRow] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "landed": self.landed, "stored": self.stored, "latency_s": self.latency_s,
                "cohort_size": self.cohort_size, "cohort_lost": self.cohort_lost}  # fmt: skip

    @property
    def resolved(self) -> bool:
        return self.latency_s is not None or self.cohort_lost or not self.cohort_size


class _StoredCounter:
    """The job's rows written: its progress file's totals restart at 0 with each run of the job."""

    def __init__(self, settings: Settings) -> None:
        self.path = job_paths(settings).progress
        self.base = 0
        self.last = 0
        self.run: object = None

    def read(self) -> int | None:
        doc = read_progress(self.path)
        if not doc:
            return None
        totals = doc.get("totals") or {}
        now = int(totals.get("valid") or 0) + int(totals.get("dlq") or 0)
        run = (doc.get("job") or {}).get("started_at")
        if run != self.run:
            if self.run is not None:
                self.base += self.last
            self.run = run
        self.last = now
        return self.base + now


class Sampler:
    """A daemon thread taking a :class:`Sample` every ``interval_s``; never fails (a read that fails
    leaves that field None)."""

    def __init__(self, settings: Settings, interval_s: float = 1.0, patience_s: float = 900.0) -> None:
        self.settings = settings
        self.interval_s = interval_s
        self.patience_s = patience_s
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def samples(self) -> list[Sample]:
        with self._lock:
            return [replace(s, cohort=[]) for s in self._samples]

    def _run(self) -> None:
        probe = PipelineProbe(self.settings)
        stored = _StoredCounter(self.settings)
        last_newest: uuid.UUID | None = None
        try:
            while not self._stop.is_set():
                t0 = time.monotonic()
                sample = Sample(time.time(), _try(probe.landed_total), _try(stored.read), _try(probe.pages))
                cohort = _try(probe.newest) or []
                if cohort and cohort[0][0] != last_newest:  # nothing landed since: no new cohort
                    last_newest = cohort[0][0]
                    sample.cohort, sample.cohort_size = cohort, len(cohort)
                with self._lock:
                    self._samples.append(sample)
                self._resolve(probe)
                self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))
        finally:
            probe.close()

    def _resolve(self, probe: PipelineProbe, max_cohorts: int = 20) -> None:
        """Latency of the oldest cohorts not yet stored (oldest first: the pipeline is FIFO enough that a
        newer cohort is not stored before an older one)."""
        now = time.time()
        with self._lock:
            pending = [s for s in self._samples if not s.resolved and now - s.t >= 1.0][:max_cohorts]
        ids = [i for s in pending for i, _ in s.cohort]
        written = _try(lambda: probe.writetimes(ids))
        if written is None:
            return
        with self._lock:
            for s in pending:
                stored = [written[i] - fetched for i, fetched in s.cohort if i in written]
                # a user dead-lettered by the job never reaches Cassandra: 90 % of a cohort after 30 s will do
                if len(stored) == len(s.cohort) or (stored and len(stored) >= 0.9 * len(s.cohort) and now - s.t > 30):
                    s.latency_s, s.cohort = max(stored), []
                elif now - s.t > self.patience_s:
                    s.cohort_lost, s.cohort = True, []


def _try(read: Any) -> Any:
    try:
        return read()
    except Exception:  # a stage down: that reading is missing, the sampler goes on
        return None


# --- pure functions over samples --------------------------------------------------------------------


def rates(samples: list[Sample], window_s: float = 5.0) -> list[tuple[float, float | None, float | None]]:
    """(t, landed/s, stored/s) per sample, each over the last ``window_s`` seconds."""
    out: list[tuple[float, float | None, float | None]] = []
    for i, s in enumerate(samples):
        j = i
        while j > 0 and s.t - samples[j - 1].t <= window_s:
            j -= 1
        ref = samples[j - 1] if j > 0 else samples[0]
        dt = s.t - ref.t
        landed = (s.landed - ref.landed) / dt if dt > 0 and s.landed is not None and ref.landed is not None else None
        stored = (s.stored - ref.stored) / dt if dt > 0 and s.stored is not None and ref.stored is not None else None
        out.append((s.t, landed, stored))
    return out


def caught_up(samples: list[Sample], since: float, now: float, bound_s: float, streak: int = 3) -> float | None:
    """When the backlog after ``since`` had drained, or None while it has not: every cohort landed after
    ``since`` and old enough (``bound_s`` before ``now``) is stored, and the last ``streak`` or more within
    ``bound_s``; the moment is when the first of that final run of prompt cohorts was stored."""
    due = [s for s in samples if s.cohort_size and not s.cohort_lost and since <= s.t <= now - bound_s]
    if len(due) < streak or any(not s.resolved for s in due):
        return None
    first = len(due)
    while first > 0 and (lat := due[first - 1].latency_s) is not None and lat <= bound_s:
        first -= 1
    if len(due) - first < streak:
        return None
    start = due[first]
    return start.t + (start.latency_s or 0.0)


@dataclass(frozen=True)
class WarmupCheck:
    rate: float
    seconds: float
    landed_per_s: float
    stored_per_s: float
    latency_max_s: float | None
    sustained: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "seconds": self.seconds, "landed_per_s": self.landed_per_s,
                "stored_per_s": self.stored_per_s, "latency_max_s": self.latency_max_s,
                "sustained": self.sustained, "detail": self.detail}  # fmt: skip


def _rate_between(samples: list[Sample], attr: str) -> float:
    points = [(s.t, getattr(s, attr)) for s in samples if getattr(s, attr) is not None]
    if len(points) < 2 or points[-1][0] <= points[0][0]:
        return 0.0
    return float(points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def warmup_verdict(samples: list[Sample], rate: float, start: float, end: float, bound_s: float) -> WarmupCheck:
    """Over the last two thirds of the warm-up: the stored rate keeps up with the landed one, ingest reaches
    most of ``rate`` (10 % of the faulty source's records are rejected, failed pages retried) and every
    cohort old enough is stored within ``bound_s``."""
    window = [s for s in samples if start + (end - start) / 3 <= s.t <= end]
    landed, stored = _rate_between(window, "landed"), _rate_between(window, "stored")
    due = [s for s in window if s.cohort_size and s.t <= end - bound_s]
    lat = [s.latency_s for s in due if s.latency_s is not None]
    worst = max(lat) if lat else None
    problems = []
    if landed < 0.6 * rate:
        problems.append(f"ingest landed {landed:.0f}/s of {rate:.0f}/s")
    if stored < 0.9 * landed:
        problems.append(f"stored {stored:.0f}/s < landed {landed:.0f}/s")
    if len(due) < 3 or len(lat) < len(due):
        problems.append(f"{len(due) - len(lat)} of {len(due)} cohorts not stored within {bound_s:.0f}s")
    elif worst is not None and worst > bound_s:
        problems.append(f"latency up to {worst:.1f}s > {bound_s:.0f}s")
    detail = (
        "; ".join(problems) or f"stored {stored:.0f}/s keeps up with landed {landed:.0f}/s, latency <= {worst:.1f}s"
    )
    return WarmupCheck(rate, round(end - start, 1), round(landed, 1), round(stored, 1), worst, not problems, detail)


__all__ = ["PipelineProbe", "Sample", "Sampler", "WarmupCheck", "caught_up", "rates", "warmup_verdict"]
