"""Postgres: ``staging.ingest_runs`` (the ingest section), ``staging.users`` and ``staging.rejected``.

A connection per refresh (the monitor's queries are few and small, and a fresh connection never carries a
broken state across a server restart), bounded by ``connect_timeout`` and a ``statement_timeout``.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import psycopg

from userstream.config import Settings
from userstream.monitor.collectors.base import BackgroundValue
from userstream.monitor.models import IngestRun, IngestSection, PostgresSection, RecentReason
from userstream.store.postgres import conninfo

__all__ = ["PostgresCollector"]

# `limited_by` is read through to_jsonb: NULL while the column does not exist, no error, no schema lookup
_LATEST_RUN = (
    "SELECT run_id, seed, status, requested, landed, duplicates, rejected, "
    "extract(epoch FROM started_at)::float8, extract(epoch FROM finished_at)::float8, "
    "to_jsonb(r) ->> 'limited_by' "
    "FROM staging.ingest_runs r ORDER BY run_id DESC LIMIT 1"
)


class PostgresCollector:
    def __init__(self, settings: Settings, *, count_wait_s: float = 2.0) -> None:
        self.settings = settings
        self.count_wait_s = count_wait_s
        # a full count of millions of rows takes seconds: it runs in the background, throttled
        self.counts = BackgroundValue(self._count, min_interval_s=2.0, name="pg-count", hung_after_s=180.0)

    def connect(self, statement_timeout_ms: int = 5000) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(
            conninfo(self.settings, "monitor"),
            autocommit=True,
            connect_timeout=2,
            options=f"-c statement_timeout={statement_timeout_ms}",
            application_name="userstream-monitor",
            # a server that vanished without closing the socket is noticed within ~10 s, not hours
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
            tcp_user_timeout=10_000,
        )

    def ingest(self) -> IngestSection:
        with self.connect() as conn:
            agg = conn.execute(
                "SELECT count(*), coalesce(sum(requested), 0), coalesce(sum(landed), 0), "
                "coalesce(sum(duplicates), 0), coalesce(sum(rejected), 0) FROM staging.ingest_runs"
            ).fetchone()
            latest = conn.execute(_LATEST_RUN).fetchone()
        section = IngestSection(measured_at=time.time())
        if agg is not None:
            section.runs, section.requested, section.landed, section.duplicates, section.rejected = (
                int(v) for v in agg
            )
        if latest is not None:
            section.latest_run = IngestRun(
                run_id=latest[0], seed=latest[1], status=latest[2], requested=latest[3], landed=latest[4],
                duplicates=latest[5], rejected=latest[6], started_at=latest[7], finished_at=latest[8],
                limited_by=latest[9],
            )  # fmt: skip
        return section

    def _count(self) -> tuple[int, int]:
        with self.connect(statement_timeout_ms=120_000) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM staging.users), (SELECT count(*) FROM staging.rejected)"
            ).fetchone()
        if row is None:
            raise RuntimeError("count returned no row")
        return int(row[0]), int(row[1])

    def postgres(self) -> PostgresSection:
        with self.connect() as conn:
            reasons = conn.execute(
                "SELECT reason, extract(epoch FROM rejected_at)::float8, source FROM staging.rejected "
                "ORDER BY rejected_id DESC LIMIT 5"
            ).fetchall()
        counts, counted_at, count_error = self.counts.get(wait_s=self.count_wait_s)
        section = PostgresSection(
            measured_at=time.time(),
            recent_rejects=[RecentReason(reason=r[0], at=r[1], source=r[2] or "") for r in reasons],
            error=count_error if counts is None else None,
        )
        if counts is not None:
            section.users, section.rejected = counts
            section.users_measured_at = counted_at
        return section

    def recent_landed_ids(self, limit: int) -> list[UUID]:
        """Ids of the most recently landed users, cheaply: the table is append-only, so they sit in its
        last heap pages; a TID range scan reads only those instead of sorting the whole table."""
        with self.connect() as conn:
            row = conn.execute(
                "SELECT pg_relation_size('staging.users') / current_setting('block_size')::int"
            ).fetchone()
            pages = int(row[0]) if row else 0
            # raw JSON makes a row ~1-2 KiB: 4-8 rows per page; read enough pages for `limit` rows
            first_page = max(0, pages - max(8, limit // 2))
            rows = conn.execute(
                "SELECT id FROM staging.users WHERE ctid >= %s::tid ORDER BY landed_at DESC LIMIT %s",
                (f"({first_page},0)", limit),
            ).fetchall()
        return [r[0] for r in rows]
