from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from userstream.config import Settings
from userstream.kafka_clients import PRINCIPALS, client_config
from userstream.registry_clients import registry_client
from userstream.runtime.connect import AVRO_CONVERTER, DEBEZIUM_POSTGRES_CONNECTOR, avro_converter_config, rest_client
from userstream.runtime.kafka_acls import create_acls
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration


def _debezium_config(settings: Settings, tag: str) -> dict[str, str]:
    return {
        "connector.class": DEBEZIUM_POSTGRES_CONNECTOR,
        "database.hostname": settings.bind_host,
        "database.port": str(settings.postgres_port),
        "database.user": settings.postgres_user,
        "database.password": settings.secret("postgres_password"),
        "database.dbname": settings.postgres_db,
        "topic.prefix": tag,
        "plugin.name": "pgoutput",
        "slot.name": tag,
        "publication.name": tag,
        "publication.autocreate.mode": "filtered",
        "table.include.list": f"public.{tag}",
        "transforms": "unwrap",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        # the broker does not auto-create topics; Connect creates the connector's
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "1",
        **avro_converter_config(settings, "key"),
        **avro_converter_config(settings, "value"),
    }


def test_connect_lists_debezium_and_the_avro_converter(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("connect")
    assert httpx.get(f"{settings.connect_endpoint}/connectors", timeout=5).status_code == 401, "no anonymous access"
    assert rest_client(settings).get("/", timeout=5).json()["version"].startswith("4.1")
    connectors = {p["class"] for p in rest_client(settings).get("/connector-plugins", timeout=10).json()}
    assert DEBEZIUM_POSTGRES_CONNECTOR in connectors
    everything = rest_client(settings).get("/connector-plugins", params={"connectorsOnly": "false"}, timeout=10).json()
    assert {"class": AVRO_CONVERTER, "type": "converter"}.items() <= next(
        p for p in everything if p["class"] == AVRO_CONVERTER
    ).items()


def test_connect_validates_a_debezium_config_that_names_the_converter(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("connect")
    config = _debezium_config(settings, "rtvalidate")
    resp = rest_client(settings).put(
        f"/connector-plugins/{DEBEZIUM_POSTGRES_CONNECTOR}/config/validate",
        json=config,
        timeout=60,
    )
    assert resp.status_code == 200, resp.text
    by_name = {c["value"]["name"]: c["value"] for c in resp.json()["configs"]}
    for key in ("key.converter", "value.converter"):
        assert by_name[key]["value"] == AVRO_CONVERTER
        assert by_name[key]["errors"] == [], by_name[key]
    # and with a class that does not exist, the same endpoint says so: the check above is real
    bad = (
        rest_client(settings)
        .put(
            f"/connector-plugins/{DEBEZIUM_POSTGRES_CONNECTOR}/config/validate",
            json={**config, "value.converter": "no.such.Converter"},
            timeout=60,
        )
        .json()
    )
    bad_by_name = {c["value"]["name"]: c["value"] for c in bad["configs"]}
    assert bad_by_name["value.converter"]["errors"]


@contextlib.contextmanager
def _cdc_table(settings: Settings, tag: str) -> Iterator[None]:
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {tag} (id text PRIMARY KEY, n int, note text)")
        conn.execute(f"INSERT INTO {tag} VALUES ('a', 1, 'first'), ('b', 2, NULL)")
    try:
        yield
    finally:
        rest_client(settings).delete(f"/connectors/{tag}", timeout=30)
        with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # the slot stays active until the task has stopped
                row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (tag,)).fetchone()
                if row is None:
                    break
                if not row[0]:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (tag,))
                    break
                time.sleep(0.5)
            conn.execute(f"DROP PUBLICATION IF EXISTS {tag}")
            conn.execute(f"DROP TABLE IF EXISTS {tag}")


def test_debezium_writes_confluent_framed_avro_through_our_registry(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    """Snapshot + streamed change -> Kafka, decoded by Confluent's own AvroDeserializer via ccompat."""
    require_services("connect")
    tag = f"rtcdc{uuid.uuid4().hex[:8]}"
    topic = f"{tag}.public.{tag}"
    with _cdc_table(settings, tag):
        # a connector of the user's own writes its own topics: the admin grants Connect's login those
        admin = AdminClient(client_config(settings, "admin", "test"))
        grant = AclBinding(ResourceType.TOPIC, tag, ResourcePatternType.PREFIXED, f"User:{PRINCIPALS['connect']}",
                           "*", AclOperation.ALL, AclPermissionType.ALLOW)  # fmt: skip
        create_acls(admin, [grant])
        resp = rest_client(settings).put(f"/connectors/{tag}/config", json=_debezium_config(settings, tag), timeout=60)
        assert resp.status_code in (200, 201), resp.text

        admin = AdminClient({**client_config(settings, "admin", "test")})
        deadline = time.monotonic() + 60
        while topic not in admin.list_topics(timeout=5).topics:
            status = rest_client(settings).get(f"/connectors/{tag}/status", timeout=10).json()
            assert all(t["state"] != "FAILED" for t in status.get("tasks", [])), status
            assert time.monotonic() < deadline, f"{topic} never appeared: {status}"
            time.sleep(0.5)
        with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
            conn.execute(f"INSERT INTO {tag} VALUES ('c', 3, 'streamed')")

        registry = registry_client(settings, "admin")
        key_de, value_de = AvroDeserializer(registry), AvroDeserializer(registry)
        consumer = Consumer(
            {
                **client_config(settings, "admin", "test"),
                "group.id": tag,
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([topic])
        rows: dict[str, dict[str, Any]] = {}
        schema_ids: dict[str, int] = {}

        def read_until(count: int) -> None:
            deadline = time.monotonic() + 60
            while len(rows) < count and time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None or msg.error():
                    continue
                raw = msg.value()
                assert raw[0] == 0  # Confluent magic byte, then a 4-byte schema id the ccompat API knows
                schema_id = int.from_bytes(raw[1:5], "big")
                assert registry.get_schema(schema_id).schema_type == "AVRO"
                key = key_de(msg.key(), SerializationContext(topic, MessageField.KEY))
                rows[key["id"]] = value_de(raw, SerializationContext(topic, MessageField.VALUE))
                schema_ids[key["id"]] = schema_id

        try:
            read_until(3)
            assert rows == {
                "a": {"id": "a", "n": 1, "note": "first"},
                "b": {"id": "b", "n": 2, "note": None},
                "c": {"id": "c", "n": 3, "note": "streamed"},
            }
            # the table changes while the task runs: the converter (which remembers its schema per schema,
            # not per record) registers the new one and writes with it
            with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
                conn.execute(f"ALTER TABLE {tag} ADD COLUMN extra text")
                conn.execute(f"INSERT INTO {tag} VALUES ('d', 4, 'changed', 'x')")
            read_until(4)
        finally:
            consumer.close()

        assert rows["d"] == {"id": "d", "n": 4, "note": "changed", "extra": "x"}
        assert schema_ids["d"] != schema_ids["c"] and schema_ids["a"] == schema_ids["c"]
        assert f"{topic}-value" in registry.get_subjects()
