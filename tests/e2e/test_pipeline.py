"""End to end on the real stack: faulty source -> ingest -> Postgres -> CDC -> Kafka -> Spark -> Cassandra."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from userstream.config import Settings
from userstream.ingest import ingest
from userstream.monitor.audit import wait_until_drained
from userstream.pipeline import bootstrap
from userstream.runtime.stack import Stack
from userstream.source import FaultConfig, SourceClient, serve_in_thread
from userstream.store.cassandra import connect

pytestmark = pytest.mark.e2e


def test_faulty_source_to_cassandra_nothing_missing_nothing_twice(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres", "kafka", "registry", "connect", "cassandra", "spark")
    outcome = bootstrap(settings)
    assert outcome["streaming_job"] in {"started", "running"}
    seed = "e2e-faults"
    faults = FaultConfig.mixed(0.1, seed=11)  # 5xx, 429, empty, malformed pages and broken records
    with (
        serve_in_thread(faults) as url,
        SourceClient(url, settings=settings, seed=seed, page_size=500, backoff_s=0.01, retries=30) as client,
    ):
        report = ingest(settings, max_records=5000, seed=seed, page_size=500, source=client)
    assert report.status == "finished"
    assert report.rejected > 0, "the fault mix corrupts some records: they must be quarantined, not landed"
    assert report.landed + report.duplicates + report.rejected == report.requested

    audit = wait_until_drained(settings, timeout_s=420)
    assert audit.ok, audit.summary()
    assert audit.missing == [] and audit.duplicated == []

    # the landed users of this run are in Cassandra with the values Postgres holds
    with psycopg.connect(settings.postgres_conninfo) as conn:
        rows = conn.execute(
            "SELECT id, email, nat FROM staging.users u JOIN staging.ingest_runs r ON r.run_id = %s "
            "AND u.fetched_at >= r.started_at ORDER BY id LIMIT 50",
            (report.run_id,),
        ).fetchall()
    assert rows
    session = connect(settings)
    try:
        stmt = session.prepare(f"SELECT email, nat FROM {settings.cassandra_keyspace}.created_users WHERE id = ?")
        for ident, email, nat in rows:
            got = session.execute(stmt, (ident,)).one()
            assert got is not None and (got.email, got.nat) == (email, nat)
    finally:
        session.cluster.shutdown()
