from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from userstream.config import Settings
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration


def test_postgres_round_trip_with_logical_wal(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("postgres")
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        conn.execute("CREATE TABLE IF NOT EXISTS rt_probe (k int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO rt_probe VALUES (1, 'x') ON CONFLICT (k) DO UPDATE SET v = 'x'")
        assert conn.execute("SELECT v FROM rt_probe WHERE k = 1").fetchone() == ("x",)
        dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        assert {"airflow", "registry", settings.postgres_db} <= dbs


def test_postgres_refuses_wrong_password(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("postgres")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(
            host=settings.bind_host,
            port=settings.postgres_port,
            user=settings.postgres_user,
            password="wrong",
            dbname="postgres",
        )
