from __future__ import annotations

import os
import signal
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cassandra import AuthenticationFailed, ConsistencyLevel, Unauthorized
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent_with_args

from userstream.config import Settings
from userstream.errors import PortInUseError
from userstream.runtime.base import port_free
from userstream.runtime.cassandra import BCRYPT_LOG2_ROUNDS, CassandraService, ensure_roles
from userstream.runtime.process import ProcessManager
from userstream.runtime.stack import Stack
from userstream.store.cassandra import apply_cassandra_schema, auth_provider, connect, credentials

pytestmark = pytest.mark.integration

KEYSPACE = "rt_probe"


@contextmanager
def cql(settings: Settings) -> Iterator[Session]:
    cluster = Cluster(
        settings.cassandra_hosts, port=settings.cassandra_port, auth_provider=auth_provider(settings, "admin")
    )
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} "
            "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.kv (k uuid PRIMARY KEY, v text, n int)")
        yield session
    finally:
        cluster.shutdown()


def test_cassandra_round_trip(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("cassandra")
    keys = [uuid.uuid4() for _ in range(100)]
    with cql(settings) as session:
        insert = session.prepare(f"INSERT INTO {KEYSPACE}.kv (k, v, n) VALUES (?, ?, ?)")
        for i, k in enumerate(keys):
            session.execute(insert, (k, f"value-{i}", i))
        select = session.prepare(f"SELECT v, n FROM {KEYSPACE}.kv WHERE k = ?")
        rows = [session.execute(select, (k,)).one() for k in keys]
        assert [(r.v, r.n) for r in rows] == [(f"value-{i}", i) for i in range(100)]
        version = session.execute("SELECT release_version FROM system.local").one().release_version
        assert version.startswith("5.0.")


def test_cassandra_keeps_data_across_down_up(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("cassandra")
    key = uuid.uuid4()
    with cql(settings) as session:
        session.execute(f"INSERT INTO {KEYSPACE}.kv (k, v, n) VALUES (%s, 'kept', 7)", (key,))
    cassandra_only = Stack(settings, ["cassandra"])
    cassandra_only.down()
    assert port_free(settings.bind_host, settings.cassandra_port)
    cassandra_only.up()
    with cql(settings) as session:
        row = session.execute(f"SELECT v, n FROM {KEYSPACE}.kv WHERE k = %s", (key,)).one()
    assert (row.v, row.n) == ("kept", 7)


def test_cassandra_taken_port_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind((settings.bind_host, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        moved = settings.model_copy(update={"cassandra_port": port, "cassandra_storage_port": port})
        service = CassandraService(moved)
        with pytest.raises(PortInUseError, match=rf"cassandra: port .*:{port} is already taken"):
            service.check_ports()


def test_cassandra_refuses_anonymous_and_default_logins(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("cassandra")
    for login in (None, PlainTextAuthProvider("cassandra", "cassandra")):
        cluster = Cluster(settings.cassandra_hosts, port=settings.cassandra_port, auth_provider=login)
        with pytest.raises(NoHostAvailable) as info:
            cluster.connect()
        cluster.shutdown()
        assert any(isinstance(e, AuthenticationFailed) for e in info.value.errors.values()), info.value.errors


def test_the_monitor_role_reads_but_cannot_write(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("cassandra")
    apply_cassandra_schema(settings)  # the keyspace and the grants
    ks = settings.cassandra_keyspace
    monitor = connect(settings, "monitor")
    try:
        monitor.execute(f"SELECT id FROM {ks}.created_users LIMIT 1")
        with pytest.raises(Unauthorized):
            monitor.execute(f"TRUNCATE {ks}.created_users")
        with pytest.raises(Unauthorized):
            monitor.execute(f"DROP KEYSPACE {ks}")
    finally:
        monitor.cluster.shutdown()
    stream = connect(settings, "stream")
    try:
        with pytest.raises(Unauthorized):
            stream.execute(f"DROP KEYSPACE {ks}")
    finally:
        stream.cluster.shutdown()


def test_an_acknowledged_write_survives_kill_9(require_services: Callable[..., Stack], settings: Settings) -> None:
    """What Cassandra acknowledged is still there after kill -9 and the restart its supervisor makes: the job
    commits a micro-batch's Kafka offsets once Cassandra acknowledged its rows, so a write lost after its
    acknowledgement is a user lost for good (periodic commit-log sync lost the last ~0.1 s)."""
    require_services("cassandra")
    keys = [uuid.uuid4() for _ in range(3000)]
    with cql(settings) as session:
        insert = session.prepare(f"INSERT INTO {KEYSPACE}.kv (k, v, n) VALUES (?, ?, ?)")
        insert.consistency_level = ConsistencyLevel.ONE  # acknowledged by the one replica that gets killed
        for chunk in range(0, len(keys), 200):
            results = execute_concurrent_with_args(
                session, insert, [(k, "x" * 200, i) for i, k in enumerate(keys[chunk : chunk + 200], chunk)]
            )
            assert all(r.success for r in results)
        pid = ProcessManager(settings).pid("cassandra")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # right after the last acknowledgement
    Stack(settings, ["cassandra"]).services["cassandra"].wait_healthy(timeout_s=240)  # supervisord restarts it
    with cql(settings) as session:
        select = session.prepare(f"SELECT k FROM {KEYSPACE}.kv WHERE k = ?")
        select.consistency_level = ConsistencyLevel.ONE
        results = execute_concurrent_with_args(session, select, [(k,) for k in keys])
        lost = sum(1 for r in results if not r.success or r.result_or_exc.one() is None)
    assert lost == 0, f"{lost} of {len(keys)} acknowledged writes lost to kill -9"


def test_logins_are_hashed_cheaply_and_an_older_hash_is_redone(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    """Every new connection runs bcrypt on its password: our roles are hashed at BCRYPT_LOG2_ROUNDS, and a
    role an older install hashed at Cassandra's default 2^10 is hashed again at the next start."""
    require_services("cassandra")
    roles = [credentials(settings, identity)[0] for identity in ("admin", "stream", "monitor")]

    def rounds(session: Session, role: str) -> int:
        row = session.execute("SELECT salted_hash FROM system_auth.roles WHERE role = %s", (role,)).one()
        return int(row.salted_hash.split("$")[2])

    with cql(settings) as session:
        assert {role: rounds(session, role) for role in roles} == dict.fromkeys(roles, BCRYPT_LOG2_ROUNDS)
        old = "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"  # a 2^10 hash, as before
        session.execute("UPDATE system_auth.roles SET salted_hash = %s WHERE role = %s", (old, roles[1]))
        assert rounds(session, roles[1]) == 10
    ensure_roles(settings, first_start=False)
    with cql(settings) as session:
        assert rounds(session, roles[1]) == BCRYPT_LOG2_ROUNDS
    connect(settings, "stream").cluster.shutdown()  # and the role still logs in with its password
