"""Ingest from the bundled source (with faults) into the real PostgreSQL."""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest

from userstream.config import Settings
from userstream.ingest import Backpressure, ingest
from userstream.ingest.retention import prune_staging
from userstream.ingest.run import GC_GEN0_THRESHOLD, RUN_LOCK_CLASS, live_runs, settle_dead_runs
from userstream.runtime.stack import Stack
from userstream.source import FaultConfig, ServerLimits, SourceClient, UserGenerator, serve_in_thread
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg(require_services: Callable[..., Stack], settings: Settings) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    require_services("postgres")
    apply_postgres_schema(settings)
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        yield conn


def count(conn: psycopg.Connection[tuple[object, ...]], sql: str, *args: object) -> int:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def test_ingest_lands_pages_and_a_replay_lands_nothing(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    seed = f"ingest-replay-{uuid.uuid4().hex[:8]}"
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=500) as client:
        first = ingest(settings, max_records=2000, seed=seed, page_size=500, source=client)
        assert (first.requested, first.landed, first.duplicates, first.rejected) == (2000, 2000, 0, 0)
        assert (first.first_page, first.last_page, first.status) == (1, 4, "finished")
        # the next run continues the sequence where the last one stopped
        second = ingest(settings, max_records=1000, seed=seed, page_size=500, source=client)
        assert (second.first_page, second.landed) == (5, 1000)
        # replaying pages 2..3 lands nothing new and counts them as duplicates
        replay = ingest(settings, max_records=1000, seed=seed, page_size=500, start_page=2, source=client)
    assert (replay.landed, replay.duplicates) == (0, 1000)
    runs = pg.execute(
        "SELECT requested, landed, duplicates, status FROM staging.ingest_runs WHERE run_id = %s", (replay.run_id,)
    ).fetchone()
    assert runs == (1000, 0, 1000, "finished")


def test_bad_records_are_quarantined_with_reasons(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    seed = f"ingest-faults-{uuid.uuid4().hex[:8]}"
    before = count(pg, "SELECT count(*) FROM staging.rejected WHERE source LIKE %s", f"seed={seed} %")
    faults = FaultConfig(bad_record_rate=0.05, error_rate=0.1, rate_limit_rate=0.05, retry_after_s=0.05,
                         malformed_rate=0.05, empty_rate=0.05, seed=7)  # fmt: skip
    with (
        serve_in_thread(faults) as url,
        SourceClient(url, settings=settings, seed=seed, page_size=1000, backoff_s=0.01, retries=20) as client,
    ):
        report = ingest(settings, max_records=10_000, seed=seed, page_size=1000, source=client)
    assert report.requested == 10_000
    assert report.rejected > 0
    assert report.landed + report.rejected + report.duplicates == report.requested
    quarantined = count(pg, "SELECT count(*) FROM staging.rejected WHERE source LIKE %s", f"seed={seed} %")
    assert quarantined - before == report.rejected
    reasons = pg.execute(
        "SELECT reason FROM staging.rejected WHERE source LIKE %s LIMIT 5", (f"seed={seed} %",)
    ).fetchall()
    assert all(r[0] for r in reasons)


def test_rate_option_paces_the_run(pg: psycopg.Connection[tuple[object, ...]], settings: Settings) -> None:
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed="ingest-rate", page_size=100) as client:
        report = ingest(settings, duration_s=2.0, rate=200, seed="ingest-rate", page_size=100, source=client)
    # 200 records/s for ~2 s: about 400 records, never the thousands an unpaced run would land
    assert 200 <= report.requested <= 700


def test_a_set_stop_event_ends_the_run_after_the_page_in_hand(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    seed = f"ingest-stop-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()
    landed_pages: list[int] = []  # each page's young-generation GC threshold, while the run lands it
    gc_before = gc.get_threshold()

    def on_progress(report: object) -> None:
        landed_pages.append(gc.get_threshold()[0])
        if len(landed_pages) == 3:
            stop.set()  # what the DAG's TERM handler does when Airflow ends the run

    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=100) as client:
        t0 = time.monotonic()
        report = ingest(
            settings, duration_s=120, rate=400, seed=seed, source=client, on_progress=on_progress, stop=stop
        )
        took = time.monotonic() - t0
    assert report.status == "stopped" and took < 10, (report.status, took)
    assert (report.requested, report.landed, report.last_page) == (300, 300, 3)
    # fewer collector passes while a run lands (its pages' objects die together), the process's own after
    assert landed_pages == [GC_GEN0_THRESHOLD] * 3 != [gc_before[0]] * 3 and gc.get_threshold() == gc_before
    row = pg.execute("SELECT landed, status FROM staging.ingest_runs WHERE run_id = %s", (report.run_id,)).fetchone()
    assert row == (300, "stopped")
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=100) as client:
        after = ingest(settings, max_records=100, seed=seed, source=client)
    assert after.first_page == 4, "the next run continues after the last page landed"


def test_a_stop_ends_a_wait_for_the_rate_at_once(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """At 10 records/s a page of 100 is followed by a 10 s wait: Airflow kills the task 5 s after its TERM,
    so a stop must end that wait, and the run must still be saved as stopped (seen: left 'running')."""
    seed = f"ingest-stop-wait-{uuid.uuid4().hex[:8]}"
    stop = threading.Event()

    def on_progress(report: object) -> None:
        threading.Timer(0.5, stop.set).start()  # TERM arrives while the run waits for its rate

    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=100) as client:
        t0 = time.monotonic()
        report = ingest(settings, duration_s=120, rate=10, seed=seed, source=client, on_progress=on_progress, stop=stop)
        took = time.monotonic() - t0
    assert report.status == "stopped" and took < 4, (report.status, took)
    assert (report.requested, report.landed) == (100, 100)
    row = pg.execute("SELECT landed, status FROM staging.ingest_runs WHERE run_id = %s", (report.run_id,)).fetchone()
    assert row == (100, "stopped")


def test_a_killed_runs_row_is_settled_and_a_live_one_is_left_alone(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """A task killed before it saved its run leaves it 'running' with no process holding its lock."""
    seed = f"ingest-dead-{uuid.uuid4().hex[:8]}"
    insert = "INSERT INTO staging.ingest_runs (seed, first_page) VALUES (%s, 1) RETURNING run_id"
    dead = int(pg.execute(insert, (seed,)).fetchone()[0])  # type: ignore[index]
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as other:
        live = int(other.execute(insert, (seed,)).fetchone()[0])  # type: ignore[index]
        other.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (RUN_LOCK_CLASS, live))
        settled = settle_dead_runs(pg, "stopped")
        assert dead in settled and live not in settled
        statuses = dict(
            pg.execute("SELECT run_id, status FROM staging.ingest_runs WHERE seed = %s", (seed,)).fetchall()
        )
        assert statuses == {dead: "stopped", live: "running"}
        backend = other.info.backend_pid
    # its process gone, the live one is dead too. A backend exits (and lets go of its locks) a moment after
    # its client closes: CI saw the lock still held right after the close
    deadline = time.monotonic() + 15
    gone = "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s)"
    while not pg.execute(gone, (backend,)).fetchone()[0] and time.monotonic() < deadline:  # type: ignore[index]
        time.sleep(0.1)
    assert live in settle_dead_runs(pg, "failed")


def test_a_seed_past_the_servers_last_page_continues_with_a_derived_seed(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """The bundled server, like the live one, answers pages above its max page as page 1: ingest moves to
    <seed>~2 instead of landing page 1 again, and the cursor (generation, page) carries over to the next run."""
    seed = f"ingest-gen-{uuid.uuid4().hex[:8]}"
    unlimited = settings.model_copy(update={"source_max_page": 10_000, "source_quota_users": 0})
    with (
        serve_in_thread(limits=ServerLimits(max_page=3)) as url,
        SourceClient(url, settings=unlimited, seed=seed, page_size=100) as client,
    ):
        first = ingest(unlimited, max_records=500, seed=seed, source=client)
        assert (first.landed, first.duplicates) == (500, 0)  # page 4 (= page 1) was never landed
        assert (first.generation, first.last_page) == (2, 2)
        second = ingest(unlimited, max_records=100, seed=seed, source=client)
    assert (second.first_generation, second.first_page, second.landed, second.duplicates) == (2, 3, 100, 0)
    row = pg.execute(
        "SELECT generation, last_page, limited_by, status FROM staging.ingest_runs WHERE run_id = %s",
        (second.run_id,),
    ).fetchone()
    assert row is not None and row[:2] == (2, 3) and row[2] in ("source", "rate", "quota") and row[3] == "finished"
    gen = UserGenerator()
    expected = [u["login"]["uuid"] for s, p in [(seed, 1), (seed, 2), (seed, 3), (f"{seed}~2", 1), (f"{seed}~2", 2),
                                                 (f"{seed}~2", 3)] for u in gen.users(s, p, 100)]  # fmt: skip
    assert count(pg, "SELECT count(*) FROM staging.users WHERE id = ANY(%s::uuid[])", expected) == 600


def test_limited_by_is_persisted(pg: psycopg.Connection[tuple[object, ...]], settings: Settings) -> None:
    seed = f"ingest-limited-{uuid.uuid4().hex[:8]}"
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=100) as client:
        report = ingest(settings, duration_s=1.5, rate=200, seed=seed, source=client)
    assert report.limited_by == "rate"
    row = pg.execute("SELECT limited_by FROM staging.ingest_runs WHERE run_id = %s", (report.run_id,)).fetchone()
    assert row == ("rate",)


def test_backpressure_slows_ingest_while_the_pipeline_is_behind(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """A backlog of a minute keeps the rate cut to the floor; once it drains the rate climbs back."""
    seed = f"ingest-backpressure-{uuid.uuid4().hex[:8]}"
    backlog = {"records": 60_000}
    control = Backpressure(1000.0, 2.0, lambda: backlog["records"], interval_s=0.2)
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=50) as client:
        behind = ingest(settings, duration_s=4.0, rate=1000, seed=seed, source=client, backpressure=control)
        assert behind.limited_by == "backpressure"
        assert behind.landed < 0.5 * 1000 * 4.0  # far below the configured rate
        backlog["records"] = 0
        drained = ingest(settings, duration_s=4.0, rate=1000, seed=seed, source=client, backpressure=control)
    assert control.current == 1000.0 and drained.landed > 2 * behind.landed
    row = pg.execute("SELECT limited_by FROM staging.ingest_runs WHERE run_id = %s", (behind.run_id,)).fetchone()
    assert row == ("backpressure",)


def test_a_run_counts_as_live_while_it_lands_and_not_after(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    """stop_flow waits on live_runs: a run holds its lock for its whole life, and only then."""
    import threading

    seen: list[set[int]] = []
    stop = threading.Event()
    seed = f"ingest-live-{uuid.uuid4().hex[:8]}"

    def on_progress(report: object) -> None:
        seen.append(live_runs(pg))
        stop.set()

    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=50) as client:
        report = ingest(settings, duration_s=60, seed=seed, source=client, on_progress=on_progress, stop=stop)
    assert seen and report.run_id in seen[0], "a landing run holds its lock"
    assert report.run_id not in live_runs(pg), "an ended run lets go of it"
    killed = psycopg.connect(settings.postgres_conninfo, autocommit=True)
    killed.execute("SELECT pg_advisory_lock(%s::int, %s::int)", (RUN_LOCK_CLASS, 2_000_000_001))
    assert 2_000_000_001 in live_runs(pg)
    killed.close()  # what a kill -9 of the task does to its session
    # the server ends the session (and frees its locks) a moment after the client hung up
    deadline = time.monotonic() + 10
    while 2_000_000_001 in live_runs(pg) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 2_000_000_001 not in live_runs(pg), "a killed run's row may say running; its lock is gone"


def test_retention_deletes_only_what_is_older_than_the_window(
    pg: psycopg.Connection[tuple[object, ...]], settings: Settings
) -> None:
    from datetime import UTC, datetime, timedelta

    seed = f"ingest-retention-{uuid.uuid4().hex[:8]}"
    t0 = pg.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
    with serve_in_thread() as url, SourceClient(url, settings=settings, seed=seed, page_size=100) as client:
        ingest(settings, max_records=300, seed=seed, source=client)
    ids = [r[0] for r in pg.execute("SELECT id FROM staging.users WHERE landed_at >= %s", (t0,))]
    assert len(ids) == 300
    old = ids[:120]
    pg.execute("UPDATE staging.users SET landed_at = landed_at - interval '9 days' WHERE id = ANY(%s)", (old,))
    kept = Settings(data_dir=settings.data_dir, staging_retention_days=7)
    first = prune_staging(kept, batch=50)  # several batches
    assert first.users >= 120, first
    assert count(pg, "SELECT count(*) FROM staging.users WHERE id = ANY(%s)", ids) == 180
    assert prune_staging(kept).users == 0, "idempotent"
    assert prune_staging(Settings(data_dir=settings.data_dir, staging_retention_days=0)).cutoff is None
    assert first.cutoff is not None and first.cutoff < datetime.now(UTC) - timedelta(days=6)
