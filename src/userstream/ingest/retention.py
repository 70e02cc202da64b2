"""Retention of the landing zone: landed users and quarantined records older than
``USERSTREAM_STAGING_RETENTION_DAYS`` are deleted, in small batches so ingest is never blocked for long.

The audit checks the ids still in Postgres, so it keeps working; the ingest cursor lives in
``staging.ingest_runs``, which is kept. Deleted rows leave space that autovacuum makes reusable, so the
tables' size levels off at about the retention window's worth of rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from userstream.config import Settings

_TABLES = (("staging.users", "landed_at"), ("staging.rejected", "rejected_at"))


@dataclass(frozen=True)
class PruneReport:
    cutoff: datetime | None  # None: retention is off
    users: int
    rejected: int

    def summary(self) -> str:
        if self.cutoff is None:
            return "retention off (USERSTREAM_STAGING_RETENTION_DAYS=0): nothing deleted"
        before = f"{self.cutoff:%Y-%m-%d %H:%M} UTC"
        return f"deleted {self.users} users and {self.rejected} rejected records landed before {before}"


def prune_staging(settings: Settings, *, now: datetime | None = None, batch: int = 10_000) -> PruneReport:
    """Delete what is older than the retention window; idempotent (a second run deletes nothing)."""
    if settings.staging_retention_days <= 0:
        return PruneReport(None, 0, 0)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.staging_retention_days)
    deleted: list[int] = []
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        for table, column in _TABLES:
            total = 0
            while True:  # one short transaction per batch: row locks held for a moment only
                cur = conn.execute(
                    f"DELETE FROM {table} WHERE ctid IN "  # table and column: the constants above
                    f"(SELECT ctid FROM {table} WHERE {column} < %s LIMIT %s)",
                    (cutoff, batch),
                )
                total += cur.rowcount
                if cur.rowcount < batch:
                    break
            deleted.append(total)
    return PruneReport(cutoff, deleted[0], deleted[1])


__all__ = ["PruneReport", "prune_staging"]
