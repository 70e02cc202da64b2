"""Services: each service's process state and health probe, as ``userstream status`` shows them.

Each service is probed in its own :class:`SingleFlight` call with a deadline: one probe that hangs (a
driver connect that never returns) shows on that service's row and never holds up the others. Before,
one ``Stack.status()`` probed all services in turn inside the section's single call, and a hung probe
left the whole panel at "no answer within 4s" for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures

# the runtime's probes import these inside functions: loaded here, before any probe thread runs, those
# imports are lookups and cannot race each other (a partially initialised module, a deadlock)
import cassandra.cluster
import cassandra.policies  # noqa: F401
import supervisor.xmlrpc  # noqa: F401

from userstream.config import Settings
from userstream.monitor.collectors.base import SingleFlight, short
from userstream.monitor.models import ServiceHealth, ServicesSection
from userstream.runtime.base import Service, public_urls
from userstream.runtime.stack import Stack

__all__ = ["ServicesCollector", "public_urls"]


class ServicesCollector:
    def __init__(self, settings: Settings, *, probe_timeout_s: float = 4.0, hung_after_s: float = 30.0) -> None:
        self.probe_timeout_s = probe_timeout_s
        # built here, in the caller's thread: Stack loads every service's module
        self.stack = Stack(settings)
        self._probes = {
            name: SingleFlight(f"probe-{name}", self._prober(service), hung_after_s=hung_after_s)
            for name, service in self.stack.services.items()
        }
        self._last: dict[str, ServiceHealth] = {}

    @staticmethod
    def _prober(service: Service) -> Callable[[], ServiceHealth]:
        def probe() -> ServiceHealth:
            running = service.external or service.running()
            healthy, detail = (False, "stopped")
            if running:
                health = service.health()
                healthy, detail = health.healthy, health.detail
            return ServiceHealth(
                name=service.name, external=service.external, running=running, healthy=healthy, detail=detail,
                urls=public_urls(service.urls()),
            )  # fmt: skip

        return probe

    def collect(self) -> ServicesSection:
        futures = [f for p in self._probes.values() if (f := p.start_if_due()) is not None]
        pending: list[Future[ServiceHealth]] = [f for f in futures if not f.done()]
        if pending:
            wait_futures(pending, timeout=self.probe_timeout_s)
        rows = [self._row(name, probe) for name, probe in self._probes.items()]
        return ServicesSection(measured_at=time.time(), services=rows)

    def _row(self, name: str, probe: SingleFlight[ServiceHealth]) -> ServiceHealth:
        future = probe.future
        if future is not None and future.done():
            exc = future.exception()
            if exc is None:
                self._last[name] = future.result()
            else:
                self._last[name] = ServiceHealth(name=name, detail=f"status failed: {short(exc)}")
            return self._last[name]
        waited = f"health probe: no answer for {probe.running_for():.0f}s"
        last = self._last.get(name)
        if last is None:
            return ServiceHealth(name=name, detail=waited)
        return last.model_copy(update={"healthy": False, "detail": f"{waited} (last: {last.detail})"})
