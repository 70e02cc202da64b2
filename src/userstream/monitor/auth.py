"""The dashboard's access token: configured, or generated once into the data dir's secrets/."""

from __future__ import annotations

from pathlib import Path

from userstream.config import Settings

__all__ = ["dashboard_token", "dashboard_url", "token_file"]


def token_file(settings: Settings) -> Path:
    return settings.secret_store.path("dashboard_token")


def dashboard_token(settings: Settings) -> str:
    """``settings.dashboard_token``, else the token generated for this install (created on first use)."""
    return settings.secret("dashboard_token")


def dashboard_url(settings: Settings, *, with_token: bool = True) -> str:
    base = settings.dashboard_endpoint
    if with_token and settings.dashboard_require_token:
        return f"{base}?token={dashboard_token(settings)}"
    return base
