"""Every schema-registry client's login, with its component's identity: one place, so none is anonymous.

Our registry (``runtime.registry``) takes HTTP basic auth on every path, from Quarkus' own embedded users
(Apicurio 3's own authentication needs an OIDC provider; docs/architecture.md says why this instead):
the ``writer`` role may register, change and delete; any logged-in identity may read. An external registry
(``USERSTREAM_REGISTRY_URL``) takes ``USERSTREAM_REGISTRY_USERNAME``/``_PASSWORD`` for every component,
or nothing when they are unset.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal

from confluent_kafka.schema_registry import SchemaRegistryClient

from userstream.config import Settings
from userstream.secret_store import SecretName

__all__ = [
    "PASSWORD_SECRETS",
    "USERS",
    "WRITERS",
    "RegistryIdentity",
    "registry_client",
    "registry_client_config",
    "registry_login",
    "registry_verify",
]

RegistryIdentity = Literal["admin", "connect", "stream", "monitor"]
USERS: dict[RegistryIdentity, str] = {
    "admin": "userstream-admin",  # bootstrap (compatibility levels), benches, tests
    "connect": "userstream-connect",  # the Apicurio converter registers the CDC schemas
    "stream": "userstream-stream",  # the Spark job reads writer schemas by id
    "monitor": "userstream-monitor",  # the dashboard and the audit read
}
PASSWORD_SECRETS: dict[RegistryIdentity, SecretName] = {
    "admin": "registry_admin_password",
    "connect": "registry_connect_password",
    "stream": "registry_stream_password",
    "monitor": "registry_monitor_password",
}
WRITERS: frozenset[RegistryIdentity] = frozenset({"admin", "connect"})


def registry_login(settings: Settings, identity: RegistryIdentity) -> tuple[str, str] | None:
    """(user, password) of ``identity``; for an external registry its configured login, or None."""
    if settings.registry_url is not None:
        if settings.registry_username is None:
            return None
        return settings.registry_username, settings.registry_password or ""
    return USERS[identity], settings.secret(PASSWORD_SECRETS[identity])


def registry_client_config(settings: Settings, identity: RegistryIdentity, **extra: Any) -> dict[str, Any]:
    """confluent-kafka ``SchemaRegistryClient`` config of ``identity`` on the Confluent-compatible API."""
    config: dict[str, Any] = {"url": settings.registry_endpoint}
    if settings.registry_ca_file is not None:
        config["ssl.ca.location"] = str(settings.registry_ca_file)
    login = registry_login(settings, identity)
    if login is not None:
        config["basic.auth.user.info"] = f"{login[0]}:{login[1]}"
    return config | extra


def registry_verify(settings: Settings) -> ssl.SSLContext | bool:
    """httpx's ``verify`` for the registry: a context trusting its CA file (an external one's, or ours), else
    True (the system's CAs)."""
    ca = settings.registry_ca_file
    return ssl.create_default_context(cafile=str(ca)) if ca is not None else True


def registry_client(settings: Settings, identity: RegistryIdentity, **extra: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient(registry_client_config(settings, identity, **extra))
