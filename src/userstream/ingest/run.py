"""One ingest run: fetch pages of a seeded sequence, land them, record the run.

The cursor is a (generation, page) position. Generation 1 is the seed itself; generation k > 1 is the
derived seed ``<seed>~k``. A generation ends after the provider's last page (``USERSTREAM_SOURCE_MAX_PAGE``:
randomuser.me answers any higher page as page 1) or at the first page served as another one (``info.page``);
the run then continues at page 1 of the next generation, so page 1's users are never landed as new ones.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import psycopg

from userstream.config import Settings
from userstream.ingest.backpressure import Backpressure, pipeline_backlog
from userstream.ingest.land import LandedUser, Reject, land_batch
from userstream.source import PageOutOfRange, PageResult, QuotaPacer, SourceClient
from userstream.store.postgres import conninfo

log = logging.getLogger(__name__)

# class of the advisory lock a run holds on its connection while it lands (key 2: the run id): Postgres drops
# it when the run's session ends, so a killed task never looks alive (see live_runs)
RUN_LOCK_CLASS = 0x55535452

Conn = psycopg.Connection[tuple[Any, ...]]


class PageSource(Protocol):
    """What ingest needs of a source: pages of seeded sequences (SourceClient is one).

    ``seed`` picks the sequence; ``cancel``, once set, should end the fetch's retries (the run is stopping).
    """

    def fetch_page(
        self, page: int, *, seed: str | None = None, cancel: threading.Event | None = None
    ) -> PageResult: ...

    def close(self) -> None: ...


def generation_seed(seed: str, generation: int) -> str:
    """The seed of a generation: the seed itself first, then ``<seed>~2``, ``<seed>~3``, ..."""
    return seed if generation == 1 else f"{seed}~{generation}"


@dataclass
class IngestReport:
    run_id: int
    seed: str  # the base seed; the pages' own seed is generation_seed(seed, generation)
    first_page: int
    last_page: int | None = None
    first_generation: int = 1
    generation: int = 1  # of last_page (of first_page until a page lands)
    requested: int = 0
    landed: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    status: str = "running"
    # what held the rate down: "rate" (USERSTREAM_INGEST_RATE), "quota" (the provider's: our pacing to it,
    # or its 429s), or "source" (nothing waited: fetching and landing as fast as they go)
    limited_by: str = "source"
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.landed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": round(self.rate, 1)}

    def summary(self) -> str:
        first = generation_seed(self.seed, self.first_generation)
        if self.generation == self.first_generation:
            pages = f"seed={first!r} pages {self.first_page}..{self.last_page}"
        else:
            last = generation_seed(self.seed, self.generation)
            pages = f"seed={first!r} page {self.first_page} .. seed={last!r} page {self.last_page}"
        return (
            f"ingest run {self.run_id} ({self.status}): {pages}, "
            f"requested={self.requested} landed={self.landed} duplicates={self.duplicates} "
            f"rejected={self.rejected} in {self.seconds:.1f}s ({self.rate:.0f} records/s, limited by {self.limited_by})"
        )


class RateLimiter:
    """Paces records to an average rate: after n records, wait until n / rate seconds have passed."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.clock = clock
        self.started = clock()
        self.sent = 0
        self.waited_s = 0.0

    def set_rate(self, rate: float | None) -> None:
        """Pace at ``rate`` from now on (the records already sent are not paced again)."""
        if rate != self.rate:
            self.rate, self.started, self.sent = rate, self.clock(), 0

    def wait_for(self, n: int, sleep: Callable[[float], object] = time.sleep) -> None:
        if self.rate:
            ahead = self.sent / self.rate - (self.clock() - self.started)
            if ahead > 0:
                sleep(ahead)
                self.waited_s += ahead
        self.sent += n


def page_size_for(rate: float | None, largest: int) -> int:
    """Pages of about a quarter second of records: small pages keep latency low at modest rates,
    the largest page keeps overhead low flat out."""
    if not rate:
        return largest
    return max(1, min(largest, max(100, int(rate / 4))))


def last_landed(conn: Conn, seed: str) -> tuple[int, int] | None:
    """(generation, page) of the furthest page any run of this seed has landed."""
    row = conn.execute(
        "SELECT generation, last_page FROM staging.ingest_runs WHERE seed = %s AND last_page IS NOT NULL "
        "ORDER BY generation DESC, last_page DESC LIMIT 1",
        (seed,),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row is not None else None


def following(generation: int, page: int, max_page: int) -> tuple[int, int]:
    """The position after (generation, page): the next page, or page 1 of the next generation past max_page."""
    return (generation, page + 1) if page < max_page else (generation + 1, 1)


def start_position(conn: Conn, seed: str, start_page: int | None, max_page: int) -> tuple[int, int]:
    """Where a run starts: after the last page landed, or at ``start_page`` of the current generation."""
    last = last_landed(conn, seed)
    if start_page is None:
        return following(*last, max_page) if last is not None else (1, 1)
    generation = last[0] if last is not None else 1
    return (generation, start_page) if start_page <= max_page else (generation + 1, 1)


def quota_applies(settings: Settings, source: PageSource | None) -> bool:
    """The quota settings describe the provider at USERSTREAM_SOURCE_URL: a client of another server (the
    bundled one in tests and benchmarks, `ingest --source-url`) is not held to them."""
    if settings.source_quota_users <= 0:
        return False
    url = getattr(source, "base_url", settings.source_url) if source is not None else settings.source_url
    return bool(url == settings.source_url)


def limited_by(seconds: float, rate_waited_s: float, quota_waited_s: float, backpressured_s: float = 0.0) -> str:
    """The pacing that held the run back: the one that waited most, if it waited a tenth of the run; rate
    pacing while backpressure had cut the rate for a tenth of the run is "backpressure"."""
    if max(rate_waited_s, quota_waited_s) < 0.1 * seconds:
        return "source"
    if quota_waited_s >= rate_waited_s:
        return "quota"
    return "backpressure" if backpressured_s >= 0.1 * seconds else "rate"


class _Stopped(Exception):
    """``stop`` was set while the next page was awaited."""


# a young-generation collection per 50,000 net allocations, not per 700: a page of 5,000 users allocates
# ~100,000 objects that die together once landed, and the default passes cost 3-4 us of CPU per user
GC_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


@_fewer_gc_passes()
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
    backpressure: Backpressure | None = None,
) -> IngestReport:
    """Fetch and land users until ``max_records`` were requested or ``duration_s`` passed (one of them needed).

    ``rate`` caps records per second; ``None`` means as fast as the source and Postgres allow. Against the
    provider at USERSTREAM_SOURCE_URL, requests are also paced to its quota (``USERSTREAM_SOURCE_QUOTA_*``),
    so the effective rate is the lower of the two. Pages continue the seeded sequence where the previous
    run stopped (across seed generations), unless ``start_page`` is given (a page of the current generation).
    ``stop``, once set, ends the run after the page being landed (status "stopped"); nothing landed is lost.
    ``backpressure`` lowers the rate below ``rate`` while the pipeline behind is behind (see
    :mod:`userstream.ingest.backpressure`).
    """
    if max_records is None and duration_s is None:
        raise ValueError("ingest needs a bound: max_records or duration_s")
    seed = seed or settings.source_seed
    max_page = settings.source_max_page
    quota = quota_applies(settings, source)
    quota_users, window_s = settings.source_quota_users, settings.source_quota_window_s
    if page_size is None:
        pace = min(rate or float("inf"), quota_users / window_s) if quota else rate
        page_size = page_size_for(pace, settings.source_page_size)
        if quota:
            page_size = max(1, min(page_size, quota_users // 4))  # a page must fit the quota with room
    if max_records is not None:
        page_size = max(1, min(page_size, max_records))
    if source is not None:
        # a given client fixes the page size: pace and count by what it really fetches
        page_size = int(getattr(source, "page_size", page_size))
    pacer = QuotaPacer(quota_users, window_s, page_size) if quota else None
    own_source = source is None
    src: PageSource = source or SourceClient(settings=settings, seed=seed, page_size=page_size)
    limiter = RateLimiter(rate)
    halt = threading.Event()  # set when the run ends: the read-ahead stops waiting and retrying
    throttled_s = 0.0  # 429 wait-outs of landed pages
    started = time.monotonic()

    def fetch(at: tuple[int, int]) -> PageResult:
        generation, page = at
        if pacer is not None:
            pacer.acquire(page_size, halt)
        result = src.fetch_page(page, seed=generation_seed(seed, generation), cancel=halt)
        if pacer is not None and result.attempts > 1:
            pacer.charge((result.attempts - 1) * page_size)  # a retried request may have been counted too
        return result

    with psycopg.connect(conninfo(settings, "ingest"), autocommit=True) as conn:
        at = start_position(conn, seed, start_page, max_page)
        with conn.transaction():  # the run is seen by others only once it holds its lock (see settle_dead_runs)
            row = conn.execute(
                "INSERT INTO staging.ingest_runs (seed, first_page, generation) VALUES (%s, %s, %s) RETURNING run_id",
                (seed, at[1], at[0]),
            ).fetchone()
            assert row is not None
            conn.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (RUN_LOCK_CLASS, int(row[0])))
        report = IngestReport(run_id=int(row[0]), seed=seed, first_page=at[1], first_generation=at[0], generation=at[0])

        def budget_left() -> bool:
            if stop is not None and stop.is_set():
                return False
            if max_records is not None and report.requested >= max_records:
                return False
            return duration_s is None or time.monotonic() - started < duration_s

        # prefetch the next page while the current one is landed: fetch and COPY overlap
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        pending: Future[PageResult] | None = None
        try:
            while budget_left():
                want = page_size if max_records is None else min(page_size, max_records - report.requested)
                if backpressure is not None:
                    limiter.set_rate(backpressure.rate())
                # Airflow kills a task 5 s after its TERM: a wait for the rate (a page at the backpressure
                # floor is a 20 s wait) must end as soon as the run is stopped
                limiter.wait_for(want, sleep=stop.wait if stop is not None else time.sleep)
                if not budget_left():
                    break
                if pending is None:
                    pending = pool.submit(fetch, at)
                try:
                    page = _result(pending, stop)
                except PageOutOfRange as exc:
                    pending = None
                    if at[1] == 1:
                        raise  # even page 1 is off: the source does not page, a new seed would not help
                    log.warning("%s; continuing with seed %r", exc.message, generation_seed(seed, at[0] + 1))
                    at = (at[0] + 1, 1)
                    continue
                pending = None
                landed_at, at = at, following(*at, max_page)
                report.requested += page.requested
                if budget_left():
                    pending = pool.submit(fetch, at)
                throttled_s += page.rate_limited_s
                report.seconds = time.monotonic() - started
                quota_waited = throttled_s + (pacer.waited_s if pacer is not None else 0.0)
                held_s = backpressure.held_s if backpressure is not None else 0.0
                report.limited_by = limited_by(report.seconds, limiter.waited_s, quota_waited, held_s)
                _land(conn, report, page, landed_at)
                if on_progress:
                    on_progress(report)
            report.status = "stopped" if stop is not None and stop.is_set() else "finished"
        except _Stopped:
            report.status = "stopped"
        except BaseException as exc:
            report.status = "failed"
            report.errors.append(f"{type(exc).__name__}: {exc}")
            raise
        finally:
            halt.set()
            if pending is not None:
                pending.cancel()
            report.seconds = time.monotonic() - started
            _save(conn, report, final=True)
            if own_source:
                src.close()
            # not waited for: a read-ahead in flight ends at its next step (halt), its page is never landed
            pool.shutdown(wait=False, cancel_futures=True)
    return report


def _result(pending: Future[PageResult], stop: threading.Event | None) -> PageResult:
    """The page, or :class:`_Stopped` as soon as ``stop`` is set while it is awaited (a wait for quota
    or a 429 can last minutes)."""
    if stop is None:
        return pending.result()
    while True:
        try:
            return pending.result(timeout=0.25)
        except TimeoutError:
            if pending.done():
                raise  # the fetch itself raised it
            if stop.is_set():
                raise _Stopped from None


def _land(conn: Conn, report: IngestReport, page: PageResult, at: tuple[int, int]) -> None:
    """Land the page and move the run's cursor in one transaction: after a crash, either both are saved or
    neither (the page is then fetched again: same seed and page, same users), so no page is skipped."""
    before = (report.landed, report.duplicates, report.rejected, report.last_page, report.generation)
    try:
        with conn.transaction():
            result = land_batch(conn, *_to_landing(page))
            report.landed += result.landed
            report.duplicates += result.duplicates
            report.rejected += result.rejected
            report.generation, report.last_page = at
            _save(conn, report)
    except BaseException:
        report.landed, report.duplicates, report.rejected, report.last_page, report.generation = before
        raise


def _to_landing(page: PageResult) -> tuple[list[LandedUser], list[Reject]]:
    users = [LandedUser(a.row, a.raw_json()) for a in page.accepted]
    rejects = [Reject(r.reason, r.raw_json(), f"seed={r.seed} page={r.page} index={r.index}") for r in page.rejected]
    return users, rejects


def _save(conn: Conn, report: IngestReport, final: bool = False) -> None:
    conn.execute(
        "UPDATE staging.ingest_runs SET last_page = %s, generation = %s, requested = %s, landed = %s, "
        "duplicates = %s, rejected = %s, status = %s, limited_by = %s, "
        "finished_at = CASE WHEN %s THEN clock_timestamp() END WHERE run_id = %s",
        (
            report.last_page,
            report.generation,
            report.requested,
            report.landed,
            report.duplicates,
            report.rejected,
            report.status,
            report.limited_by,
            final,
            report.run_id,
        ),
    )


# the ids of the runs whose process still holds its advisory lock (one parameter: RUN_LOCK_CLASS)
_LOCKED_RUN_IDS = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
    "AND classid = %s::int::oid AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


def live_runs(conn: Conn) -> set[int]:
    """Ids of the ingest runs whose process is still connected and landing (each holds its advisory lock)."""
    rows = conn.execute(_LOCKED_RUN_IDS, (RUN_LOCK_CLASS,))
    return {int(r[0]) for r in rows.fetchall()}


def settle_dead_runs(conn: Conn, status: str) -> list[int]:
    """Runs still marked running whose process is gone (killed before it saved its run: Airflow kills a
    task 5 s after its TERM) get ``status``; their landed pages were committed one by one, so only the
    run's row is behind. Returns their ids."""
    rows = conn.execute(
        "UPDATE staging.ingest_runs SET status = %s, finished_at = clock_timestamp() WHERE status = 'running' "
        f"AND run_id NOT IN ({_LOCKED_RUN_IDS}) RETURNING run_id",
        (status, RUN_LOCK_CLASS),
    )
    return sorted(int(r[0]) for r in rows.fetchall())


def ingest_window(settings: Settings, stop: threading.Event | None = None) -> IngestReport:
    """One run of the users_ingest DAG: ``USERSTREAM_INGEST_WINDOW_S`` seconds at up to
    ``USERSTREAM_INGEST_RATE``, under backpressure unless ``USERSTREAM_INGEST_MAX_LAG_S`` is 0. It starts at
    the previous run's rate when backpressure limited that one, so a slow pipeline is not flooded each window."""
    if settings.ingest_max_lag_s <= 0:
        return ingest(settings, duration_s=settings.ingest_window_s, rate=settings.ingest_rate, stop=stop)
    backlog, close = pipeline_backlog(settings)
    page = page_size_for(settings.ingest_rate, settings.source_page_size)
    control = Backpressure(settings.ingest_rate, settings.ingest_max_lag_s, backlog, in_flight=page)
    control.current = _previous_backpressured_rate(settings) or settings.ingest_rate
    try:
        return ingest(
            settings, duration_s=settings.ingest_window_s, rate=settings.ingest_rate, stop=stop, backpressure=control
        )
    finally:
        close()


def _previous_backpressured_rate(settings: Settings) -> float | None:
    try:
        with psycopg.connect(conninfo(settings, "ingest"), connect_timeout=5, autocommit=True) as conn:
            row = conn.execute(
                "SELECT limited_by, landed / greatest(extract(epoch FROM finished_at - started_at), 1) "
                "FROM staging.ingest_runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT 1"
            ).fetchone()
    except psycopg.Error:
        return None  # the run itself reports Postgres being down
    if row is None or row[0] != "backpressure":
        return None
    return max(1.0, min(settings.ingest_rate, float(row[1])))


__all__ = ["IngestReport", "PageSource", "RateLimiter", "generation_seed", "ingest", "ingest_window", "live_runs"]
