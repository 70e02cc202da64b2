"""Config generation of the Kafka, registry and Connect services (no servers needed)."""

from __future__ import annotations

import base64
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from userstream.cdc.connector import connector_config
from userstream.config import Settings
from userstream.errors import PortInUseError
from userstream.registry_clients import PASSWORD_SECRETS as REGISTRY_PASSWORDS
from userstream.registry_clients import USERS, WRITERS, registry_client_config
from userstream.runtime.base import JVM_DIR, Service
from userstream.runtime.connect import AVRO_CONVERTER, SCHEMA_RESOLVER_SOURCES, ConnectService, avro_converter_config
from userstream.runtime.kafka import KafkaService, new_cluster_id, render_properties
from userstream.runtime.registry import RegistryService, registry_jdbc, registry_native_url


def _props(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {k: v for k, v in pairs}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # every value the assertions rely on is explicit, so USERSTREAM_* in the environment cannot change them
    return Settings(
        data_dir=tmp_path,
        bind_host="127.0.0.1",
        kafka_port=19092,
        kafka_controller_port=19093,
        kafka_broker_port=19094,
        kafka_heap="512m",
        connect_port=18083,
        connect_heap="512m",
        registry_port=18081,
        postgres_port=15432,
        postgres_dsn=None,
        registry_url=None,
        kafka_bootstrap=None,
    )


def test_kafka_single_node_kraft_config(settings: Settings) -> None:
    service = KafkaService(settings)
    props = _props(render_properties(service.server_config()))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "CLIENT://127.0.0.1:19092,BROKER://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093"
    # no listener takes anonymous clients, and nothing is allowed that no ACL names
    assert set(props["listener.security.protocol.map"].split(",")) == {
        "CLIENT:SASL_PLAINTEXT", "BROKER:SASL_PLAINTEXT", "CONTROLLER:SASL_PLAINTEXT"}  # fmt: skip
    assert props["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:broker;User:userstream-admin"
    assert settings.secret("kafka_broker_password") in props["listener.name.broker.plain.sasl.jaas.config"]
    assert props["auto.create.topics.enable"] == "false"
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
        "default.replication.factor",
    ):
        assert props[key] == "1"
    assert Path(props["log.dirs"]).is_relative_to(settings.state_dir / "kafka")
    assert service.ports == [19092, 19094, 19093]


def test_kafka_program_uses_the_configured_heap(settings: Settings) -> None:
    (program,) = KafkaService(settings).programs()
    assert "-Xmx512m" in program.command and "-Xms512m" in program.command
    assert program.command[-2] == "kafka.Kafka"


def test_cluster_id_is_a_kafka_uuid() -> None:
    for _ in range(50):
        cid = new_cluster_id()
        assert len(cid) == 22 and not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_external_endpoints_start_nothing(tmp_path: Path) -> None:
    s = Settings(
        data_dir=tmp_path,
        kafka_bootstrap="broker:9092",
        registry_url="http://reg:8080/apis/ccompat/v7",
        connect_url="http://connect:8083",
    )
    services: list[Service] = [KafkaService(s), RegistryService(s), ConnectService(s)]
    for service in services:
        assert service.external and service.programs() == []
    assert registry_native_url(s) == "http://reg:8080/apis/registry/v3"


def test_registry_storage_is_our_postgres(settings: Settings) -> None:
    service = RegistryService(settings)
    props = service.system_properties()
    assert props["apicurio.storage.kind"] == "sql" and props["apicurio.storage.sql.kind"] == "postgresql"
    assert props["quarkus.http.port"] == "18081" and props["quarkus.http.host"] == "127.0.0.1"
    env = service.environment()
    assert env["APICURIO_DATASOURCE_URL"] == "jdbc:postgresql://127.0.0.1:15432/registry"
    # credentials travel by environment, not on the command line
    (program,) = service.programs()
    assert not any(settings.secret("postgres_password") in arg for arg in program.command)


def test_registry_logins_are_private_and_only_writers_write(settings: Settings) -> None:
    service = RegistryService(settings)
    service.prepare()
    assert stat.S_IMODE(service.auth_file.stat().st_mode) == 0o600
    props = _props(service.auth_file.read_text())
    assert service.environment()["QUARKUS_CONFIG_LOCATIONS"] == str(service.auth_file)
    assert props["quarkus.http.auth.permission.read.policy"] == "authenticated"  # no anonymous reads
    assert props["quarkus.http.auth.permission.write.methods"] == "POST,PUT,PATCH,DELETE"
    for identity, user in USERS.items():
        password = settings.secret(REGISTRY_PASSWORDS[identity])
        assert props[f"quarkus.security.users.embedded.users.{user}"] == password
        assert props[f"quarkus.security.users.embedded.roles.{user}"] == ("writer" if identity in WRITERS else "reader")
        (program,) = service.programs()
        assert not any(password in arg for arg in program.command)
    assert {"admin", "connect"} == WRITERS, "the job and the monitor only read"


def test_registry_clients_log_in_as_their_component(tmp_path: Path) -> None:
    ours = Settings(data_dir=tmp_path)
    config = registry_client_config(ours, "stream")
    assert config["basic.auth.user.info"] == f"userstream-stream:{ours.secret('registry_stream_password')}"
    SchemaRegistryClient(config)  # a config the client takes
    converter = avro_converter_config(ours, "value")
    assert converter["value.converter.apicurio.registry.auth.username"] == "userstream-connect"
    # Connect's config names the secret's file, never the password (the REST API shows connector configs)
    reference = f"${{dir:{ours.secret_store.directory}:registry_connect_password}}"
    assert converter["value.converter.apicurio.registry.auth.password"] == reference
    assert ours.secret("registry_connect_password") not in str(connector_config(ours))
    # an external registry: its one login, or none
    external = Settings(data_dir=tmp_path, registry_url="https://reg.example/apis/ccompat/v7")
    assert "basic.auth.user.info" not in registry_client_config(external, "monitor")
    assert not any("auth" in k for k in avro_converter_config(external, "key"))
    pinned = Settings(
        data_dir=tmp_path, registry_url="https://reg.example", registry_username="u", registry_password="p"
    )
    assert registry_client_config(pinned, "monitor")["basic.auth.user.info"] == "u:p"
    assert avro_converter_config(pinned, "key")["key.converter.apicurio.registry.auth.password"] == "p"


def test_registry_jdbc_from_an_external_dsn(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, postgres_dsn="postgresql://app:s3cret@db.example:6543/pipeline")
    assert registry_jdbc(s) == ("jdbc:postgresql://db.example:6543/registry", "app", "s3cret")


def test_connect_worker_config(settings: Settings) -> None:
    service = ConnectService(settings)
    props = _props(render_properties(service.worker_config()))
    assert props["bootstrap.servers"] == "127.0.0.1:19092"
    assert props["listeners"] == "http://127.0.0.1:18083"
    # the worker's own clients and the ones it makes for tasks and topic creation all log in as Connect
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}security.protocol"] == "SASL_PLAINTEXT"
        assert props[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        jaas = props[f"{prefix}sasl.jaas.config"]
        assert 'username="userstream-connect"' in jaas and settings.secret("kafka_connect_password") in jaas
    assert Path(props["plugin.path"]) == settings.lib_dir / "connect-plugins"
    for topic in ("config", "offset", "status"):
        assert props[f"{topic}.storage.replication.factor"] == "1"
    # tasks a worker revoked while Kafka was frozen come back within seconds, not Connect's default 5 min
    assert int(props["scheduled.rebalance.max.delay.ms"]) == 0
    (program,) = service.programs()
    assert program.command[-2] == "org.apache.kafka.connect.cli.ConnectDistributed"
    assert "-Xmx512m" in program.command


def test_avro_converter_config_is_confluent_framed(settings: Settings) -> None:
    cfg = avro_converter_config(settings, "value")
    assert cfg["value.converter"] == AVRO_CONVERTER
    assert cfg["value.converter.apicurio.registry.url"] == "http://127.0.0.1:18081/apis/registry/v3"
    assert cfg["value.converter.apicurio.registry.headers.enabled"] == "false"
    assert cfg["value.converter.apicurio.registry.use-id"] == "contentId"
    assert all(k.startswith("key.converter") for k in avro_converter_config(settings, "key"))


def test_our_worker_resolves_schemas_with_our_class_and_a_users_worker_keeps_apicurios(
    settings: Settings, tmp_path: Path
) -> None:
    key = "value.converter.apicurio.registry.schema-resolver"
    resolver = avro_converter_config(settings, "value")[key]
    package, _, name = resolver.rpartition(".")
    source = JVM_DIR / "connect-schema-resolver" / "src" / package.replace(".", "/") / f"{name}.java"
    assert source in SCHEMA_RESOLVER_SOURCES and f"class {name}<" in source.read_text()
    theirs = Settings(data_dir=tmp_path, connect_url="http://connect.example:8083")
    assert key not in avro_converter_config(theirs, "value")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("cls", "field"),
    [(KafkaService, "kafka_port"), (RegistryService, "registry_port"), (ConnectService, "connect_port")],
)
def test_a_taken_port_is_a_clear_error(tmp_path: Path, taken_port: int, cls: type[Service], field: str) -> None:
    service = cls(Settings(data_dir=tmp_path, bind_host="127.0.0.1", **{field: taken_port}))  # type: ignore[arg-type]
    with pytest.raises(PortInUseError, match=f"{service.name}: port 127.0.0.1:{taken_port} is already taken"):
        service.start()
