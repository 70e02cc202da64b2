"""Secrets generated per install: one file each under ``<data dir>/secrets`` (dir 0700, files 0600).

A secret is created on first use, kept after, and replaced by :meth:`SecretStore.rotate`. Every component
reads it from here (or from its ``USERSTREAM_*`` override, see ``Settings.secret``), so none is a constant,
and none is passed on a command line.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

SecretName = Literal[
    "postgres_password",
    "postgres_ingest_password",
    "postgres_cdc_password",
    "postgres_monitor_password",
    "postgres_airflow_password",
    "postgres_registry_password",
    "airflow_admin_password",
    "airflow_api_secret_key",
    "airflow_jwt_secret",
    "dashboard_token",
    "cassandra_admin_password",
    "cassandra_stream_password",
    "cassandra_monitor_password",
    "cassandra_truststore_password",
    "spark_auth_secret",
    "spark_ui_password",
    "connect_rest_password",
    "kafka_broker_password",
    "kafka_admin_password",
    "kafka_connect_password",
    "kafka_stream_password",
    "kafka_monitor_password",
    "registry_admin_password",
    "registry_connect_password",
    "registry_stream_password",
    "registry_monitor_password",
]
SECRET_NAMES: tuple[SecretName, ...] = get_args(SecretName)

# the password of installs made before secrets were generated: found on an existing cluster, it is rotated
LEGACY_POSTGRES_PASSWORD = "userstream"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def write_private(path: Path, text: str) -> bool:
    """Write a file only its owner reads (0600), atomically; returns False when it already held ``text``.

    The file is created 0600 (never briefly readable by others) and swapped in by rename, so a reader sees
    the old or the new content, never a part.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        path.chmod(0o600)  # left 0644 by an older version
        return False
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)
    return True


@dataclass(frozen=True)
class SecretStore:
    directory: Path

    def path(self, name: SecretName) -> Path:
        return self.directory / name

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)

    def exists(self, name: SecretName) -> bool:
        return self.path(name).exists()

    def get(self, name: SecretName) -> str:
        """The secret, generated on first use (exactly one writer wins when processes race)."""
        path = self.path(name)
        try:
            value = path.read_text().strip()
        except FileNotFoundError:
            value = ""
        if value:
            if path.stat().st_mode & 0o077:  # written by an older version with the default umask
                path.chmod(0o600)
            return value
        self._ensure_dir()
        # the whole value in a private temp file, then linked in: link() fails if the name exists, so exactly
        # one writer wins, and no reader ever sees an empty or partly written file
        tmp = path.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new_secret())  # no newline: Connect's DirectoryConfigProvider reads the file as it is
        try:
            os.link(tmp, path)
        except FileExistsError:  # another writer won: its value is the one ...
            if not path.read_text().strip():  # ... unless it is an empty file an older version's write left
                os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text().strip()

    def put(self, name: SecretName, value: str) -> None:
        """Write ``value`` atomically (readers see the old or the new one, never a part)."""
        self._ensure_dir()
        write_private(self.path(name), value)

    def rotate(self, name: SecretName) -> tuple[str, str]:
        """(old, new): a new random value replaces the old one; the caller applies it to the service."""
        old = self.get(name)
        new = new_secret()
        self.put(name, new)
        return old, new


__all__ = ["LEGACY_POSTGRES_PASSWORD", "SECRET_NAMES", "SecretName", "SecretStore", "new_secret", "write_private"]
