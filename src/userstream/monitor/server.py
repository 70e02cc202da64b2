"""Run the dashboard under uvicorn (the ``userstream dashboard`` command and the supervised service)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import uvicorn

from userstream.config import Settings
from userstream.errors import PortInUseError
from userstream.monitor.app import create_app
from userstream.monitor.auth import dashboard_token, dashboard_url, token_file
from userstream.runtime.base import port_free

__all__ = ["serve"]


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(settings: Settings, *, announce: Callable[[str], None] = print, show_token: bool = True) -> None:
    """Serve on ``bind_host:dashboard_port`` until interrupted; ``announce`` receives the URL.

    ``show_token=False`` (the supervised service, whose output goes to a log file) names the token's file
    instead of printing the token.
    """
    host, port = settings.bind_host, settings.dashboard_port
    if not port_free(host, port):
        raise PortInUseError(
            f"dashboard: port {host}:{port} is already taken by another process",
            fix=f"stop whatever listens there (`ss -ltnp 'sport = :{port}'`) or set USERSTREAM_DASHBOARD_PORT",
        )
    if not settings.dashboard_require_token and not _loopback(host):
        announce(f"warning: the dashboard is open (no token) on the non-loopback address {host}")
    app = create_app(settings, token=dashboard_token(settings) if settings.dashboard_require_token else None)
    if show_token or not settings.dashboard_require_token:
        announce(f"dashboard: {dashboard_url(settings)}")
    else:
        base = dashboard_url(settings, with_token=False)
        announce(f"dashboard: {base}  (open it with ?token=<the token in {token_file(settings)}>)")
    # access logs off: the page polls every 2 s and would flood the log
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
