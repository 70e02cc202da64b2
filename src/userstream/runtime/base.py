"""The runtime contract every service implements: install, start, health, stop, logs."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

from userstream.config import Settings
from userstream.errors import InstallError, PortInUseError, ServiceError
from userstream.runtime.process import ProcessManager, Program

PROJECT_ROOT = Path(__file__).resolve().parents[3]
JVM_DIR = PROJECT_ROOT / "jvm"
# supervisord restarts a killed program on its next loop, at most a second after it saw the exit
EXITED_GRACE_S = 3.0


class Reporter(Protocol):
    """Where long steps report progress (the CLI passes a rich-backed one)."""

    def step(self, message: str) -> None: ...


class SilentReporter:
    def step(self, message: str) -> None:
        pass


@dataclass(frozen=True)
class Health:
    healthy: bool
    detail: str = ""


class Service(ABC):
    """One server of the stack.

    Subclasses say which programs to run and how to tell they are healthy; this base class
    does the rest (ports check, process management, waiting) so ``userstream up`` is a loop.
    """

    name: ClassVar[str]
    depends_on: ClassVar[tuple[str, ...]] = ()
    start_timeout_s: ClassVar[float] = 120.0
    recover_every_s: ClassVar[float] = 10.0  # between two recover() steps while starting unhealthy

    def __init__(self, settings: Settings, processes: ProcessManager | None = None) -> None:
        self.settings = settings
        self.processes = processes or ProcessManager(settings)

    # --- to implement --------------------------------------------------------------------
    @property
    def external(self) -> bool:
        """True when the user pointed us at an existing server: we use it and never start it."""
        return False

    @property
    def ports(self) -> list[int]:
        """Local ports this service binds (checked before start)."""
        return []

    @abstractmethod
    def programs(self) -> list[Program]:
        """The processes to run, in start order."""

    @abstractmethod
    def health(self) -> Health:
        """Probe the service through its own protocol."""

    def install(self, reporter: Reporter) -> None:
        """Fetch what the service needs; idempotent and cheap when already done."""

    def prepare(self) -> None:
        """One-time initialisation before the first start (e.g. initdb); idempotent."""

    def after_start(self) -> None:
        """Work once healthy (e.g. create a role); idempotent."""

    def recover(self) -> None:
        """A step toward health the service can take by itself, tried every ``recover_every_s`` while it starts
        unhealthy (default: none)."""

    def urls(self) -> dict[str, str]:
        """Human-facing endpoints, printed by ``up``."""
        return {}

    # --- provided ------------------------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return self.settings.state_dir / self.name

    def running(self) -> bool:
        return not self.external and any(self.processes.is_alive(p.name) for p in self.programs())

    def check_ports(self) -> None:
        for port in self.ports:
            if not port_free(self.settings.bind_host, port):
                raise PortInUseError(
                    f"{self.name}: port {self.settings.bind_host}:{port} is already taken by another process",
                    fix=f"stop whatever listens there (`ss -ltnp 'sport = :{port}'`) or set another "
                    f"port in the USERSTREAM_{self.name.upper()}_*PORT setting",
                )

    def start(self, reporter: Reporter | None = None) -> None:
        if self.external:
            return
        if not self.running():
            self.check_ports()
        self.prepare()
        for program in self.programs():
            self.processes.start(program)
        self.wait_healthy()
        self.after_start()

    def wait_healthy(self, timeout_s: float | None = None) -> None:
        deadline = time.monotonic() + (timeout_s or self.start_timeout_s)
        last = Health(False, "not probed")
        next_recover = time.monotonic() + self.recover_every_s
        exited_since: dict[str, float] = {}
        while time.monotonic() < deadline:
            last = self.health()
            if last.healthy:
                return
            if time.monotonic() >= next_recover:
                self.recover()
                next_recover = time.monotonic() + self.recover_every_s
            if not self.external:
                dead = self._dead_programs(exited_since)
                if dead:
                    raise ServiceError(
                        f"{self.name}: process {', '.join(dead)} exited during start ({last.detail})",
                        fix=f"see {self.log_files()[0]}",
                    )
            time.sleep(0.5)
        raise ServiceError(
            f"{self.name} not healthy after {timeout_s or self.start_timeout_s:.0f}s: {last.detail}",
            fix=f"see {', '.join(str(p) for p in self.log_files())}",
        )

    def _dead_programs(self, exited_since: dict[str, float]) -> list[str]:
        """Programs that ended for good: FATAL, or EXITED for longer than supervisord takes to restart one.

        A program killed by a signal is EXITED until supervisord's next loop (up to a second) restarts it,
        so one EXITED probe right after a kill is not a failed start."""
        now = time.monotonic()
        dead = []
        for program in self.programs():
            state = self.processes.state(program.name)
            if state != "EXITED":
                exited_since.pop(program.name, None)
            if state == "FATAL" or (
                state == "EXITED" and now - exited_since.setdefault(program.name, now) >= EXITED_GRACE_S
            ):
                dead.append(program.name)
        return dead

    def stop(self) -> None:
        """Stop every program of the service at once (each gets its own grace period)."""
        if self.external:
            return
        names = [p.name for p in reversed(self.programs())]
        groups = [pid for pid in map(self.processes.pid, names) if pid is not None]
        if len(names) == 1:
            self.processes.stop(names[0])
        else:
            with ThreadPoolExecutor(max_workers=len(names)) as pool:
                list(pool.map(self.processes.stop, names))
        for pgid in groups:
            kill_process_group(pgid)

    def log_files(self) -> list[Path]:
        return [self.processes.log_file(p.name) for p in self.programs()]


# --- helpers shared by services ---------------------------------------------------------------
def kill_process_group(pgid: int) -> None:
    """SIGKILL what is left in a stopped program's process group (supervisord makes each program a group
    leader). supervisord signals the group but waits only for its own process: a child that outlives its
    parent's SIGTERM (a Spark executor whose worker was stopped ran on, orphaned, holding 1.4 GB) is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def public_urls(urls: dict[str, str]) -> dict[str, str]:
    """URLs fit for machine-readable output and pages: the dashboard's own URL carries its token."""
    return {k: v.split("?token=")[0] for k, v in urls.items()}


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tcp_open(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_binary(name: str, hint: str) -> str:
    path = shutil.which(name)
    if not path:
        raise InstallError(f"`{name}` was not found on PATH", fix=hint)
    return path


def java() -> str:
    return require_binary("java", "install a Java 17 JDK, e.g. `apt-get install openjdk-17-jdk-headless`")


def maven_install(component: str, dest: Path, reporter: Reporter, *, extra_goals: list[str] | None = None) -> Path:
    """Copy the runtime dependencies of ``jvm/<component>/pom.xml`` into ``dest``.

    Skipped when ``dest`` already holds the jars of the same pom (a stamp records its hash).
    """
    pom = JVM_DIR / component / "pom.xml"
    if not pom.exists():
        raise InstallError(f"missing {pom}", fix="run from a full checkout of userstream")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    stamp = dest / ".installed"
    if stamp.exists() and stamp.read_text() == digest:
        return dest
    mvn = require_binary("mvn", "install Maven, e.g. `apt-get install maven`")
    reporter.step(f"{component}: resolving jars from Maven Central (first time only)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    goals = extra_goals or [
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={dest}",
    ]
    proc = subprocess.run(
        [mvn, "-B", "-q", "-f", str(pom), *goals],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise InstallError(
            f"{component}: Maven could not fetch the jars:\n{tail}",
            fix="check network access to Maven Central, then run `userstream install` again",
        )
    stamp.write_text(digest)
    return dest


def classpath(*dirs: Path) -> str:
    return ":".join(str(d / "*") for d in dirs)
