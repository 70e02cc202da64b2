"""The dashboard's access token: configured, or generated once into the data dir's secrets/."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from userstream.config import Settings

__all__ = ["dashboard_token", "dashboard_url", "token_file"]


def token_file(settings: Settings) -> Path:
    return settings.root / "secrets" / "dashboard_token"


def dashboard_token(settings: Settings) -> str:
    """``settings.dashboard_token``, else the token stored under the data dir (created on first use)."""
    if settings.dashboard_token:
        return settings.dashboard_token
    path = token_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    try:
        # O_EXCL: when the CLI and the supervised service race, exactly one token is written
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(24) + "\n")
    token = path.read_text().strip()
    if not token:  # an empty file (interrupted write): replace it
        path.unlink(missing_ok=True)
        return dashboard_token(settings)
    return token


def dashboard_url(settings: Settings, *, with_token: bool = True) -> str:
    base = f"http://{settings.bind_host}:{settings.dashboard_port}/"
    if with_token and settings.dashboard_require_token:
        return f"{base}?token={dashboard_token(settings)}"
    return base
