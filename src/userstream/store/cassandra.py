"""Cassandra schema of the serving tables (keyspace spark_streams by default), applied idempotently."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import ssl
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, Session

from userstream.config import Settings
from userstream.errors import ConfigError, InstallError
from userstream.secret_store import SecretName, write_private

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
    """TLS to an external cluster whose CA the settings name (the host name checked too); ours: none yet."""
    if settings.cassandra_ssl_ca_file is None:
        return None
    return ssl.create_default_context(cafile=str(settings.cassandra_ssl_ca_file))


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
    if settings.cassandra_ssl_ca_file is None:
        return {}
    store, password = trust_store(settings)
    return {
        "spark.cassandra.connection.ssl.enabled": "true",
        "spark.cassandra.connection.ssl.trustStore.path": str(store),
        "spark.cassandra.connection.ssl.trustStore.type": "PKCS12",
        "spark.cassandra.connection.ssl.trustStore.password": password,
    }


def trust_store(settings: Settings) -> tuple[Path, str]:
    """(PKCS12 trust store holding the CA file's certificates, its password), made by the JDK's keytool and
    remade when the CA file changes. Its password guards integrity only (it holds no key): generated anyway."""
    ca = settings.cassandra_ssl_ca_file
    if ca is None:
        raise ConfigError("no Cassandra CA file is configured", fix="set USERSTREAM_CASSANDRA_SSL_CA_FILE")
    folder = settings.state_dir / "tls"
    store, stamp = folder / "cassandra-truststore.p12", folder / "cassandra-truststore.sha256"
    password = settings.secret("cassandra_truststore_password")
    digest = hashlib.sha256(ca.read_bytes() + password.encode()).hexdigest()
    if store.exists() and stamp.exists() and stamp.read_text() == digest:
        return store, password
    folder.mkdir(parents=True, exist_ok=True)
    store.unlink(missing_ok=True)
    # keytool imports one certificate per call: a bundle is split first
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", ca.read_text(), re.S)
    if not blocks:
        raise ConfigError(f"{ca} holds no PEM certificate", fix="point USERSTREAM_CASSANDRA_SSL_CA_FILE at a PEM CA")
    for i, block in enumerate(blocks):
        one = folder / f".ca-{i}.pem"
        one.write_text(block + "\n")
        proc = subprocess.run(
            [keytool(), "-importcert", "-noprompt", "-alias", f"ca-{i}", "-file", str(one), "-keystore",
             str(store), "-storetype", "PKCS12", "-storepass:env", "US_TRUSTSTORE_PASSWORD"],
            env={**os.environ, "US_TRUSTSTORE_PASSWORD": password}, capture_output=True, text=True,
        )  # fmt: skip
        one.unlink()
        if proc.returncode != 0:
            raise ConfigError(f"keytool could not import {ca}: {proc.stderr.strip()[-300:]}", fix="check the CA file")
    store.chmod(0o600)
    write_private(stamp, digest)
    return store, password


def keytool() -> str:
    found = shutil.which("keytool")
    if found is None:
        raise InstallError("the JDK's keytool was not found", fix="install a JDK 17 (`apt-get install openjdk-17-jdk`)")
    return found


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
