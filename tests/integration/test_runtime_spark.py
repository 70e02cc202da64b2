from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from cassandra.cluster import Cluster, Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from userstream.config import Settings
from userstream.errors import PortInUseError
from userstream.kafka_clients import client_config, jvm_client_props
from userstream.runtime.spark import SparkService
from userstream.runtime.spark_submit import SparkSubmit, build_submit, connector_jars, jar_artifact, spark_home
from userstream.runtime.stack import Stack
from userstream.store.cassandra import auth_provider, credentials

pytestmark = pytest.mark.integration

JOB = Path(__file__).parent / "spark_jobs" / "probe_to_cassandra.py"
KEYSPACE = "rt_spark_probe"


def with_login(settings: Settings, job: SparkSubmit) -> SparkSubmit:
    """The probe job logs in to Cassandra as the admin (it writes the test's own keyspace), from its environment."""
    username, password = credentials(settings, "admin")
    kafka = json.dumps(jvm_client_props(settings, "admin", "kafka."))
    env = {"PROBE_CASSANDRA_USERNAME": username, "PROBE_CASSANDRA_PASSWORD": password, "PROBE_KAFKA_OPTIONS": kafka}
    return replace(job, env={**job.env, **env})


@contextmanager
def probe_table(settings: Settings) -> Iterator[tuple[Session, str]]:
    """A fresh (k text, v text, n int) table; yields the session and the table name."""
    cluster = Cluster(
        settings.cassandra_hosts, port=settings.cassandra_port, auth_provider=auth_provider(settings, "admin")
    )
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        table = f"t_{uuid.uuid4().hex[:8]}"
        session.execute(f"CREATE TABLE {KEYSPACE}.{table} (k text PRIMARY KEY, v text, n int)")
        yield session, table
    finally:
        cluster.shutdown()


def test_master_has_an_alive_worker(require_services: Callable[..., Stack], settings: Settings) -> None:
    stack = require_services("spark")
    service = stack.services["spark"]
    assert isinstance(service, SparkService)
    state = service.master_state()
    assert state["status"] == "ALIVE"
    assert [w["cores"] for w in state["workers"] if w["state"] == "ALIVE"] == [settings.spark_worker_cores]
    worker_ui = httpx.get(f"http://{settings.bind_host}:{settings.spark_worker_ui_port}/json/", timeout=5)
    assert worker_ui.json()["masterurl"] == settings.spark_master


def test_connector_jars_do_not_duplicate_pyspark(settings: Settings) -> None:
    jars = connector_jars(settings)
    names = {jar_artifact(j.name) for j in jars}
    assert {"spark-sql-kafka-0-10_2.12", "spark-avro_2.12", "spark-cassandra-connector_2.12"} <= names
    shipped = {jar_artifact(j.name) for j in (spark_home() / "jars").glob("*.jar")}
    assert names.isdisjoint(shipped)


def test_spark_job_writes_cassandra(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("cassandra", "spark")
    with probe_table(settings) as (session, table):
        with_login(settings, build_submit(settings, JOB, ["range", "500", KEYSPACE, table])).run(timeout_s=300)
        rows = {r.k: (r.v, r.n) for r in session.execute(f"SELECT k, v, n FROM {KEYSPACE}.{table}")}
    assert len(rows) == 500
    assert rows["r-0"] == ("value-0", 0) and rows["r-499"] == ("value-499", 499)


def test_spark_job_reads_kafka_writes_cassandra(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("kafka", "cassandra", "spark")
    topic = f"rt-spark-{uuid.uuid4().hex[:8]}"
    admin = AdminClient(client_config(settings, "admin", "test"))
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer(client_config(settings, "admin", "test", acks="all"))
    for i in range(1000):
        producer.produce(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode())
    assert producer.flush(30) == 0
    with probe_table(settings) as (session, table):
        job = build_submit(settings, JOB, ["kafka", settings.kafka_bootstrap_servers, topic, KEYSPACE, table])
        with_login(settings, job).run(timeout_s=300)
        rows = {r.k: r.v for r in session.execute(f"SELECT k, v FROM {KEYSPACE}.{table}")}
    assert len(rows) == 1000
    assert all(rows[f"key-{i}"] == f"value-{i}" for i in range(1000))


def test_spark_taken_port_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind((settings.bind_host, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        moved = settings.model_copy(
            update={"spark_master_port": port, "spark_master_ui_port": port, "spark_worker_ui_port": port}
        )
        with pytest.raises(PortInUseError, match=rf"spark: port .*:{port} is already taken"):
            SparkService(moved).check_ports()
