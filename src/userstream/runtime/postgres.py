"""PostgreSQL 15: our own cluster under the data dir, logical WAL for Debezium, password auth."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

from userstream.errors import ConfigError, InstallError, ServiceError
from userstream.runtime.base import Health, Reporter, Service
from userstream.runtime.process import Program
from userstream.secret_store import LEGACY_POSTGRES_PASSWORD, new_secret, write_private
from userstream.store.postgres import (
    PASSWORD_SECRETS,
    ROLES,
    PostgresIdentity,
    conninfo,
    database_of,
)

# A database made by an older version belongs to the admin role: what is in it is handed to its new owner
# (REASSIGN OWNED would also take the admin's own objects, and the admin is the bootstrap superuser).
_HAND_OVER_OBJECTS = """
DO $$
DECLARE obj record;
BEGIN
    -- tables first: a serial's sequence moves with its table (and cannot be moved alone)
    FOR obj IN SELECT n.nspname, c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND pg_get_userbyid(c.relowner) <> {owner}
               ORDER BY c.relkind = 'S'
    LOOP
        CONTINUE WHEN obj.relkind = 'S' AND pg_get_userbyid((SELECT relowner FROM pg_class
            WHERE oid = format('%I.%I', obj.nspname, obj.relname)::regclass)) = {owner};
        EXECUTE format(CASE obj.relkind WHEN 'S' THEN 'ALTER SEQUENCE %I.%I OWNER TO %I'
                                        WHEN 'v' THEN 'ALTER VIEW %I.%I OWNER TO %I'
                                        WHEN 'm' THEN 'ALTER MATERIALIZED VIEW %I.%I OWNER TO %I'
                                        ELSE 'ALTER TABLE %I.%I OWNER TO %I' END,
                       obj.nspname, obj.relname, {owner});
    END LOOP;
    FOR obj IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'public')
               AND nspname NOT LIKE 'pg_%' AND pg_get_userbyid(nspowner) <> {owner}
    LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO %I', obj.nspname, {owner});
    END LOOP;
END
$$
"""


def _find_bin_dir() -> Path | None:
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    return Path(candidates[0]).parent if candidates else None


def _as_root() -> bool:
    return os.geteuid() == 0


class PostgresService(Service):
    name = "postgres"
    start_timeout_s = 60.0

    @property
    def external(self) -> bool:
        return self.settings.postgres_dsn is not None

    @property
    def ports(self) -> list[int]:
        return [self.settings.postgres_port]

    @property
    def bin_dir(self) -> Path:
        found = _find_bin_dir()
        if found is None:
            raise InstallError(
                "PostgreSQL server binaries (pg_ctl, postgres, initdb) were not found",
                fix="run `userstream install` as root on Debian, or `apt-get install postgresql`",
            )
        return found

    @property
    def os_user(self) -> str | None:
        """initdb refuses to run as root, so root runs the cluster as the `postgres` account."""
        return "postgres" if _as_root() else None

    def install(self, reporter: Reporter) -> None:
        if _find_bin_dir() is not None:
            return
        if not (_as_root() and shutil.which("apt-get")):
            raise InstallError(
                "PostgreSQL server binaries were not found",
                fix="install PostgreSQL 15 (`apt-get install postgresql`) or set USERSTREAM_POSTGRES_DSN",
            )
        reporter.step("postgres: apt-get install postgresql")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, capture_output=True)
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "postgresql"], env=env, capture_output=True, text=True
        )
        if proc.returncode != 0 or _find_bin_dir() is None:
            raise InstallError(f"apt-get install postgresql failed:\n{proc.stderr[-2000:]}")

    def _run_as_owner(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.os_user:
            argv = ["runuser", "-u", self.os_user, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True)

    def _make_traversable(self, path: Path) -> None:
        """The postgres account must reach the data dir: add search (x) permission on the way."""
        if not self.os_user:
            return
        for parent in [path, *path.parents]:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)

    def prepare(self) -> None:
        data = self.data_path
        data.parent.mkdir(parents=True, exist_ok=True)
        # every start, not only at initdb: a fresh clone under a 0700 temp dir must be reachable too
        self._make_traversable(data.parent)
        if (data / "PG_VERSION").exists():
            store = self.settings.secret_store
            if self.settings.postgres_password is None and not store.exists("postgres_password"):
                # a cluster made before passwords were generated: its role still has the old constant, which
                # is rotated to a generated one once the server is up (after_start)
                store.put("postgres_password", LEGACY_POSTGRES_PASSWORD)
            return
        data.mkdir(parents=True, exist_ok=True)
        pwfile = self.settings.run_dir / "pg.pw"
        write_private(pwfile, self.settings.secret("postgres_password") + "\n")
        if self.os_user:
            pw = pwd.getpwnam(self.os_user)
            os.chown(data, pw.pw_uid, pw.pw_gid)
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        data.chmod(0o700)
        proc = self._run_as_owner(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.settings.postgres_user,
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        pwfile.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise ServiceError(f"initdb failed:\n{proc.stderr[-2000:]}")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# userstream\n"
                f"listen_addresses = '{self.settings.bind_host}'\n"
                f"port = {self.settings.postgres_port}\n"
                "unix_socket_directories = ''\n"
                "wal_level = logical\n"
                "max_wal_senders = 10\n"
                "max_replication_slots = 10\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "logging_collector = off\n"
            )
        if self.settings.bind_host not in ("127.0.0.1", "localhost", "::1"):
            # listening beyond loopback (a container's network): logins from there too, never without password
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 scram-sha-256\nhost replication all 0.0.0.0/0 scram-sha-256\n")

    def programs(self) -> list[Program]:
        return [
            Program(
                name="postgres",
                command=[str(self.bin_dir / "postgres"), "-D", str(self.data_path)],
                cwd=self.data_path,  # a directory the postgres account can enter
                user=self.os_user,
                stop_signal="INT",  # "fast" shutdown: roll back clients, checkpoint, exit
                stop_wait_s=60,
            )
        ]

    def _connect(self, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        kwargs: dict[str, object] = {"connect_timeout": 2, "autocommit": True}
        if dbname:
            kwargs["dbname"] = dbname
        return psycopg.connect(conninfo(self.settings), **kwargs)  # type: ignore[arg-type]

    def health(self) -> Health:
        try:
            with self._connect("postgres") as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            return Health(False, str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        return Health(True, f"PostgreSQL {row[0] if row else '?'}")

    def after_start(self) -> None:
        if self.external:
            return
        if (
            self.settings.postgres_password is None
            and self.settings.secret("postgres_password") == LEGACY_POSTGRES_PASSWORD
        ):
            self.rotate_password()
        with self._connect("postgres") as conn:
            self._ensure_roles(conn)
            existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
            for identity in ("admin", "airflow", "registry"):
                self._ensure_database(conn, identity, created=database_of(self.settings, identity) in existing)
            # only the roles named here may connect, and none but the owners may make temp tables
            conn.execute("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC")
            pipeline_db = sql.Identifier(self.settings.postgres_db)
            clients = sql.SQL(", ").join(sql.Identifier(ROLES[i]) for i in ("ingest", "cdc", "monitor"))
            conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(pipeline_db, clients))
            # ingest lands through a temp table
            conn.execute(
                sql.SQL("GRANT TEMPORARY ON DATABASE {} TO {}").format(pipeline_db, sql.Identifier(ROLES["ingest"]))
            )

    def _ensure_roles(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        """Each component's login role, its password set from the store at every start (so a store restored or
        rotated while the server was down still matches); only SCRAM verifiers are sent."""
        existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
        for identity, role in ROLES.items():
            verifier = self._verifier(conn, role, self.settings.secret(PASSWORD_SECRETS[identity]))
            # Debezium reads the WAL: replication, and nothing more than SELECT on what it streams
            attrs = sql.SQL("LOGIN REPLICATION" if identity == "cdc" else "LOGIN NOREPLICATION")
            verb = sql.SQL("ALTER" if role in existing else "CREATE")
            conn.execute(
                sql.SQL("{} ROLE {} {} PASSWORD {}").format(verb, sql.Identifier(role), attrs, sql.Literal(verifier))
            )
        # the monitor reads replication slots' lag and server statistics
        conn.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(ROLES["monitor"])))

    def _ensure_database(
        self, conn: psycopg.Connection[tuple[object, ...]], identity: PostgresIdentity, created: bool
    ) -> None:
        db = database_of(self.settings, identity)
        owner = self.settings.postgres_user if identity == "admin" else ROLES[identity]
        if not created:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(db), sql.Identifier(owner)))
        elif identity != "admin":
            # made by an older version, owned by the admin role: handed over with what is in it
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(db), sql.Identifier(owner)))
            with self._connect(db) as inside:
                inside.execute(sql.SQL(_HAND_OVER_OBJECTS).format(owner=sql.Literal(owner)))
        conn.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db)))
        # a client killed mid-transaction whose forked children keep its socket open (Airflow's scheduler
        # under kill -9) would hold its row locks forever: such a session ends after a minute
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET idle_in_transaction_session_timeout = '60s'").format(sql.Identifier(db))
        )

    @staticmethod
    def _verifier(conn: psycopg.Connection[tuple[object, ...]], role: str, password: str) -> str:
        return conn.pgconn.encrypt_password(password.encode(), role.encode(), b"scram-sha-256").decode()

    def rotate_password(self) -> None:
        """New generated passwords for every role of ours: set on the server, then stored. Only SCRAM verifiers
        are sent (a statement that fails is logged by the server, with what it contains)."""
        if self.settings.postgres_password is not None:
            raise ConfigError(
                "the Postgres password is set by USERSTREAM_POSTGRES_PASSWORD, so it is not rotated here",
                fix="change the role's password yourself and the variable with it, or unset the variable",
            )
        store = self.settings.secret_store
        with self._connect("postgres") as conn:
            existing = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles").fetchall()}
            for identity, secret in PASSWORD_SECRETS.items():
                role = self.settings.postgres_user if identity == "admin" else ROLES[identity]
                if role not in existing:  # made at the next start, with the stored password
                    continue
                new = new_secret()
                verifier = self._verifier(conn, role, new)
                conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier)))
                store.put(secret, new)

    def urls(self) -> dict[str, str]:
        s = self.settings
        return {"postgres": f"postgresql://{s.postgres_user}@{s.bind_host}:{s.postgres_port}/{s.postgres_db}"}
