"""One ingest run: fetch pages of a seeded sequence, land them, record the run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import psycopg

from userstream.config import Settings
from userstream.ingest.land import LandedUser, Reject, land_batch
from userstream.source import PageResult, SourceClient


class PageSource(Protocol):
    """What ingest needs of a source: pages of a seeded sequence (SourceClient is one)."""

    def fetch_page(self, page: int) -> PageResult: ...

    def close(self) -> None: ...


@dataclass
class IngestReport:
    run_id: int
    seed: str
    first_page: int
    last_page: int | None = None
    requested: int = 0
    landed: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    status: str = "running"
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.landed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}

    def summary(self) -> str:
        return (
            f"ingest run {self.run_id} ({self.status}): seed={self.seed!r} pages {self.first_page}..{self.last_page}, "
            f"requested={self.requested} landed={self.landed} duplicates={self.duplicates} "
            f"rejected={self.rejected} in {self.seconds:.1f}s ({self.rate:.0f} records/s)"
        )


class RateLimiter:
    """Paces records to an average rate: after n records, wait until n / rate seconds have passed."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.started = clock()
        self.sent = 0

    def wait_for(self, n: int, sleep: Callable[[float], None] = time.sleep) -> None:
        if self.rate:
            ahead = self.sent / self.rate - (self.clock() - self.started)
            if ahead > 0:
                sleep(ahead)
        self.sent += n


def page_size_for(rate: float | None, largest: int) -> int:
    """Pages of about a quarter second of records: small pages keep latency low at modest rates,
    the largest page keeps overhead low flat out."""
    if not rate:
        return largest
    return max(1, min(largest, max(100, int(rate / 4))))


def next_page(conn: psycopg.Connection[tuple[Any, ...]], seed: str) -> int:
    """The page after the last one any run of this seed has landed."""
    row = conn.execute("SELECT max(last_page) FROM staging.ingest_runs WHERE seed = %s", (seed,)).fetchone()
    return int(row[0]) + 1 if row and row[0] is not None else 1


def ingest(
    settings: Settings,
    *,
    max_records: int | None = None,
    duration_s: float | None = None,
    rate: float | None = None,
    seed: str | None = None,
    start_page: int | None = None,
    page_size: int | None = None,
    source: PageSource | None = None,
    on_progress: Callable[[IngestReport], None] | None = None,
    stop: threading.Event | None = None,
) -> IngestReport:
    """Fetch and land users until ``max_records`` were requested or ``duration_s`` passed (one of them needed).

    ``rate`` caps records per second; ``None`` means as fast as the source and Postgres allow.
    Pages continue the seeded sequence where the previous run stopped, unless ``start_page`` is given.
    ``stop``, once set, ends the run after the page being landed (status "stopped"); nothing landed is lost.
    """
    if max_records is None and duration_s is None:
        raise ValueError("ingest needs a bound: max_records or duration_s")
    seed = seed or settings.source_seed
    page_size = page_size or page_size_for(rate, settings.source_page_size)
    if max_records is not None:
        page_size = max(1, min(page_size, max_records))
    if source is not None:
        # a given client fixes the page size: pace and count by what it really fetches
        page_size = int(getattr(source, "page_size", page_size))
    own_source = source is None
    source = source or SourceClient(settings=settings, seed=seed, page_size=page_size)
    limiter = RateLimiter(rate)
    started = time.monotonic()

    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        first = start_page or next_page(conn, seed)
        row = conn.execute(
            "INSERT INTO staging.ingest_runs (seed, first_page) VALUES (%s, %s) RETURNING run_id", (seed, first)
        ).fetchone()
        assert row is not None
        report = IngestReport(run_id=int(row[0]), seed=seed, first_page=first)

        def pages() -> Iterator[int]:
            page = first
            while True:
                yield page
                page += 1

        def budget_left() -> bool:
            if stop is not None and stop.is_set():
                return False
            if max_records is not None and report.requested >= max_records:
                return False
            return duration_s is None or time.monotonic() - started < duration_s

        # prefetch the next page while the current one is landed: fetch and COPY overlap
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
            page_iter = pages()
            pending: Future[PageResult] | None = None
            try:
                while budget_left():
                    want = page_size if max_records is None else min(page_size, max_records - report.requested)
                    limiter.wait_for(want)
                    if pending is None:
                        pending = pool.submit(source.fetch_page, next(page_iter))
                    page = pending.result()
                    pending = None
                    report.requested += page.requested
                    if budget_left():
                        pending = pool.submit(source.fetch_page, next(page_iter))
                    result = land_batch(conn, *_to_landing(page))
                    report.landed += result.landed
                    report.duplicates += result.duplicates
                    report.rejected += result.rejected
                    report.last_page = page.page
                    report.seconds = time.monotonic() - started
                    _save(conn, report)
                    if on_progress:
                        on_progress(report)
                report.status = "stopped" if stop is not None and stop.is_set() else "finished"
            except BaseException as exc:
                report.status = "failed"
                report.errors.append(f"{type(exc).__name__}: {exc}")
                raise
            finally:
                if pending is not None:
                    pending.cancel()
                report.seconds = time.monotonic() - started
                _save(conn, report, final=True)
                if own_source:
                    source.close()
    return report


def _to_landing(page: PageResult) -> tuple[list[LandedUser], list[Reject]]:
    users = [LandedUser(a.row, a.raw_json()) for a in page.accepted]
    rejects = [Reject(r.reason, r.raw_json(), f"seed={r.seed} page={r.page} index={r.index}") for r in page.rejected]
    return users, rejects


def _save(conn: psycopg.Connection[tuple[Any, ...]], report: IngestReport, final: bool = False) -> None:
    conn.execute(
        "UPDATE staging.ingest_runs SET last_page = %s, requested = %s, landed = %s, duplicates = %s, "
        "rejected = %s, status = %s, finished_at = CASE WHEN %s THEN clock_timestamp() END WHERE run_id = %s",
        (
            report.last_page,
            report.requested,
            report.landed,
            report.duplicates,
            report.rejected,
            report.status,
            final,
            report.run_id,
        ),
    )


__all__ = ["IngestReport", "PageSource", "RateLimiter", "ingest"]
