"""The load of a chaos run: `userstream up --demo` as `make run` starts it, in its own session, watched
from outside and stopped with Ctrl-C (SIGINT to its process group)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import psutil

from userstream.chaos.faults import ChaosError
from userstream.config import Settings
from userstream.runtime.process import ProcessManager


def demo_env(settings: Settings, source_url: str, rate: float) -> dict[str, str]:
    """What the demo's programs must inherit: the faulty source, unthrottled, and the rate (Airflow passes
    USERSTREAM_* on to the ingest task)."""
    return {
        "USERSTREAM_DATA_DIR": str(settings.root),
        "USERSTREAM_SOURCE_URL": source_url,
        "USERSTREAM_INGEST_RATE": f"{rate:g}",
        # the quota settings describe the provider at the source URL: the bundled server has none
        "USERSTREAM_SOURCE_QUOTA_USERS": "0",
    }


def running_with_other_env(settings: Settings, wanted: dict[str, str]) -> bool:
    """True when programs of this data dir run and the ingest side (Airflow's scheduler) was not started
    with ``wanted``: the stack must be stopped so its programs start again with it."""
    pids = ProcessManager(settings).running_pids()
    if not pids:
        return False
    pid = pids.get("airflow-scheduler")
    if pid is None:
        return True
    try:
        env = psutil.Process(pid).environ()
    except psutil.Error:
        return True
    return any(env.get(k) != v for k, v in wanted.items())


class DemoProcess:
    def __init__(self, settings: Settings, source_url: str, log_path: Path, command: list[str] | None = None) -> None:
        self.settings = settings
        self.source_url = source_url
        self.log_path = log_path
        self.command = command or [str(Path(sys.executable).with_name("userstream")), "up", "--demo"]
        self.child: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, rate: float) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")  # a restart at a lower rate appends
        env = {**os.environ, **demo_env(self.settings, self.source_url, rate)}
        self.child = subprocess.Popen(
            self.command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=env,
        )  # fmt: skip

    def check(self) -> None:
        """Raise when the demo has exited: nothing is ingesting any more."""
        if self.child is not None and self.child.poll() is not None:
            raise ChaosError(f"`{' '.join(self.command)}` exited {self.child.returncode}", fix=f"read {self.log_path}")

    def stop(self, wait_s: float = 240.0) -> int | None:
        """Ctrl-C (the demo pauses ingest and stops the stack); SIGKILL of its group after ``wait_s``."""
        child, self.child = self.child, None
        code: int | None = None
        if child is not None:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGINT)
            try:
                code = child.wait(wait_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                code = child.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


__all__ = ["DemoProcess", "demo_env", "running_with_other_env"]
