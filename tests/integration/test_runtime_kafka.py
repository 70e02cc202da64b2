from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from userstream.config import Settings
from userstream.runtime.base import port_free
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration

N = 1000


def _create_topic(settings: Settings, partitions: int = 2) -> str:
    topic = f"rt-probe-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=30)
    return topic


def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all", "enable.idempotence": True}
    )
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for i in range(n):
        producer.produce(topic, key=str(i).encode(), value=f"value-{i}".encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []


def _consume_all(settings: Settings, topic: str, expected: int, timeout_s: float = 60) -> dict[str, str]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"rt-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[str, str] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while len(seen) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=500, timeout=1.0):
                assert msg.error() is None, msg.error()
                seen[msg.key().decode()] = msg.value().decode()
    finally:
        consumer.close()
    return seen


def test_kafka_round_trip_1000_records(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("kafka")
    topic = _create_topic(settings)
    _produce(settings, topic, N)
    seen = _consume_all(settings, topic, N)
    assert len(seen) == N
    assert seen["0"] == "value-0" and seen[str(N - 1)] == f"value-{N - 1}"


def test_auto_topic_creation_is_off(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("kafka")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap_servers})
    (cfg,) = admin.describe_configs([ConfigResource("broker", "1")]).values()
    assert cfg.result(timeout=10)["auto.create.topics.enable"].value == "false"


def test_kafka_keeps_records_across_down_up(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("kafka")
    topic = _create_topic(settings, partitions=1)
    _produce(settings, topic, 100)
    kafka_only = Stack(settings, ["kafka"])
    kafka_only.down()
    assert port_free(settings.bind_host, settings.kafka_port)
    kafka_only.up()
    seen = _consume_all(settings, topic, 100)
    assert len(seen) == 100
