"""A certificate authority per install for our servers' TLS, and the JVM trust stores made of a CA file.

The CA's key and every certificate it issues live under ``<data dir>/secrets/tls`` (dir 0700, keys 0600),
made on first use with ``cryptography`` and kept after: no constant key material ships with userstream, and
only processes that can read that directory hold a certificate the servers accept. Cassandra's internode
port always takes these; with ``USERSTREAM_TLS`` so do Kafka's client listener, CQL and the registry.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from userstream.errors import ConfigError, InstallError
from userstream.secret_store import new_secret, write_private

CA_DAYS = 3650
LEAF_DAYS = 825
RENEW_BEFORE = datetime.timedelta(days=30)  # a certificate this close to expiry is issued again at start


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Issued:
    """One server's TLS identity: ``keystore`` holds its PKCS#8 key then its certificate chain (the PEM
    keystore of Cassandra and Kafka), ``certificate`` and ``key`` the same apart (Quarkus); ``ca`` is the
    certificate its peers are checked against."""

    keystore: Path
    certificate: Path
    key: Path
    ca: Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_cert(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _valid(cert: x509.Certificate) -> bool:
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > RENEW_BEFORE


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@dataclass(frozen=True)
class LocalAuthority:
    """The install's CA in ``directory``: ``ca.pem`` (certificate), ``ca-key.pem`` (its key, 0600)."""

    directory: Path

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def _ca_key_path(self) -> Path:
        return self.directory / "ca-key.pem"

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        self.directory.parent.chmod(0o700)

    def _load_ca(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey] | None:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
            key = serialization.load_pem_private_key(self._ca_key_path.read_bytes(), password=None)
        except (FileNotFoundError, ValueError):
            return None
        if not isinstance(key, rsa.RSAPrivateKey) or not _valid(cert):
            return None
        return cert, key

    def authority(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        """The CA's certificate and key, made on first use (and again before it expires)."""
        self._ensure_dir()
        loaded = self._load_ca()
        if loaded is not None:
            return loaded
        # processes starting at once make one CA: the first holds the lock, the others then load its files
        fd = os.open(self.directory / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._load_ca() or self._new_authority()

    def _new_authority(self) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
        key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"userstream CA {secrets.token_hex(4)}")])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        write_private(self._ca_key_path, _pem_key(key))
        write_private(self.ca_path, _pem_cert(cert))
        return cert, key

    def keystore_path(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def issued(self, name: str) -> Issued:
        """The paths of ``name``'s files (made by :meth:`issue`)."""
        d = self.directory
        return Issued(self.keystore_path(name), d / f"{name}-cert.pem", d / f"{name}-key.pem", self.ca_path)

    def issue(self, name: str, hosts: list[str]) -> Issued:
        """``name``'s key and certificate (server and client use: a node both accepts and dials its peers),
        kept while it is valid, signed by this CA, and naming ``hosts``; issued anew otherwise."""
        ca_cert, ca_key = self.authority()
        issued = self.issued(name)
        if self._still_good(issued.keystore, ca_cert, hosts) and issued.certificate.exists() and issued.key.exists():
            return issued
        key = _key()
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([_san(h) for h in hosts]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        chain = _pem_cert(cert) + _pem_cert(ca_cert)
        write_private(issued.key, _pem_key(key))
        write_private(issued.certificate, chain)
        write_private(issued.keystore, _pem_key(key) + chain)  # last: its presence means the three are whole
        return issued

    def _still_good(self, keystore: Path, ca_cert: x509.Certificate, hosts: list[str]) -> bool:
        try:
            cert = x509.load_pem_x509_certificates(keystore.read_bytes())[0]
        except (FileNotFoundError, ValueError, IndexError):
            return False
        try:
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        try:
            cert.verify_directly_issued_by(ca_cert)  # a CA made anew (lost key) signs with another key
        except (ValueError, TypeError, InvalidSignature):
            return False
        return _valid(cert) and set(names) == {_san(h) for h in hosts}


def server_names(*hosts: str) -> list[str]:
    """The names a server's certificate carries: its own names or addresses, and localhost."""
    return list(dict.fromkeys([h for h in hosts if h != "0.0.0.0"] + ["localhost", "127.0.0.1"]))


def keytool() -> str:
    found = shutil.which("keytool")
    if found is None:
        raise InstallError("the JDK's keytool was not found", fix="install a JDK 17 (`apt-get install openjdk-17-jdk`)")
    return found


def pkcs12_trust_store(ca: Path, store: Path, password: str | None = None, *, setting: str = "the CA file") -> Path:
    """A PKCS12 trust store at ``store`` holding the PEM bundle ``ca``'s certificates (the JDK's keytool),
    remade when ``ca`` changes. Without ``password`` it has neither MAC nor encryption (public certificates
    only), so a JVM reads it with no password set: nothing to pass on a command line."""
    digest = hashlib.sha256(ca.read_bytes() + (password or "").encode()).hexdigest()
    stamp = store.with_suffix(".sha256")
    if store.exists() and stamp.exists() and stamp.read_text() == digest:
        return store
    store.parent.mkdir(parents=True, exist_ok=True)
    store.unlink(missing_ok=True)
    # keytool imports one certificate per call: a bundle is split first
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", ca.read_text(), re.S)
    if not blocks:
        raise ConfigError(f"{ca} holds no PEM certificate", fix=f"point {setting} at a PEM CA")
    unprotected = [] if password else [
        "-J-Dkeystore.pkcs12.certProtectionAlgorithm=NONE", "-J-Dkeystore.pkcs12.macAlgorithm=NONE"
    ]  # fmt: skip
    store_password = password or new_secret()  # keytool asks for one; an unprotected store never uses it
    for i, block in enumerate(blocks):
        one = store.parent / f".{store.stem}-{i}.pem"
        one.write_text(block + "\n")
        proc = subprocess.run(
            [keytool(), *unprotected, "-importcert", "-noprompt", "-alias", f"ca-{i}", "-file", str(one),
             "-keystore", str(store), "-storetype", "PKCS12", "-storepass:env", "US_TRUSTSTORE_PASSWORD"],
            env={**os.environ, "US_TRUSTSTORE_PASSWORD": store_password}, capture_output=True, text=True,
        )  # fmt: skip
        one.unlink()
        if proc.returncode != 0:
            raise ConfigError(f"keytool could not import {ca}: {proc.stderr.strip()[-300:]}", fix=f"check {setting}")
    store.chmod(0o600)
    write_private(stamp, digest)
    return store


__all__ = ["Issued", "LocalAuthority", "keytool", "pkcs12_trust_store", "server_names"]
