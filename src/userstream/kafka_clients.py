"""Every Kafka client's config, with its component's identity: one place, so none connects anonymously.

Our broker (see ``runtime.kafka``) takes SASL/SCRAM-SHA-512 on its client listener (over TLS with
``USERSTREAM_TLS``), one generated login per component, and authorizes each with ACLs
(``runtime.kafka_acls``). An external cluster (``USERSTREAM_KAFKA_BOOTSTRAP``) takes what its settings
say: ``kafka_security_protocol``, the SASL mechanism and login, and a CA file; there the one configured
login serves every component.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from userstream.config import Settings
from userstream.errors import ConfigError
from userstream.kafkalog import with_logger
from userstream.secret_store import SecretName, write_private

__all__ = [
    "MONITOR_GROUP_PREFIX",
    "PASSWORD_SECRETS",
    "PRINCIPALS",
    "KafkaIdentity",
    "client_config",
    "jvm_client_props",
    "login",
    "pem_keystore",
]

KafkaIdentity = Literal["admin", "connect", "stream", "monitor"]
# the SCRAM user of each identity on our broker (ACL principals are "User:<name>")
PRINCIPALS: dict[KafkaIdentity, str] = {
    "admin": "userstream-admin",
    "connect": "userstream-connect",
    "stream": "userstream-stream",
    "monitor": "userstream-monitor",
}
PASSWORD_SECRETS: dict[KafkaIdentity, SecretName] = {
    "admin": "kafka_admin_password",
    "connect": "kafka_connect_password",
    "stream": "kafka_stream_password",
    "monitor": "kafka_monitor_password",
}
# the monitor may join only groups named so (the dashboard's, the audit's, the checks')
MONITOR_GROUP_PREFIX = "userstream-monitor"
LOCAL_PROTOCOL = "SASL_PLAINTEXT"
LOCAL_MECHANISM = "SCRAM-SHA-512"


def _security(settings: Settings) -> tuple[str, str]:
    """(security.protocol, sasl.mechanism) of the cluster the settings point at."""
    if settings.kafka_bootstrap is None:
        return ("SASL_SSL" if settings.tls else LOCAL_PROTOCOL), LOCAL_MECHANISM
    return settings.kafka_security_protocol, settings.kafka_sasl_mechanism


def login(settings: Settings, identity: KafkaIdentity) -> tuple[str, str] | None:
    """(user, password) of ``identity``, or None where the cluster takes no SASL login."""
    protocol, _ = _security(settings)
    if not protocol.startswith("SASL"):
        return None
    if settings.kafka_bootstrap is not None:
        return settings.kafka_sasl_username or "", settings.kafka_sasl_password or ""
    return PRINCIPALS[identity], settings.secret(PASSWORD_SECRETS[identity])


def client_config(settings: Settings, identity: KafkaIdentity, client: str, **extra: Any) -> dict[str, Any]:
    """A librdkafka (confluent-kafka) config: bootstrap, security, ``extra``, and the logger of ``client``."""
    protocol, mechanism = _security(settings)
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_bootstrap_servers, "security.protocol": protocol}
    creds = login(settings, identity)
    if creds is not None:
        config |= {"sasl.mechanism": mechanism, "sasl.username": creds[0], "sasl.password": creds[1]}
    if protocol.endswith("SSL"):
        if settings.kafka_ca_file is not None:
            config["ssl.ca.location"] = str(settings.kafka_ca_file)
        if settings.kafka_ssl_certificate_file is not None and settings.kafka_ssl_key_file is not None:
            config["ssl.certificate.location"] = str(settings.kafka_ssl_certificate_file)
            config["ssl.key.location"] = str(settings.kafka_ssl_key_file)
            if settings.kafka_ssl_key_password:
                config["ssl.key.password"] = settings.kafka_ssl_key_password
    return with_logger({**config, **extra}, client)


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def jvm_client_props(settings: Settings, identity: KafkaIdentity, prefix: str = "") -> dict[str, str]:
    """The same for a Java client (Connect's worker with its ``producer.``/``consumer.``/``admin.`` prefixes,
    the Spark job's ``kafka.`` options). Java clients log ``sasl.jaas.config`` as [hidden]."""
    protocol, mechanism = _security(settings)
    props = {"security.protocol": protocol}
    creds = login(settings, identity)
    if creds is not None:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        props |= {
            "sasl.mechanism": mechanism,
            "sasl.jaas.config": f'{module} required username="{_jaas_quote(creds[0])}" '
            f'password="{_jaas_quote(creds[1])}";',
        }
    if protocol.endswith("SSL"):
        if settings.kafka_ca_file is not None:
            props |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(settings.kafka_ca_file)}
        if settings.kafka_ssl_certificate_file is not None:
            props |= {"ssl.keystore.type": "PEM", "ssl.keystore.location": str(pem_keystore(settings))}
            if settings.kafka_ssl_key_password:
                props["ssl.key.password"] = settings.kafka_ssl_key_password
    props |= _failover_timeouts(settings)
    return {f"{prefix}{key}": value for key, value in props.items()}


def _failover_timeouts(settings: Settings) -> dict[str, str]:
    """On several brokers a request stuck on one that died is retried on its partition's new leader: after
    10 s, not the Java clients' 30 s (40 s for Connect's worker), which stalled CDC for 30 s when a broker was
    killed. And the metadata is re-read every 5 s: a client whose one refresh came before the dead broker was
    fenced kept its batches for that broker's partitions until the broker came back (its failed connections
    ask for no refresh; the default age is 5 min): 24-26 s without a record produced on a 20 s loss. One
    broker of ours: nowhere else to go, the defaults stay."""
    if not settings.kafka_has_failover:
        return {}
    return {
        "request.timeout.ms": "10000",
        "socket.connection.setup.timeout.ms": "3000",
        "socket.connection.setup.timeout.max.ms": "10000",
        "metadata.max.age.ms": "5000",
    }


def pem_keystore(settings: Settings) -> Path:
    """Java clients read a PEM keystore as one file, the key before its certificate chain: made from the two
    files the settings name (0600, under the data dir), remade when they change."""
    cert, key = settings.kafka_ssl_certificate_file, settings.kafka_ssl_key_file
    if cert is None or key is None:
        raise ConfigError(
            "no Kafka client certificate is configured",
            fix="set USERSTREAM_KAFKA_SSL_CERTIFICATE_FILE and USERSTREAM_KAFKA_SSL_KEY_FILE",
        )
    path = settings.state_dir / "tls" / "kafka-client-keystore.pem"
    write_private(path, key.read_text().strip() + "\n" + cert.read_text().strip() + "\n")
    return path
