"""ingest() against an in-memory stand-in for PostgreSQL: seed generations, the cursor, crash safety, quota
pacing and limited_by. (tests/integration/test_ingest.py runs the same code against the real database.)"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import psycopg
import pytest

import userstream.ingest.run as run
from userstream.config import Settings
from userstream.ingest import IngestReport, ingest
from userstream.ingest.land import LandedUser, LandResult, Reject
from userstream.ingest.run import following, generation_seed, limited_by, quota_applies
from userstream.model import ApiUser, to_row
from userstream.source import AcceptedUser, PageOutOfRange, PageResult, SourceClient, UserGenerator

GEN = UserGenerator()
SIZE = 10


class _Result:
    def __init__(self, row: tuple[Any, ...] | None) -> None:
        self.row = row

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.row


class FakeDB:
    """staging.users (ids) and staging.ingest_runs in memory; a transaction that raises rolls both back."""

    def __init__(self) -> None:
        self.users: dict[uuid.UUID, str] = {}  # id -> "seed/page"
        self.runs: dict[int, dict[str, Any]] = {}
        self.crash_on_landing: int | None = None  # the n-th landing dies after writing its users
        self.landings = 0

    def connect(self, conninfo: str, autocommit: bool = False) -> FakeDB:
        return self

    def __enter__(self) -> FakeDB:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        saved = copy.deepcopy((self.users, self.runs))
        try:
            yield
        except BaseException:
            self.users, self.runs = saved
            raise

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> _Result:
        if sql.startswith("SELECT generation, last_page"):
            rows = [r for r in self.runs.values() if r["seed"] == params[0] and r["last_page"] is not None]
            best = max(((r["generation"], r["last_page"]) for r in rows), default=None)
            return _Result(best)
        if sql.startswith("INSERT INTO staging.ingest_runs"):
            run_id = len(self.runs) + 1
            seed, first_page, generation = params
            self.runs[run_id] = {"seed": seed, "first_page": first_page, "generation": generation, "last_page": None}
            return _Result((run_id,))
        if sql.startswith("SELECT pg_advisory_lock"):  # held while the run lands (real Postgres: integration)
            return _Result(None)
        if sql.startswith("UPDATE staging.ingest_runs"):
            keys = ("last_page", "generation", "requested", "landed", "duplicates", "rejected", "status", "limited_by")
            self.runs[params[-1]].update(dict(zip(keys, params[: len(keys)], strict=True)))
            return _Result(None)
        raise AssertionError(f"unexpected SQL: {sql}")

    def land(self, conn: Any, users: Sequence[LandedUser], rejected: Sequence[Reject] = ()) -> LandResult:
        self.landings += 1
        landed = 0
        for u in users:
            if u.row.id not in self.users:
                self.users[u.row.id] = u.raw_json
                landed += 1
        if self.landings == self.crash_on_landing:
            raise KeyboardInterrupt("killed between landing the users and saving the cursor")
        return LandResult(landed, len(users) - landed, len(rejected))


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch) -> FakeDB:
    fake = FakeDB()
    monkeypatch.setattr(psycopg, "connect", fake.connect)
    monkeypatch.setattr(run, "land_batch", fake.land)
    return fake


def site(last_page: int, requests: list[tuple[str, int]]) -> httpx.MockTransport:
    """randomuser.me in miniature: any page above ``last_page`` is served as page 1, and says so."""

    def handler(request: httpx.Request) -> httpx.Response:
        seed, page = request.url.params["seed"], int(request.url.params["page"])
        requests.append((seed, page))
        served = 1 if page > last_page else page
        info = {"seed": seed, "results": SIZE, "page": served, "version": "1.4"}
        return httpx.Response(200, json={"results": GEN.users(seed, served, SIZE), "info": info})

    return httpx.MockTransport(handler)


def client(settings: Settings, transport: httpx.MockTransport, seed: str) -> SourceClient:
    return SourceClient("http://mock/api/", seed=seed, page_size=SIZE, settings=settings, transport=transport)


def ids_of(seed: str, pages: range) -> set[uuid.UUID]:
    return {to_row(ApiUser.model_validate(u)).id for p in pages for u in GEN.users(seed, p, SIZE)}


def test_max_page_is_never_asked_and_the_next_generation_follows(db: FakeDB) -> None:
    settings = Settings(source_max_page=3, source_quota_users=0)
    requests: list[tuple[str, int]] = []
    with client(settings, site(10_000, requests), "s") as c:
        report = ingest(settings, max_records=6 * SIZE, seed="s", source=c)
    assert requests == [("s", 1), ("s", 2), ("s", 3), ("s~2", 1), ("s~2", 2), ("s~2", 3)]
    assert (report.first_generation, report.first_page, report.generation, report.last_page) == (1, 1, 2, 3)
    assert (report.landed, report.duplicates) == (60, 0)
    assert set(db.users) == ids_of("s", range(1, 4)) | ids_of("s~2", range(1, 4))
    assert "seed='s' page 1 .. seed='s~2' page 3" in report.summary()


def test_a_page_served_as_page_1_moves_to_a_new_seed_and_is_never_landed(db: FakeDB) -> None:
    settings = Settings(source_quota_users=0)  # max page 10,000: only info.page tells
    requests: list[tuple[str, int]] = []
    with client(settings, site(2, requests), "m") as c:
        first = ingest(settings, max_records=4 * SIZE, seed="m", source=c)
        assert requests == [("m", 1), ("m", 2), ("m", 3), ("m~2", 1), ("m~2", 2)]
        assert (first.landed, first.duplicates, first.generation, first.last_page) == (40, 0, 2, 2)
        # the next run continues from the cursor: m~2 page 3 is past its end too, so m~3
        second = ingest(settings, max_records=SIZE, seed="m", source=c)
    assert requests[5:] == [("m~2", 3), ("m~3", 1)]
    assert (second.first_generation, second.first_page, second.generation, second.last_page) == (2, 3, 3, 1)
    assert (second.landed, second.duplicates) == (10, 0)  # page 1 of a new seed: new users
    assert len(db.users) == 50


def test_a_source_that_does_not_page_fails_instead_of_churning_seeds(db: FakeDB) -> None:
    settings = Settings(source_quota_users=0)
    requests: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:  # every page answered as page 7
        requests.append(request.url.params["seed"])
        info = {"seed": "z", "results": SIZE, "page": 7, "version": "1.4"}
        return httpx.Response(200, json={"results": GEN.users("z", 7, SIZE), "info": info})

    with client(settings, httpx.MockTransport(handler), "z") as c, pytest.raises(PageOutOfRange):
        ingest(settings, max_records=SIZE, seed="z", source=c)
    assert requests == ["z"]  # one request, no seed after seed


def test_a_killed_run_lands_no_duplicate_and_skips_no_page(db: FakeDB) -> None:
    settings = Settings(source_quota_users=0)
    requests: list[tuple[str, int]] = []
    db.crash_on_landing = 3
    with client(settings, site(10_000, requests), "k") as c:
        with pytest.raises(KeyboardInterrupt):
            ingest(settings, max_records=5 * SIZE, seed="k", source=c)
        # page 3's users and its cursor went together: neither was saved
        assert db.runs[1]["last_page"] == 2 and db.runs[1]["status"] == "failed"
        assert set(db.users) == ids_of("k", range(1, 3))
        again = ingest(settings, max_records=2 * SIZE, seed="k", source=c)
    assert (again.first_page, again.last_page, again.landed, again.duplicates) == (3, 4, 20, 0)
    assert set(db.users) == ids_of("k", range(1, 5))


def test_legacy_cursor_past_max_page_starts_the_next_generation() -> None:
    assert following(1, 15_000, 10_000) == (2, 1)
    assert following(1, 9_999, 10_000) == (1, 10_000)
    assert following(4, 10_000, 10_000) == (5, 1)
    assert [generation_seed("u", g) for g in (1, 2, 3)] == ["u", "u~2", "u~3"]


# --- pacing to the quota ------------------------------------------------------------------------------


class TimedSource:
    """A source without a base_url (so the settings' quota applies), recording when each page was asked."""

    page_size = SIZE

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._pages: dict[tuple[str, int], PageResult] = {}

    def fetch_page(self, page: int, *, seed: str | None = None, cancel: threading.Event | None = None) -> PageResult:
        self.asked.append(time.monotonic())
        key = (seed or "t", page)
        if key not in self._pages:
            now = datetime.now(UTC)
            raws = GEN.users(key[0], page, SIZE)
            accepted = [
                AcceptedUser(i, msgspec.json.encode(r).decode(), to_row(ApiUser.model_validate(r), now))
                for i, r in enumerate(raws)
            ]
            self._pages[key] = PageResult(key[0], page, SIZE, accepted, [], 1, now, 0.0)
        return self._pages[key]

    def close(self) -> None:
        return None


def test_ingest_paces_to_the_quota_and_says_so(db: FakeDB) -> None:
    settings = Settings(source_quota_users=200, source_quota_window_s=0.5)  # ~360 users/s
    source = TimedSource()
    report = ingest(settings, duration_s=1.5, rate=1000, seed="q", source=source)
    asked = source.asked
    most = max(sum(1 for t in asked if start <= t < start + 0.5) for start in asked) * SIZE
    assert most <= 200  # no window of the quota's length, whatever its phase, holds more
    assert 300 <= report.requested <= 200 / 0.5 * 1.5  # paced to the quota, not the 1000/s asked
    assert report.limited_by == "quota" and "limited by quota" in report.summary()
    assert db.runs[report.run_id]["limited_by"] == "quota"


def test_the_configured_rate_when_it_is_lower(db: FakeDB) -> None:
    settings = Settings(source_quota_users=200, source_quota_window_s=0.5)
    report = ingest(settings, duration_s=1.0, rate=50, seed="r", source=TimedSource())
    assert report.limited_by == "rate" and report.requested <= 100


def test_stop_ends_a_long_quota_wait_at_once(db: FakeDB) -> None:
    settings = Settings(source_quota_users=20, source_quota_window_s=300)  # the first page waits ~160 s
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    report = ingest(settings, duration_s=600, seed="w", source=TimedSource(), stop=stop)
    assert time.monotonic() - t0 < 3
    assert (report.status, report.requested, report.last_page) == ("stopped", 0, None)
    assert db.runs[report.run_id]["status"] == "stopped"


def test_quota_applies_to_the_configured_provider_only() -> None:
    real = Settings()
    assert quota_applies(real, None)  # our own client of USERSTREAM_SOURCE_URL
    assert quota_applies(real, TimedSource())  # a source that does not say where it reads
    with SourceClient("http://127.0.0.1:1/api/", settings=real) as other:
        assert not quota_applies(real, other)  # the bundled server in tests and benchmarks
    with SourceClient(settings=real) as same:
        assert quota_applies(real, same)
    assert not quota_applies(Settings(source_quota_users=0), None)


def test_limited_by_rule() -> None:
    assert limited_by(10.0, 0.0, 0.5) == "source"  # nothing waited a tenth of the run
    assert limited_by(10.0, 3.0, 0.5) == "rate"
    assert limited_by(10.0, 0.5, 8.0) == "quota"
    assert limited_by(10.0, 3.0, 0.5, backpressured_s=4.0) == "backpressure"
    assert limited_by(10.0, 3.0, 0.5, backpressured_s=0.5) == "rate"  # a short cut is not what held it
    report = IngestReport(run_id=1, seed="s", first_page=1, last_page=2, landed=10, seconds=1.0)
    assert report.as_dict()["limited_by"] == "source" and "pages 1..2" in report.summary()
