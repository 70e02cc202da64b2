"""Per-fault figures, the targets, the JSON document, the table and the PNG timeline of a chaos run.

Everything here is pure (a run's raw observations in, figures out), so it is unit-tested without servers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.table import Table

from userstream.chaos.resources import memory_misses
from userstream.chaos.timeline import Sample, WarmupCheck, rates
from userstream.monitor.audit import AuditReport

# the targets of the issue
MAX_AFTER_HEALTHY_S = 60.0

FAULT_KEYS = ("fault", "repeat", "recovered", "flowing_after_s", "after_healthy_s", "max_latency_s")
AUDIT_KEYS = ("landed", "stored", "dlq", "missing", "duplicated")


@dataclass
class FaultRun:
    """What was observed around one injected fault (epoch seconds)."""

    fault: str
    repeat: int
    injected_at: float
    resumed_at: float | None = None  # a freeze: when SIGCONT was sent
    healthy_at: float | None = None  # the service healthy again (a new process, after a kill)
    flowing_at: float | None = None  # the first WRITETIME seen while polling, of a user fetched after the fault
    caught_up_at: float | None = None  # backlog drained, latency back within the bound
    measured_at: float | None = None  # when ``users`` was read
    repaired: bool = False  # nothing healed it in time: `userstream chaos` restarted it (not recovered)
    error: str | None = None
    # (fetched_at, WRITETIME or None) of every user fetched from the fault to the end of its window
    users: list[tuple[float, float | None]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class FaultFigures:
    fault: str
    repeat: int
    recovered: bool
    flowing_after_s: float | None
    after_healthy_s: float | None
    max_latency_s: float | None
    healthy_after_s: float | None
    caught_up_after_s: float | None
    users_in_window: int
    unstored: int
    repaired: bool
    injected_at: float
    window_end: float | None
    error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "fault": self.fault, "repeat": self.repeat, "recovered": self.recovered,
            "flowing_after_s": self.flowing_after_s, "after_healthy_s": self.after_healthy_s,
            "max_latency_s": self.max_latency_s, "healthy_after_s": self.healthy_after_s,
            "caught_up_after_s": self.caught_up_after_s, "users_in_window": self.users_in_window,
            "unstored": self.unstored, "repaired": self.repaired, "injected_at": self.injected_at,
            "window_end": self.window_end, "error": self.error,
        }  # fmt: skip


def _since(t: float | None, t0: float) -> float | None:
    return None if t is None else round(t - t0, 3)


def figures(run: FaultRun) -> FaultFigures:
    """Flowing again: the first WRITETIME among users fetched after the fault, minus the fault time. From
    healthy to flowing: that minus the moment the service was healthy again (0 when records flowed before
    the probe said so). Worst latency: over the users fetched in the window, an unstored one counting as
    waited until it was looked for."""
    written = [w for f, w in run.users if w is not None and f > run.injected_at]
    candidates = [*written, *([run.flowing_at] if run.flowing_at is not None else [])]
    flowing_at = min(candidates) if candidates else None
    end = run.measured_at or run.caught_up_at
    latencies = [(w if w is not None else (end or f)) - f for f, w in run.users]
    after_healthy = None
    if flowing_at is not None and run.healthy_at is not None:
        after_healthy = round(max(0.0, flowing_at - run.healthy_at), 3)
    return FaultFigures(
        fault=run.fault,
        repeat=run.repeat,
        recovered=flowing_at is not None and run.healthy_at is not None and not run.repaired and run.error is None,
        flowing_after_s=_since(flowing_at, run.injected_at),
        after_healthy_s=after_healthy,
        max_latency_s=round(max(latencies), 3) if latencies else None,
        healthy_after_s=_since(run.healthy_at, run.injected_at),
        caught_up_after_s=_since(run.caught_up_at, run.injected_at),
        users_in_window=len(run.users),
        unstored=sum(1 for _, w in run.users if w is None),
        repaired=run.repaired,
        injected_at=run.injected_at,
        window_end=run.caught_up_at or run.measured_at,
        error=run.error,
    )


@dataclass(frozen=True)
class AuditFigures:
    landed: int
    stored: int
    dlq: int
    missing: int
    duplicated: int

    @classmethod
    def from_report(cls, report: AuditReport) -> AuditFigures:
        return cls(report.landed, report.in_cassandra, report.in_dlq, len(report.missing), len(report.duplicated))

    def as_dict(self) -> dict[str, int]:
        return {"landed": self.landed, "stored": self.stored, "dlq": self.dlq, "missing": self.missing,
                "duplicated": self.duplicated}  # fmt: skip


@dataclass
class ChaosResult:
    requested_rate: float
    rate: float  # the rate the faults ran at (lowered when the warm-up showed the machine could not keep up)
    started_at: float
    source_faults: str
    runs: list[FaultRun] = field(default_factory=list)
    warmups: list[WarmupCheck] = field(default_factory=list)
    audit: AuditFigures | None = None
    audit_error: str | None = None
    samples: list[Sample] = field(default_factory=list)
    resources: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    aborted: str | None = None  # why the run stopped before its end (the demo exited, a restart failed)

    @property
    def figures(self) -> list[FaultFigures]:
        return [figures(r) for r in self.runs]

    @property
    def misses(self) -> list[str]:
        aborted = [f"aborted: {self.aborted}"] if self.aborted else []
        # memory is judged on a soak without faults: a killed program starts again from nothing
        memory = memory_misses(self.resources) if self.resources and not self.runs else []
        return aborted + check_targets(self.figures, self.audit, self.audit_error) + memory

    @property
    def ok(self) -> bool:
        return not self.misses

    def as_dict(self) -> dict[str, Any]:
        return {
            "faults": [f.as_dict() for f in self.figures],
            "audit": self.audit.as_dict() if self.audit else None,
            "rate": self.rate,
            "requested_rate": self.requested_rate,
            "started_at": self.started_at,
            "source_faults": self.source_faults,
            "warmups": [w.as_dict() for w in self.warmups],
            "targets": {"after_healthy_s_max": MAX_AFTER_HEALTHY_S, "missing": 0, "duplicated": 0},
            "ok": self.ok,
            "misses": self.misses,
            "audit_error": self.audit_error,
            "aborted": self.aborted,
            "resources": self.resources,
            "notes": self.notes,
            "timeline": [s.as_dict() for s in self.samples],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=1)


def check_targets(faults: list[FaultFigures], audit: AuditFigures | None, audit_error: str | None = None) -> list[str]:
    """Every target missed, one line each (empty: all met)."""
    misses = []
    for f in faults:
        label = f"{f.fault} #{f.repeat}"
        if not f.recovered:
            why = f.error or ("restarted by `userstream chaos`" if f.repaired else "did not recover")
            misses.append(f"{label}: not recovered without intervention ({why})")
        elif f.after_healthy_s is None or f.after_healthy_s > MAX_AFTER_HEALTHY_S:
            misses.append(f"{label}: flowing {f.after_healthy_s}s after healthy (target <= {MAX_AFTER_HEALTHY_S:.0f}s)")
    if audit is None:
        misses.append(f"audit did not run: {audit_error or 'unknown error'}")
    else:
        if audit.missing:
            misses.append(f"audit: {audit.missing} ids missing (target 0)")
        if audit.duplicated:
            misses.append(f"audit: {audit.duplicated} ids duplicated (target 0)")
    return misses


def exit_code(result: ChaosResult) -> int:
    return 0 if result.ok else 1


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render_table(result: ChaosResult) -> Table:
    table = Table("fault", "#", "recovered", "healthy after (s)", "flowing after (s)", "flowing after healthy (s)",
                  "max latency (s)", "caught up after (s)", title=f"chaos at {result.rate:.0f} records/s")  # fmt: skip
    for f in result.figures:
        ok = f.recovered and f.after_healthy_s is not None and f.after_healthy_s <= MAX_AFTER_HEALTHY_S
        mark = "[green]yes[/green]" if f.recovered else ("[red]repaired[/red]" if f.repaired else "[red]no[/red]")
        after = _secs(f.after_healthy_s)
        after = after if ok else f"[red]{after}[/red]"
        table.add_row(f.fault, str(f.repeat), mark, _secs(f.healthy_after_s), _secs(f.flowing_after_s), after,
                      _secs(f.max_latency_s), _secs(f.caught_up_after_s))  # fmt: skip
    return table


def fault_window(run: FaultRun) -> tuple[float, float]:
    """From the injection to records flowing again (or the end of what was watched)."""
    flowing = figures(run).flowing_after_s
    end = run.injected_at + flowing if flowing is not None else (run.caught_up_at or run.measured_at)
    return run.injected_at, max(end or run.injected_at + 1, run.resumed_at or 0.0)


def write_png(result: ChaosResult, path: Path) -> None:
    """Throughput (landed and stored per second) and latency (per landing-time cohort) over time, each
    fault's window shaded from its injection to records flowing again."""
    fig = Figure(figsize=(14, 7))
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True)
    t0 = result.samples[0].t if result.samples else result.started_at
    series = rates(result.samples)
    for idx, label, color in ((1, "landed/s (Postgres)", "#8c8c8c"), (2, "stored/s (Spark -> Cassandra)", "#4c72b0")):
        pts = [(r[0] - t0, r[idx]) for r in series if r[idx] is not None]
        top.plot([x for x, _ in pts], [y for _, y in pts], label=label, color=color, linewidth=1)
    top.axhline(result.rate, color="#c44e52", linestyle="--", linewidth=0.8, label=f"target {result.rate:.0f}/s")
    top.set_ylabel("records/s")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right")
    lat = [(s.t - t0, s.latency_s) for s in result.samples if s.latency_s is not None]
    bottom.plot([x for x, _ in lat], [y for _, y in lat], color="#55a868", linewidth=1, label="latency (cohort max)")
    bottom.set_ylabel("fetched_at -> WRITETIME (s)")
    bottom.set_ylim(bottom=0)
    bottom.set_xlabel("seconds since start")
    bottom.legend(loc="upper right")
    for run in result.runs:
        a, b = fault_window(run)
        for ax in (top, bottom):
            ax.axvspan(a - t0, b - t0, color="#c44e52", alpha=0.15)
        top.annotate(run.fault, (a - t0, 1.0), xycoords=("data", "axes fraction"), fontsize=7, rotation=90,
                     va="top", ha="right")  # fmt: skip
    fig.suptitle(f"userstream chaos: {len(result.runs)} faults at {result.rate:.0f} records/s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


__all__ = ["AUDIT_KEYS", "FAULT_KEYS", "AuditFigures", "ChaosResult", "FaultFigures", "FaultRun", "check_targets",
           "exit_code", "figures", "render_table", "write_png"]  # fmt: skip
