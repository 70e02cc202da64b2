"""TLS to external clusters: CA files, a Kafka client certificate, the Spark connector's trust store, each
checked by the client that uses it (librdkafka loads the key, keytool builds the store, a real handshake)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from userstream.certificates import keytool
from userstream.config import Settings
from userstream.kafka_clients import client_config, jvm_client_props
from userstream.registry_clients import registry_client_config, registry_verify
from userstream.store.cassandra import cluster_options, spark_tls_conf, tls_context


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(folder: Path, tag: str, host: str) -> Pki:
    """A CA, and a certificate for ``host`` (a server's or a client's) that it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name(f"{tag} CA")).issuer_name(_name(f"{tag} CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pki = Pki(folder / f"{tag}-ca.pem", folder / f"{tag}.pem", folder / f"{tag}.key")
    pki.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return pki


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return _issue(tmp_path, "ours", "localhost")


def test_a_kafka_client_certificate_reaches_librdkafka_and_java_clients(tmp_path: Path, pki: Pki) -> None:
    s = Settings(
        data_dir=tmp_path, kafka_bootstrap="localhost:19093", kafka_security_protocol="SSL",
        kafka_ssl_ca_file=pki.ca, kafka_ssl_certificate_file=pki.cert, kafka_ssl_key_file=pki.key,
    )  # fmt: skip
    config = client_config(s, "monitor", "test")
    assert (config["ssl.ca.location"], config["ssl.certificate.location"], config["ssl.key.location"]) == (
        str(pki.ca),
        str(pki.cert),
        str(pki.key),
    )
    AdminClient(config)  # librdkafka loads and checks the certificate and key here: a bad pair raises
    props = jvm_client_props(s, "stream", "kafka.")
    assert props["kafka.ssl.keystore.type"] == "PEM" and props["kafka.ssl.truststore.location"] == str(pki.ca)
    keystore = Path(props["kafka.ssl.keystore.location"])
    assert stat.S_IMODE(keystore.stat().st_mode) == 0o600
    text = keystore.read_text()
    assert text.index("PRIVATE KEY") < text.index("CERTIFICATE"), "Kafka's PEM keystore: the key first"


def test_tls_settings_that_cannot_work_are_refused_with_the_fix(tmp_path: Path, pki: Pki) -> None:
    external = {"kafka_bootstrap": "b:9093", "kafka_security_protocol": "SSL"}
    cases = [
        ({**external, "kafka_ssl_certificate_file": pki.cert}, "set both or neither"),
        ({"cassandra_ssl_ca_file": pki.ca}, "USERSTREAM_CASSANDRA_CONTACT_POINTS"),
        ({"registry_ssl_ca_file": pki.ca}, "USERSTREAM_REGISTRY_URL"),
        ({"kafka_bootstrap": "b:9092", "kafka_ssl_certificate_file": pki.cert, "kafka_ssl_key_file": pki.key},
         "SSL or SASL_SSL"),
        ({**external, "kafka_ssl_ca_file": tmp_path / "missing.pem"}, "does not point to a file"),
    ]  # fmt: skip
    for fields, message in cases:
        with pytest.raises(ValidationError, match=message):
            Settings(data_dir=tmp_path, **fields)  # type: ignore[arg-type]


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[int]:
    """A TLS server on loopback presenting ``pki``'s certificate for "localhost": a port to handshake with."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert, pki.key)
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                pass  # a client that refused our certificate

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(5)
    listener.close()


def _handshake(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        return tls.recv(2)


def test_cassandra_clients_trust_exactly_the_configured_ca(tmp_path: Path, pki: Pki, tls_server: int) -> None:
    s = Settings(data_dir=tmp_path, cassandra_contact_points="localhost", cassandra_ssl_ca_file=pki.ca)
    assert _handshake(cluster_options(s, "monitor")["ssl_context"], tls_server) == b"ok"
    other = _issue(tmp_path, "theirs", "localhost")
    stranger = tls_context(Settings(data_dir=tmp_path, cassandra_contact_points="x", cassandra_ssl_ca_file=other.ca))
    assert stranger is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(stranger, tls_server)
    assert "ssl_context" not in cluster_options(Settings(data_dir=tmp_path), "monitor"), "ours: no TLS yet"


def test_the_spark_connector_gets_a_trust_store_of_the_ca(tmp_path: Path, pki: Pki) -> None:
    s = Settings(data_dir=tmp_path, cassandra_contact_points="db.example", cassandra_ssl_ca_file=pki.ca)
    conf = spark_tls_conf(s)
    assert conf["spark.cassandra.connection.ssl.enabled"] == "true"
    store, password = (
        Path(conf["spark.cassandra.connection.ssl.trustStore.path"]),
        conf["spark.cassandra.connection.ssl.trustStore.password"],
    )
    assert password == s.secret("cassandra_truststore_password") and stat.S_IMODE(store.stat().st_mode) == 0o600
    listing = subprocess.run(
        [keytool(), "-list", "-keystore", str(store), "-storetype", "PKCS12", "-storepass:env", "PW"],
        env={"PW": password, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "trustedCertEntry" in listing and "1 entry" in listing
    assert spark_tls_conf(s) == conf, "made once, reused"
    assert spark_tls_conf(Settings(data_dir=tmp_path)) == {}


def test_registry_clients_check_the_registrys_certificate_with_the_ca(tmp_path: Path, pki: Pki) -> None:
    s = Settings(data_dir=tmp_path, registry_url="https://reg.example/apis/ccompat/v7", registry_ssl_ca_file=pki.ca)
    config = registry_client_config(s, "monitor")
    assert config["ssl.ca.location"] == str(pki.ca)
    SchemaRegistryClient(config)  # a config the client takes
    context = registry_verify(s)
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ours CA"),),)]
    assert registry_verify(Settings(data_dir=tmp_path)) is True
