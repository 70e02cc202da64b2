"""Avro subjects of the users topic in the registry (Confluent-compatible API)."""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from userstream.config import Settings
from userstream.errors import UserstreamError
from userstream.registry_clients import registry_client

COMPATIBILITY = "BACKWARD"


class SchemaIncompatibleError(UserstreamError):
    """The registry refused a schema change that would break readers."""


def value_subject(settings: Settings) -> str:
    return f"{settings.users_topic}-value"


def ensure_subject(settings: Settings) -> dict[str, Any]:
    """BACKWARD compatibility for the users subjects (globally, so it holds from the first version on).

    The schema itself is registered by the CDC converter from the table's columns on the first change;
    returns the compatibility level and the versions registered so far.
    """
    client = registry_client(settings, "admin")
    if client.get_compatibility() != COMPATIBILITY:
        client.set_compatibility(level=COMPATIBILITY)
    subject = value_subject(settings)
    versions: list[int] = []
    if subject in client.get_subjects():
        versions = list(client.get_versions(subject))
        if _subject_level(client, subject) not in (None, COMPATIBILITY):
            client.set_compatibility(subject_name=subject, level=COMPATIBILITY)
    return {"subject": subject, "compatibility": COMPATIBILITY, "versions": versions}


def _subject_level(client: SchemaRegistryClient, subject: str) -> str | None:
    try:
        return str(client.get_compatibility(subject_name=subject))
    except SchemaRegistryError:
        return None  # no subject-level override: the global level applies


def register_value_schema(settings: Settings, schema_str: str) -> int:
    """Register a new version of the users value schema; a breaking change raises SchemaIncompatibleError."""
    client = registry_client(settings, "admin")
    subject = value_subject(settings)
    schema = Schema(schema_str, "AVRO")
    if subject in client.get_subjects() and not client.test_compatibility(subject, schema):
        raise SchemaIncompatibleError(
            f"the registry refused the new schema for {subject}: it is not {COMPATIBILITY}-compatible "
            "with the latest version (readers of the new schema could not read existing records)",
            fix="add new columns as nullable with a default, never drop or retype existing ones",
        )
    try:
        return int(client.register_schema(subject, schema))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 409:
            raise SchemaIncompatibleError(
                f"the registry refused the new schema for {subject}: {exc.error_message}",
                fix="add new columns as nullable with a default, never drop or retype existing ones",
            ) from exc
        raise
