"""A certificate authority per install, for the TLS between our own servers (Cassandra's internode port).

The CA's key and every certificate it issues live under ``<data dir>/secrets/tls`` (dir 0700, keys 0600),
made on first use with ``cryptography`` and kept after: no constant key material ships with userstream, and
only processes that can read that directory hold a certificate the servers accept.
"""

from __future__ import annotations

import datetime
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from userstream.secret_store import write_private

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
    """One server's TLS identity: ``keystore`` holds its PKCS#8 key then its certificate chain (Cassandra's
    PEM keystore format); ``ca`` is the certificate its peers must be signed by."""

    keystore: Path
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

    def issue(self, name: str, hosts: list[str]) -> Issued:
        """``name``'s key and certificate (server and client use: a node both accepts and dials its peers),
        kept while it is valid, signed by this CA, and naming ``hosts``; issued anew otherwise."""
        ca_cert, ca_key = self.authority()
        keystore = self.keystore_path(name)
        if self._still_good(keystore, ca_cert, hosts):
            return Issued(keystore, self.ca_path)
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
        write_private(keystore, _pem_key(key) + _pem_cert(cert) + _pem_cert(ca_cert))
        return Issued(keystore, self.ca_path)

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


__all__ = ["Issued", "LocalAuthority"]
