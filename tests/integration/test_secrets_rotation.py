"""`userstream secrets rotate postgres|kafka` on running services: the old password stops working, every
dependent (the registry, the CDC connector, Connect's worker) works with the new one, with no manual step."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import pytest
from cdc_flow import consume_values, make_users  # tests/integration/cdc_flow.py
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from userstream.cdc import connector_status, ensure_connector
from userstream.cdc.connector import SLOT_NAME
from userstream.config import Settings
from userstream.ingest.land import land_batch
from userstream.kafka_clients import client_config
from userstream.registry_clients import PASSWORD_SECRETS as REGISTRY_PASSWORDS
from userstream.registry_clients import registry_login
from userstream.runtime.connect import ConnectService
from userstream.runtime.registry import RegistryService
from userstream.runtime.secrets import rotate
from userstream.runtime.stack import Stack
from userstream.store.postgres import PASSWORD_SECRETS, apply_postgres_schema, conninfo, role_name

pytestmark = pytest.mark.integration


def test_rotating_the_postgres_password_keeps_cdc_and_the_registry_working(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres", "kafka", "registry", "connect")
    apply_postgres_schema(settings)
    ensure_connector(settings)
    before = _slot_reader(settings)
    old = {identity: conninfo(settings, identity) for identity in PASSWORD_SECRETS}
    assert rotate(settings, "postgres") == list(PASSWORD_SECRETS.values())
    for identity, old_conninfo in old.items():  # every role of ours: the old password refused, the new taken
        assert conninfo(settings, identity) != old_conninfo, identity
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(old_conninfo, connect_timeout=5).close()
        with psycopg.connect(conninfo(settings, identity), connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role_name(settings, identity),)
    status = connector_status(settings)
    assert status["connector"]["state"] == "RUNNING" and [t["state"] for t in status["tasks"]] == ["RUNNING"]
    after = _slot_reader(settings)
    assert after is not None and after != before, "the CDC task reconnected (with the new password)"
    health = RegistryService(settings).health()
    assert health.healthy, health.detail


def _slot_reader(settings: Settings) -> int | None:
    """The backend pid streaming our replication slot to Debezium (None while none is connected)."""
    deadline = time.monotonic() + 60
    while True:
        with psycopg.connect(settings.postgres_conninfo, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (SLOT_NAME,)
            ).fetchone()
        if (row and row[0]) or time.monotonic() > deadline:
            return int(row[0]) if row and row[0] else None
        time.sleep(1)


def test_rotating_the_kafka_logins_keeps_connect_working(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres", "kafka", "registry", "connect")
    apply_postgres_schema(settings)
    ensure_connector(settings)
    old = client_config(settings, "admin", "test", **{"socket.timeout.ms": 3000})
    old_connect = settings.secret("kafka_connect_password")
    rotated = rotate(settings, "kafka")
    assert set(rotated) == {"kafka_broker_password", "kafka_admin_password", "kafka_connect_password",
                            "kafka_stream_password", "kafka_monitor_password"}  # fmt: skip
    assert settings.secret("kafka_connect_password") != old_connect
    with pytest.raises(KafkaException):
        AdminClient(old).list_topics(timeout=6)  # the old login is gone
    assert settings.users_topic in AdminClient(client_config(settings, "admin", "test")).list_topics(timeout=10).topics
    # Connect was restarted with its new login: its worker and our connector's task run
    deadline = time.monotonic() + 120
    while True:
        status = connector_status(settings)
        states = [status["connector"]["state"], *(t["state"] for t in status["tasks"])]
        if (set(states) == {"RUNNING"} and len(states) == 2) or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert set(states) == {"RUNNING"} and len(states) == 2, status
    health = ConnectService(settings).health()
    assert health.healthy, health.detail


def test_rotating_the_registry_logins_keeps_the_converter_registering(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres", "kafka", "registry", "connect")
    apply_postgres_schema(settings)
    ensure_connector(settings)
    old = {identity: registry_login(settings, identity) for identity in REGISTRY_PASSWORDS}
    assert rotate(settings, "registry") == list(REGISTRY_PASSWORDS.values())
    subjects = f"{settings.registry_endpoint.rstrip('/')}/subjects"
    for identity, login in old.items():
        assert login is not None and registry_login(settings, identity) != login
        assert httpx.get(subjects, auth=login, timeout=10).status_code == 401, f"{identity}'s old login"
        assert httpx.get(subjects, auth=registry_login(settings, identity), timeout=10).status_code == 200
    # the CDC task restarted with the converter's new login: new rows reach Kafka, Avro-framed (the converter
    # looks their schema up in the registry again after its restart)
    users = make_users(20, "rotated")
    with psycopg.connect(conninfo(settings, "ingest"), autocommit=True) as conn:
        assert land_batch(conn, users).landed == 20
    seen = consume_values(settings, {str(u.row.id) for u in users})
    assert len(seen) == 20
    status = connector_status(settings)
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"], status
