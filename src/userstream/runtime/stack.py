"""The whole stack: every service behind the one contract, started in dependency order."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.runtime.base import Health, Reporter, Service, SilentReporter
from userstream.runtime.process import ProcessManager

# name -> "module:Class"; the order is the order of `userstream status` and of installs
SERVICE_CLASSES: dict[str, str] = {
    "source": "userstream.runtime.source:SourceService",
    "postgres": "userstream.runtime.postgres:PostgresService",
    "kafka": "userstream.runtime.kafka:KafkaService",
    "registry": "userstream.runtime.registry:RegistryService",
    "connect": "userstream.runtime.connect:ConnectService",
    "cassandra": "userstream.runtime.cassandra:CassandraService",
    "spark": "userstream.runtime.spark:SparkService",
    "airflow": "userstream.runtime.airflow:AirflowService",
    "watchdog": "userstream.runtime.watchdog:WatchdogService",
    "dashboard": "userstream.monitor.service:DashboardService",
}


# services only `userstream run` runs (a container's role): locally `bootstrap` starts the job beside the stack
RUN_ONLY_CLASSES: dict[str, str] = {"stream": "userstream.stream.service:StreamJobService"}


def load_service_class(name: str) -> type[Service]:
    module_name, class_name = {**SERVICE_CLASSES, **RUN_ONLY_CLASSES}[name].split(":")
    cls: type[Service] = getattr(importlib.import_module(module_name), class_name)
    return cls


def runnable_service(settings: Settings, name: str) -> Service:
    """The service `userstream run NAME` runs in the foreground: one of the stack's, or the streaming job."""
    if name not in SERVICE_CLASSES and name not in RUN_ONLY_CLASSES:
        choices = ", ".join([*SERVICE_CLASSES, *RUN_ONLY_CLASSES])
        raise ServiceError(f"unknown service {name!r}", fix=f"choose from {choices}")
    return load_service_class(name)(settings)


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    external: bool
    running: bool
    health: Health
    urls: dict[str, str]


class Stack:
    def __init__(self, settings: Settings, names: Iterable[str] | None = None) -> None:
        self.settings = settings
        self.processes = ProcessManager(settings)
        wanted = list(names) if names is not None else list(SERVICE_CLASSES)
        unknown = [n for n in wanted if n not in SERVICE_CLASSES]
        if unknown:
            raise ServiceError(
                f"unknown service(s): {', '.join(unknown)}", fix=f"choose from {', '.join(SERVICE_CLASSES)}"
            )
        # pull in dependencies so `up kafka connect` also starts what connect needs
        closed: list[str] = []

        def visit(name: str) -> None:
            if name in closed:
                return
            for dep in load_service_class(name).depends_on:
                visit(dep)
            closed.append(name)

        for n in wanted:
            visit(n)
        self.services: dict[str, Service] = {
            n: load_service_class(n)(settings, self.processes) for n in SERVICE_CLASSES if n in closed
        }

    def install(self, reporter: Reporter | None = None) -> dict[str, float]:
        reporter = reporter or SilentReporter()
        timings: dict[str, float] = {}
        for service in self.services.values():
            if service.external:
                continue
            t0 = time.monotonic()
            service.install(reporter)
            timings[service.name] = time.monotonic() - t0
        return timings

    def up(
        self,
        reporter: Reporter | None = None,
        on_healthy: Callable[[str, float], None] | None = None,
    ) -> dict[str, float]:
        """Start every service as soon as its dependencies are healthy; return seconds per service."""
        reporter = reporter or SilentReporter()
        self.install(reporter)
        timings: dict[str, float] = {}
        started = time.monotonic()
        pending = dict(self.services)
        done: set[str] = set()
        futures: dict[Future[None], str] = {}

        def run(service: Service) -> None:
            t0 = time.monotonic()
            service.start(reporter)
            timings[service.name] = time.monotonic() - t0
            if on_healthy:
                on_healthy(service.name, time.monotonic() - started)

        with ThreadPoolExecutor(max_workers=len(self.services) or 1) as pool:
            while pending or futures:
                for name, service in list(pending.items()):
                    if all(d in done or d not in self.services for d in service.depends_on):
                        reporter.step(f"starting {name}")
                        futures[pool.submit(run, service)] = name
                        del pending[name]
                if not futures:
                    break
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    name = futures.pop(fut)
                    fut.result()  # re-raise the service's error
                    done.add(name)
        timings["total"] = time.monotonic() - started
        return timings

    def down(self, reporter: Reporter | None = None) -> None:
        reporter = reporter or SilentReporter()
        if not self.processes.daemon_running():
            return
        if "spark" in self.services:
            # jobs started beside the services (the streaming job) read and write all of them: they stop
            # first, cleanly, rather than fail on a closed Cassandra or be killed with the daemon
            owned = {p.name for service in self.services.values() for p in service.programs()}
            for job in sorted(set(self.processes.running_pids()) - owned):
                reporter.step(f"stopping job {job}")
                self.processes.stop(job)
        # a service stops once everything that depends on it has stopped; independent ones in parallel
        dependents = {n: {m for m, s in self.services.items() if n in s.depends_on} for n in self.services}
        pending = dict(self.services)
        stopped: set[str] = set()
        futures: dict[Future[None], str] = {}

        def stop(service: Service) -> None:
            if service.running():
                reporter.step(f"stopping {service.name}")
                service.stop()

        with ThreadPoolExecutor(max_workers=len(self.services) or 1) as pool:
            while pending or futures:
                for name, service in list(pending.items()):
                    if dependents[name] <= stopped:
                        futures[pool.submit(stop, service)] = name
                        del pending[name]
                if not futures:
                    break
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for fut in finished:
                    stopped.add(futures.pop(fut))
                    fut.result()
        if set(self.services) == set(SERVICE_CLASSES):
            self.processes.shutdown_daemon()

    def status(self) -> list[ServiceStatus]:
        out = []
        for service in self.services.values():
            running = service.external or service.running()
            health = service.health() if running else Health(False, "stopped")
            out.append(ServiceStatus(service.name, service.external, running, health, service.urls()))
        return out
