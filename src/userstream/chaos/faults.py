"""The fault catalogue and how each fault is injected: signals to the supervised programs' pids.

A kill is ``kill -9`` of the program's process (its whole process group and descendants too for the
Spark worker, whose executor runs under it, and for the streaming driver, a JVM with a Python child).
A freeze is SIGSTOP of the process and its descendants, then SIGCONT after a pause. Nothing here repairs
anything: whether the stack comes back on its own is what `userstream chaos` measures.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import time
from dataclasses import dataclass

import psutil

from userstream.config import Settings
from userstream.errors import UserstreamError
from userstream.pipeline import bootstrap
from userstream.runtime.process import ProcessManager
from userstream.runtime.stack import Stack
from userstream.stream.control import PROGRAM as STREAM_PROGRAM
from userstream.stream.control import job_health


class ChaosError(UserstreamError):
    """A chaos run cannot go on (a bad option, a program that is not running, the demo exited)."""


class Kind(enum.Enum):
    KILL = "kill"
    FREEZE = "freeze"


@dataclass(frozen=True)
class Fault:
    name: str
    program: str  # the supervisord program the signal goes to
    service: str | None  # the Stack service whose health() says it is back; None: the program's state
    kind: Kind = Kind.KILL
    tree: bool = False  # also its process group and every descendant
    description: str = ""


FAULTS: tuple[Fault, ...] = (
    Fault("kafka", "kafka", "kafka", description="kill -9 of the Kafka broker"),
    Fault("connect", "connect", "connect", description="kill -9 of Kafka Connect (Debezium)"),
    Fault("cassandra", "cassandra", "cassandra", description="kill -9 of Cassandra"),
    Fault("postgres", "postgres", "postgres", description="kill -9 of the PostgreSQL postmaster"),
    Fault("registry", "registry", "registry", description="kill -9 of the schema registry"),
    Fault("spark-worker", "spark-worker", "spark", tree=True,
          description="kill -9 of the Spark worker and the executor under it"),
    Fault("stream-driver", "stream", None, tree=True,
          description="kill -9 of the streaming job's driver (spark-submit and its Python driver)"),
    Fault("airflow-scheduler", "airflow-scheduler", "airflow", description="kill -9 of the Airflow scheduler"),
    Fault("cassandra-freeze", "cassandra", "cassandra", Kind.FREEZE, description="SIGSTOP, then SIGCONT, of Cassandra"),
    Fault("kafka-freeze", "kafka", "kafka", Kind.FREEZE, description="SIGSTOP, then SIGCONT, of the Kafka broker"),
)  # fmt: skip
FAULT_NAMES: tuple[str, ...] = tuple(f.name for f in FAULTS)


def parse_faults(spec: str) -> tuple[Fault, ...]:
    """``"kafka,cassandra-freeze"`` -> those faults in that order; ``all`` or empty: the whole catalogue;
    ``none``: no faults (a soak)."""
    names = [n.strip().lower() for n in spec.split(",") if n.strip()]
    if not names or names == ["all"]:
        return FAULTS
    if names == ["none"]:
        return ()
    by_name = {f.name: f for f in FAULTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ChaosError(
            f"unknown fault(s): {', '.join(unknown)}",
            fix=f"choose from {', '.join(FAULT_NAMES)} (comma-separated), `all`, or `none` for a soak",
        )
    return tuple(by_name[n] for n in dict.fromkeys(names))  # duplicates once, order kept


@dataclass(frozen=True)
class Injection:
    fault: Fault
    pids: tuple[int, ...]  # every process signalled; the first is the program's own
    at: float  # epoch seconds, just before the first signal


def _descendants(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _signal_all(pids: tuple[int, ...], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def inject(fault: Fault, processes: ProcessManager) -> Injection:
    """Signal the program now; raises ChaosError when it is not running (nothing to break)."""
    pid = processes.pid(fault.program)
    if pid is None:
        raise ChaosError(f"{fault.program} is not running: cannot inject {fault.name}", fix="check `userstream status`")
    # a frozen parent with running children is no freeze: stop the tree
    with_tree = fault.tree or fault.kind is Kind.FREEZE
    pids = (pid, *(_descendants(pid) if with_tree else []))
    at = time.time()
    if fault.kind is Kind.FREEZE:
        _signal_all(pids, signal.SIGSTOP)
        return Injection(fault, pids, at)
    if fault.tree:
        # supervisord makes each program a group leader; never signal a group that is not the program's own
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(pid) == pid and pid != os.getpgrp():
                os.killpg(pid, signal.SIGKILL)
    _signal_all(pids, signal.SIGKILL)  # descendants that left the group, and the program itself otherwise
    return Injection(fault, pids, at)


def resume(injection: Injection) -> None:
    """SIGCONT to every process a freeze stopped (harmless for a kill: they are gone)."""
    if injection.fault.kind is Kind.FREEZE:
        _signal_all(injection.pids, signal.SIGCONT)


def is_back(injection: Injection, processes: ProcessManager, stack: Stack) -> bool:
    """The program runs again (a new process after a kill) and its service answers its health probe."""
    fault = injection.fault
    if processes.state(fault.program) != "RUNNING":
        return False
    if fault.kind is Kind.KILL and processes.pid(fault.program) in injection.pids:
        return False  # supervisord has not noticed the death yet
    if fault.service is None:
        # the streaming driver has no service of its own: healthy is its job's health (queries active, a fresh
        # heartbeat), as `userstream status` says, not merely its process running (a JVM still starting)
        return fault.program != STREAM_PROGRAM or job_health(stack.settings)[0]
    return stack.services[fault.service].health().healthy


def repair(fault: Fault, settings: Settings) -> None:
    """What a human would do when the stack did not heal: start what the fault took down, then
    `userstream bootstrap` (the connector, the streaming job). The fault is then reported as not recovered;
    the repair only lets the next faults be measured on a working pipeline."""
    if fault.service is not None:
        Stack(settings, [fault.service]).up()
    bootstrap(settings)


__all__ = ["FAULTS", "FAULT_NAMES", "ChaosError", "Fault", "Injection", "Kind", "inject", "is_back", "parse_faults",
           "repair", "resume"]  # fmt: skip
