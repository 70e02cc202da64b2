"""USERSTREAM_TLS: our Kafka, Cassandra and registry configured for TLS only, with certificates of the install's
CA, and every client of ours checking them against that CA (no servers needed; the e2e test runs them)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from userstream.certificates import keytool, pkcs12_trust_store
from userstream.config import Settings
from userstream.kafka_clients import client_config, jvm_client_props
from userstream.registry_clients import registry_client_config, registry_verify
from userstream.runtime.cassandra import CassandraService
from userstream.runtime.connect import ConnectService
from userstream.runtime.kafka import KafkaService
from userstream.runtime.registry import RegistryService
from userstream.store.cassandra import spark_tls_conf, tls_context


@pytest.fixture
def ours(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, tls=True)


def test_off_by_default_nothing_changes(tmp_path: Path) -> None:
    plain = Settings(data_dir=tmp_path)
    assert client_config(plain, "monitor", "t")["security.protocol"] == "SASL_PLAINTEXT"
    assert plain.registry_endpoint.startswith("http://")
    assert tls_context(plain) is None and spark_tls_conf(plain) == {}
    assert "client_encryption_options" not in yaml.safe_load(CassandraService(plain).cassandra_yaml())
    assert "listener.name.client.ssl.keystore.location" not in KafkaService(plain).server_config()
    assert "quarkus.http.ssl-port" not in RegistryService(plain).system_properties()


def test_kafka_client_listener_is_sasl_ssl_and_clients_check_our_ca(ours: Settings) -> None:
    server = KafkaService(ours).server_config()
    assert str(server["listener.security.protocol.map"]).startswith("CLIENT:SASL_SSL,")
    assert "BROKER:SASL_PLAINTEXT" in str(server["listener.security.protocol.map"])
    keystore = Path(str(server["listener.name.client.ssl.keystore.location"]))
    assert keystore == ours.local_ca.keystore_path("kafka")
    assert ours.kafka_ca_file == ours.local_ca.ca_path
    config = client_config(ours, "stream", "t")
    assert config["security.protocol"] == "SASL_SSL" and config["ssl.ca.location"] == str(ours.local_ca.ca_path)
    props = jvm_client_props(ours, "connect", "producer.")
    assert props["producer.security.protocol"] == "SASL_SSL"
    assert props["producer.ssl.truststore.location"] == str(ours.local_ca.ca_path)


def test_cassandra_cql_takes_tls_only_and_clients_check_our_ca(ours: Settings) -> None:
    service = CassandraService(ours)
    conf = yaml.safe_load(service.cassandra_yaml())
    client = conf["client_encryption_options"]
    assert client["enabled"] is True and client["optional"] is False
    assert client["keystore"] == str(ours.local_ca.keystore_path("cassandra"))
    assert conf["server_encryption_options"]["require_client_auth"] is True
    context = tls_context(ours)
    assert context is not None and context.check_hostname


def test_registry_is_https_only_and_clients_check_our_ca(ours: Settings) -> None:
    props = RegistryService(ours).system_properties()
    assert props["quarkus.http.ssl-port"] == str(ours.registry_port)
    assert props["quarkus.http.insecure-requests"] == "disabled"
    assert props["quarkus.http.ssl.certificate.files"].endswith("registry-cert.pem")
    assert ours.registry_endpoint.startswith("https://")
    assert registry_client_config(ours, "monitor")["ssl.ca.location"] == str(ours.local_ca.ca_path)
    context = registry_verify(ours)
    assert not isinstance(context, bool) and len(context.get_ca_certs()) == 1


def test_servers_get_certificates_naming_their_address(ours: Settings) -> None:
    issued = ours.local_ca.issue("kafka", ["127.0.0.1", "localhost"])
    leaf = x509.load_pem_x509_certificate(issued.certificate.read_bytes())
    leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ours.local_ca.ca_path.read_bytes()))
    assert "PRIVATE KEY" in issued.key.read_text() and "PRIVATE KEY" not in issued.certificate.read_text()
    assert issued.keystore.read_text().index("PRIVATE KEY") < issued.keystore.read_text().index("CERTIFICATE")


def test_connect_trusts_the_registrys_ca_through_a_passwordless_trust_store(ours: Settings) -> None:
    connect = ConnectService(ours)
    ours.local_ca.authority()
    store = pkcs12_trust_store(ours.local_ca.ca_path, connect.registry_trust_store)
    flags = connect._registry_trust()
    assert f"-Djavax.net.ssl.trustStore={store}" in flags
    assert not any("trustStorePassword" in f for f in flags), "a trust store password on a command line"
    # the JVM reads it with no password (keytool -list without -storepass lists the CA)
    listed = subprocess.run(
        [keytool(), "-list", "-keystore", str(store), "-storetype", "PKCS12"],
        input="\n", capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "trustedCertEntry" in listed.stdout
