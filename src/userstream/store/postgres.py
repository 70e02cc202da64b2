"""PostgreSQL schema of the landing zone (staging.*), applied idempotently, and who may do what in it.

Each component logs in as a role of its own (least privilege), so a leaked password opens only what that
component needs:

    conninfo(settings, "ingest")   # inserts into staging.users/rejected, keeps its runs in ingest_runs
    conninfo(settings, "monitor")  # reads staging.*
    conninfo(settings)             # the admin role: schema, retention, benchmarks

With ``USERSTREAM_POSTGRES_DSN`` (an external server) every component uses that one DSN.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from userstream.config import Settings
from userstream.secret_store import SecretName

PUBLICATION = "userstream_users"

PostgresIdentity = Literal["admin", "ingest", "cdc", "monitor", "airflow", "registry"]
# admin is settings.postgres_user (initdb's superuser); the others are made by PostgresService at each start
ROLES: dict[PostgresIdentity, str] = {
    "ingest": "userstream_ingest",
    "cdc": "userstream_cdc",
    "monitor": "userstream_monitor",
    "airflow": "userstream_airflow",
    "registry": "userstream_registry",
}
PASSWORD_SECRETS: dict[PostgresIdentity, SecretName] = {
    "admin": "postgres_password",
    "ingest": "postgres_ingest_password",
    "cdc": "postgres_cdc_password",
    "monitor": "postgres_monitor_password",
    "airflow": "postgres_airflow_password",
    "registry": "postgres_registry_password",
}
# Databases the stack needs besides the pipeline's own, each owned by the role of the component using it
AIRFLOW_DATABASE = "airflow"
REGISTRY_DATABASE = "registry"
_OWN_DATABASE: dict[PostgresIdentity, str] = {"airflow": AIRFLOW_DATABASE, "registry": REGISTRY_DATABASE}

# what each pipeline client may do in staging (the admin role owns it); run after every schema apply
_GRANTS = """
GRANT USAGE ON SCHEMA staging TO userstream_ingest, userstream_cdc, userstream_monitor;
-- SELECT on users: landing copies its shape (CREATE TEMP TABLE .. LIKE staging.users), which needs it
GRANT SELECT, INSERT ON staging.users TO userstream_ingest;
GRANT INSERT ON staging.rejected TO userstream_ingest;
GRANT SELECT, INSERT, UPDATE ON staging.ingest_runs TO userstream_ingest;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA staging TO userstream_ingest;
GRANT SELECT ON staging.users TO userstream_cdc;
GRANT SELECT ON ALL TABLES IN SCHEMA staging TO userstream_monitor;
"""


def role_name(settings: Settings, identity: PostgresIdentity) -> str:
    return settings.postgres_user if identity == "admin" else ROLES[identity]


def database_of(settings: Settings, identity: PostgresIdentity) -> str:
    return _OWN_DATABASE.get(identity, settings.postgres_db)


def conninfo(settings: Settings, identity: PostgresIdentity = "admin") -> str:
    """libpq connection string of ``identity`` on our server (its password read from the store each call, so
    a rotation is followed), or the external DSN (its database switched for Airflow's and the registry's)."""
    if settings.postgres_dsn:
        if identity not in _OWN_DATABASE:
            return settings.postgres_dsn
        return make_conninfo(settings.postgres_dsn, dbname=_OWN_DATABASE[identity])
    if identity == "admin":
        return settings.postgres_conninfo
    return make_conninfo(
        host=settings.postgres_host or settings.bind_host,
        port=settings.postgres_port,
        dbname=database_of(settings, identity),
        user=role_name(settings, identity),
        password=settings.secret(PASSWORD_SECRETS[identity]),
    )


def conninfo_params(settings: Settings, identity: PostgresIdentity) -> dict[str, str]:
    """host, port, user, password and dbname of ``identity``, for clients that take them apart (JDBC)."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo(settings, identity)).items() if v is not None}
    params.setdefault("host", settings.postgres_host or settings.bind_host)
    params.setdefault("port", str(settings.postgres_port))
    params.setdefault("user", role_name(settings, identity))
    params.setdefault("dbname", database_of(settings, identity))
    return params


def schema_files() -> list[tuple[str, str]]:
    """(name, SQL text) of every migration, in order."""
    folder = resources.files("userstream.store") / "sql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name, f.read_text()) for f in files]


def grant_staging(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Each pipeline role's privileges on staging, as owned by the admin role (idempotent)."""
    conn.execute(_GRANTS.encode())


def apply_postgres_schema(settings: Settings) -> list[str]:
    """Create schema, tables and the CDC publication if missing, and grant the pipeline roles; returns the
    files applied. On an external server (one DSN for all) there are no roles of ours to grant."""
    applied = []
    with psycopg.connect(conninfo(settings), autocommit=True) as conn:
        # one bootstrap at a time (Airflow task and CLI may race)
        conn.execute("SELECT pg_advisory_lock(727001)")
        try:
            for name, text in schema_files():
                conn.execute(text.encode())
                applied.append(name)
            if not settings.postgres_dsn:
                grant_staging(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(727001)")
    return applied
