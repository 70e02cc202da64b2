"""Cassandra schema of the serving tables (keyspace spark_streams by default), applied idempotently."""

from __future__ import annotations

from importlib import resources
from typing import Literal

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session

from userstream.config import Settings
from userstream.secret_store import SecretName

# who connects: bootstrap and tests (admin), the streaming job (stream), the dashboard, audit and probes (monitor)
CassandraIdentity = Literal["admin", "stream", "monitor"]
ROLES: dict[CassandraIdentity, str] = {
    "admin": "userstream_admin",
    "stream": "userstream_stream",
    "monitor": "userstream_monitor",
}
_SECRETS: dict[CassandraIdentity, SecretName] = {
    "admin": "cassandra_admin_password",
    "stream": "cassandra_stream_password",
    "monitor": "cassandra_monitor_password",
}


def credentials(settings: Settings, identity: CassandraIdentity) -> tuple[str, str]:
    """(role, password) of ``identity``: an external cluster's one login, else our generated role."""
    if settings.cassandra_username:
        return settings.cassandra_username, settings.cassandra_password or ""
    return ROLES[identity], settings.secret(_SECRETS[identity])


def auth_provider(settings: Settings, identity: CassandraIdentity) -> PlainTextAuthProvider:
    username, password = credentials(settings, identity)
    return PlainTextAuthProvider(username=username, password=password)


def spark_auth_conf(settings: Settings, identity: CassandraIdentity = "stream") -> dict[str, str]:
    """The Spark Cassandra connector's login; set on the session at run time, never on a command line."""
    username, password = credentials(settings, identity)
    return {"spark.cassandra.auth.username": username, "spark.cassandra.auth.password": password}


def cql_statements(keyspace: str, replication: str) -> list[str]:
    folder = resources.files("userstream.store") / "cql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".cql")), key=lambda f: f.name)
    statements: list[str] = []
    for f in files:
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("--"))
        text = text.replace("{keyspace}", keyspace).replace("{replication}", replication)
        statements += [s.strip() for s in text.split(";") if s.strip()]
    return statements


def connect(settings: Settings, identity: CassandraIdentity = "admin") -> Session:
    """A cassandra-driver Session on the configured contact points, logged in as ``identity``."""
    cluster = Cluster(
        settings.cassandra_hosts,
        port=settings.cassandra_port,
        connect_timeout=10,
        auth_provider=auth_provider(settings, identity),
    )
    try:
        return cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


def grant_roles(session: Session, settings: Settings, keyspace: str) -> list[str]:
    """Our own cluster: the stream role writes and reads ``keyspace``, the monitor role reads it."""
    if settings.cassandra_username:
        return []  # an external cluster: its administrators grant
    statements = []
    for identity, grants in (("stream", ("SELECT", "MODIFY")), ("monitor", ("SELECT",))):
        role = ROLES[identity]  # type: ignore[index]
        statements += [f"GRANT {g} ON KEYSPACE {keyspace} TO {role}" for g in grants]
    for stmt in statements:
        session.execute(stmt, timeout=30)
    return statements


def apply_cassandra_schema(settings: Settings, keyspace: str | None = None) -> list[str]:
    """Create keyspace and tables if missing; returns the statements run."""
    keyspace = keyspace or settings.cassandra_keyspace
    statements = cql_statements(keyspace, settings.cassandra_replication)
    session = connect(settings)
    try:
        for stmt in statements:
            session.execute(stmt, timeout=60)
        grant_roles(session, settings, keyspace)
    finally:
        session.cluster.shutdown()
    return statements
