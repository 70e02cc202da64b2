"""Stalled stages: the watchdog's latest verdicts (``read_stage_states``), read from its shared file."""

from __future__ import annotations

import time

from userstream.config import Settings
from userstream.monitor.models import StageHealth, StageHealthSection
from userstream.monitor.stall import read_stage_states

__all__ = ["collect_health"]


def collect_health(settings: Settings) -> StageHealthSection:
    verdicts, error = read_stage_states(settings)
    return StageHealthSection(
        measured_at=time.time(),
        error=error,
        stages=[
            StageHealth(
                stage=v.stage, state=v.state, backlog=v.backlog, output=v.output, waiting_s=v.waiting_s,
                detail=v.detail,
            )
            for v in verdicts
        ],
    )  # fmt: skip
