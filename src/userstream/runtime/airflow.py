"""Airflow 3: api-server, scheduler, dag-processor and triggerer, metadata DB in our Postgres."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from userstream.errors import ServiceError
from userstream.runtime.base import PROJECT_ROOT, Health, Service
from userstream.runtime.process import Program
from userstream.secret_store import write_private
from userstream.store.postgres import conninfo_params

DAGS_DIR = PROJECT_ROOT / "dags"
COMPONENTS = ("api-server", "scheduler", "dag-processor")
TRIGGERER = "triggerer"  # only with settings.airflow_triggerer: its idle loop cost ~3 % of a core
ADMIN_USER = "admin"
AIRFLOW_PARSE_INTERVAL_S = 120


def airflow_bin() -> str:
    return str(Path(sys.executable).parent / "airflow")


class AirflowService(Service):
    name = "airflow"
    depends_on = ("postgres",)
    start_timeout_s = 240.0  # cold JVMs all starting at once on two slow cores take minutes

    @property
    def external(self) -> bool:
        return self.settings.airflow_url is not None

    @property
    def ports(self) -> list[int]:
        return [self.settings.airflow_port]

    @property
    def home(self) -> Path:
        return self.data_path

    def _metadata_url(self) -> str:
        s = self.settings
        if s.postgres_dsn:
            raise ServiceError(
                "a local Airflow needs a local Postgres for its metadata DB",
                fix="also set USERSTREAM_AIRFLOW_URL to use an external Airflow, or unset USERSTREAM_POSTGRES_DSN",
            )
        # Airflow's own role, owner of its database and nothing else
        pg = conninfo_params(s, "airflow")
        return f"postgresql+psycopg://{pg['user']}:{pg['password']}@{pg['host']}:{pg['port']}/{pg['dbname']}"

    def environment(self) -> dict[str, str]:
        """Airflow config by environment, plus the USERSTREAM_* settings so DAG tasks see the same Settings."""
        s = self.settings
        api = f"http://{s.bind_host}:{s.airflow_port}"
        env = {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(s.airflow_parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(s.airflow_parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__CORE__FERNET_KEY": "",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self._metadata_url(),
            # psycopg 3 also serves the async engine, so asyncpg is not needed
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": self._metadata_url().replace(
                "+psycopg://", "+psycopg_async://"
            ),
            "AIRFLOW__API__HOST": s.bind_host,
            "AIRFLOW__API__PORT": str(s.airflow_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__SECRET_KEY": s.secret("airflow_api_secret_key"),
            "AIRFLOW__API_AUTH__JWT_SECRET": s.secret("airflow_jwt_secret"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            # an idle stack's Airflow was ~10 % of a core: the DAG files (ours, changed by an upgrade or a
            # user's edit) re-parsed every 2 min, not 30 s, and an idle scheduler loop every 2 s, not 1 s
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(AIRFLOW_PARSE_INTERVAL_S),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": s.bind_host,
            # a scheduler killed mid-run: its task's missed heartbeats fail it (then retried) within a minute,
            # and the restarted scheduler adopts the dead one's tasks within 30 s (defaults: 300 s each)
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.settings.log_dir / "airflow"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "USERSTREAM_DATA_DIR": str(self.settings.root),
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("USERSTREAM_") and k not in env})
        return env

    def _write_passwords(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / "passwords.json"
        write_private(path, json.dumps({ADMIN_USER: self.settings.secret("airflow_admin_password")}))

    def prepare(self) -> None:
        self._write_passwords()
        stamp = self.home / ".db-migrated"
        version = subprocess.run([airflow_bin(), "version"], capture_output=True, text=True).stdout.strip()
        if stamp.exists() and stamp.read_text() == version:
            return
        proc = subprocess.run(
            [airflow_bin(), "db", "migrate"],
            env={**os.environ, **self.environment()},
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"airflow db migrate failed:\n{(proc.stdout + proc.stderr)[-2000:]}",
                fix="check that postgres is healthy (`userstream status`)",
            )
        stamp.write_text(version)

    def programs(self) -> list[Program]:
        env = self.environment()
        return [
            Program(name=f"airflow-{c}", command=[airflow_bin(), c], env=env, cwd=self.home, stop_wait_s=30)
            for c in self.components
        ]

    @property
    def components(self) -> tuple[str, ...]:
        return (*COMPONENTS, TRIGGERER) if self.settings.airflow_triggerer else COMPONENTS

    def health(self) -> Health:
        try:
            resp = httpx.get(f"{self.settings.airflow_endpoint}/api/v2/monitor/health", timeout=3)
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Health(False, type(exc).__name__)
        parts = {k: v.get("status") for k, v in body.items() if isinstance(v, dict)}
        if not self.settings.airflow_triggerer:
            parts.pop(TRIGGERER, None)  # none runs: Airflow reports it unhealthy (or null)
        bad = [k for k, v in parts.items() if v != "healthy"]
        return Health(not bad, "all components healthy" if not bad else f"not healthy: {', '.join(bad)}")

    def token(self) -> str:
        """A JWT for the REST API (SimpleAuthManager's /auth/token)."""
        resp = httpx.post(
            f"{self.settings.airflow_endpoint}/auth/token",
            json={"username": ADMIN_USER, "password": self.settings.secret("airflow_admin_password")},
            timeout=10,
        )
        resp.raise_for_status()
        return str(resp.json()["access_token"])

    def set_paused(self, dag_id: str, paused: bool, wait_s: float = 120.0) -> None:
        """Pause or unpause a DAG, waiting for the dag-processor to have parsed it first."""
        deadline = time.monotonic() + wait_s
        while True:
            resp = httpx.patch(
                f"{self.settings.airflow_endpoint}/api/v2/dags/{dag_id}",
                json={"is_paused": paused},
                headers={"Authorization": f"Bearer {self.token()}"},
                timeout=10,
            )
            if resp.status_code == 200:
                return
            if resp.status_code != 404 or time.monotonic() > deadline:
                verb = "pause" if paused else "unpause"
                raise ServiceError(
                    f"could not {verb} DAG {dag_id}: HTTP {resp.status_code} {resp.text[:300]}",
                    fix="see `userstream logs airflow`",
                )
            time.sleep(2)

    def end_running_runs(self, dag_id: str, note: str) -> int:
        """Mark the DAG's running and queued runs successful, which makes Airflow terminate their running tasks (a
        paused DAG still lets a running task finish its whole window). Returns how many runs were ended."""
        api = f"{self.settings.airflow_endpoint}/api/v2/dags/{dag_id}/dagRuns"
        headers = {"Authorization": f"Bearer {self.token()}"}
        resp = httpx.get(api, params={"state": ["running", "queued"]}, headers=headers, timeout=10)
        if resp.status_code == 404:  # the DAG is not parsed yet: nothing runs
            return 0
        if resp.status_code != 200:
            raise ServiceError(
                f"could not list the running runs of {dag_id}: HTTP {resp.status_code} {resp.text[:300]}",
                fix="see `userstream logs airflow`",
            )
        runs = [r["dag_run_id"] for r in resp.json().get("dag_runs", [])]
        for run_id in runs:
            done = httpx.patch(f"{api}/{run_id}", json={"state": "success", "note": note}, headers=headers, timeout=30)
            if done.status_code != 200:
                raise ServiceError(
                    f"could not end run {run_id} of {dag_id}: HTTP {done.status_code} {done.text[:300]}",
                    fix="see `userstream logs airflow`",
                )
        return len(runs)

    def urls(self) -> dict[str, str]:
        return {"Airflow UI": f"{self.settings.airflow_endpoint}  (user {ADMIN_USER})"}
