"""Apicurio Registry 3: schemas in our Postgres, the Confluent-compatible API at /apis/ccompat/v7."""

from __future__ import annotations

from pathlib import Path

import httpx

from userstream.certificates import server_names
from userstream.config import Settings
from userstream.registry_clients import PASSWORD_SECRETS, USERS, WRITERS, registry_login, registry_verify
from userstream.runtime.archives import unpack_once
from userstream.runtime.base import Health, Reporter, Service, java, maven_install, tcp_open
from userstream.runtime.process import Program
from userstream.secret_store import write_private
from userstream.store.postgres import conninfo_params

CCOMPAT_PATH = "/apis/ccompat/v7"
TLS_IDENTITY = "registry"
# Quarkus' HTTP permissions: writes need the writer role, every other request a login
_PERMISSIONS = """\
quarkus.http.auth.basic=true
quarkus.security.users.embedded.enabled=true
quarkus.security.users.embedded.plain-text=true
quarkus.http.auth.permission.write.paths=/*
quarkus.http.auth.permission.write.methods=POST,PUT,PATCH,DELETE
quarkus.http.auth.permission.write.policy=userstream-writers
quarkus.http.auth.policy.userstream-writers.roles-allowed=writer
quarkus.http.auth.permission.read.paths=/*
quarkus.http.auth.permission.read.policy=authenticated
"""
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
            **self._https(),
        }

    def _https(self) -> dict[str, str]:
        """USERSTREAM_TLS: https only, on the same port, with a certificate of the install's CA."""
        s = self.settings
        if not s.tls:
            return {}
        issued = s.local_ca.issued(TLS_IDENTITY)
        return {
            "quarkus.http.port": "0",  # not opened (insecure requests disabled); 0 so nothing else is implied
            "quarkus.http.ssl-port": str(s.registry_port),
            "quarkus.http.insecure-requests": "disabled",
            "quarkus.http.ssl.certificate.files": str(issued.certificate),
            "quarkus.http.ssl.certificate.key-files": str(issued.key),
        }

    @property
    def auth_file(self) -> Path:
        """Who may use the registry: Quarkus' embedded users and HTTP permissions (0600, rewritten each start)."""
        return self.data_path / "auth.properties"

    def auth_properties(self) -> str:
        lines = ["# generated by userstream at each start from the secrets dir", _PERMISSIONS.rstrip()]
        for identity, user in USERS.items():
            role = "writer" if identity in WRITERS else "reader"
            lines.append(
                f"quarkus.security.users.embedded.users.{user}={self.settings.secret(PASSWORD_SECRETS[identity])}"
            )
            lines.append(f"quarkus.security.users.embedded.roles.{user}={role}")
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        if self.settings.tls:
            self.settings.local_ca.issue(TLS_IDENTITY, server_names(self.settings.node_host, self.settings.bind_host))
        write_private(self.auth_file, self.auth_properties())

    def environment(self) -> dict[str, str]:
        """Database credentials go by environment (Quarkus maps APICURIO_X_Y to apicurio.x.y), not argv; the
        logins in a private file Quarkus reads as one more config source."""
        jdbc_url, user, password = registry_jdbc(self.settings)
        return {
            "APICURIO_DATASOURCE_URL": jdbc_url,
            "APICURIO_DATASOURCE_USERNAME": user,
            "APICURIO_DATASOURCE_PASSWORD": password,
            "QUARKUS_CONFIG_LOCATIONS": str(self.auth_file),
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
            resp = httpx.get(
                f"{self.settings.registry_endpoint.rstrip('/')}/subjects",
                auth=registry_login(self.settings, "monitor"),
                verify=registry_verify(self.settings),
                timeout=3.0,
            )
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
