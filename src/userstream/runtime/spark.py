"""Spark 3.5 standalone: one master and one worker, both from PySpark's own ``bin/spark-class``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx

from userstream.runtime.base import Health, Reporter, Service, tcp_open
from userstream.runtime.process import Program
from userstream.runtime.spark_submit import (
    SparkSubmit,
    build_submit,
    conf_dir,
    connector_jars,
    spark_home,
)
from userstream.runtime.spark_ui_auth import build_ui_auth_jar, ui_login

__all__ = ["SparkService", "SparkSubmit", "build_submit", "connector_jars"]

MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


class SparkService(Service):
    name = "spark"
    start_timeout_s = 240.0  # cold JVMs all starting at once on two slow cores take minutes

    @property
    def external(self) -> bool:
        return self.settings.spark_master_url is not None

    @property
    def ports(self) -> list[int]:
        s = self.settings
        return [s.spark_master_port, s.spark_master_ui_port, s.spark_worker_ui_port]

    @property
    def work_dir(self) -> Path:
        return self.data_path / "work"

    @property
    def local_dir(self) -> Path:
        return self.data_path / "local"

    def install(self, reporter: Reporter) -> None:
        spark_home()  # fail early and clearly if PySpark is incomplete
        connector_jars(self.settings, reporter)  # with our session factory: needs a JDK's javac
        if not self.external:
            build_ui_auth_jar(self.settings, reporter)  # the UIs' login filter: needs a JDK's javac

    def prepare(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.local_dir.mkdir(parents=True, exist_ok=True)

    def _env(self) -> dict[str, str]:
        s = self.settings
        return {
            "SPARK_HOME": str(spark_home()),
            "SPARK_CONF_DIR": str(conf_dir(s, "daemon")),
            "SPARK_LOCAL_IP": s.bind_host,  # RPC and web UIs bind here, not on every interface
            "SPARK_LOCAL_DIRS": str(self.local_dir),
            "SPARK_WORKER_DIR": str(self.work_dir),
            "SPARK_LOG_DIR": str(s.log_dir),
            "SPARK_NO_DAEMONIZE": "1",
            "SPARK_DAEMON_MEMORY": s.spark_daemon_memory,
            # Spark sets only -Xmx: a fixed, pre-touched heap keeps RSS flat, so a real leak shows in a soak
            "SPARK_DAEMON_JAVA_OPTS": f"-Xms{s.spark_daemon_memory} -XX:+AlwaysPreTouch",
            # the UIs' login filter (spark.ui.filters in spark-defaults.conf) must be on the daemons' classpath
            "SPARK_DAEMON_CLASSPATH": str(build_ui_auth_jar(s)),
            # finished applications' work dirs are removed after a day, not kept forever
            "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.appDataTtl=86400",
            # executors are forked by the worker: they run our venv's Python
            "PYSPARK_PYTHON": sys.executable,
            # glibc gives threads up to 8 malloc arenas per core; a JVM's many threads then keep native memory
            # that shows as RSS creeping for hours. Two arenas bound it (inherited by the executors)
            "MALLOC_ARENA_MAX": "2",
        }

    def programs(self) -> list[Program]:
        if self.external:
            return []
        s = self.settings
        spark_class = str(spark_home() / "bin" / "spark-class")
        env = self._env()
        master = Program(
            name="spark-master",
            command=[
                spark_class, MASTER_CLASS,
                "--host", s.node_host,
                "--port", str(s.spark_master_port),
                "--webui-port", str(s.spark_master_ui_port),
            ],
            env=env,
            cwd=self.data_path,
            stop_wait_s=30,
        )  # fmt: skip
        worker = Program(
            name="spark-worker",
            command=[
                spark_class, WORKER_CLASS,
                "--host", s.node_host,
                "--webui-port", str(s.spark_worker_ui_port),
                "--cores", str(s.spark_worker_cores),
                "--memory", s.spark_worker_memory,
                "--work-dir", str(self.work_dir),
                s.spark_master,
            ],
            env=env,
            cwd=self.data_path,
            stop_wait_s=30,
        )  # fmt: skip
        return [p for p, role in ((master, "master"), (worker, "worker")) if role in self.roles]

    @property
    def roles(self) -> set[str]:
        return {r.strip() for r in self.settings.spark_roles.split(",")}

    # --- health --------------------------------------------------------------------------
    def master_state(self) -> dict[str, Any]:
        """The master's own JSON status page (workers, applications), behind the UIs' login."""
        s = self.settings
        url = f"http://{s.spark_master_host or s.bind_host}:{s.spark_master_ui_port}/json/"
        response = httpx.get(url, auth=ui_login(self.settings), timeout=2.0)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def health(self) -> Health:
        if self.external:
            parsed = urlparse(self.settings.spark_master)
            host, port = parsed.hostname or "", parsed.port or 7077
            ok = tcp_open(host, port)
            return Health(ok, f"master {host}:{port} {'reachable' if ok else 'unreachable'}")
        try:
            state = self.master_state()
        except (httpx.HTTPError, ValueError) as exc:
            return Health(False, f"master UI: {type(exc).__name__}: {exc}")
        if state.get("status") != "ALIVE":
            return Health(False, f"master status {state.get('status')}")
        alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
        if "worker" in self.roles:  # this node's worker, registered with the master
            if not any(w.get("host") == self.settings.node_host for w in alive):
                return Health(False, f"master ALIVE, worker {self.settings.node_host} not registered yet")
        elif "master" not in self.roles:
            return Health(False, f"USERSTREAM_SPARK_ROLES={self.settings.spark_roles!r} names no Spark daemon")
        cores = sum(int(w.get("cores", 0)) for w in alive)
        return Health(True, f"master ALIVE, {len(alive)} worker(s), {cores} cores")

    def urls(self) -> dict[str, str]:
        s = self.settings
        if self.external:
            return {"master": s.spark_master}
        return {
            "master": s.spark_master,
            "master UI": f"http://{s.bind_host}:{s.spark_master_ui_port}",
            "worker UI": f"http://{s.bind_host}:{s.spark_worker_ui_port}",
        }
