from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from userstream.cdc.topics import ensure_topics
from userstream.config import Settings
from userstream.kafka_clients import MONITOR_GROUP_PREFIX, KafkaIdentity, client_config
from userstream.runtime.base import port_free
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration

N = 1000


def _create_topic(settings: Settings, partitions: int = 2) -> str:
    topic = f"rt-probe-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({**client_config(settings, "admin", "test")})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    futures[topic].result(timeout=30)
    return topic


def _produce(settings: Settings, topic: str, n: int) -> None:
    producer = Producer({**client_config(settings, "admin", "test"), "acks": "all", "enable.idempotence": True})
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
            **client_config(settings, "admin", "test"),
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
    admin = AdminClient({**client_config(settings, "admin", "test")})
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


def _produce_one(settings: Settings, identity: KafkaIdentity, topic: str) -> KafkaError | None:
    """The delivery error of one record produced as ``identity`` (None: delivered)."""
    producer = Producer(client_config(settings, identity, "test", **{"message.timeout.ms": 10000}))
    outcome: list[KafkaError | None] = []
    producer.produce(topic, value=b"x", on_delivery=lambda err, _msg: outcome.append(err))
    producer.flush(15)
    assert outcome, "no delivery report"
    return outcome[0]


def test_each_identity_may_do_only_what_its_acls_grant(
    require_services: Callable[..., Stack], settings: Settings
) -> None:
    require_services("kafka")
    tag = f"rt-acl-{uuid.uuid4().hex[:8]}"
    own = settings.model_copy(update={"users_topic": tag, "dlq_topic": f"{tag}.dlq"})
    created = {tag: "created", f"{tag}.dlq": "created", own.accepted_topic: "created"}
    assert ensure_topics(own) == created  # as admin, with the topics' ACLs

    assert _produce_one(own, "connect", tag) is None  # Connect writes the users topic
    denied = _produce_one(own, "monitor", tag)  # the monitor only reads
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    denied = _produce_one(own, "connect", own.dlq_topic)  # the DLQ is the streaming job's
    assert denied is not None and denied.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, denied
    assert _produce_one(own, "stream", own.dlq_topic) is None

    consumer = Consumer(client_config(own, "monitor", "test", **{"group.id": f"{MONITOR_GROUP_PREFIX}-{tag}",
                                                                    "auto.offset.reset": "earliest"}))  # fmt: skip
    try:
        consumer.subscribe([tag])
        msg = None
        deadline = time.monotonic() + 30
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
        assert msg is not None and msg.error() is None and msg.value() == b"x"
    finally:
        consumer.close()

    stream_admin = AdminClient(client_config(own, "stream", "test"))
    with pytest.raises(KafkaException, match="TOPIC_AUTHORIZATION_FAILED"):
        stream_admin.delete_topics([tag], operation_timeout=10)[tag].result(20)
    # a topic no ACL of its names is invisible to a component: metadata lists only what it may describe
    other = _create_topic(settings)
    assert other not in stream_admin.list_topics(timeout=10).topics
    assert tag in stream_admin.list_topics(timeout=10).topics


def test_a_wrong_password_or_no_login_is_refused(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("kafka")
    wrong = {**client_config(settings, "admin", "test"), "sasl.password": "not-the-password"}
    with pytest.raises(KafkaException):
        AdminClient({**wrong, "socket.timeout.ms": 3000}).list_topics(timeout=6)
    anonymous = {"bootstrap.servers": settings.kafka_bootstrap_servers, "socket.timeout.ms": 3000}
    with pytest.raises(KafkaException):
        AdminClient(anonymous).list_topics(timeout=6)
