"""Local process management, delegated to supervisord (one daemon per data dir).

Each service describes its processes as :class:`Program`; this module turns them into
supervisor program sections and drives supervisord over its XML-RPC unix socket.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shlex
import subprocess
import sys
import threading
import time
import xmlrpc.client
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervisor.xmlrpc import SupervisorTransport

from userstream.config import Settings
from userstream.errors import ServiceError

# `Stack.up` starts independent services in parallel threads: without this, two of them can both find
# no daemon and both launch supervisord (the second fails: "Another program is already listening"), or
# interleave reloadConfig/addProcessGroup calls.
_DAEMON_LOCK = threading.RLock()

# ~4 min of tries (1 + 2 + ... + 20 s) before FATAL
START_RETRIES = 20

# supervisor states that mean "a process is up or on its way"
_ALIVE = {"STARTING", "RUNNING", "BACKOFF"}


@dataclass(frozen=True)
class Program:
    """One long-running OS process of a service."""

    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    stop_signal: str = "TERM"
    stop_wait_s: int = 60
    start_secs: int = 2


def _esc(value: str) -> str:
    return value.replace("%", "%%").replace('"', '\\"')


def _minfds() -> int:
    """As many open files as the hard limit allows (Cassandra and Kafka want many), up to 65536."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)


class ProcessManager:
    """A thin client of a supervisord owned by this data dir."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir
        self.socket = self.run_dir / "supervisor.sock"
        self.conf = self.run_dir / "supervisord.conf"
        self.programs_dir = self.run_dir / "programs"

    # --- daemon --------------------------------------------------------------------------
    def _rpc(self) -> Any:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def daemon_running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            state = self._rpc().supervisor.getState()
        except (OSError, xmlrpc.client.Fault):
            return False
        return bool(state.get("statename") == "RUNNING")

    def ensure_daemon(self) -> None:
        with _DAEMON_LOCK:
            self._ensure_daemon()

    def _ensure_daemon(self) -> None:
        if self.daemon_running():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        self.settings.log_dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        self.conf.write_text(
            "[unix_http_server]\n"
            f"file={self.socket}\n"
            "chmod=0700\n\n"
            "[supervisord]\n"
            f"logfile={self.settings.log_dir / 'supervisord.log'}\n"
            f"pidfile={self.run_dir / 'supervisord.pid'}\n"
            f"directory={self.settings.root}\n"
            f"minfds={_minfds()}\n"
            "loglevel=info\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            "[supervisorctl]\n"
            f"serverurl=unix://{self.socket}\n\n"
            "[include]\n"
            f"files = {self.programs_dir}/*.conf\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            env=os.environ.copy(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"supervisord failed to start: {(proc.stdout + proc.stderr).strip()[:1000]}",
                fix=f"see {self.settings.log_dir / 'supervisord.log'}",
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.daemon_running():
                return
            time.sleep(0.1)
        raise ServiceError(
            "supervisord did not come up",
            fix=f"see {self.settings.log_dir / 'supervisord.log'}",
        )

    def shutdown_daemon(self) -> None:
        if self.daemon_running():
            with contextlib.suppress(OSError, xmlrpc.client.Fault):
                self._rpc().supervisor.shutdown()
            deadline = time.monotonic() + 120
            while self.socket.exists() and time.monotonic() < deadline:
                time.sleep(0.2)

    # --- programs ------------------------------------------------------------------------
    def log_file(self, program: str) -> Path:
        return self.settings.log_dir / f"{program}.log"

    def _write_program(self, program: Program) -> None:
        # supervisor expands %(name)s in its values: a literal % must be doubled
        env = ",".join(f'{k}="{_esc(v)}"' for k, v in program.env.items())
        lines = [
            f"[program:{program.name}]",
            f"command={shlex.join(program.command).replace('%', '%%')}",
            f"directory={program.cwd or self.settings.root}",
            "autostart=false",
            "autorestart=unexpected",
            f"startsecs={program.start_secs}",
            # supervisord's own backoff (1 s, 2 s, ... between tries) while a port is still held or a
            # dependency is down; a program that still fails ends FATAL and the watchdog takes over
            f"startretries={START_RETRIES}",
            f"stopsignal={program.stop_signal}",
            f"stopwaitsecs={program.stop_wait_s}",
            "stopasgroup=true",
            "killasgroup=true",
            "redirect_stderr=true",
            f"stdout_logfile={self.log_file(program.name)}",
            "stdout_logfile_maxbytes=50MB",
            "stdout_logfile_backups=2",
        ]
        if program.user:
            lines.append(f"user={program.user}")
        if env:
            lines.append(f"environment={env}")
        path = self.programs_dir / f"{program.name}.conf"
        text = "\n".join(lines) + "\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)

    def state(self, name: str) -> str:
        """Supervisor state name of a program, or ``ABSENT``."""
        if not self.daemon_running():
            return "ABSENT"
        try:
            info = self._rpc().supervisor.getProcessInfo(name)
        except xmlrpc.client.Fault:
            return "ABSENT"
        return str(info["statename"])

    def is_alive(self, name: str) -> bool:
        return self.state(name) in _ALIVE

    def start(self, program: Program) -> None:
        with _DAEMON_LOCK:
            self._start(program)

    def _start(self, program: Program) -> None:
        self.ensure_daemon()
        self._write_program(program)
        rpc = self._rpc()
        added, changed, _removed = rpc.supervisor.reloadConfig()[0]
        for group in changed:
            if group == program.name:
                rpc.supervisor.stopProcessGroup(group)
                rpc.supervisor.removeProcessGroup(group)
        if program.name in added or program.name in changed:
            rpc.supervisor.addProcessGroup(program.name)
        if self.is_alive(program.name):
            return
        try:
            rpc.supervisor.startProcess(program.name, False)
        except xmlrpc.client.Fault as exc:
            raise ServiceError(
                f"{program.name} failed to start: {exc.faultString}",
                fix=f"see {self.log_file(program.name)}",
            ) from exc

    def states(self) -> dict[str, str]:
        """program -> supervisor state name, for every program the daemon knows."""
        if not self.daemon_running():
            return {}
        return {str(p["name"]): str(p["statename"]) for p in self._rpc().supervisor.getAllProcessInfo()}

    def restart_known(self, name: str) -> None:
        """Start a program the daemon already has (e.g. one that ended FATAL): its configuration is kept."""
        with _DAEMON_LOCK:
            try:
                self._rpc().supervisor.startProcess(name, False)
            except xmlrpc.client.Fault as exc:
                if "ALREADY_STARTED" not in exc.faultString:
                    raise ServiceError(
                        f"{name} failed to start: {exc.faultString}", fix=f"see {self.log_file(name)}"
                    ) from exc

    def stop(self, name: str) -> None:
        if not self.is_alive(name):
            return
        try:
            self._rpc().supervisor.stopProcess(name, True)
        except xmlrpc.client.Fault as exc:
            if "NOT_RUNNING" not in exc.faultString:
                raise

    def pid(self, name: str) -> int | None:
        if not self.daemon_running():
            return None
        try:
            info = self._rpc().supervisor.getProcessInfo(name)
        except xmlrpc.client.Fault:
            return None
        pid = int(info.get("pid") or 0)
        return pid or None

    def running_pids(self) -> dict[str, int]:
        """program -> pid of every running program (services and the jobs started beside them)."""
        if not self.daemon_running():
            return {}
        return {p["name"]: int(p["pid"]) for p in self._rpc().supervisor.getAllProcessInfo() if p.get("pid")}
