"""`userstream bench stack`: seconds from stopped to healthy per service, and idle memory (PSS)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from userstream.config import Settings
from userstream.runtime.stack import Stack


@dataclass
class StackBench:
    seconds_to_healthy: dict[str, float] = field(default_factory=dict)
    pss_mib: dict[str, float] = field(default_factory=dict)

    @property
    def total_pss_mib(self) -> float:
        return sum(self.pss_mib.values())


def _sum_over_tree(pid: int, measure: Callable[[psutil.Process], float]) -> float:
    """``measure`` summed over a process and its living descendants (those gone meanwhile are skipped)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += measure(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def process_tree_pss_mib(pid: int) -> float:
    """Proportional set size of a process and all its descendants (shared pages counted once)."""
    return _sum_over_tree(pid, lambda p: p.memory_full_info().pss) / 2**20


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its living descendants."""

    def cpu(proc: psutil.Process) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    return _sum_over_tree(pid, cpu)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """name -> CPU seconds so far of each process tree; diff two snapshots for the CPU a run cost."""
    return {name: process_tree_cpu_s(pid) for name, pid in pids.items()}


def stack_memory(stack: Stack) -> dict[str, float]:
    out: dict[str, float] = {}
    for service in stack.services.values():
        if service.external:
            continue
        mib = 0.0
        for program in service.programs():
            pid = stack.processes.pid(program.name)
            if pid:
                mib += process_tree_pss_mib(pid)
        out[service.name] = mib
    return out


def bench_stack(settings: Settings, idle_s: float = 20.0) -> StackBench:
    """Stop the stack, start it again and measure; leaves it running."""
    stack = Stack(settings)
    stack.install()
    stack.down()
    result = StackBench()

    def healthy(name: str, elapsed: float) -> None:
        result.seconds_to_healthy[name] = elapsed

    timings = stack.up(on_healthy=healthy)
    result.seconds_to_healthy["total"] = timings["total"]
    time.sleep(idle_s)  # let JIT, caches and Airflow's workers settle before sampling memory
    result.pss_mib = stack_memory(stack)
    return result
