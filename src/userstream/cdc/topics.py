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
from userstream.kafkalog import with_logger


def admin(settings: Settings) -> AdminClient:
    return AdminClient(
        with_logger({"bootstrap.servers": settings.kafka_bootstrap_servers, "socket.timeout.ms": 10000}, "admin")
    )


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
    common = {**retention_config(settings), "min.insync.replicas": "1"}
    return {
        settings.users_topic: {**common, "compression.type": "producer"},
        settings.dlq_topic: dict(common),
    }


def ensure_topics(settings: Settings, replication: int = 1) -> dict[str, str]:
    """Create missing topics and grow partitions to the setting; returns topic -> what happened."""
    client = admin(settings)
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
    return result
