from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from userstream.config import Settings
from userstream.runtime.postgres import PostgresService
from userstream.runtime.stack import Stack
from userstream.store.postgres import ROLES, PostgresIdentity, apply_postgres_schema, conninfo

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


def test_each_component_has_its_own_role_with_only_what_it_needs(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres")
    apply_postgres_schema(settings)
    with psycopg.connect(conninfo(settings), autocommit=True) as admin:
        rows = admin.execute(
            "SELECT rolname, rolsuper, rolreplication, rolcreatedb, rolcreaterole FROM pg_roles "
            "WHERE rolname = ANY(%s)",
            (list(ROLES.values()),),
        ).fetchall()
        attrs = {row[0]: tuple(row[1:]) for row in rows}
        owners = dict(admin.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
    assert attrs == {role: (False, role == "userstream_cdc", False, False) for role in ROLES.values()}
    assert owners["airflow"] == "userstream_airflow" and owners["registry"] == "userstream_registry"

    def denied(identity: PostgresIdentity, statement: str) -> bool:
        with psycopg.connect(conninfo(settings, identity), autocommit=True) as conn:
            try:
                conn.execute(statement)
            except psycopg.errors.InsufficientPrivilege:
                return True
        return False

    # ingest lands and keeps its runs; it may not change or delete what has landed
    assert not denied("ingest", "INSERT INTO staging.rejected (reason, raw) VALUES ('roles test', '{}')")
    assert not denied("ingest", "UPDATE staging.ingest_runs SET requested = requested WHERE false")
    assert denied("ingest", "DELETE FROM staging.users WHERE false")
    assert denied("ingest", "UPDATE staging.users SET nat = nat WHERE false")
    assert denied("ingest", "DROP TABLE staging.rejected")
    # Debezium and the monitor read; neither writes
    # WHERE false: the rights are checked all the same, and a cross join of tests' millions of rows is not run
    assert not denied("cdc", "SELECT 1 FROM staging.users WHERE false")
    assert denied("cdc", "SELECT 1 FROM staging.rejected WHERE false")
    assert denied("cdc", "INSERT INTO staging.rejected (reason, raw) VALUES ('x', 'y')")
    assert not denied("monitor", "SELECT 1 FROM staging.users, staging.rejected, staging.ingest_runs WHERE false")
    assert denied("monitor", "DELETE FROM staging.rejected WHERE false")
    assert denied("monitor", "CREATE TEMP TABLE t (k int)")
    # Airflow's and the registry's roles reach only their own database
    pairs: list[tuple[PostgresIdentity, str]] = [
        ("airflow", "registry"),
        ("registry", "airflow"),
        ("airflow", settings.postgres_db),
    ]
    for identity, other in pairs:
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(conninfo(settings, identity), dbname=other, connect_timeout=5).close()
    with psycopg.connect(conninfo(settings, "registry"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS roles_probe (k int)")  # the owner makes its own tables
        conn.execute("DROP TABLE roles_probe")


def test_a_database_made_by_an_older_version_is_handed_to_its_role(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres")
    with psycopg.connect(conninfo(settings), dbname="registry", autocommit=True) as admin:
        # as an older version left it: the database and its tables owned by the admin role
        admin.execute(f"ALTER DATABASE registry OWNER TO {settings.postgres_user}")
        admin.execute("CREATE TABLE IF NOT EXISTS legacy_probe (k serial PRIMARY KEY)")
        admin.execute(f"ALTER TABLE legacy_probe OWNER TO {settings.postgres_user}")
    PostgresService(settings).after_start()  # what every start does
    with psycopg.connect(conninfo(settings, "registry"), autocommit=True) as conn:
        owners = conn.execute(
            "SELECT relname, pg_get_userbyid(relowner) FROM pg_class WHERE relname LIKE 'legacy_probe%'"
        ).fetchall()
        assert {owner for _, owner in owners} == {"userstream_registry"} and len(owners) == 3  # table, seq, index
        conn.execute("DROP TABLE legacy_probe")  # its owner now
