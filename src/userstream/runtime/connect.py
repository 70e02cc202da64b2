"""Kafka Connect 4.1 distributed worker with the Debezium Postgres plugin and Apicurio's Avro converter."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx

from userstream.certificates import pkcs12_trust_store
from userstream.config import Settings
from userstream.kafka_clients import jvm_client_props
from userstream.registry_clients import PASSWORD_SECRETS as REGISTRY_PASSWORDS
from userstream.registry_clients import registry_login
from userstream.runtime.archives import unpack_once
from userstream.runtime.base import JVM_DIR, Health, Reporter, Service, classpath, java, maven_install, tcp_open
from userstream.runtime.javac import build_jar
from userstream.runtime.kafka import (
    SERVER_JVM_FLAGS,
    heap_flags,
    log4j2_console_xml,
    render_properties,
    write_if_changed,
)
from userstream.runtime.process import Program
from userstream.runtime.registry import registry_native_url
from userstream.secret_store import SecretName, write_private

log = logging.getLogger(__name__)

DEBEZIUM_POSTGRES_CONNECTOR = "io.debezium.connector.postgresql.PostgresConnector"
AVRO_CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
SCHEMA_RESOLVER = "userstream.connect.MemoizingSchemaResolver"
SCHEMA_RESOLVER_SOURCES = sorted(
    (JVM_DIR / "connect-schema-resolver" / "src" / "userstream" / "connect").glob("*.java")
)
SCHEMA_RESOLVER_JAR = "userstream-connect-schema-resolver.jar"
CONNECT_REBALANCE_DELAY_MS = 0
CONNECT_HEARTBEAT_MS = 8_000  # with several brokers (see ConnectService._group_timeouts)
CONNECT_SESSION_MS = 12_000
CONNECT_API_TIMEOUT_MS = 15_000
# the worker's own clients take the unprefixed settings; producer./consumer./admin. are the ones it makes
# for source tasks, sink tasks and topic creation
KAFKA_CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")
CONNECT_REST_USER = "userstream"
BASIC_AUTH_EXTENSION = "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"

# Plugin directories under <lib>/connect-plugins, each installed from its own pom under jvm/connect/.
PLUGINS = {"debezium-postgres": "connect/debezium-postgres", "apicurio-avro-converter": "connect/apicurio-converter"}


def secret_reference(settings: Settings, name: SecretName) -> str:
    """``${dir:<secrets dir>:<name>}``: our worker's DirectoryConfigProvider resolves it when a task starts, so
    connector configs (the REST API, the ``_connect-configs`` topic) never hold the secret itself."""
    settings.secret(name)  # exists before the worker reads it
    return "${dir:" + str(settings.secret_store.directory) + ":" + name + "}"


def _converter_auth(settings: Settings, prefix: str) -> dict[str, str]:
    """The converter's registry login: Connect's own identity (a writer), by reference where our worker runs."""
    login = registry_login(settings, "connect")
    if login is None:
        return {}
    ours = settings.registry_url is None and settings.connect_url is None
    password = secret_reference(settings, REGISTRY_PASSWORDS["connect"]) if ours else login[1]
    return {
        f"{prefix}.apicurio.registry.auth.username": login[0],
        f"{prefix}.apicurio.registry.auth.password": password,
    }


def avro_converter_config(settings: Settings, which: str = "value") -> dict[str, str]:
    """Connector properties that make ``which`` ("key" or "value") Avro in the Confluent wire format.

    Apicurio's converter registers the schema through the registry's native v3 API under the artifact
    ``<topic>-<key|value>`` in the default group, which the Confluent-compatible API serves as the subject
    of that name; it then writes magic byte 0 + the 4-byte content id, which that API serves as the schema
    id (legacy-id-mode off). So Confluent's AvroDeserializer reads the records through /apis/ccompat/v7.
    """
    prefix = f"{which}.converter"
    return {
        prefix: AVRO_CONVERTER,
        f"{prefix}.apicurio.registry.url": registry_native_url(settings),
        f"{prefix}.apicurio.registry.auto-register": "true",
        # a schema already registered (same content) is reused, not re-versioned
        f"{prefix}.apicurio.registry.auto-register.if-exists": "FIND_OR_CREATE_VERSION",
        # Confluent framing: the id goes in the payload, not in Kafka headers ...
        f"{prefix}.apicurio.registry.headers.enabled": "false",
        # ... as 4 bytes ...
        f"{prefix}.apicurio.registry.id-handler": "io.apicurio.registry.serde.Default4ByteIdHandler",
        # ... holding the content id, the id the ccompat API hands out
        f"{prefix}.apicurio.registry.use-id": "contentId",
        # subject = <topic>-key / <topic>-value, as Confluent's TopicNameStrategy
        f"{prefix}.apicurio.registry.artifact-resolver-strategy": (
            "io.apicurio.registry.serde.strategy.TopicIdStrategy"
        ),
        # a registry restart takes ~30-60 s: retry its calls that long before failing the record
        f"{prefix}.apicurio.registry.retry-count": "30",
        f"{prefix}.apicurio.registry.retry-backoff-ms": "2000",
        **_converter_auth(settings, prefix),
        **_schema_resolver(settings, prefix),
    }


def _schema_resolver(settings: Settings, prefix: str) -> dict[str, str]:
    """Our worker's converter resolves a record's schema once per schema, not per record: Apicurio's resolver
    renders the schema to JSON and hashes it for every record (~10 us of Connect's CPU per record). A Connect
    cluster of the user's own does not have the class, and keeps Apicurio's."""
    if settings.connect_url is not None:
        return {}
    return {f"{prefix}.apicurio.registry.schema-resolver": SCHEMA_RESOLVER}


class ConnectService(Service):
    name = "connect"
    depends_on = ("kafka", "registry", "postgres")
    start_timeout_s = 240.0  # cold JVMs all starting at once on two slow cores take minutes

    @property
    def external(self) -> bool:
        return self.settings.connect_url is not None

    @property
    def ports(self) -> list[int]:
        return [self.settings.connect_port]

    # --- layout ----------------------------------------------------------------------------
    @property
    def lib(self) -> Path:
        return self.settings.lib_dir / "connect"

    @property
    def plugin_path(self) -> Path:
        return self.settings.lib_dir / "connect-plugins"

    @property
    def worker_properties(self) -> Path:
        return self.data_path / "config" / "connect-distributed.properties"

    @property
    def log4j_config(self) -> Path:
        return self.data_path / "config" / "log4j2.xml"

    # --- contract --------------------------------------------------------------------------
    def install(self, reporter: Reporter) -> None:
        maven_install("connect", self.lib, reporter)
        debezium = self.plugin_path / "debezium-postgres"
        maven_install(
            PLUGINS["debezium-postgres"],
            debezium,
            reporter,
            extra_goals=["dependency:copy@plugin", f"-Dus.dest={debezium}"],
        )
        unpack_once(debezium / "debezium-connector-postgres-plugin.tar.gz", debezium, reporter, "connect")
        converter = self.plugin_path / "apicurio-avro-converter"
        maven_install(
            PLUGINS["apicurio-avro-converter"],
            converter,
            reporter,
            extra_goals=["dependency:copy-dependencies", "dependency:copy@converter", f"-Dus.dest={converter}"],
        )
        # beside the converter: only its plugin class loader can load it
        build_jar(SCHEMA_RESOLVER_SOURCES, [converter / "*"], converter / SCHEMA_RESOLVER_JAR,
                  what="the converter's schema resolver", reporter=reporter)  # fmt: skip

    def worker_config(self) -> dict[str, object]:
        s = self.settings
        return {
            "bootstrap.servers": s.kafka_bootstrap_servers,
            "group.id": "userstream-connect",
            # the worker's defaults; connectors that want Avro say so (see avro_converter_config)
            "key.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "key.converter.schemas.enable": True,
            "value.converter.schemas.enable": True,
            # internal topics (the worker creates them): replicated as the pipeline's topics (1 on one broker)
            "config.storage.topic": "_connect-configs",
            "config.storage.replication.factor": s.kafka_replication,
            "offset.storage.topic": "_connect-offsets",
            "offset.storage.replication.factor": s.kafka_replication,
            "offset.storage.partitions": 5,
            "status.storage.topic": "_connect-status",
            "status.storage.replication.factor": s.kafka_replication,
            "status.storage.partitions": 1,
            # source offsets (e.g. the Debezium LSN) committed often: fewer replays after a crash
            "offset.flush.interval.ms": 5000,
            # lost work (a worker dead, or one that revoked its own tasks when it lost the coordinator: a
            # broker lost, Kafka frozen) is held this long for its worker to come back before it is
            # reassigned. Connect's default, 300 s, meant five minutes of no CDC after a 45 s Kafka freeze;
            # with one task, moving it at once costs one task start, waiting costs CDC
            "scheduled.rebalance.max.delay.ms": CONNECT_REBALANCE_DELAY_MS,
            **self._group_timeouts(),
            "listeners": f"http://{s.bind_host}:{s.connect_port}",
            "rest.advertised.host.name": s.node_host,  # the other workers forward requests to the leader here
            "rest.advertised.port": s.connect_port,
            "plugin.path": self.plugin_path,
            # every plugin we install ships ServiceLoader manifests: skip the slow reflective scan
            "plugin.discovery": "service_load",
            # the broker does not auto-create topics: let connectors declare theirs (topic.creation.*)
            "topic.creation.enable": True,
            # connector configs name secrets (${dir:<secrets dir>:<name>}) instead of holding them, so the
            # REST API and the _connect-configs topic never carry a password; the value is read at task start
            "config.providers": "dir",
            "config.providers.dir.class": "org.apache.kafka.common.config.provider.DirectoryConfigProvider",
            "config.providers.dir.param.allowed.paths": str(s.secret_store.directory),
            # the REST API asks for a login (the JAAS file names the users file, see _write_rest_login)
            "rest.extension.classes": BASIC_AUTH_EXTENSION,
            # its Kafka login: the worker's own clients, and those it makes for tasks and topic creation
            **{k: v for prefix in KAFKA_CLIENT_PREFIXES for k, v in jvm_client_props(s, "connect", prefix).items()},
        }

    def _group_timeouts(self) -> dict[str, object]:
        """On several brokers the group's coordinator moves when its broker dies (fenced after 6 s, see
        KafkaService._fencing). A worker revokes its own tasks once the coordinator is unknown for a heartbeat
        interval (3 s by default; seen: the CDC task revoked and 44 s without a stored user), so the interval
        (8 s) outlasts the move. A dead worker's task moves once the session expires and the survivor's next
        heartbeat hears of it: session - interval .. session + interval after the death (5-25 s with 10/15 s;
        a CI run saw 36 s without a stored user). One broker of ours: nowhere to move, the defaults stay."""
        if not self.settings.kafka_has_failover:
            return {}
        # the worker's admin and log consumers give up on a call after 15 s, not 60: the offset log's end-offset
        # call (which Debezium's commit waits on, on the task's thread) stayed on a dead broker until it came
        # back (thread dumps: 32-52 s without a record); Connect retries a timed-out read with a fresh call
        return {
            "heartbeat.interval.ms": CONNECT_HEARTBEAT_MS,
            "session.timeout.ms": CONNECT_SESSION_MS,
            "default.api.timeout.ms": CONNECT_API_TIMEOUT_MS,
        }

    @property
    def rest_users_file(self) -> Path:
        return self.settings.secret_store.directory / "connect-rest-users.properties"

    @property
    def rest_jaas_file(self) -> Path:
        return self.data_path / "config" / "rest-jaas.conf"

    def _write_rest_login(self) -> None:
        """The users file (secret, 0600, beside the other secrets) and the JAAS file that names it."""
        write_private(self.rest_users_file, f"{CONNECT_REST_USER}={self.settings.secret('connect_rest_password')}\n")
        jaas = (
            "KafkaConnect {\n  org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule required\n"
            f'  file="{self.rest_users_file}";\n}};\n'
        )
        self.rest_jaas_file.parent.mkdir(parents=True, exist_ok=True)
        write_if_changed(self.rest_jaas_file, jaas)

    def prepare(self) -> None:
        self._write_rest_login()
        ca = self.settings.registry_ca_file
        if ca is not None:  # ours: Settings made the install's CA already if no server had
            pkcs12_trust_store(ca, self.registry_trust_store, setting="USERSTREAM_REGISTRY_SSL_CA_FILE")
        # it holds the worker's Kafka password: private, like the secret files
        write_private(self.worker_properties, render_properties(self.worker_config()))
        write_if_changed(
            self.log4j_config,
            log4j2_console_xml(
                {
                    "org.reflections": "ERROR",
                    "org.apache.kafka.clients": "WARN",
                    "org.apache.kafka.common.config.AbstractConfig": "WARN",
                    "org.apache.kafka.connect.runtime.isolation": "WARN",
                }
            ),
        )

    @property
    def registry_trust_store(self) -> Path:
        return self.settings.state_dir / "tls" / "registry-truststore.p12"

    def _registry_trust(self) -> list[str]:
        """Apicurio's converter has no TLS setting of its own: it checks an https registry against the JVM's
        default trust store, so that is the registry's CA (Kafka's clients have their own trust settings)."""
        ca = self.settings.registry_ca_file
        if ca is None:
            return []
        return [f"-Djavax.net.ssl.trustStore={self.registry_trust_store}", "-Djavax.net.ssl.trustStoreType=PKCS12"]

    def programs(self) -> list[Program]:
        if self.external:
            return []
        return [
            Program(
                name="connect",
                command=[
                    java(),
                    *heap_flags(self.settings.connect_heap),
                    *SERVER_JVM_FLAGS,
                    # the broker's 20 ms pause goal kept G1's young generation tiny, and Debezium's queue of
                    # records in flight was copied at every collection: GC took a quarter of Connect's CPU
                    # while it streamed a backlog; G1's own default goal (200 ms) is fine for a batch worker
                    "-XX:MaxGCPauseMillis=200",
                    f"-Dlog4j2.configurationFile={self.log4j_config}",
                    f"-Djava.security.auth.login.config={self.rest_jaas_file}",
                    *self._registry_trust(),
                    "-cp",
                    classpath(self.lib),
                    "org.apache.kafka.connect.cli.ConnectDistributed",
                    str(self.worker_properties),
                ],
                stop_wait_s=60,
                start_secs=3,
            )
        ]

    def health(self) -> Health:
        base = self.settings.connect_endpoint.rstrip("/")
        if not self.external and not tcp_open(self.settings.bind_host, self.settings.connect_port):
            return Health(False, f"port {self.settings.connect_port} closed")
        try:
            with rest_client(self.settings, timeout_s=5.0) as http:
                root = http.get("/")
                # /health (KIP-1017) answers 200 only once the worker has joined its group and read its topics
                ready = http.get("/health")
                plugins = http.get("/connector-plugins")
                problem, summary = connectors_problem(http)
        except httpx.HTTPError as exc:
            return Health(False, f"{base}: {type(exc).__name__}")
        if root.status_code != 200:
            return Health(False, f"GET / -> HTTP {root.status_code}")
        if ready.status_code != 200:
            return Health(False, f"GET /health -> HTTP {ready.status_code}: {ready.text[:200]}")
        if plugins.status_code != 200:
            return Health(False, f"GET /connector-plugins -> HTTP {plugins.status_code}")
        classes = [p.get("class", "") for p in plugins.json()]
        debezium = "with Debezium Postgres" if DEBEZIUM_POSTGRES_CONNECTOR in classes else "NO Debezium plugin"
        version = f"Connect {root.json().get('version', '?')}"
        if problem:
            return Health(False, f"{version}: {problem}")
        return Health(True, f"{version}, {debezium}, {summary}")

    def recover(self) -> None:
        """A task that failed while a dependency was down (Connect started before the registry was back, say)
        stays FAILED until restarted: while starting, restart each connector's failed parts, as the watchdog
        does once the stack runs."""
        try:
            with rest_client(self.settings, timeout_s=5.0) as http:
                for name in http.get("/connectors").json():
                    failed = restart_failed_parts(http, name)
                    if failed:
                        log.warning("connect: restarting %s of connector %s (FAILED)", ", ".join(failed), name)
        except (httpx.HTTPError, ValueError):
            pass  # not up yet: health says so

    def urls(self) -> dict[str, str]:
        return {"REST API": self.settings.connect_endpoint}


def rest_client(settings: Settings, timeout_s: float = 30.0) -> httpx.Client:
    """An HTTP client of the worker's REST API, logged in (basic auth: BasicAuthSecurityRestExtension)."""
    return httpx.Client(
        base_url=settings.connect_endpoint,
        auth=httpx.BasicAuth(CONNECT_REST_USER, settings.secret("connect_rest_password")),
        timeout=timeout_s,
    )


def restart_failed_parts(http: httpx.Client, connector: str) -> list[str]:
    """Restart the FAILED parts of a connector, the way Strimzi's auto-restart does; returns what had failed."""
    resp = http.get(f"/connectors/{connector}/status")
    if resp.status_code != 200:
        return []
    status = resp.json()
    failed = [f"task {t.get('id')}" for t in status.get("tasks", []) if t.get("state") == "FAILED"]
    if status.get("connector", {}).get("state") == "FAILED":
        failed.insert(0, "connector")
    if failed:
        http.post(f"/connectors/{connector}/restart", params={"includeTasks": "true", "onlyFailed": "true"})
    return failed


def connectors_problem(http: httpx.Client) -> tuple[str | None, str]:
    """(what is wrong, summary): a worker is doing its job only while every connector and task RUNs."""
    try:
        resp = http.get("/connectors", params={"expand": "status"})
        resp.raise_for_status()
        connectors = resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"GET /connectors?expand=status failed: {type(exc).__name__}", ""
    if not connectors:
        return None, "no connector yet"
    bad = []
    for name, entry in sorted(connectors.items()):
        status = entry.get("status", {})
        state = status.get("connector", {}).get("state", "?")
        tasks = status.get("tasks", [])
        if state != "RUNNING":
            bad.append(f"connector {name} {state}")
        if not tasks:
            bad.append(f"connector {name} has no task")
        bad += [f"task {name}/{t.get('id')} {t.get('state')}" for t in tasks if t.get("state") != "RUNNING"]
    if bad:
        return ", ".join(bad), ""
    return None, f"{len(connectors)} connector(s) RUNNING"
