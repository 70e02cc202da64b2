"""The install's certificate authority: made once, private, reused, and a handshake trusts exactly it."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from cryptography import x509

from userstream.certificates import LocalAuthority


@pytest.fixture
def authority(tmp_path: Path) -> LocalAuthority:
    return LocalAuthority(tmp_path / "secrets" / "tls")


def test_issued_once_private_and_reused(authority: LocalAuthority) -> None:
    issued = authority.issue("node", ["127.0.0.1", "node1"])
    first = issued.keystore.read_bytes()
    assert authority.issue("node", ["127.0.0.1", "node1"]).keystore.read_bytes() == first
    assert authority.directory.stat().st_mode & 0o777 == 0o700
    for path in authority.directory.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    leaf = x509.load_pem_x509_certificates(first)[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(n) for n in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["node1"]
    # other hosts, or a CA made anew (its key lost), issue a new certificate
    assert authority.issue("node", ["127.0.0.2"]).keystore.read_bytes() != first
    again = authority.issue("node", ["127.0.0.1", "node1"]).keystore.read_bytes()
    (authority.directory / "ca-key.pem").unlink()
    renewed = authority.issue("node", ["127.0.0.1", "node1"]).keystore.read_bytes()
    assert renewed != again
    x509.load_pem_x509_certificates(renewed)[0].verify_directly_issued_by(
        x509.load_pem_x509_certificate(authority.ca_path.read_bytes())
    )


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """None when a mutual-TLS handshake (and one byte each way) succeeds, else the server's error."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(tls.recv(1))
        except OSError as exc:
            errors.append(str(exc))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname(), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"x")
            tls.recv(1)
    except OSError:
        pass
    thread.join(10)
    listener.close()
    return errors[0] if errors else None


def test_mutual_tls_takes_its_own_peers_only(tmp_path: Path) -> None:
    ours, theirs = LocalAuthority(tmp_path / "a"), LocalAuthority(tmp_path / "b")
    node = ours.issue("node", ["127.0.0.1"])
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(node.keystore)
    server.load_verify_locations(node.ca)
    server.verify_mode = ssl.CERT_REQUIRED

    def client(keystore: Path | None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(node.ca)  # and the server's name (127.0.0.1) is checked against its SAN
        if keystore is not None:
            ctx.load_cert_chain(keystore)
        return ctx

    assert _handshake(server, client(ours.issue("peer", ["127.0.0.1"]).keystore)) is None
    assert _handshake(server, client(None)) is not None  # no certificate
    assert _handshake(server, client(theirs.issue("peer", ["127.0.0.1"]).keystore)) is not None  # another CA
