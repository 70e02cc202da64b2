"""Cassandra schema of the serving tables (keyspace spark_streams by default), applied idempotently."""

from __future__ import annotations

from importlib import resources

from userstream.config import Settings


def cql_statements(keyspace: str, replication: str) -> list[str]:
    folder = resources.files("userstream.store") / "cql"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".cql")), key=lambda f: f.name)
    statements: list[str] = []
    for f in files:
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("--"))
        text = text.replace("{keyspace}", keyspace).replace("{replication}", replication)
        statements += [s.strip() for s in text.split(";") if s.strip()]
    return statements


def connect(settings: Settings):  # type: ignore[no-untyped-def]
    """A cassandra-driver Session on the configured contact points."""
    from cassandra.cluster import Cluster

    cluster = Cluster(settings.cassandra_hosts, port=settings.cassandra_port, connect_timeout=10)
    return cluster.connect()


def apply_cassandra_schema(settings: Settings, keyspace: str | None = None) -> list[str]:
    """Create keyspace and tables if missing; returns the statements run."""
    statements = cql_statements(keyspace or settings.cassandra_keyspace, settings.cassandra_replication)
    session = connect(settings)
    try:
        for stmt in statements:
            session.execute(stmt, timeout=60)
    finally:
        session.cluster.shutdown()
    return statements
