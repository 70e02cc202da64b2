"""Postgres -> Debezium -> Kafka (Avro, Confluent framing) through the real services."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest
from cdc_flow import consume_values, make_users  # tests/integration/cdc_flow.py
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource  # type: ignore[attr-defined]

from userstream.cdc import (
    SchemaIncompatibleError,
    ensure_connector,
    ensure_subject,
    ensure_topics,
    register_value_schema,
)
from userstream.cdc.schemas import value_subject
from userstream.cdc.topics import admin
from userstream.config import Settings
from userstream.ingest.land import land_batch
from userstream.registry_clients import registry_client
from userstream.runtime.stack import Stack
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cdc(require_services: Callable[..., Stack], settings: Settings) -> Settings:
    require_services("postgres", "kafka", "registry", "connect")
    apply_postgres_schema(settings)
    ensure_topics(settings)
    ensure_subject(settings)
    ensure_connector(settings)
    return settings


def test_every_landed_row_reaches_kafka_once_and_decodes(cdc: Settings) -> None:
    users = make_users(2000, "cdc")
    with psycopg.connect(cdc.postgres_conninfo, autocommit=True) as conn:
        assert land_batch(conn, users).landed == 2000
        land_batch(conn, users[:50])  # a replay lands nothing and must produce nothing
    seen = consume_values(cdc, {str(u.row.id) for u in users})
    assert len(seen) == 2000
    assert all(len(v) == 1 for v in seen.values())
    sample = users[17].row
    value = seen[str(sample.id)][0]
    for col in ("first_name", "last_name", "gender", "address", "post_code", "email", "username", "phone",
                "picture", "nat"):  # fmt: skip
        assert value[col] == getattr(sample, col)
    assert datetime.fromisoformat(value["fetched_at"]) == sample.fetched_at
    assert "raw" not in value
    assert value["__source_ts_ms"] > 0


def test_bootstrap_is_idempotent(cdc: Settings) -> None:
    assert ensure_connector(cdc) == "unchanged"
    assert set(ensure_topics(cdc).values()) == {"exists"}
    assert ensure_subject(cdc)["compatibility"] == "BACKWARD"


def test_bootstrap_restores_topic_retention(cdc: Settings) -> None:
    """A topic left with other bounds (an older version, a hand edit) gets the settings' bounds back."""
    client = admin(cdc)
    resource = ConfigResource(ConfigResource.Type.TOPIC, cdc.users_topic)
    entry = ConfigEntry("retention.bytes", "-1", incremental_operation=AlterConfigOpType.SET)
    edited = ConfigResource(ConfigResource.Type.TOPIC, cdc.users_topic, incremental_configs=[entry])
    client.incremental_alter_configs([edited])[resource].result(30)
    assert ensure_topics(cdc)[cdc.users_topic] == f"retention.bytes -> {cdc.topic_retention_bytes}"
    current = client.describe_configs([resource])[resource].result(30)
    assert current["retention.bytes"].value == str(cdc.topic_retention_bytes)
    assert current["retention.ms"].value == str(cdc.topic_retention_ms)


def test_schema_evolution_nullable_column_then_incompatible_refused(cdc: Settings) -> None:
    client = registry_client(cdc, "admin")
    subject = value_subject(cdc)
    before = client.get_versions(subject)
    column = f"nick_{uuid.uuid4().hex[:8]}"  # new on every run, so a new version is due every run
    with psycopg.connect(cdc.postgres_conninfo, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE staging.users ADD COLUMN {column} text")
        try:
            users = make_users(5, "evo")
            assert land_batch(conn, users).landed == 5
            seen = consume_values(cdc, {str(u.row.id) for u in users})
        finally:
            conn.execute(f"ALTER TABLE staging.users DROP COLUMN {column}")
    assert len(seen) == 5
    assert next(iter(seen.values()))[0][column] is None
    after = client.get_versions(subject)
    assert len(after) == len(before) + 1
    # a breaking change (a required field of another type) is refused with a clear error
    latest = json.loads(client.get_latest_version(subject).schema.schema_str)
    latest["fields"] = [{"name": f["name"], "type": "long"} if f["name"] == "email" else f for f in latest["fields"]]
    with pytest.raises(SchemaIncompatibleError, match=r"not BACKWARD-compatible|refused"):
        register_value_schema(cdc, json.dumps(latest))
    assert client.get_versions(subject) == after
