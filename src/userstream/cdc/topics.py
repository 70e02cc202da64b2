"""Kafka topics of the pipeline, created explicitly (the broker does not auto-create)."""

from __future__ import annotations

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.kafka_clients import KafkaIdentity, client_config
from userstream.runtime.kafka_acls import create_acls, topic_acls


def admin(settings: Settings, identity: KafkaIdentity = "admin") -> AdminClient:
    return AdminClient(client_config(settings, identity, "admin", **{"socket.timeout.ms": 10000}))


def retention_config(settings: Settings) -> dict[str, str]:
    """Time and size bounds: at 1,000 records/s a week of ``users.raw`` alone would be hundreds of GB."""
    return {"retention.ms": str(settings.topic_retention_ms), "retention.bytes": str(settings.topic_retention_bytes)}


def align_retention(client: AdminClient, topic: str, settings: Settings) -> list[str]:
    """Set a topic's retention to the settings where it differs (a topic made by an older version, or a
    changed setting); returns what changed."""
    wanted = retention_config(settings)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    current = client.describe_configs([resource])[resource].result(30)
    differ = {k: v for k, v in wanted.items() if k not in current or current[k].value != v}
    if not differ:
        return []
    entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in differ.items()]
    client.incremental_alter_configs([ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=entries)])[
        resource
    ].result(30)
    return [f"{k} -> {v}" for k, v in differ.items()]


def topic_specs(settings: Settings) -> dict[str, dict[str, str]]:
    """Topic name -> topic configs."""
    common = {**retention_config(settings), "min.insync.replicas": str(settings.kafka_min_insync)}
    return {
        settings.users_topic: {**common, "compression.type": "producer"},
        settings.dlq_topic: dict(common),
        settings.accepted_topic: dict(common),  # the streaming job's own (feeds the per-minute aggregate)
    }


def ensure_topics(
    settings: Settings, replication: int | None = None, identity: KafkaIdentity = "admin"
) -> dict[str, str]:
    """Create missing topics and grow partitions to the setting; returns topic -> what happened.

    As ``admin`` on our own broker it also grants each component its rights on these topics (a bench's
    settings name topics of its own); an external cluster's ACLs are its operators' to set.
    """
    replication = replication or settings.kafka_replication
    client = admin(settings, identity)
    existing = client.list_topics(timeout=15).topics
    result: dict[str, str] = {}
    to_create = []
    for name, config in topic_specs(settings).items():
        if name not in existing:
            to_create.append(NewTopic(name, settings.topic_partitions, replication, config=config))
            continue
        changes = []
        have = len(existing[name].partitions)
        if have < settings.topic_partitions:
            client.create_partitions([NewPartitions(name, settings.topic_partitions)])[name].result(30)
            changes.append(f"partitions {have} -> {settings.topic_partitions}")
        changes += align_retention(client, name, settings)
        result[name] = "; ".join(changes) or "exists"
    for name, future in client.create_topics(to_create, operation_timeout=30).items() if to_create else []:
        try:
            future.result(30)
        except Exception as exc:  # a concurrent bootstrap may have created it first
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceError(f"could not create topic {name}: {exc}") from exc
        result[name] = "created"
    if identity == "admin" and settings.kafka_bootstrap is None:
        create_acls(client, topic_acls(settings))
    return result
