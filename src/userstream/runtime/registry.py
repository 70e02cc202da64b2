"""Apicurio Registry 3: schemas in our Postgres, the Confluent-compatible API at /apis/ccompat/v7."""

from __future__ import annotations

from pathlib import Path

import httpx

from userstream.config import Settings
from userstream.runtime.archives import unpack_once
from userstream.runtime.base import Health, Reporter, Service, java, maven_install, tcp_open
from userstream.runtime.process import Program
from userstream.store.postgres import conninfo_params

CCOMPAT_PATH = "/apis/ccompat/v7"
NATIVE_PATH = "/apis/registry/v3"


def registry_base_url(settings: Settings) -> str:
    """The registry's root URL (no API path), derived from the Confluent-compatible endpoint."""
    endpoint = settings.registry_endpoint.rstrip("/")
    return endpoint[: -len(CCOMPAT_PATH)] if endpoint.endswith(CCOMPAT_PATH) else endpoint


def registry_native_url(settings: Settings) -> str:
    """Apicurio's own v3 API, which Apicurio's serdes and Kafka Connect converter talk to."""
    return registry_base_url(settings) + NATIVE_PATH


def registry_jdbc(settings: Settings) -> tuple[str, str, str]:
    """(JDBC URL, user, password) of the registry's database, on our Postgres or the external one."""
    pg = conninfo_params(settings, "registry")  # the registry's own role, owner of its database
    return f"jdbc:postgresql://{pg['host']}:{pg['port']}/{pg['dbname']}", pg["user"], pg.get("password", "")


class RegistryService(Service):
    name = "registry"
    depends_on = ("postgres",)
    start_timeout_s = 240.0  # cold JVMs all starting at once on two slow cores take minutes

    @property
    def external(self) -> bool:
        return self.settings.registry_url is not None

    @property
    def ports(self) -> list[int]:
        return [self.settings.registry_port]

    @property
    def lib(self) -> Path:
        return self.settings.lib_dir / "registry"

    @property
    def app_dir(self) -> Path:
        return self.lib / "app"

    @property
    def runner_jar(self) -> Path:
        """The Quarkus runner (its manifest names lib/*); a placeholder path until installed."""
        jars = sorted(self.app_dir.glob("apicurio-registry-app-*-runner.jar"))
        return jars[-1] if jars else self.app_dir / "apicurio-registry-app-runner.jar"

    def install(self, reporter: Reporter) -> None:
        maven_install(
            "registry", self.lib, reporter, extra_goals=["dependency:copy@registry-app", f"-Dus.dest={self.lib}"]
        )
        unpack_once(self.lib / "apicurio-registry-app.tar.gz", self.app_dir, reporter, "registry")

    def system_properties(self) -> dict[str, str]:
        s = self.settings
        return {
            "quarkus.http.host": s.bind_host,
            "quarkus.http.port": str(s.registry_port),
            # schemas live in Postgres (database "registry"), so they survive down/up
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "postgresql",
            # defaults are 20..100 connections: far too many for a laptop Postgres
            "apicurio.datasource.jdbc.initial-size": "2",
            "apicurio.datasource.jdbc.min-size": "2",
            "apicurio.datasource.jdbc.max-size": "10",
            # ccompat schema ids = Apicurio content ids, which is what the Apicurio converter writes
            "apicurio.ccompat.legacy-id-mode.enabled": "false",
            # let tests and the bootstrap DAG delete subjects/versions through the Confluent API
            "apicurio.rest.deletion.artifact.enabled": "true",
            "apicurio.rest.deletion.artifact-version.enabled": "true",
            "apicurio.rest.deletion.group.enabled": "true",
            # health probes would flood the log with one access line each
            "quarkus.http.access-log.enabled": "false",
            "quarkus.log.console.format": "%d{yyyy-MM-dd HH:mm:ss} %p [%c{3.}] (%t) %m%n",
        }

    def environment(self) -> dict[str, str]:
        """Database credentials go by environment (Quarkus maps APICURIO_X_Y to apicurio.x.y), not argv."""
        jdbc_url, user, password = registry_jdbc(self.settings)
        return {
            "APICURIO_DATASOURCE_URL": jdbc_url,
            "APICURIO_DATASOURCE_USERNAME": user,
            "APICURIO_DATASOURCE_PASSWORD": password,
        }

    def programs(self) -> list[Program]:
        if self.external:
            return []
        props = [f"-D{k}={v}" for k, v in self.system_properties().items()]
        return [
            Program(
                name="registry",
                command=[
                    java(),
                    f"-Xms{self.settings.registry_heap}",
                    f"-Xmx{self.settings.registry_heap}",
                    # a small single-user service: serial GC keeps the footprint down
                    "-XX:+UseSerialGC",
                    "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
                    *props,
                    "-jar",
                    str(self.runner_jar),
                ],
                env=self.environment(),
                cwd=self.app_dir,
                stop_wait_s=30,
                start_secs=3,
            )
        ]

    def health(self) -> Health:
        base = registry_base_url(self.settings)
        if not self.external and not tcp_open(self.settings.bind_host, self.settings.registry_port):
            return Health(False, f"port {self.settings.registry_port} closed")
        try:
            resp = httpx.get(f"{self.settings.registry_endpoint.rstrip('/')}/subjects", timeout=3.0)
        except httpx.HTTPError as exc:
            return Health(False, f"{base}: {type(exc).__name__}")
        if resp.status_code != 200:
            return Health(False, f"GET /subjects -> HTTP {resp.status_code}")
        return Health(True, f"{len(resp.json())} subject(s)")

    def urls(self) -> dict[str, str]:
        return {
            "ccompat API": self.settings.registry_endpoint,
            "native API": registry_native_url(self.settings),
        }
