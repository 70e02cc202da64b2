"""The pipeline against secured clusters it does not run: our own Kafka, Cassandra and registry, started with
TLS on (``USERSTREAM_TLS``: certificates of their install's CA) in one data dir, and reached from a second
install only through the external-cluster settings: Kafka SASL_SSL with a SCRAM login and a CA file,
Cassandra with a login and a CA file, the registry over https with basic auth and a CA file, Postgres by DSN.
Only Connect and Spark run in the second install; ingest, Debezium, the streaming job and the audit all
cross TLS. Plaintext to the secured ports is refused."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator

import psycopg
import pytest
from cassandra.cluster import NoHostAvailable
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from userstream.coldstart import fresh_data_dir
from userstream.config import Settings
from userstream.ingest import ingest
from userstream.kafka_clients import PRINCIPALS
from userstream.monitor.audit import wait_until_drained
from userstream.pipeline import bootstrap
from userstream.registry_clients import USERS
from userstream.runtime.stack import Stack
from userstream.source import FaultConfig, SourceClient, serve_in_thread
from userstream.store.cassandra import ROLES, connect
from userstream.store.postgres import conninfo

pytestmark = pytest.mark.e2e

# the secured install's ports, apart from the test stack's (which may be running beside it)
SECURED_PORTS = {
    "postgres_port": 15432,
    "kafka_port": 19092,
    "kafka_controller_port": 19093,
    "kafka_broker_port": 19094,
    "registry_port": 18081,
    "cassandra_port": 19042,
    "cassandra_storage_port": 17000,
}
CLIENT_PORTS = {"connect_port": 18083, "spark_master_port": 17077, "spark_master_ui_port": 18090,
                "spark_worker_ui_port": 18091}  # fmt: skip


def _down(stack: Stack) -> None:
    stack.down()
    stack.processes.shutdown_daemon()


@pytest.fixture(scope="module")
def secured(settings: Settings) -> Iterator[Settings]:
    # a new data dir sharing only the test stack's installed jars (lib/)
    stack_settings = fresh_data_dir(settings).model_copy(update={"tls": True, **SECURED_PORTS})
    stack = Stack(stack_settings, ["postgres", "kafka", "registry", "cassandra"])
    try:
        stack.install()
        stack.up()
        yield stack_settings
    finally:
        _down(stack)
        shutil.rmtree(stack_settings.root, ignore_errors=True)


@pytest.fixture(scope="module")
def client(secured: Settings, settings: Settings) -> Iterator[Settings]:
    """A second install that reaches the secured one as external clusters: its logins and CA, nothing else."""
    ca = secured.local_ca.ca_path
    host = secured.bind_host
    external = Settings(
        data_dir=fresh_data_dir(settings).data_dir,
        kafka_bootstrap=f"{host}:{secured.kafka_port}",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=PRINCIPALS["admin"],
        kafka_sasl_password=secured.secret("kafka_admin_password"),
        kafka_ssl_ca_file=ca,
        cassandra_contact_points=host,
        cassandra_port=secured.cassandra_port,
        cassandra_username=ROLES["admin"],
        cassandra_password=secured.secret("cassandra_admin_password"),
        cassandra_ssl_ca_file=ca,
        registry_url=secured.registry_endpoint,
        registry_username=USERS["admin"],
        registry_password=secured.secret("registry_admin_password"),
        registry_ssl_ca_file=ca,
        postgres_dsn=conninfo(secured),
        **CLIENT_PORTS,
    )
    assert external.registry_endpoint.startswith("https://")
    stack = Stack(external, ["connect", "spark"])
    try:
        stack.up()
        yield external
    finally:
        _down(stack)
        shutil.rmtree(external.root, ignore_errors=True)


def test_secured_ports_take_tls_only(secured: Settings) -> None:
    host = secured.bind_host
    plain = AdminClient(
        {
            "bootstrap.servers": f"{host}:{secured.kafka_port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": PRINCIPALS["admin"],
            "sasl.password": secured.secret("kafka_admin_password"),
            "socket.timeout.ms": 5000,
            "log_level": 0,  # its refused connects are the point: not logged
        }
    )
    with pytest.raises(KafkaException):  # the TLS listener hangs up on plaintext
        plain.list_topics(timeout=8)
    plain_cql = secured.model_copy(update={"tls": False})  # the same login, no TLS
    with pytest.raises(NoHostAvailable):
        connect(plain_cql).cluster.shutdown()
    with socket.create_connection((host, secured.registry_port), timeout=5) as sock:
        sock.sendall(b"GET /apis/ccompat/v7/subjects HTTP/1.0\r\n\r\n")
        assert not sock.recv(64).startswith(b"HTTP/1."), "the registry answered plain HTTP"


def test_pipeline_through_tls_to_external_clusters(client: Settings) -> None:
    outcome = bootstrap(client)
    assert outcome["streaming_job"] in {"started", "running"}
    seed = "tls-external"
    with (
        serve_in_thread(FaultConfig()) as url,
        SourceClient(url, settings=client, seed=seed, page_size=500, backoff_s=0.01) as source,
    ):
        report = ingest(client, max_records=2000, seed=seed, page_size=500, source=source)
    assert report.status == "finished" and report.landed == 2000
    audit = wait_until_drained(client, timeout_s=420)
    assert audit.ok, audit.summary()
    assert audit.missing == [] and audit.duplicated == []
    session = connect(client)
    try:
        stored = session.execute(f"SELECT count(*) FROM {client.cassandra_keyspace}.created_users").one()[0]
    finally:
        session.cluster.shutdown()
    assert stored >= 2000
    with psycopg.connect(client.postgres_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM staging.users").fetchone()[0] == 2000
