"""For a soak: memory (RSS) of every supervised program and the size of the data dir's growing parts,
at the start and at the end, and how much each grew."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from userstream.config import Settings
from userstream.runtime.process import ProcessManager


def tree_rss(pid: int) -> int | None:
    """RSS in bytes of a process and its descendants (the Spark worker's executor, Airflow's workers)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # exited between the listing and the read
            continue
    return total


def dir_bytes(path: Path) -> int | None:
    """Bytes of the files under ``path`` (symlinks not followed); None when it does not exist."""
    if not path.exists():
        return None
    total = 0
    for root, _dirs, files in os.walk(path, onerror=lambda _e: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # removed while walking (segments, compactions)
                continue
    return total


def watched_dirs(settings: Settings) -> dict[str, Path]:
    return {
        "logs": settings.log_dir,
        "checkpoints": settings.checkpoint_dir,
        "kafka": settings.state_dir / "kafka",
        "postgres": settings.state_dir / "postgres",
        "cassandra": settings.state_dir / "cassandra",
    }


@dataclass(frozen=True)
class ResourceSnapshot:
    t: float
    rss: dict[str, int | None]  # program -> bytes
    disk: dict[str, int | None]  # watched dir -> bytes


def snapshot(settings: Settings) -> ResourceSnapshot:
    pids = ProcessManager(settings).running_pids()
    return ResourceSnapshot(
        t=time.time(),
        rss={name: tree_rss(pid) for name, pid in sorted(pids.items())},
        disk={label: dir_bytes(path) for label, path in watched_dirs(settings).items()},
    )


def growth(start: ResourceSnapshot, end: ResourceSnapshot) -> dict[str, Any]:
    """Start, end and growth of each program's RSS (%) and each watched dir (bytes)."""
    rss: dict[str, Any] = {}
    for name in sorted(set(start.rss) | set(end.rss)):
        a, b = start.rss.get(name), end.rss.get(name)
        pct = round((b - a) / a * 100, 1) if a and b is not None else None
        rss[name] = {"start_bytes": a, "end_bytes": b, "growth_pct": pct}
    disk: dict[str, Any] = {}
    for label in sorted(set(start.disk) | set(end.disk)):
        a, b = start.disk.get(label), end.disk.get(label)
        grew = b - a if a is not None and b is not None else None
        disk[label] = {"start_bytes": a, "end_bytes": b, "growth_bytes": grew}
    return {"seconds": round(end.t - start.t, 1), "rss": rss, "disk": disk}


__all__ = ["ResourceSnapshot", "dir_bytes", "growth", "snapshot", "tree_rss", "watched_dirs"]
