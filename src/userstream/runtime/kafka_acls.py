"""Our broker's identities and what each may do: SCRAM logins per component, ACLs with least privilege.

The broker authenticates itself (inter-broker, controller) with SASL/PLAIN on its own listener; that
listener is also where the SCRAM logins are created, since a SCRAM login can only be made through a broker
that is already up. Nothing is allowed that no ACL names (``StandardAuthorizer``, no
``allow.everyone.if.no.acl.found``); ``userstream-admin`` is a super user for bootstrapping and operator
commands (benches, tests).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.kafka_clients import MONITOR_GROUP_PREFIX, PASSWORD_SECRETS, PRINCIPALS, KafkaIdentity, client_config
from userstream.kafkalog import with_logger

__all__ = [
    "BROKER_USER",
    "bootstrap_identities",
    "broker_client_config",
    "create_acls",
    "identity_acls",
    "topic_acls",
]

log = logging.getLogger(__name__)

BROKER_USER = "broker"
SCRAM_ITERATIONS = 8192
# Connect's own topics (config/offset/status storage) and Debezium's heartbeat topic
CONNECT_TOPIC_PREFIXES = ("_connect-", "__debezium-heartbeat")
CONNECT_GROUP = "userstream-connect"
SPARK_GROUP_PREFIX = "spark-kafka-source-"  # the groups Spark's Kafka source names itself

_ALLOW = AclPermissionType.ALLOW


def _acl(
    identity: KafkaIdentity,
    kind: ResourceType,
    name: str,
    operation: AclOperation,
    pattern: ResourcePatternType = ResourcePatternType.LITERAL,
) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{PRINCIPALS[identity]}", "*", operation, _ALLOW)


def identity_acls(settings: Settings) -> list[AclBinding]:
    """What does not depend on the pipeline's topic names: Connect's internals, the groups, the cluster."""
    topic, group, prefixed = ResourceType.TOPIC, ResourceType.GROUP, ResourcePatternType.PREFIXED
    return [
        *(_acl("connect", topic, p, AclOperation.ALL, prefixed) for p in CONNECT_TOPIC_PREFIXES),
        _acl("connect", group, CONNECT_GROUP, AclOperation.READ),
        _acl("stream", group, SPARK_GROUP_PREFIX, AclOperation.READ, prefixed),
        _acl("stream", group, settings.stream_consumer_group, AclOperation.READ, prefixed),
        # the lag of every group, Connect's and Spark's included
        _acl("monitor", group, "*", AclOperation.DESCRIBE),
        _acl("monitor", group, MONITOR_GROUP_PREFIX, AclOperation.READ, prefixed),
        _acl("monitor", ResourceType.BROKER, "kafka-cluster", AclOperation.DESCRIBE),
    ]


def topic_acls(settings: Settings) -> list[AclBinding]:
    """The pipeline's topics of these settings (a bench's settings name its own): who reads, who writes."""
    topic = ResourceType.TOPIC
    users, dlq, accepted = settings.users_topic, settings.dlq_topic, settings.accepted_topic
    return [
        _acl("connect", topic, users, AclOperation.WRITE),
        _acl("connect", topic, users, AclOperation.DESCRIBE),
        _acl("stream", topic, users, AclOperation.READ),
        _acl("stream", topic, users, AclOperation.DESCRIBE_CONFIGS),
        _acl("stream", topic, dlq, AclOperation.WRITE),
        _acl("stream", topic, dlq, AclOperation.DESCRIBE_CONFIGS),
        _acl("stream", topic, accepted, AclOperation.ALL),  # the job creates it and keeps its retention
        *(_acl("monitor", topic, name, AclOperation.READ) for name in (users, dlq, accepted)),
    ]


def broker_client_config(settings: Settings, client: str) -> dict[str, Any]:
    """The broker's own login, on its own listener: for bootstrapping and the health probe."""
    return with_logger(
        {
            "bootstrap.servers": f"{settings.bind_host}:{settings.kafka_broker_port}",
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN",
            "sasl.username": BROKER_USER,
            "sasl.password": settings.secret("kafka_broker_password"),
            "socket.timeout.ms": 10000,
        },
        client,
    )


def create_acls(client: AdminClient, bindings: list[AclBinding], timeout_s: float = 30.0) -> None:
    """Idempotent (creating an ACL that exists is a no-op); returns once the broker authorizes with them:
    the controller commits an ACL before the broker applies it, and a producer refused in between fails
    its records for good (TOPIC_AUTHORIZATION_FAILED is not retried)."""
    for binding, future in client.create_acls(bindings, request_timeout=30).items():
        try:
            future.result(30)
        except KafkaException as exc:
            raise ServiceError(f"kafka: could not create the ACL {binding}: {exc}") from exc
    # None matches any name, principal and host (the stubs say str)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,  # type: ignore[arg-type]
                                  AclOperation.ANY, AclPermissionType.ANY)  # fmt: skip
    deadline = time.monotonic() + timeout_s
    while True:
        missing = set(bindings) - set(client.describe_acls(everything, request_timeout=10).result(15))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise ServiceError(f"kafka: {len(missing)} ACL(s) created but not applied after {timeout_s:.0f}s")
        time.sleep(0.2)


def bootstrap_identities(settings: Settings, timeout_s: float = 60.0) -> None:
    """Each component's SCRAM login (set again from the secret store: also how a rotation lands) and the
    ACLs not tied to topics; then proves the admin login works on the client listener."""
    client = AdminClient(broker_client_config(settings, "bootstrap"))
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(
            user,
            ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS),
            settings.secret(PASSWORD_SECRETS[identity]).encode(),
        )
        for identity, user in PRINCIPALS.items()
    ]
    for user, future in client.alter_user_scram_credentials(upserts, request_timeout=30).items():
        try:
            future.result(30)
        except KafkaException as exc:
            raise ServiceError(f"kafka: could not set the SCRAM login of {user}: {exc}") from exc
    create_acls(client, identity_acls(settings))
    # a new SCRAM credential reaches the client listener through the metadata log: wait until it has
    admin = AdminClient(client_config(settings, "admin", "bootstrap", **{"socket.timeout.ms": 5000}))
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=5)
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"kafka: the admin login was set but is refused on port {settings.kafka_port}: {exc}",
                    fix="see the kafka log; `userstream down kafka && userstream up kafka` sets it again",
                ) from exc
            log.info("kafka: admin login not accepted yet (%s); retrying", exc)
            time.sleep(1.0)
