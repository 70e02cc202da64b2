from __future__ import annotations

import json
import os
import socket
import subprocess
import time
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
from userstream.runtime.process import Program
from userstream.runtime.spark import SparkService
from userstream.runtime.spark_submit import SparkSubmit, build_submit, connector_jars, jar_artifact, spark_home
from userstream.runtime.spark_ui_auth import UI_USER, credentials_file, ui_login
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
    worker_url = f"http://{settings.bind_host}:{settings.spark_worker_ui_port}/json/"
    assert httpx.get(worker_url, timeout=5).status_code == 401
    worker_ui = httpx.get(worker_url, auth=ui_login(settings), timeout=5)
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _master_settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path, spark_master_port=_free_port(), spark_master_ui_port=_free_port(),
        spark_worker_ui_port=_free_port(), spark_daemon_memory="256m",
    )  # fmt: skip


def _master_program(service: SparkService) -> Program:
    """Our master alone, with the environment and command SparkService gives supervisord."""
    service.prepare()
    master = service.programs()[0]
    assert master.name == "spark-master"
    return master


def _start(master: Program, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(master.command, env={**os.environ, **master.env}, cwd=master.cwd, stdout=out,
                                stderr=subprocess.STDOUT)  # fmt: skip


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_master_ui_asks_for_the_login(tmp_path: Path) -> None:
    """A real master of ours on free ports, started as SparkService starts it (its conf dir, its daemon
    classpath with our filter): anonymous and wrong logins get 401, the install's login the JSON status."""
    settings = _master_settings(tmp_path)
    service = SparkService(settings)
    url = f"http://{settings.bind_host}:{settings.spark_master_ui_port}/json/"
    log = tmp_path / "master.log"
    proc = _start(_master_program(service), log)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"the master exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            try:
                anonymous = httpx.get(url, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"no master UI after 120 s:\n{log.read_text()[-3000:]}"
                time.sleep(0.5)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["WWW-Authenticate"] == 'Basic realm="userstream spark"'
        assert httpx.get(url, auth=(UI_USER, "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("admin", settings.secret("spark_ui_password")), timeout=5).status_code == 401
        assert httpx.post(url, timeout=5).status_code == 401
        right = httpx.get(url, auth=ui_login(settings), timeout=5)
        assert right.status_code == 200 and right.json()["status"] == "ALIVE"
        assert service.master_state()["status"] == "ALIVE"  # the health check's own client logs in
    finally:
        _stop(proc)


def test_master_without_its_credentials_file_does_not_serve(tmp_path: Path) -> None:
    """No credentials must mean no UI, never an open one: the filter fails its init and the master exits."""
    settings = _master_settings(tmp_path)
    master = _master_program(SparkService(settings))  # writes the conf dir and the credentials file ...
    credentials_file(settings).unlink()  # ... which then goes missing
    log = tmp_path / "master.log"
    proc = _start(master, log)
    try:
        proc.wait(120)
    except subprocess.TimeoutExpired:
        _stop(proc)
        pytest.fail(f"the master kept running without its credentials file:\n{log.read_text()[-3000:]}")
    assert "credentials file" in log.read_text() and "does not exist" in log.read_text()
