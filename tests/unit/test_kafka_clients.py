"""Every Kafka client's login: per component on our broker, the configured one on an external cluster; and
the ACLs that bound what each component may do."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType  # type: ignore[attr-defined]

from userstream.config import Settings
from userstream.kafka_clients import PRINCIPALS, client_config, jvm_client_props, login
from userstream.runtime.kafka_acls import identity_acls, topic_acls


@pytest.fixture
def ours(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap=None)


def test_each_component_logs_in_to_our_broker_with_its_own_scram_login(ours: Settings) -> None:
    passwords = set()
    for identity, user in PRINCIPALS.items():
        config = client_config(ours, identity, "test", **{"group.id": "g"})
        assert config["security.protocol"] == "SASL_PLAINTEXT" and config["sasl.mechanism"] == "SCRAM-SHA-512"
        assert config["sasl.username"] == user and config["group.id"] == "g"
        assert config["logger"].name == "userstream.kafka.test"  # librdkafka's lines to our logs
        passwords.add(config["sasl.password"])
    assert len(passwords) == len(PRINCIPALS) and all(len(p) >= 32 for p in passwords)
    # the same login for the Java clients, in their JAAS form, under the prefix asked for
    props = jvm_client_props(ours, "stream", "kafka.")
    assert set(props) == {"kafka.security.protocol", "kafka.sasl.mechanism", "kafka.sasl.jaas.config"}
    user, password = login(ours, "stream") or ("", "")
    assert props["kafka.sasl.jaas.config"] == (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{user}" password="{password}";'
    )


def test_an_external_cluster_takes_the_configured_security(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path, kafka_bootstrap="broker:9092")
    assert login(plain, "connect") is None
    assert client_config(plain, "connect", "t")["security.protocol"] == "PLAINTEXT"
    # no login; an external cluster has several brokers, so a request stuck on a dead one is retried after 10 s
    # and the metadata naming partition leaders is re-read every 5 s
    assert jvm_client_props(plain, "connect") == {
        "security.protocol": "PLAINTEXT",
        "request.timeout.ms": "10000",
        "socket.connection.setup.timeout.ms": "3000",
        "socket.connection.setup.timeout.max.ms": "10000",
        "metadata.max.age.ms": "5000",
    }

    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")  # the settings check it exists
    secured = Settings(
        data_dir=tmp_path, kafka_bootstrap="broker:9093", kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN", kafka_sasl_username="team", kafka_sasl_password='p"w', kafka_ssl_ca_file=ca,
    )  # fmt: skip
    for identity in PRINCIPALS:  # one login serves every component there
        config = client_config(secured, identity, "t")
        assert (config["sasl.username"], config["sasl.password"], config["sasl.mechanism"]) == ("team", 'p"w', "PLAIN")
        assert config["ssl.ca.location"] == str(ca)
    props = jvm_client_props(secured, "stream")
    assert props["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")
    assert 'password="p\\"w"' in props["sasl.jaas.config"]  # quoted for JAAS
    assert props["ssl.truststore.type"] == "PEM" and props["ssl.truststore.location"] == str(ca)


def test_acls_grant_least_privilege(ours: Settings) -> None:
    bindings = identity_acls(ours) + topic_acls(ours)
    by_principal: dict[str, set[tuple[str, str, str, str]]] = {}
    for b in bindings:
        assert b.host == "*"
        key = (b.restype.name, b.resource_pattern_type.name, b.name, b.operation.name)
        by_principal.setdefault(b.principal, set()).add(key)
    assert set(by_principal) == {f"User:{PRINCIPALS[i]}" for i in ("connect", "stream", "monitor")}  # admin: super
    users, dlq, accepted = ours.users_topic, ours.dlq_topic, ours.accepted_topic
    connect = by_principal["User:userstream-connect"]
    stream = by_principal["User:userstream-stream"]
    monitor = by_principal["User:userstream-monitor"]
    assert ("TOPIC", "LITERAL", users, "WRITE") in connect and ("TOPIC", "LITERAL", users, "WRITE") not in stream
    assert ("TOPIC", "LITERAL", users, "READ") in stream and ("TOPIC", "LITERAL", dlq, "WRITE") in stream
    assert not any(k[0] == "TOPIC" and k[2] == dlq for k in connect)
    assert ("TOPIC", "LITERAL", accepted, "ALL") in stream
    # the monitor reads and describes; it never writes, creates, deletes or alters
    assert {k[3] for k in monitor} <= {AclOperation.READ.name, AclOperation.DESCRIBE.name}
    # no identity is handed a whole resource type: wildcards only for the monitor's DESCRIBE of groups
    wild = [b for b in bindings if b.name == "*" and b.resource_pattern_type == ResourcePatternType.LITERAL]
    assert [(b.restype, b.operation) for b in wild] == [(ResourceType.GROUP, AclOperation.DESCRIBE)]
