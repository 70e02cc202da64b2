from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from userstream.config import Settings
from userstream.runtime.registry import registry_native_url
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration

USER_V1 = {
    "type": "record",
    "name": "ProbeUser",
    "namespace": "userstream.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "email", "type": "string"}],
}


def _client(settings: Settings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.registry_endpoint})


def test_registry_registers_and_fetches_avro_and_survives_restart(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    stack = require_services("registry")
    subject = f"rt-probe-{uuid.uuid4().hex[:8]}-value"
    client = _client(settings)
    schema_id = client.register_schema(subject, Schema(json.dumps(USER_V1), "AVRO"))
    assert json.loads(client.get_schema(schema_id).schema_str) == USER_V1
    assert client.get_latest_version(subject).schema_id == schema_id

    registry = stack.services["registry"]
    registry.stop()
    registry.start()

    fresh = _client(settings)  # no client-side cache
    assert subject in fresh.get_subjects()
    assert json.loads(fresh.get_schema(schema_id).schema_str) == USER_V1
    assert fresh.get_latest_version(subject).schema_id == schema_id


def test_registry_enforces_backward_compatibility(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("registry")
    subject = f"rt-compat-{uuid.uuid4().hex[:8]}-value"
    client = _client(settings)
    client.register_schema(subject, Schema(json.dumps(USER_V1), "AVRO"))
    client.set_compatibility(subject, "BACKWARD")

    # adding an optional field is a compatible change: a new version
    v2 = {**USER_V1, "fields": [*USER_V1["fields"], {"name": "nat", "type": ["null", "string"], "default": None}]}
    client.register_schema(subject, Schema(json.dumps(v2), "AVRO"))
    assert client.get_latest_version(subject).version == 2

    # changing a field's type is refused
    v3 = {**USER_V1, "fields": [{"name": "id", "type": "long"}, USER_V1["fields"][1]]}
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, Schema(json.dumps(v3), "AVRO"))
    assert refused.value.http_status_code == 409

    client.delete_subject(subject)
    assert subject not in client.get_subjects()


def test_registry_native_api_is_served(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("registry")
    resp = httpx.get(f"{registry_native_url(settings)}/system/info", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["version"].startswith("3.")
