"""`userstream secrets rotate postgres` on running services: the old password stops working, every
dependent (the registry, the CDC connector) works with the new one, with no manual step."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
import pytest

from userstream.cdc import connector_status, ensure_connector
from userstream.cdc.connector import SLOT_NAME
from userstream.config import Settings
from userstream.runtime.registry import RegistryService
from userstream.runtime.secrets import rotate
from userstream.runtime.stack import Stack
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


def test_rotating_the_postgres_password_keeps_cdc_and_the_registry_working(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("postgres", "kafka", "registry", "connect")
    apply_postgres_schema(settings)
    ensure_connector(settings)
    before = _slot_reader(settings)
    old = settings.secret("postgres_password")
    assert rotate(settings, "postgres") == ["postgres_password"]
    new = settings.secret("postgres_password")
    assert new != old
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(settings.postgres_conninfo.replace(new, old), connect_timeout=5).close()
    with psycopg.connect(settings.postgres_conninfo, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
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
