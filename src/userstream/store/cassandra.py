"""Cassandra schema of the serving tables (keyspace spark_streams by default), applied idempotently."""

from __future__ import annotations

import ssl
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session

from userstream.certificates import pkcs12_trust_store
from userstream.config import Settings
from userstream.errors import ConfigError
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


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS checked against the cluster's CA (an external one's, or ours with TLS on), host name included."""
    if settings.cassandra_ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(settings.cassandra_ca_file))


def cluster_options(settings: Settings, identity: CassandraIdentity) -> dict[str, Any]:
    """What every cassandra-driver ``Cluster`` of ours is given: the contact points' port, ``identity``'s login,
    and TLS where configured. ``Cluster(settings.cassandra_hosts, **cluster_options(settings, "monitor"))``"""
    options: dict[str, Any] = {"port": settings.cassandra_port, "auth_provider": auth_provider(settings, identity)}
    context = tls_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options


def spark_tls_conf(settings: Settings) -> dict[str, str]:
    """The Spark Cassandra connector's TLS (a PKCS12 trust store made from the CA file); empty without one."""
    if settings.cassandra_ca_file is None:
        return {}
    store, password = trust_store(settings)
    return {
        "spark.cassandra.connection.ssl.enabled": "true",
        "spark.cassandra.connection.ssl.trustStore.path": str(store),
        "spark.cassandra.connection.ssl.trustStore.type": "PKCS12",
        "spark.cassandra.connection.ssl.trustStore.password": password,
    }


def trust_store(settings: Settings) -> tuple[Path, str]:
    """(PKCS12 trust store holding the cluster CA's certificates, its password) for the Spark connector,
    remade when the CA file changes. Its password guards integrity only (it holds no key): generated anyway."""
    ca = settings.cassandra_ca_file
    if ca is None:
        raise ConfigError("no Cassandra CA file is configured", fix="set USERSTREAM_CASSANDRA_SSL_CA_FILE")
    password = settings.secret("cassandra_truststore_password")
    store = settings.state_dir / "tls" / "cassandra-truststore.p12"
    return pkcs12_trust_store(ca, store, password, setting="USERSTREAM_CASSANDRA_SSL_CA_FILE"), password


def connect(settings: Settings, identity: CassandraIdentity = "admin") -> Session:
    """A cassandra-driver Session on the configured contact points, logged in as ``identity``."""
    cluster = Cluster(settings.cassandra_hosts, connect_timeout=10, **cluster_options(settings, identity))
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
