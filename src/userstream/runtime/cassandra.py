"""Cassandra 5.0: one local node from Maven Central's cassandra-all, run as CassandraDaemon on Java 17."""

from __future__ import annotations

import logging
import shutil
import ssl
import time
from pathlib import Path

from cassandra import AuthenticationFailed
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.policies import RoundRobinPolicy, WhiteListRoundRobinPolicy

from userstream.certificates import LocalAuthority, server_names
from userstream.config import Settings
from userstream.errors import InstallError
from userstream.runtime.base import Health, Reporter, Service, java, maven_install, tcp_open
from userstream.runtime.process import Program
from userstream.secret_store import new_secret
from userstream.store.cassandra import credentials, tls_context

# Cassandra checks a login's password with bcrypt on every new connection (its cache holds the hash, not the
# outcome). At the default 2^10 rounds each check costs ~50 ms of CPU, and health probes, the dashboard and
# each job's sessions connect all the time: bcrypt was ~14 % of Cassandra's CPU samples in the pipeline
# benchmark. Our passwords are random 256-bit secrets, so the hash's work factor adds nothing against offline
# guessing; 2^4 (the least Cassandra takes) makes a check ~64x cheaper.
BCRYPT_LOG2_ROUNDS = 4
PASSWORD_CHANGE_INTERVAL_S = 5.5  # Cassandra refuses a role's second password change within 5 s

# created by Cassandra at its first start; replaced by ours and disabled at once (ensure_roles)
DEFAULT_SUPERUSER = ("cassandra", "cassandra")

# The JPMS section of Cassandra 5.0's conf/jvm17-server.options: Cassandra, jamm, chronicle and netty reach
# into JDK internals that Java 17 closes by default.
JVM17_MODULE_OPTIONS: list[str] = [
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
]  # fmt: skip

# G1 as in jvm17-server.options, minus what only pays off on big heaps (16m regions).
GC_OPTIONS: list[str] = [
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
]

# one certificate for both ports: internode (mutual TLS, always) and CQL (with USERSTREAM_TLS)
INTERNODE_IDENTITY = "cassandra"


def initial_token(index: int, nodes: int) -> int:
    """Node ``index`` of ``nodes``: Murmur3 tokens evenly spaced over [-2**63, 2**63)."""
    return -(2**63) + index * (2**64 // nodes) if nodes > 1 else 0


LOGBACK_XML = """<configuration scan="false">
  <!-- everything to stdout: supervisord owns the log file and its rotation -->
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.thinkaurelius.thrift" level="ERROR"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
"""


class CassandraService(Service):
    name = "cassandra"
    start_timeout_s = 300.0  # the first start creates the system keyspaces; cold JVMs compete

    @property
    def external(self) -> bool:
        return self.settings.cassandra_contact_points is not None

    @property
    def ports(self) -> list[int]:
        return [self.settings.cassandra_port, self.settings.cassandra_storage_port]

    # --- paths ---------------------------------------------------------------------------
    @property
    def lib_path(self) -> Path:
        return self.settings.lib_dir / "cassandra"

    @property
    def conf_path(self) -> Path:
        return self.data_path / "conf"

    def install(self, reporter: Reporter) -> None:
        maven_install("cassandra", self.lib_path, reporter)

    def _jamm_jar(self) -> Path | None:
        """The jamm agent cassandra-all was built against (it measures memtable sizes)."""
        jars = sorted(self.lib_path.glob("jamm-*.jar"))
        return jars[-1] if jars else None

    # --- configuration -------------------------------------------------------------------
    def cassandra_yaml(self) -> str:
        s = self.settings
        d = self.data_path
        host = s.node_host
        nodes = s.cassandra_hosts
        seeds = ",".join(f"{n}:{s.cassandra_storage_port}" for n in nodes)
        # One token per node, evenly spaced over the ring: every node a seed, so a fresh cluster's nodes all
        # start at once (a bootstrapping node would have to wait for the others), each owning 1/n.
        # Sized for a 1 GiB heap: caches small, one compactor, no auto snapshots.
        return f"""# generated by userstream; edits are overwritten on start
cluster_name: '{s.cassandra_cluster_name}'
num_tokens: 1
initial_token: {initial_token(self.node_index, len(nodes))}
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
dynamic_snitch: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "{seeds}"
listen_address: {host}
rpc_address: {s.bind_host}
{f"broadcast_rpc_address: {host}" if s.bind_host == "0.0.0.0" else ""}
storage_port: {s.cassandra_storage_port}
native_transport_port: {s.cassandra_port}
start_native_transport: true
storage_compatibility_mode: NONE

data_file_directories:
  - {d / "data"}
commitlog_directory: {d / "commitlog"}
saved_caches_directory: {d / "saved_caches"}
hints_directory: {d / "hints"}
cdc_raw_directory: {d / "cdc_raw"}

# a write is acknowledged once its commit log is on disk: in periodic mode a kill -9 lost the last ~0.1 s of
# acknowledged writes (seen: 26 users missing after chaos' Cassandra kill; 64 of 3,000 in a test), which one
# node, or every replica lost at once, cannot get back. Concurrent writes share each sync.
commitlog_sync: batch
# O_DIRECT segments: each sync writes the new bytes and fsyncs, where the default (mmap + msync) cost ~1.5x the
# CPU per durable write here (connector-shaped writes, 32-row batches: 231-258 -> 168-170 us/row)
commitlog_disk_access_mode: direct
commitlog_segment_size: 32MiB
commitlog_total_space: 1024MiB

# trie memtables (Cassandra 5): fewer objects per row than the skip list's, so less CPU per write and less GC
memtable:
  configurations:
    skiplist:
      class_name: SkipListMemtable
    trie:
      class_name: TrieMemtable
    default:
      inherits: trie
memtable_heap_space: 256MiB
memtable_offheap_space: 128MiB
key_cache_size: 16MiB
counter_cache_size: 8MiB
file_cache_size: 64MiB
networking_cache_size: 32MiB
prepared_statements_cache_size: 8MiB
concurrent_compactors: 1
auto_snapshot: false
# the connector's unlogged batches of up to 32 rows (~18 KiB) are by design: a warning for each one filled
# the log (hundreds of lines a second while catching up)
batch_size_warn_threshold: 64KiB
batch_size_fail_threshold: 256KiB
# ... and so are their 32 partitions each (grouped by replica set): the default threshold (10) made Cassandra
# send a warning with every batch, which the executor then logged (~50 MB/h of stderr at 400 records/s)
unlogged_batch_across_partitions_warn_threshold: 64

# logins and permissions: our generated roles (see ensure_roles); the default `cassandra` one is disabled
authenticator:
  class_name: org.apache.cassandra.auth.PasswordAuthenticator
authorizer:
  class_name: org.apache.cassandra.auth.CassandraAuthorizer
role_manager:
  class_name: org.apache.cassandra.auth.CassandraRoleManager
# the storage port speaks mutual TLS only: a peer needs a certificate of this install's CA (secrets/tls)
server_encryption_options:
  internode_encryption: all
  optional: false
  legacy_ssl_storage_port_enabled: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {self.authority.keystore_path(self.identity)}
  truststore: {self.authority.ca_path}
  require_client_auth: true
  require_endpoint_verification: false
{self._client_encryption()}# a login's bcrypt check is cached this long (a health probe logs in every few seconds)
credentials_validity: 60000ms
roles_validity: 60000ms
permissions_validity: 60000ms
"""

    def _client_encryption(self) -> str:
        if not self.settings.tls:
            return ""
        return f"""# USERSTREAM_TLS: CQL takes TLS only (the install's CA); logins as before
client_encryption_options:
  enabled: true
  optional: false
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: {self.authority.keystore_path(self.identity)}
  require_client_auth: false
"""

    @property
    def node_index(self) -> int:
        """This node's place in USERSTREAM_CASSANDRA_NODES (0 on one node)."""
        nodes = self.settings.cassandra_hosts
        return nodes.index(self.settings.node_host) if self.settings.node_host in nodes else 0

    @property
    def identity(self) -> str:
        """The certificate's name: one per node of a cluster, as the nodes issue theirs at once."""
        s = self.settings
        return INTERNODE_IDENTITY if s.cassandra_nodes is None else f"{INTERNODE_IDENTITY}-{s.node_host}"

    @property
    def authority(self) -> LocalAuthority:
        return self.settings.local_ca

    def write_config(self) -> None:
        self.authority.issue(self.identity, server_names(self.settings.node_host, self.settings.bind_host))
        self.conf_path.mkdir(parents=True, exist_ok=True)
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw"):
            (self.data_path / sub).mkdir(parents=True, exist_ok=True)
        for name, text in (("cassandra.yaml", self.cassandra_yaml()), ("logback.xml", LOGBACK_XML)):
            path = self.conf_path / name
            if not path.exists() or path.read_text() != text:
                path.write_text(text)

    def prepare(self) -> None:
        java()
        if self._jamm_jar() is None:
            raise InstallError(
                f"Cassandra jars (jamm agent) missing from {self.lib_path}",
                fix="run `userstream install cassandra`",
            )
        self.write_config()

    def jvm_options(self) -> list[str]:
        s = self.settings
        return [
            # a fixed, pre-touched heap (as cassandra-env.sh sizes it): memory is taken once at start, so
            # the node's footprint does not creep toward -Xmx over hours of load
            f"-Xms{s.cassandra_heap}",
            f"-Xmx{s.cassandra_heap}",
            "-XX:+AlwaysPreTouch",
            *GC_OPTIONS,
            "-XX:+PerfDisableSharedMem",  # no hsperfdata mmap: avoids GC stalls on a busy disk
            "-XX:+ExitOnOutOfMemoryError",  # die rather than limp; supervisord restarts it
            "-Djava.net.preferIPv4Stack=true",
            # programs() must not fail before install (status/down call it): prepare() checks the jar
            f"-javaagent:{self._jamm_jar() or self.lib_path / 'jamm.jar'}",
            *JVM17_MODULE_OPTIONS,
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
            "-Dchronicle.analytics.disable=true",
            f"-Dcassandra.config=file://{self.conf_path / 'cassandra.yaml'}",
            f"-Dlogback.configurationFile=file://{self.conf_path / 'logback.xml'}",
            f"-Dcassandra.storagedir={self.data_path}",
            f"-Dcassandra.logdir={s.log_dir}",
            "-Dcassandra-foreground=yes",
            # every node a seed, started at once: do not wait for gossip to settle
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            # the default superuser (replaced by ours at once) is created at start, not 10 s after
            "-Dcassandra.superuser_setup_delay_ms=0",
            # every login checks its password with bcrypt, cached or not: see BCRYPT_LOG2_ROUNDS
            f"-Dcassandra.auth_bcrypt_gensalt_log2_rounds={BCRYPT_LOG2_ROUNDS}",
            # no JMX server (no cassandra.jmx.*port): nothing else to bind, nothing to secure
        ]

    def programs(self) -> list[Program]:
        if self.external:
            return []
        cp = f"{self.conf_path}:{self.lib_path / '*'}"
        return [
            Program(
                name="cassandra",
                command=[
                    shutil.which("java") or "java",
                    *self.jvm_options(),
                    "-cp",
                    cp,
                    "org.apache.cassandra.service.CassandraDaemon",
                    "-f",
                ],
                cwd=self.data_path,
                stop_wait_s=90,  # SIGTERM drains: memtables are flushed before exit
                start_secs=5,
            )
        ]

    @property
    def _roles_marker(self) -> Path:
        return self.data_path / "roles-ready"

    def after_start(self) -> None:
        if self.external:
            return
        ensure_roles(self.settings, first_start=not self._roles_marker.exists())
        self._roles_marker.write_text("our superuser replaced the default one; roles created\n")

    # --- health --------------------------------------------------------------------------
    def health(self) -> Health:
        s = self.settings
        # ours: this node itself, not whichever node of the cluster answers
        hosts = s.cassandra_hosts if self.external else [s.node_host]
        if not self.external and not tcp_open(hosts[0], s.cassandra_port):
            return Health(False, f"{hosts[0]}:{s.cassandra_port} not listening")
        logins = [credentials(s, "monitor")]
        if not self.external and not self._roles_marker.exists():
            # first start: only the default superuser exists yet, unless another node of the cluster has
            # already replaced it by our roles
            logins = [DEFAULT_SUPERUSER, *logins] if s.cassandra_nodes is None else [*logins, DEFAULT_SUPERUSER]
        error: Exception | None = None
        for login in logins:
            try:
                version = cql_release_version(
                    hosts, s.cassandra_port, *login, ssl_context=tls_context(s), only_these=not self.external
                )
                return Health(True, f"Cassandra {version}")
            except Exception as exc:  # the driver raises many types (NoHostAvailable, OperationTimedOut, ...)
                error = exc
                if not _bad_login(exc):
                    break
        return Health(False, f"{type(error).__name__}: {str(error)[:200]}")

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {"cql": ",".join(f"{h}:{s.cassandra_port}" for h in s.cassandra_hosts)}


def cql_release_version(
    hosts: list[str],
    port: int,
    username: str,
    password: str,
    timeout_s: float = 3.0,
    ssl_context: ssl.SSLContext | None = None,
    only_these: bool = False,
) -> str:
    """``SELECT release_version FROM system.local`` through a short-lived driver session (``only_these``: of
    the given hosts, never a peer the driver discovers)."""
    # the driver logs every failed connect attempt as a warning; a health probe expects failures
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    policy = WhiteListRoundRobinPolicy(hosts) if only_these else RoundRobinPolicy()
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=timeout_s)
    cluster = Cluster(
        contact_points=hosts,
        port=port,
        connect_timeout=timeout_s,
        control_connection_timeout=timeout_s,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=PlainTextAuthProvider(username=username, password=password),
        ssl_context=ssl_context,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


def _login(settings: Settings, username: str, password: str) -> Session:
    cluster = Cluster(
        settings.cassandra_hosts,
        port=settings.cassandra_port,
        connect_timeout=10,
        auth_provider=PlainTextAuthProvider(username=username, password=password),
        ssl_context=tls_context(settings),
    )
    try:
        return cluster.connect()
    except BaseException:
        cluster.shutdown()
        raise


def _bad_login(exc: Exception) -> bool:
    errors = exc.errors.values() if isinstance(exc, NoHostAvailable) else [exc]
    return any(isinstance(e, AuthenticationFailed) for e in errors)


def _hash_rounds(session: Session, role: str) -> int | None:
    """The log2 rounds of the role's stored bcrypt hash (``$2a$10$...``), None when unknown."""
    row = session.execute("SELECT salted_hash FROM system_auth.roles WHERE role = %s", (role,)).one()
    try:
        return int(row.salted_hash.split("$")[2]) if row is not None and row.salted_hash else None
    except (IndexError, ValueError):
        return None


def _role_exists(session: Session, role: str) -> bool:
    return session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (role,)).one() is not None


def _set_login(session: Session, role: str, password: str, *, superuser: bool = False) -> None:
    """Create the role with ``password``, or set it on an existing one (Cassandra refuses a second change of
    the same role's password within 5 s, so an unchanged password is never set again: see ensure_roles)."""
    if _role_exists(session, role):
        alter = f"ALTER ROLE {role} WITH PASSWORD = %s"
        try:
            session.execute(alter, (password,), timeout=30)
        except Exception as exc:  # e.g. a restart right after a change: once more after the 5 s
            if "can only be changed every" not in str(exc):
                raise
            time.sleep(PASSWORD_CHANGE_INTERVAL_S)
            session.execute(alter, (password,), timeout=30)
    else:
        extra = " AND SUPERUSER = true" if superuser else ""
        session.execute(f"CREATE ROLE {role} WITH LOGIN = true{extra} AND PASSWORD = %s", (password,), timeout=30)


def _logs_in(settings: Settings, username: str, password: str) -> bool:
    try:
        _login(settings, username, password).cluster.shutdown()
    except Exception as exc:
        if _bad_login(exc):
            return False
        raise
    return True


def _create_admin(settings: Settings, admin: str, password: str) -> None:
    default = _login(settings, *DEFAULT_SUPERUSER)
    try:
        _set_login(default, admin, password, superuser=True)
    finally:
        default.cluster.shutdown()


def _admin_session(settings: Settings, first_start: bool, wait_s: float) -> Session:
    """Logged in as our superuser; at the first start it is created first, as the default one."""
    admin, password = credentials(settings, "admin")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return _login(settings, admin, password)
        except Exception as exc:  # NoHostAvailable wraps refused connections and bad logins alike
            error = exc
        if first_start and _bad_login(error):
            try:
                _create_admin(settings, admin, password)
            except Exception as exc:  # the default superuser is not there yet, or roles not readable yet
                error = exc
        if time.monotonic() > deadline:
            raise error
        time.sleep(1)


def ensure_roles(settings: Settings, *, first_start: bool, wait_s: float = 60.0) -> None:
    """Our own cluster: our generated superuser replaces the default ``cassandra`` one (disabled, with a random
    password), and the stream and monitor roles log in with the passwords of the secrets dir. Idempotent: a
    later start sets the current passwords again (a rotation is applied by a restart)."""
    session = _admin_session(settings, first_start, wait_s)
    try:
        default = DEFAULT_SUPERUSER[0]
        row = session.execute("SELECT is_superuser, can_login FROM system_auth.roles WHERE role = %s", (default,)).one()
        if row is not None and (row.is_superuser or row.can_login):  # disabled once; never changed again after
            disable = f"ALTER ROLE {default} WITH SUPERUSER = false AND LOGIN = false AND PASSWORD = %s"
            session.execute(disable, (new_secret(),), timeout=30)
        if len(settings.cassandra_hosts) > 1 and settings.cassandra_contact_points is None:
            # logins must survive a node's loss: system_auth replicated as the pipeline's keyspace is
            alter = f"ALTER KEYSPACE system_auth WITH replication = {settings.cassandra_replication}"
            session.execute(alter, timeout=60)
        for identity in ("admin", "stream", "monitor"):
            role, password = credentials(settings, identity)  # type: ignore[arg-type]
            # admin is logged in already; a hash of other rounds (an older install's) is made again
            logs_in = identity == "admin" or (_role_exists(session, role) and _logs_in(settings, role, password))
            if not logs_in or _hash_rounds(session, role) != BCRYPT_LOG2_ROUNDS:
                _set_login(session, role, password)
    finally:
        session.cluster.shutdown()
