"""`userstream secrets show|rotate`: what a person needs to log in, and new secrets applied to the services.

Each rotatable service names the secrets it owns; rotating sets the new value where the server keeps it
(Postgres' role), stores it, and restarts the programs that read it at start. Long-lived clients (the
dashboard, the watchdog, DAG tasks) read the store for each new connection, so they follow on their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from userstream.cdc import ensure_connector
from userstream.cdc.connector import restart_connector
from userstream.config import Settings
from userstream.errors import ConfigError
from userstream.monitor.auth import dashboard_url
from userstream.monitor.service import DashboardService
from userstream.registry_clients import PASSWORD_SECRETS as REGISTRY_PASSWORDS
from userstream.registry_clients import USERS
from userstream.runtime.airflow import ADMIN_USER, AirflowService
from userstream.runtime.base import Reporter, Service, SilentReporter
from userstream.runtime.connect import ConnectService
from userstream.runtime.kafka import KafkaService
from userstream.runtime.postgres import PostgresService
from userstream.runtime.process import ProcessManager
from userstream.runtime.registry import RegistryService
from userstream.runtime.spark import SparkService
from userstream.runtime.spark_ui_auth import ui_login
from userstream.secret_store import SECRET_NAMES, SecretName
from userstream.store.postgres import PASSWORD_SECRETS
from userstream.stream import ensure_job_running, stop_job

ROTATABLE: dict[str, tuple[SecretName, ...]] = {
    "postgres": tuple(PASSWORD_SECRETS.values()),
    "airflow": ("airflow_admin_password", "airflow_api_secret_key", "airflow_jwt_secret"),
    "dashboard": ("dashboard_token",),
    "kafka": (
        "kafka_broker_password",
        "kafka_admin_password",
        "kafka_connect_password",
        "kafka_stream_password",
        "kafka_monitor_password",
    ),
    "registry": tuple(REGISTRY_PASSWORDS.values()),
}


@dataclass(frozen=True)
class SecretInfo:
    name: SecretName
    path: str
    overridden: bool  # set by its USERSTREAM_* variable: not read from the store


def secrets_overview(settings: Settings) -> tuple[dict[str, str], list[SecretInfo]]:
    """(logins a person needs, every secret's file), generating what is missing."""
    for name in SECRET_NAMES:
        settings.secret(name)
    postgres = PostgresService(settings)
    airflow_password = settings.secret("airflow_admin_password")
    spark, (spark_user, spark_password) = SparkService(settings), ui_login(settings)
    spark_uis = f"{spark.urls().get('master UI')}, {spark.urls().get('worker UI')}, the driver's (4040)"
    logins = {
        "Airflow UI": f"{settings.airflow_endpoint}  user {ADMIN_USER}  password {airflow_password}",
        "Spark UIs": "external master: its UIs are not ours"
        if spark.external
        else f"{spark_uis}  user {spark_user}  password {spark_password}",
        "dashboard": dashboard_url(settings),
        "schema registry": "external (USERSTREAM_REGISTRY_URL)"
        if settings.registry_url is not None
        else f"{settings.registry_endpoint}  user {USERS['admin']}  (password: the registry_admin_password file)",
        "postgres": "external (USERSTREAM_POSTGRES_DSN)"
        if postgres.external
        else f"{postgres.urls()['postgres']}  (admin; password: the postgres_password file)",
    }
    store = settings.secret_store
    infos = [SecretInfo(n, str(store.path(n)), bool(getattr(settings, n, None))) for n in SECRET_NAMES]
    return logins, infos


def rotate(settings: Settings, service: str | None = None, reporter: Reporter | None = None) -> list[str]:
    """Rotate the secrets of ``service`` (default: every rotatable one); returns the secrets rotated."""
    reporter = reporter or SilentReporter()
    chosen = [service] if service else list(ROTATABLE)
    unknown = [s for s in chosen if s not in ROTATABLE]
    if unknown:
        raise ConfigError(f"no secrets to rotate for {', '.join(unknown)}", fix=f"choose from {', '.join(ROTATABLE)}")
    overridden = [n for s in chosen for n in ROTATABLE[s] if getattr(settings, n, None)]
    if overridden:
        raise ConfigError(
            f"{', '.join(overridden)} set by USERSTREAM_{overridden[0].upper()} (and the like): not rotated here",
            fix="change those where they are set, or unset them to use generated ones",
        )
    processes = ProcessManager(settings)
    rotated: list[str] = []
    for name in chosen:
        if name == "postgres":
            _rotate_postgres(settings, processes, reporter)
        elif name == "kafka":
            _rotate_kafka(settings, processes, reporter)
        elif name == "registry":
            _rotate_registry(settings, processes, reporter)
        else:
            for secret in ROTATABLE[name]:
                settings.secret_store.rotate(secret)
            owner: Service = (
                AirflowService(settings, processes) if name == "airflow" else DashboardService(settings, processes)
            )
            _restart_if_running(owner, reporter)
        rotated += ROTATABLE[name]
    return rotated


def _rotate_postgres(settings: Settings, processes: ProcessManager, reporter: Reporter) -> None:
    postgres = PostgresService(settings, processes)
    _require_ours_and_up(
        postgres,
        lambda: postgres.health().healthy,
        external=("Postgres is external (USERSTREAM_POSTGRES_DSN): its passwords are not ours to rotate",
                  "rotate them on that server and update the DSN"),
        down="Postgres is not running: the role's password is changed on the server",
    )  # fmt: skip
    reporter.step("postgres: new passwords for every role of ours")
    postgres.rotate_password()
    # these took the password at start (in their environment); the connector keeps it in its config
    for dependent in (RegistryService(settings, processes), AirflowService(settings, processes)):
        _restart_if_running(dependent, reporter)
    connect = ConnectService(settings, processes)
    if connect.running() or connect.external:
        reporter.step("connect: the CDC connector restarted with the new database password")
        ensure_connector(settings)  # an external Connect holds the password itself: updated here
        restart_connector(settings)  # ours names the secret's file: a restart reads it again


def _rotate_kafka(settings: Settings, processes: ProcessManager, reporter: Reporter) -> None:
    kafka = KafkaService(settings, processes)
    _require_ours_and_up(
        kafka,
        kafka.running,
        external=("Kafka is external (USERSTREAM_KAFKA_BOOTSTRAP): its logins are not ours to rotate",
                  "rotate them on that cluster and update USERSTREAM_KAFKA_SASL_PASSWORD"),
        down="Kafka is not running: the logins are changed on the broker",
    )  # fmt: skip
    for secret in ROTATABLE["kafka"]:
        settings.secret_store.rotate(secret)
    # the broker's own login is in its config: a restart; its start sets every component's SCRAM login again
    _restart_if_running(kafka, reporter)
    # these hold a login in a client made at start: restarted to make new ones
    for dependent in (ConnectService(settings, processes), DashboardService(settings, processes)):
        _restart_if_running(dependent, reporter)
    _restart_stream_job(settings, reporter, "Kafka")


def _rotate_registry(settings: Settings, processes: ProcessManager, reporter: Reporter) -> None:
    registry = RegistryService(settings, processes)
    _require_ours_and_up(
        registry,
        registry.running,
        external=("the registry is external (USERSTREAM_REGISTRY_URL): its logins are not ours to rotate",
                  "rotate them on that registry and update USERSTREAM_REGISTRY_PASSWORD"),
        down="the registry is not running: its logins are written at its start",
    )  # fmt: skip
    for secret in ROTATABLE["registry"]:
        settings.secret_store.rotate(secret)
    _restart_if_running(registry, reporter)  # its start writes the new logins
    connect = ConnectService(settings, processes)
    if connect.running():
        reporter.step("connect: the CDC connector restarted with the converter's new registry login")
        restart_connector(settings)  # its config names the secret's file: a restart reads it again
    _restart_stream_job(settings, reporter, "registry")


def _restart_stream_job(settings: Settings, reporter: Reporter, login: str) -> None:
    """The streaming job reads its logins at start: a running one is restarted to take the new ones."""
    if stop_job(settings):
        reporter.step(f"stream: restarting the streaming job with its new {login} login")
        ensure_job_running(settings)


def _require_ours_and_up(service: Service, up: Callable[[], bool], *, external: tuple[str, str], down: str) -> None:
    """A service's secrets are rotated on the running server, and only on one we run."""
    if service.external:
        raise ConfigError(external[0], fix=external[1])
    if not up():
        raise ConfigError(down, fix=f"`userstream up {service.name}`, then rotate again")


def _restart_if_running(service: Service, reporter: Reporter) -> None:
    if service.external or not service.running():
        return
    reporter.step(f"{service.name}: restarting with its new secrets")
    service.stop()
    service.start(reporter)


__all__ = ["ROTATABLE", "SecretInfo", "rotate", "secrets_overview"]
