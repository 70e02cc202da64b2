"""The one settings object. Every field is read from ``USERSTREAM_<FIELD NAME>``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from userstream.certificates import LocalAuthority
from userstream.errors import ConfigError
from userstream.secret_store import SecretName, SecretStore


class Settings(BaseSettings):
    """Pipeline configuration; frozen so every stage sees the same values.

    An endpoint field left at ``None`` means "we run that service locally";
    set it (e.g. ``USERSTREAM_KAFKA_BOOTSTRAP=broker:9092``) and the service is used, not started.
    """

    model_config = SettingsConfigDict(env_prefix="USERSTREAM_", frozen=True, extra="ignore")

    # --- where state lives ---------------------------------------------------------------
    data_dir: Path = Field(Path(".userstream"), description="All local state: lib/, data/, logs/, ...")
    install_dir: Path | None = Field(
        None, description="where `userstream install` puts jars (default <data dir>/lib; an image: outside its volume)"
    )
    secrets_dir: Path | None = Field(
        None, description="the install's generated secrets (default <data dir>/secrets; a cluster shares one)"
    )
    bind_host: str = "127.0.0.1"

    # --- where our own services run, when not all on this host (a cluster: one container per node) ---
    # unset: on bind_host. Unlike the external-endpoint fields below, these are servers we run ourselves,
    # with the install's generated logins, only elsewhere.
    advertised_host: str | None = Field(
        None, description="the name other nodes reach this node's servers at (default: bind_host)"
    )
    postgres_host: str | None = None
    kafka_nodes: str | None = Field(
        None, description="our Kafka nodes' host names, comma-separated: node i+1 of the KRaft quorum is the i-th"
    )
    kafka_node_id: int = Field(1, ge=1, description="this Kafka node's id (its place in USERSTREAM_KAFKA_NODES)")
    registry_host: str | None = None
    connect_nodes: str | None = Field(None, description="our Connect workers' host names, comma-separated")
    cassandra_nodes: str | None = Field(
        None, description="our Cassandra nodes' host names, comma-separated (all seeds, tokens evenly spaced)"
    )
    spark_master_host: str | None = None
    spark_roles: str = Field("master,worker", description="the Spark daemons this node runs: master, worker or both")
    airflow_host: str | None = None
    source_host: str | None = None
    dashboard_host: str | None = None

    # --- source --------------------------------------------------------------------------
    source_url: str = "https://randomuser.me/api/"
    source_port: int = 8765
    source_seed: str = "userstream"
    source_page_size: int = Field(5000, ge=1, le=5000)
    source_timeout_s: float = 10.0
    source_retries: int = 6
    # The provider's limits (defaults: the real randomuser.me's); they apply to the API at source_url.
    source_quota_users: int = Field(
        20_000, ge=0, description="users the provider serves one client IP per quota window (0: no quota)"
    )
    source_quota_window_s: float = Field(300.0, gt=0, description="length of the provider's fixed quota window")
    source_max_page: int = Field(
        10_000, ge=1, description="highest page the provider serves (above it the live site answers page 1)"
    )

    # --- PostgreSQL ----------------------------------------------------------------------
    postgres_dsn: str | None = None
    postgres_port: int = 5432
    postgres_user: str = "userstream"
    postgres_password: str | None = Field(
        None, description="the pipeline role's password (default: generated per install, `userstream secrets show`)"
    )
    postgres_db: str = "userstream"

    # --- TLS of our own servers ------------------------------------------------------------
    tls: bool = Field(
        False,
        description="our Kafka (client listener), Cassandra (CQL) and registry (https) take TLS only, with "
        "certificates of the install's CA (<data dir>/secrets/tls/ca.pem), and every component checks them",
    )

    # --- Kafka ---------------------------------------------------------------------------
    kafka_bootstrap: str | None = None
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_broker_port: int = Field(
        9094, description="the broker's own listener (inter-broker, and where the identities are bootstrapped)"
    )
    # an external cluster's security (ours: SASL_PLAINTEXT + SCRAM-SHA-512, one generated login per component)
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = Field(
        "PLAINTEXT", description="security.protocol of an external cluster (USERSTREAM_KAFKA_BOOTSTRAP)"
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = Field(
        None, description="an external cluster's SASL login, used by every component"
    )
    kafka_sasl_password: str | None = None
    kafka_ssl_ca_file: FilePath | None = Field(
        None, description="PEM CA bundle an external cluster's certificate is checked with"
    )
    kafka_ssl_certificate_file: FilePath | None = Field(
        None, description="PEM client certificate (chain) for an external cluster that asks for one (mutual TLS)"
    )
    kafka_ssl_key_file: FilePath | None = Field(
        None, description="PEM (PKCS#8) private key of that certificate; encrypted: USERSTREAM_KAFKA_SSL_KEY_PASSWORD"
    )
    kafka_ssl_key_password: str | None = None
    kafka_heap: str = "512m"
    users_topic: str = "users.raw"
    dlq_topic: str = "users.dlq"
    topic_partitions: int = 2
    topic_retention_ms: int = 7 * 24 * 3600 * 1000
    topic_retention_bytes: int = Field(
        1 << 30,
        ge=-1,
        description="bytes kept per partition of each pipeline topic (-1: no size bound, only retention_ms)",
    )

    # --- Kafka Connect + Debezium ----------------------------------------------------------
    connect_url: str | None = None
    connect_port: int = 8083
    connect_heap: str = "512m"

    # --- schema registry (Apicurio, Confluent-compatible API) -------------------------------
    registry_url: str | None = None
    registry_username: str | None = Field(
        None, description="an external registry's basic-auth user (every component uses it); ours: generated logins"
    )
    registry_password: str | None = None
    registry_ssl_ca_file: FilePath | None = Field(
        None, description="PEM CA an external registry's https certificate is checked with (Python clients)"
    )
    registry_port: int = 8081
    registry_heap: str = "384m"

    # --- Cassandra -----------------------------------------------------------------------
    cassandra_contact_points: str | None = None
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_heap: str = "1G"
    cassandra_cluster_name: str = "userstream"
    cassandra_keyspace: str = "spark_streams"
    cassandra_replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    cassandra_username: str | None = Field(
        None, description="an external cluster's login, used by every component (default: our generated roles)"
    )
    cassandra_password: str | None = None
    cassandra_ssl_ca_file: FilePath | None = Field(
        None, description="PEM CA of an external cluster's client TLS: set, every component connects with TLS"
    )

    # --- Spark ---------------------------------------------------------------------------
    spark_master_url: str | None = None
    spark_master_port: int = 7077
    spark_master_ui_port: int = 8090
    spark_auth_secret: str | None = Field(
        None, description="spark.authenticate secret (default: generated per install; set it for an external master)"
    )
    spark_ui_password: str | None = Field(
        None, description="password of user `userstream` on our Spark UIs (default: generated per install)"
    )
    spark_worker_ui_port: int = 8091
    spark_worker_cores: int = Field(
        3, ge=1, description="task slots of the worker: one more than 2 CPUs, so a batch app runs beside the stream job"
    )
    spark_worker_memory: str = "2g"
    spark_executor_memory: str = "1g"
    spark_daemon_memory: str = Field("512m", description="heap of the master and worker daemons")
    spark_trigger_interval: str = Field("500 milliseconds", description="micro-batch trigger of the users query")
    spark_max_offsets_per_trigger: int = 200_000
    stream_cores_max: int = Field(2, ge=1, description="spark.cores.max of the streaming job (of the worker's slots)")
    stream_watermark: str = Field("10 minutes", description="lateness allowed in users_by_country_minute")
    stream_aggregate_trigger: str = Field("30 seconds", description="trigger of the users_by_country_minute query")
    stream_consumer_group: str = Field(
        "userstream-stream", description="Kafka group the job mirrors its processed offsets to (+ '.<keyspace>')"
    )

    # --- self-healing (the watchdog) --------------------------------------------------------
    stall_after_s: float = Field(
        90.0, gt=0, description="a stage with input waiting and no output for this long is reported stalled"
    )
    stream_restart_after_s: float = Field(
        300.0, gt=0, description="the watchdog restarts the streaming driver stalled this long (its own retries first)"
    )
    watchdog_interval_s: float = Field(5.0, gt=0, description="seconds between two rounds of the watchdog")

    # --- Airflow -------------------------------------------------------------------------
    airflow_url: str | None = None
    airflow_port: int = 8080
    airflow_parallelism: int = Field(4, ge=1, le=4)
    airflow_admin_password: str | None = Field(
        None, description="the Airflow UI's admin password (default: generated per install)"
    )
    airflow_triggerer: bool = Field(
        False, description="run Airflow's triggerer too (only deferrable tasks need it; ours defer nothing)"
    )

    # --- ingest --------------------------------------------------------------------------
    ingest_rate: float = Field(1000.0, gt=0, description="records per second")
    ingest_window_s: float = Field(60.0, gt=0, description="length of one users_ingest DAG run")
    ingest_max_lag_s: float = Field(
        10.0,
        ge=0,
        description="backpressure: the DAG's ingest slows down while the records landed but not yet processed "
        "by the streaming job exceed this many seconds at the current rate (0: off, always the full rate)",
    )

    staging_retention_days: float = Field(
        1.0, ge=0, description="landed users and rejected records older than this are deleted from staging (0: kept)"
    )

    # --- monitor -------------------------------------------------------------------------
    dashboard_port: int = 8000
    dashboard_token: str | None = None
    dashboard_require_token: bool = Field(True, description="false: the dashboard and /metrics are open")
    dashboard_count_interval_s: float = Field(
        15.0, gt=0, description="least seconds between exact row counts of big tables (Cassandra, Postgres)"
    )

    @model_validator(mode="after")
    def _tls_files_belong_to_external_clusters(self) -> Settings:
        # ours take the install's CA (USERSTREAM_TLS): a CA or client certificate file is for an external cluster
        if (self.kafka_ssl_certificate_file is None) != (self.kafka_ssl_key_file is None):
            raise ValueError("KAFKA_SSL_CERTIFICATE_FILE and KAFKA_SSL_KEY_FILE go together: set both or neither")
        pairs = [
            ("KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file, "KAFKA_BOOTSTRAP", self.kafka_bootstrap),
            ("KAFKA_SSL_CERTIFICATE_FILE", self.kafka_ssl_certificate_file, "KAFKA_BOOTSTRAP", self.kafka_bootstrap),
            (
                "CASSANDRA_SSL_CA_FILE",
                self.cassandra_ssl_ca_file,
                "CASSANDRA_CONTACT_POINTS",
                self.cassandra_contact_points,
            ),
            ("REGISTRY_SSL_CA_FILE", self.registry_ssl_ca_file, "REGISTRY_URL", self.registry_url),
        ]
        for name, value, needs, endpoint in pairs:
            if value is not None and endpoint is None:
                raise ValueError(f"{name} is for an external cluster: set USERSTREAM_{needs} too, or unset it")
        if self.kafka_ssl_certificate_file is not None and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError("a Kafka client certificate needs KAFKA_SECURITY_PROTOCOL SSL or SASL_SSL")
        return self

    # --- derived paths -------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return self.data_dir.resolve()

    @property
    def lib_dir(self) -> Path:
        return self.install_dir.resolve() if self.install_dir else self.root / "lib"

    @property
    def state_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_dir(self) -> Path:
        return self.root / "logs"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / "checkpoints"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def secret_store(self) -> SecretStore:
        return SecretStore(self.secrets_dir.resolve() if self.secrets_dir else self.root / "secrets")

    @property
    def local_ca(self) -> LocalAuthority:
        """The install's certificate authority (our servers' TLS certificates)."""
        return LocalAuthority(self.secret_store.directory / "tls")

    def _ca_for(self, external: bool, configured: Path | None) -> Path | None:
        if external:
            return configured
        if not self.tls:
            return None
        if not self.local_ca.ca_path.exists():  # a client before any server started: the CA is made first
            self.local_ca.authority()
        return self.local_ca.ca_path

    @property
    def kafka_ca_file(self) -> Path | None:
        """The CA the Kafka cluster's certificate is checked with: an external one's, or ours with TLS on."""
        return self._ca_for(self.kafka_bootstrap is not None, self.kafka_ssl_ca_file)

    @property
    def cassandra_ca_file(self) -> Path | None:
        return self._ca_for(self.cassandra_contact_points is not None, self.cassandra_ssl_ca_file)

    @property
    def registry_ca_file(self) -> Path | None:
        return self._ca_for(self.registry_url is not None, self.registry_ssl_ca_file)

    def secret(self, name: SecretName) -> str:
        """The secret ``name``: its USERSTREAM_* override when set, else the one generated for this install."""
        override = getattr(self, name, None)
        return str(override) if override else self.secret_store.get(name)

    # --- derived endpoints ----------------------------------------------------------------
    @property
    def node_host(self) -> str:
        """This node's name for the others (certificates, advertised listeners)."""
        return self.advertised_host or self.bind_host

    @staticmethod
    def _names(value: str | None) -> list[str]:
        return [h.strip() for h in (value or "").split(",") if h.strip()]

    @property
    def kafka_hosts(self) -> list[str]:
        return self._names(self.kafka_nodes) or [self.node_host]

    @property
    def connect_hosts(self) -> list[str]:
        return self._names(self.connect_nodes) or [self.bind_host]

    @property
    def kafka_replication(self) -> int:
        """Replicas of every pipeline and internal topic: 3 on our cluster of 3 or more nodes, else 1."""
        return min(3, len(self.kafka_hosts)) if self.kafka_bootstrap is None else 1

    @property
    def kafka_has_failover(self) -> bool:
        """Several brokers (ours, or an external cluster): a partition's leader or a group's coordinator moves
        to another when one dies, so clients should give up on a dead broker soon."""
        return self.kafka_bootstrap is not None or len(self.kafka_hosts) >= 2

    @property
    def kafka_min_insync(self) -> int:
        return 2 if self.kafka_replication >= 3 else 1

    @property
    def postgres_conninfo(self) -> str:
        if self.postgres_dsn:
            return self.postgres_dsn
        return (
            f"host={self.postgres_host or self.bind_host} port={self.postgres_port} dbname={self.postgres_db} "
            f"user={self.postgres_user} password={self.secret('postgres_password')}"
        )

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        if self.kafka_nodes:
            return ",".join(f"{host}:{self.kafka_port}" for host in self.kafka_hosts)
        return f"{self.bind_host}:{self.kafka_port}"

    @property
    def accepted_topic(self) -> str:
        """The streaming job's own topic of accepted users (id, nat, fetched_at) that feeds the per-minute
        aggregate. Per keyspace, so two jobs on one users topic never count each other's records."""
        return f"{self.users_topic}.accepted.{self.cassandra_keyspace}"

    @property
    def connect_endpoint(self) -> str:
        return self.connect_url or f"http://{self.connect_hosts[0]}:{self.connect_port}"

    @property
    def registry_endpoint(self) -> str:
        """Base URL of the Confluent-compatible API."""
        scheme = "https" if self.tls else "http"
        host = self.registry_host or self.bind_host
        return self.registry_url or f"{scheme}://{host}:{self.registry_port}/apis/ccompat/v7"

    @property
    def cassandra_hosts(self) -> list[str]:
        if self.cassandra_contact_points:
            return self._names(self.cassandra_contact_points)
        return self._names(self.cassandra_nodes) or [self.bind_host]

    @property
    def spark_master(self) -> str:
        return self.spark_master_url or f"spark://{self.spark_master_host or self.bind_host}:{self.spark_master_port}"

    @property
    def airflow_endpoint(self) -> str:
        return self.airflow_url or f"http://{self.airflow_host or self.bind_host}:{self.airflow_port}"

    @property
    def source_endpoint(self) -> str:
        """Our bundled source's API (the demo's source_url)."""
        return f"http://{self.source_host or self.bind_host}:{self.source_port}/api/"

    @property
    def dashboard_endpoint(self) -> str:
        return f"http://{self.dashboard_host or self.bind_host}:{self.dashboard_port}/"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, with a fix-it message instead of a pydantic traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            lines.append(f"USERSTREAM_{field.upper()}: {err['msg']}" if field else str(err["msg"]))
        raise ConfigError(
            "invalid settings:\n  " + "\n  ".join(lines),
            fix="correct or unset the environment variables named above",
        ) from exc
