"""For a soak: memory of every supervised program and the size of the data dir's growing parts, sampled
through the run, and how much each grew.

RSS counts memory-mapped files (Kafka's segment indexes, Cassandra's SSTables) and shared memory (Postgres'
shared buffers), which fill to a bound and are the kernel's to reclaim. A leak shows in anonymous memory
(``RssAnon`` + swap) that keeps growing once the heaps and caches are warm, so the target is judged on that,
from a settled sample to the end, and the slope over the second half says whether it still climbs.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from userstream.config import Settings
from userstream.runtime.process import ProcessManager

MAX_GROWTH_PCT = 10.0  # the soak's target: anonymous memory grows less than this once settled


def _status_kib(pid: int, fields: tuple[str, ...]) -> int:
    total = 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in fields:
                total += int(value.split()[0])
    return total


def tree_memory(pid: int) -> tuple[int, int] | None:
    """(RSS, anonymous RSS + swap) in bytes of a process and its descendants (the Spark worker's executor,
    Airflow's workers); None when the process is gone."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return None
    rss = anon = 0
    for p in procs:
        try:
            rss += p.memory_info().rss
            anon += _status_kib(p.pid, ("RssAnon", "VmSwap")) * 1024
        except (psutil.Error, OSError):  # exited between the listing and the read
            continue
    return rss, anon


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
    anon: dict[str, int | None] | None = None  # program -> anonymous bytes (None: not measured)


def snapshot(settings: Settings) -> ResourceSnapshot:
    pids = ProcessManager(settings).running_pids()
    memory = {name: tree_memory(pid) for name, pid in sorted(pids.items())}
    return ResourceSnapshot(
        t=time.time(),
        rss={name: m[0] if m else None for name, m in memory.items()},
        disk={label: dir_bytes(path) for label, path in watched_dirs(settings).items()},
        anon={name: m[1] if m else None for name, m in memory.items()},
    )


def _pct(a: int | None, b: int | None) -> float | None:
    return round((b - a) / a * 100, 1) if a and b is not None else None


def _slope_pct_per_h(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of (t, bytes), as % of the mean per hour; None with fewer than 3 points."""
    if len(points) < 3:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0 or mv == 0:
        return None
    slope = sum((t - mt) * (v - mv) for t, v in points) / var
    return round(slope * 3600 / mv * 100, 1)


def growth(start: ResourceSnapshot, end: ResourceSnapshot) -> dict[str, Any]:
    """Start, end and growth of each program's RSS (%) and each watched dir (bytes)."""
    return soak_growth([start, end], settle_s=0.0)


def soak_growth(samples: list[ResourceSnapshot], settle_s: float) -> dict[str, Any]:
    """Growth over a soak's samples (in time order): each program's RSS from the first sample to the last;
    its anonymous memory from the first sample ``settle_s`` after the first (the settled one) to the last,
    and its slope over the second half; each watched dir from the first sample to the last."""
    start, end = samples[0], samples[-1]
    settled = next((s for s in samples if s.t - start.t >= settle_s), end)
    second_half = [s for s in samples if s.t >= (settled.t + end.t) / 2]
    rss: dict[str, Any] = {}
    for name in sorted(set(start.rss) | set(end.rss)):
        a, b = start.rss.get(name), end.rss.get(name)
        row: dict[str, Any] = {"start_bytes": a, "end_bytes": b, "growth_pct": _pct(a, b)}
        if settled.anon is not None and end.anon is not None:
            sa, sb = settled.anon.get(name), end.anon.get(name)
            points = [(s.t, v) for s in second_half if s.anon and (v := s.anon.get(name)) is not None]
            row |= {"anon_settled_bytes": sa, "anon_end_bytes": sb, "anon_growth_pct": _pct(sa, sb),
                    "anon_slope_pct_per_h": _slope_pct_per_h(points)}  # fmt: skip
        rss[name] = row
    disk: dict[str, Any] = {}
    for label in sorted(set(start.disk) | set(end.disk)):
        a, b = start.disk.get(label), end.disk.get(label)
        grew = b - a if a is not None and b is not None else None
        disk[label] = {"start_bytes": a, "end_bytes": b, "growth_bytes": grew}
    return {
        "seconds": round(end.t - start.t, 1),
        "settled_after_s": round(settled.t - start.t, 1),
        "samples": len(samples),
        "rss": rss,
        "disk": disk,
        "memory_timeline": [{"t": s.t, "anon": s.anon} for s in samples],
    }


def memory_misses(resources: dict[str, Any]) -> list[str]:
    """A line per program whose settled anonymous memory grew by the target or more."""
    return [
        f"soak: {name} anonymous memory grew {row['anon_growth_pct']}% once settled (target < {MAX_GROWTH_PCT:.0f}%)"
        for name, row in resources.get("rss", {}).items()
        if (row.get("anon_growth_pct") or 0.0) >= MAX_GROWTH_PCT
    ]


__all__ = [
    "MAX_GROWTH_PCT", "ResourceSnapshot", "dir_bytes", "growth", "memory_misses", "snapshot", "soak_growth",
    "tree_memory", "watched_dirs",
]  # fmt: skip
