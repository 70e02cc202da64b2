"""Helpers of the CDC tests: users to land, and what reached the users topic (tests/integration is on
sys.path while pytest collects it, so test modules import this by name)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import DeserializingConsumer
from confluent_kafka.schema_registry.avro import AvroDeserializer

from userstream.config import Settings
from userstream.ingest.land import LandedUser
from userstream.kafka_clients import client_config
from userstream.model import UserRow
from userstream.registry_clients import registry_client


def make_users(n: int, tag: str) -> list[LandedUser]:
    now = datetime.now(UTC)
    return [
        LandedUser(
            row=UserRow(
                id=uuid.uuid4(), first_name=f"{tag}{i}", last_name="Doe", gender="male",
                address=f"{i} Road, City, State, Country", post_code=f"0{i}", email=f"{tag}{i}@example.com",
                username=f"{tag}{i}", dob=now, registered_date=now, phone="01-23", picture="https://p/m.jpg",
                nat="GB", fetched_at=now,
            ),
            raw_json=json.dumps({"tag": tag, "i": i}),
        )
        for i in range(n)
    ]  # fmt: skip


def consume_values(settings: Settings, wanted: set[str], timeout_s: float = 120) -> dict[str, list[dict[str, Any]]]:
    """Read the users topic from the start until every wanted id was seen; id -> every value seen."""
    client = registry_client(settings, "admin")
    consumer = DeserializingConsumer(
        {
            **client_config(settings, "admin", "test"),
            "group.id": f"test-{uuid.uuid4()}",
            "auto.offset.reset": "earliest",
            "key.deserializer": AvroDeserializer(client),
            "value.deserializer": AvroDeserializer(client),
        }
    )
    consumer.subscribe([settings.users_topic])
    seen: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout_s
    idle_after_done = 0
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                if wanted <= seen.keys():
                    idle_after_done += 1
                    if idle_after_done >= 3:  # a few quiet polls to catch any duplicate
                        break
                continue
            assert msg.error() is None, msg.error()
            value = msg.value()
            assert msg.key()["id"] == value["id"]
            if value["id"] in wanted:
                seen.setdefault(value["id"], []).append(value)
    finally:
        consumer.close()
    return seen
