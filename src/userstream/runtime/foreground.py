"""`userstream run SERVICE`: one service in the foreground, through the same contract as `up` (for a
container's PID 1 under tini, or a process manager of your own).

The service's programs run as children of this process instead of supervisord's: prepared the same way,
the same commands, environment and users. Once healthy its ``after_start`` runs (roles, logins), exactly
as under `up` (tried again with backoff while the peers of a cluster are not all there yet).
SIGTERM or SIGINT stops the children gracefully (each with its own signal and grace
period); a child that exits on its own ends the run with its exit code, so the container restarts.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from types import FrameType

from userstream.errors import ServiceError
from userstream.runtime.base import Service
from userstream.runtime.process import Program

log = logging.getLogger("userstream.run")


def _spawn(program: Program) -> subprocess.Popen[bytes]:
    log.info("starting %s", program.name)
    return subprocess.Popen(
        program.command,
        env={**os.environ, **program.env},
        cwd=program.cwd,
        user=program.user,
        start_new_session=True,  # a Ctrl-C in a terminal reaches us only: we stop the children in order
    )


def _stop(children: dict[str, subprocess.Popen[bytes]], programs: list[Program]) -> None:
    """Every child its own stop signal, in reverse start order, then SIGKILL after its grace period."""
    for program in reversed(programs):
        child = children.get(program.name)
        if child is None or child.poll() is not None:
            continue
        log.info("stopping %s (SIG%s, up to %d s)", program.name, program.stop_signal, program.stop_wait_s)
        child.send_signal(getattr(signal, f"SIG{program.stop_signal}"))
        try:
            child.wait(program.stop_wait_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %d s: killed", program.name, program.stop_wait_s)
            child.kill()
            child.wait()


def run_foreground(service: Service, poll_s: float = 0.5) -> int:
    """Run ``service`` until a signal or until one of its programs exits; returns the exit code."""
    if service.external:
        raise ServiceError(
            f"{service.name} is external in these settings: there is nothing of ours to run",
            fix=f"unset the setting that points {service.name} at an external server",
        )
    programs = service.programs()
    service.check_ports()
    service.prepare()
    stopping = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("%s: %s received", service.name, signal.Signals(signum).name)
        stopping.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for program in programs:
            children[program.name] = _spawn(program)
        deadline = time.monotonic() + service.start_timeout_s
        healthy = False
        next_try, retry_s = 0.0, 2.0
        while not stopping.is_set():
            exited = {name: child.returncode for name, child in children.items() if child.poll() is not None}
            if exited:
                name, code = next(iter(exited.items()))
                log.error("%s exited with code %s", name, code)
                return code or 1
            if not healthy and time.monotonic() >= next_try:
                health = service.health()
                if health.healthy:
                    try:
                        service.after_start()
                        healthy = True
                        log.info("%s healthy: %s", service.name, health.detail)
                    except Exception as exc:  # a peer of a cluster not there yet: tried again, not fatal
                        log.warning(
                            "%s: its setup after start failed (tried again in %.0f s): %s", service.name, retry_s, exc
                        )
                        next_try = time.monotonic() + retry_s
                        retry_s = min(retry_s * 2, 30.0)
                if not healthy and time.monotonic() > deadline:
                    log.error("%s not set up after %.0f s: %s", service.name, service.start_timeout_s, health.detail)
                    return 1
            stopping.wait(poll_s)
        return 0
    finally:
        _stop(children, programs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


__all__ = ["run_foreground"]
