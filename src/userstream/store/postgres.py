"""PostgreSQL schema of the landing zone (staging.*), applied idempotently."""

from __future__ import annotations

from importlib import resources

import psycopg

from userstream.config import Settings

PUBLICATION = "userstream_users"


def schema_files() -> list[tuple[str, str]]:
    """(name, SQL text) of every migration, in order."""
    folder = resources.files("userstream.store") / "sql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text()) for f in files]


def apply_postgres_schema(settings: Settings) -> list[str]:
    """Create schema, tables and the CDC publication if missing; returns the files applied."""
    applied = []
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        # one bootstrap at a time (Airflow task and CLI may race)
        conn.execute("SELECT pg_advisory_lock(727001)")
        try:
            for name, sql in schema_files():
                conn.execute(sql.encode())
                applied.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(727001)")
    return applied
