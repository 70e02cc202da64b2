"""The bundled randomuser-compatible API as a service (started when USERSTREAM_SOURCE_URL points at it)."""

from __future__ import annotations

import sys

import httpx

from userstream.runtime.base import Health, Service
from userstream.runtime.process import Program


class SourceService(Service):
    name = "source"
    start_timeout_s = 60.0

    @property
    def local_url(self) -> str:
        return self.settings.source_endpoint

    @property
    def configured_local(self) -> bool:
        return self.settings.source_url.rstrip("/") == self.local_url.rstrip("/")

    @property
    def external(self) -> bool:
        # the production default is the real randomuser.me: then there is nothing to run here, unless a demo
        # started the bundled one (`status` runs without the demo's environment, so it asks supervisord)
        return not self.configured_local and not self.processes.is_alive("source")

    @property
    def url(self) -> str:
        return self.settings.source_url if self.external else self.local_url

    @property
    def ports(self) -> list[int]:
        return [self.settings.source_port]

    def programs(self) -> list[Program]:
        if self.external:
            return []
        s = self.settings
        command = [sys.executable, "-m", "userstream.cli", "source", "serve", "--host", s.bind_host]
        return [Program(name="source", command=[*command, "--port", str(s.source_port)], stop_wait_s=10)]

    def health(self) -> Health:
        if self.external:
            # not probed: status must not send traffic to the public API (rate limits, offline machines)
            return Health(True, f"external {self.settings.source_url} (not probed)")
        try:
            resp = httpx.get(self.url, params={"results": "1", "noinfo": "1"}, timeout=3)
        except httpx.HTTPError as exc:
            return Health(False, type(exc).__name__)
        if resp.status_code != 200:
            return Health(False, f"HTTP {resp.status_code}")
        return Health(True, "bundled server, answering")

    def urls(self) -> dict[str, str]:
        return {"API": self.url}
