from __future__ import annotations

import json
import stat
import uuid
from collections.abc import Callable

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from userstream.config import Settings
from userstream.registry_clients import registry_client, registry_login
from userstream.runtime.registry import RegistryService, registry_native_url
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration

USER_V1 = {
    "type": "record",
    "name": "ProbeUser",
    "namespace": "userstream.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "email", "type": "string"}],
}


def _client(settings: Settings) -> SchemaRegistryClient:
    return registry_client(settings, "admin")


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
    info = f"{registry_native_url(settings)}/system/info"
    resp = httpx.get(info, auth=registry_login(settings, "monitor"), timeout=5)
    assert resp.status_code == 200
    assert resp.json()["version"].startswith("3.")


def test_registry_takes_only_its_logins_and_only_writers_write(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("registry")
    subjects = f"{settings.registry_endpoint.rstrip('/')}/subjects"
    new_version = f"{subjects}/auth-probe-value/versions"
    body = {"schema": json.dumps({"type": "string"})}
    reader, writer = registry_login(settings, "stream"), registry_login(settings, "connect")
    assert reader is not None and writer is not None
    with httpx.Client(timeout=10) as http:
        native = registry_native_url(settings)
        for url in (subjects, f"{native}/system/info", f"{native}/groups"):
            assert http.get(url).status_code == 401, f"anonymous GET {url}"
        assert http.get(subjects, auth=(reader[0], "wrong")).status_code == 401
        assert http.post(new_version, json=body).status_code == 401
        assert http.get(subjects, auth=reader).status_code == 200  # readers read ...
        assert http.post(new_version, json=body, auth=reader).status_code == 403  # ... and may not write
        assert http.delete(f"{subjects}/{settings.users_topic}-value", auth=reader).status_code == 403
        assert http.post(new_version, json=body, auth=writer).status_code == 200
        assert http.delete(f"{subjects}/auth-probe-value", auth=writer).status_code == 200
    mode = stat.S_IMODE(RegistryService(settings).auth_file.stat().st_mode)
    assert mode == 0o600
