"""What `userstream status` reports: every service's health, the streaming job's, and each stage's verdict.

A stack is ``ok`` only when every service is healthy, the job (when it is meant to run) is healthy, and no
stage is stalled: "process alive" alone never passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from userstream.monitor.stall import StageVerdict, read_stage_states
from userstream.runtime.base import Health, public_urls
from userstream.runtime.stack import ServiceStatus, Stack
from userstream.stream.control import PROGRAM as STREAM_PROGRAM
from userstream.stream.control import job_health

__all__ = ["HealthReport", "health_report"]


@dataclass(frozen=True)
class HealthReport:
    services: list[ServiceStatus]
    job: Health | None = None  # None: no streaming job is meant to run (never started, or stopped on purpose)
    stages: list[StageVerdict] = field(default_factory=list)
    stages_error: str | None = None

    @property
    def problems(self) -> list[str]:
        out = [f"{s.name}: {s.health.detail}" for s in self.services if not s.health.healthy]
        if self.job is not None and not self.job.healthy:
            out.append(f"streaming job: {self.job.detail}")
        out += [f"stage {v.stage} stalled: {v.detail}" for v in self.stages if v.stalled]
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "services": [
                {
                    "name": s.name,
                    "external": s.external,
                    "running": s.running,
                    "healthy": s.health.healthy,
                    "detail": s.health.detail,
                    "urls": public_urls(s.urls),  # never the dashboard's token
                }
                for s in self.services
            ],
            "job": None if self.job is None else {"healthy": self.job.healthy, "detail": self.job.detail},
            "stages": [v.as_dict() for v in self.stages],
            "stages_error": self.stages_error,
        }


def health_report(stack: Stack, *, whole_pipeline: bool = True) -> HealthReport:
    """``whole_pipeline``: also the job and the stages (``status SERVICE...`` asks about services only)."""
    services = stack.status()
    if not whole_pipeline:
        return HealthReport(services)
    job = None
    if stack.processes.state(STREAM_PROGRAM) not in ("ABSENT", "STOPPED"):
        job = Health(*job_health(stack.settings))
    stages, error = read_stage_states(stack.settings)
    return HealthReport(services, job, stages, error)
