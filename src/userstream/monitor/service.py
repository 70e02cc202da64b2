"""The dashboard as a service of the stack: ``userstream up`` starts it like every other one."""

from __future__ import annotations

import sys

import httpx

from userstream.config import Settings
from userstream.monitor.auth import dashboard_token, dashboard_url
from userstream.runtime.base import Health, Service
from userstream.runtime.process import Program

__all__ = ["DashboardService", "settings_environment"]

# not needed by the dashboard, and its quotes/braces do not survive supervisor's environment syntax
_SKIP_FIELDS = frozenset({"cassandra_replication"})


def settings_environment(settings: Settings) -> dict[str, str]:
    """USERSTREAM_* variables reproducing ``settings`` in a child process.

    supervisord's environment is that of whichever command first started it, so the child gets every
    setting of *this* stack explicitly (unset endpoints stay unset: they mean "local").
    """
    env = {"USERSTREAM_DATA_DIR": str(settings.root)}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if name in _SKIP_FIELDS or name == "data_dir" or value is None:
            continue
        env[f"USERSTREAM_{name.upper()}"] = str(value)
    return env


class DashboardService(Service):
    name = "dashboard"
    # its imports alone (FastAPI, the Kafka, Cassandra and Postgres clients) take tens of seconds while every
    # JVM of the stack starts on the same two cores
    start_timeout_s = 120.0

    @property
    def ports(self) -> list[int]:
        return [self.settings.dashboard_port]

    def prepare(self) -> None:
        if self.settings.dashboard_require_token:
            dashboard_token(self.settings)  # generated here, once, so the CLI and the server agree

    def programs(self) -> list[Program]:
        return [
            Program(
                name="dashboard",
                command=[sys.executable, "-m", "userstream.monitor"],
                env=settings_environment(self.settings),
                cwd=self.settings.root,
                stop_wait_s=15,
            )
        ]

    def health(self) -> Health:
        url = f"http://{self.settings.bind_host}:{self.settings.dashboard_port}/healthz"
        try:
            # plain HTTP on loopback: verify=False spares loading the CA bundle (~20 ms CPU) at every probe
            response = httpx.get(url, timeout=2.0, verify=False)
        except httpx.HTTPError as exc:
            return Health(False, f"{url}: {type(exc).__name__}")
        if response.status_code != 200:
            return Health(False, f"GET /healthz -> HTTP {response.status_code}")
        try:
            uptime = float(response.json().get("uptime_s", 0.0))
        except (ValueError, AttributeError):
            return Health(False, "GET /healthz: not the userstream dashboard")
        return Health(True, f"serving, up {uptime:.0f}s")

    def urls(self) -> dict[str, str]:
        base = dashboard_url(self.settings, with_token=False)
        return {"dashboard": dashboard_url(self.settings), "metrics": f"{base}metrics"}
