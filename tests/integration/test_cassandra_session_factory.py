"""The connector's sessions through our factory (spark.cassandra.connection.factory): a schema refresh never
wedges its caller when Cassandra goes away under it (the Java driver keeps a failed refresh's slot taken, and
the connector refreshes before every write), the same session works again once Cassandra is back, and a
session that skips refreshes (at most one per interval) still sees a table another client made.

A real Cassandra, killed (-9) under a session held by a local Spark JVM; the sessions come from the
connector's own CassandraConnector (as a streaming write gets them) or are wrapped here with other bounds."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyspark.sql import SparkSession

from userstream.config import Settings
from userstream.runtime.process import ProcessManager
from userstream.runtime.spark_submit import connector_jars, default_conf
from userstream.runtime.stack import Stack
from userstream.store.cassandra import connect, spark_auth_conf, spark_tls_conf

pytestmark = pytest.mark.timeout(600)

BOUND_S = 5.0  # the factory's default bound on one refresh
SLACK_S = 10.0
PROBE = "session_factory_probe"


def _timed(call: Callable[[], Any], limit_s: float) -> tuple[float, Any]:
    """(seconds taken, result or exception); (inf, None) when it is still running after LIMIT_S."""
    result: list[Any] = []
    t0 = time.monotonic()

    def run() -> None:
        try:
            result.append(call())
        except Exception as exc:  # the exception is the result
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # a wedged call stays parked: abandoned, not joined
    thread.start()
    thread.join(limit_s)
    return (float("inf"), None) if thread.is_alive() else (time.monotonic() - t0, result[0])


@pytest.fixture(scope="module")
def spark(require_services: Callable[..., Stack], settings: Settings) -> Iterator[SparkSession]:
    require_services("cassandra")
    builder = SparkSession.builder.master("local[1]").appName("session-factory-test")
    conf = {
        **default_conf(settings),
        **spark_auth_conf(settings, "admin"),
        **spark_tls_conf(settings),
        "spark.jars": ",".join(map(str, connector_jars(settings))),
        "spark.ui.enabled": "false",
        "spark.cassandra.connection.keepAliveMS": "120000",  # as the job's: sessions outlive a batch
    }
    for key, value in conf.items():
        if not key.startswith("spark.pyspark"):
            builder = builder.config(key, value)
    session = builder.getOrCreate()
    yield session
    session.stop()


def _session(spark: SparkSession, *, min_interval_ms: int) -> Any:
    """A session as the factory makes it, with this least interval between two real refreshes."""
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    cql = jvm.com.datastax.spark.connector.cql
    conf = cql.CassandraConnectorConf.apply(spark.sparkContext._jsc.sc().getConf())  # type: ignore[union-attr]
    plain = cql.DefaultConnectionFactory.createSession(conf)
    return jvm.userstream.spark.BoundedRefreshSession.wrap(plain, int(BOUND_S * 1000), min_interval_ms)


def test_every_task_shares_one_session(spark: SparkSession, settings: Settings) -> None:
    """The connector's session cache is keyed by a conf that holds the factory and is deserialized in each
    task: every task of every write must still find the one session (not open its own)."""
    other = connect(settings, "admin")
    try:
        other.execute(f"CREATE KEYSPACE IF NOT EXISTS {PROBE} WITH replication = {settings.cassandra_replication}")
        other.execute(f"CREATE TABLE IF NOT EXISTS {PROBE}.rows (id int PRIMARY KEY)", timeout=60)
    finally:
        other.cluster.shutdown()
    rows = spark.range(200).selectExpr("CAST(id AS INT) AS id").repartition(4)
    for _ in range(3):
        rows.write.format("org.apache.spark.sql.cassandra").options(keyspace=PROBE, table="rows").mode("append").save()
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    module = getattr(getattr(jvm.com.datastax.spark.connector.cql, "CassandraConnector$"), "MODULE$")
    assert module.sessionCache().cache().size() == 1, "a write's tasks opened sessions of their own"


def test_skipped_refreshes_still_see_what_another_client_made(spark: SparkSession, settings: Settings) -> None:
    session = _session(spark, min_interval_ms=600_000)
    keyspace = f"{PROBE}_events"
    other = connect(settings, "admin")
    try:
        other.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        time.sleep(2)
        assert not session.refreshSchema().getKeyspace(keyspace).isPresent()
        other.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {settings.cassandra_replication}", timeout=60)
        other.execute(f"CREATE TABLE {keyspace}.t (id int PRIMARY KEY)", timeout=60)
        deadline = time.monotonic() + 20  # the driver's schema events (debounced ~1 s) update its metadata
        while True:
            taken, metadata = _timed(session.refreshSchema, BOUND_S + SLACK_S)
            assert taken < 1.0, "a skipped refresh should not wait on Cassandra"
            found = metadata.getKeyspace(keyspace)
            if found.isPresent() and found.get().getTable("t").isPresent():
                break
            assert time.monotonic() < deadline, "the session's metadata never showed the new table"
            time.sleep(0.5)
    finally:
        other.execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        other.cluster.shutdown()
        session.close()


def test_refresh_is_bounded_while_cassandra_is_down_and_the_session_recovers(
    spark: SparkSession, settings: Settings
) -> None:
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    conf = spark.sparkContext._jsc.sc().getConf()  # type: ignore[union-attr]
    made = jvm.com.datastax.spark.connector.cql.CassandraConnector.apply(conf).openSession()
    assert "BoundedRefreshSession" in str(made.toString()), "the factory did not make the connector's session"
    made.close()
    session = _session(spark, min_interval_ms=0)  # every refresh a real one: the kill lands in some
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {PROBE} WITH replication = {settings.cassandra_replication}")
    taken, metadata = _timed(session.refreshSchema, BOUND_S + SLACK_S)
    assert taken < BOUND_S and metadata.getKeyspace(PROBE).isPresent()  # a real refresh: it sees the new one

    processes = ProcessManager(settings)
    pid = processes.pid("cassandra")
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # refreshes while it is down (one of them fails with the control channel gone, taking the driver's slot)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        taken, result = _timed(session.refreshSchema, BOUND_S + SLACK_S)
        assert taken <= BOUND_S + SLACK_S, "refreshSchema wedged while Cassandra was down"
        assert not isinstance(result, Exception), result  # the metadata the session had
        time.sleep(1)

    Stack(settings, ["cassandra"]).services["cassandra"].wait_healthy(timeout_s=240)  # supervisord restarts it
    deadline = time.monotonic() + 120
    while True:  # the session reconnects by itself; writes and refreshes go on
        taken, rows = _timed(
            lambda: session.execute("SELECT release_version FROM system.local").getAvailableWithoutFetching(), 30
        )
        if rows == 1:
            break
        assert time.monotonic() < deadline, f"the session did not reconnect: {rows}"
        time.sleep(2)
    for _ in range(3):
        taken, metadata = _timed(session.refreshSchema, BOUND_S + SLACK_S)
        assert taken <= BOUND_S + SLACK_S and metadata.getKeyspace(PROBE).isPresent()
    session.close()
