"""The watchdog: the one place that acts when a component's own recovery is not enough.

Most recovery belongs to the components (supervisord restarts a dead process, Debezium and Connect retry in
place, the streaming driver restarts a failed query, Airflow retries a failed ingest run). This supervised
program covers what they leave:

* a program that ended FATAL (supervisord gave up after its start retries) is started again, with
  bounded exponential backoff, forever;
* a FAILED CDC connector or task is restarted (``restart?includeTasks=true&onlyFailed=true``, as Strimzi's
  auto-restart does), with backoff;
* a streaming driver that runs but has processed nothing for ``stream_restart_after_s`` while its topic has
  a backlog is restarted (it resumes from its checkpoint);
* processes left behind by a program that died (children of a killed Airflow scheduler hold its database
  locks) are killed once supervisord has started the program again;
* every round, each stage's verdict (:mod:`userstream.monitor.stall`) is written for ``status``, the
  dashboard and ``/metrics``.

Every action is logged (``userstream logs watchdog``) and listed in the verdict file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections import deque

import httpx
import psutil

from userstream.cdc.connector import restart_failed
from userstream.config import Settings, get_settings
from userstream.errors import ServiceError
from userstream.monitor.service import settings_environment
from userstream.monitor.stage_probe import StageProbe
from userstream.monitor.stall import StallRule, read_stage_states, write_stage_states
from userstream.runtime.backoff import Backoff
from userstream.runtime.base import Health, Service
from userstream.runtime.process import ProcessManager, Program
from userstream.runtime.signals import stop_on_signals
from userstream.stream.control import PROGRAM as STREAM_PROGRAM

__all__ = ["Watchdog", "WatchdogService"]

log = logging.getLogger("userstream.watchdog")

PROGRAM = "watchdog"


class Watchdog:
    def __init__(self, settings: Settings, processes: ProcessManager | None = None) -> None:
        self.settings = settings
        self.processes = processes or ProcessManager(settings)
        self.rule = StallRule(settings.stall_after_s)
        self.probe = StageProbe(settings)
        self.actions: deque[str] = deque(maxlen=20)
        self._program_backoff: dict[str, Backoff] = {}
        self._running_since: dict[str, float] = {}
        self._pids: dict[str, int] = {}
        self._connector_backoff = Backoff(2.0, 30.0)  # a long outage still leaves it <= 30 s late
        self._stream_backoff = Backoff(30.0, 600.0)

    def _act(self, message: str) -> None:
        log.warning("%s", message)
        self.actions.append(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}")

    # --- one round ---------------------------------------------------------------------------------------
    def round(self) -> None:
        states = self.processes.states()
        self._reap_leftovers(self.processes.running_pids())
        self._restart_fatal(states)
        self._restart_failed_connector(states)
        verdicts = [self.rule.observe(sample) for sample in self.probe.sample()]
        stream = next(v for v in verdicts if v.stage == "stream")
        self._restart_stalled_stream(states, stream.waiting_s if stream.stalled else None)
        write_stage_states(self.settings, verdicts, list(self.actions))

    def _reap_leftovers(self, pids: dict[str, int]) -> None:
        """supervisord starts each program as its own process group (pgid = its pid): whatever still runs in
        the group of a program's previous pid was orphaned when that process died."""
        for name, pid in pids.items():
            old = self._pids.get(name)
            if old is None or old == pid:
                continue
            leftovers = [p for p in psutil.process_iter() if p.pid not in (pid, old) and _pgid(p.pid) == old]
            for proc in leftovers:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            if leftovers:
                self._act(f"killed {len(leftovers)} process(es) left over from {name}'s previous run (pid {old})")
        self._pids.update(pids)

    def _restart_fatal(self, states: dict[str, str]) -> None:
        now = time.monotonic()
        for name, state in states.items():
            if state == "RUNNING":
                since = self._running_since.setdefault(name, now)
                backoff = self._program_backoff.get(name)
                if backoff is not None and backoff.failures and now - since > 60:
                    backoff.succeeded()
                continue
            self._running_since.pop(name, None)
            if state != "FATAL" or name == PROGRAM:
                continue  # STOPPED is someone's decision; EXITED an expected exit; BACKOFF supervisord's turn
            backoff = self._program_backoff.setdefault(name, Backoff(5.0, 60.0))
            if not backoff.ready():
                continue
            try:
                self.processes.restart_known(name)
                self._act(f"restarted {name} (it had ended FATAL; restart {backoff.failures + 1})")
            except ServiceError as exc:
                self._act(f"could not restart {name}: {exc.message}")
            backoff.failed()

    def _restart_failed_connector(self, states: dict[str, str]) -> None:
        if self.settings.connect_url is None and states.get("connect") != "RUNNING":
            return
        if not self._connector_backoff.ready():
            return
        try:
            failed = restart_failed(self.settings)
        except httpx.HTTPError:
            return  # Connect itself is down: supervisord (or the FATAL rule above) brings it back
        if failed:
            delay = self._connector_backoff.failed()
            self._act(f"restarted the CDC connector's failed {', '.join(failed)} (next check in >= {delay:.0f}s)")
        elif self._connector_backoff.failures:
            self._connector_backoff.succeeded()

    def _restart_stalled_stream(self, states: dict[str, str], stalled_s: float | None) -> None:
        if stalled_s is None:
            if self._stream_backoff.failures and states.get(STREAM_PROGRAM) == "RUNNING":
                self._stream_backoff.succeeded()
            return
        up_s = time.monotonic() - self._running_since.get(STREAM_PROGRAM, time.monotonic())
        limit = self.settings.stream_restart_after_s
        if states.get(STREAM_PROGRAM) != "RUNNING" or stalled_s < limit or up_s < limit:
            return
        if not self._stream_backoff.ready():
            return
        self.processes.stop(STREAM_PROGRAM)
        self.processes.restart_known(STREAM_PROGRAM)
        self._running_since.pop(STREAM_PROGRAM, None)
        self.rule.forget("stream")
        delay = self._stream_backoff.failed()
        self._act(f"restarted the streaming driver: stalled {stalled_s:.0f}s with a backlog (next in >= {delay:.0f}s)")

    # --- loop --------------------------------------------------------------------------------------------
    def run_forever(self) -> None:
        stop = stop_on_signals()
        interval, stall = self.settings.watchdog_interval_s, self.rule.stall_after_s
        log.info("watchdog: a round every %.0fs; a stage is stalled after %.0fs", interval, stall)
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.round()
            except Exception:  # the watchdog must outlive whatever it watches
                log.exception("watchdog round failed")
            stop.wait(max(0.0, self.settings.watchdog_interval_s - (time.monotonic() - started)))
        self.probe.close()
        log.info("watchdog stopped")


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


class WatchdogService(Service):
    name = "watchdog"
    start_timeout_s = 60.0

    def programs(self) -> list[Program]:
        env = settings_environment(self.settings)
        command = [sys.executable, "-m", "userstream.runtime.watchdog"]
        return [Program(name=PROGRAM, command=command, env=env, cwd=self.settings.root, stop_wait_s=10)]

    def health(self) -> Health:
        verdicts, error = read_stage_states(self.settings, max_age_s=3 * self.settings.watchdog_interval_s + 15)
        if error:
            return Health(False, error)
        stalled = [v.stage for v in verdicts if v.stalled]
        return Health(True, f"watching; stalled: {', '.join(stalled)}" if stalled else "watching; nothing stalled")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="userstream-watchdog", description="the stack's watchdog (supervised)")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Watchdog(get_settings()).run_forever()


if __name__ == "__main__":
    main()
