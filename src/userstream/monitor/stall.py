"""The stalled-stage rule: a stage whose input waits while its output stands still is stalled.

Each stage is sampled as (backlog, output), in records: ``backlog`` is what waits at its input, ``output`` a
counter that moves whenever the stage does its job (records fetched, records in the users topic, the job's
committed offsets; see :mod:`userstream.monitor.stage_probe`). A stage is

* ``idle``     nothing waits at its input;
* ``flowing``  something waits and the output moved within ``stall_after_s``;
* ``stalled``  something has waited for ``stall_after_s`` and the output has not moved in that time;
* ``unknown``  it could not be measured (its backend is down: that is the services' health to say).

"Process alive" is never enough: a driver that runs but commits nothing while the topic grows is stalled.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from userstream.config import Settings

__all__ = [
    "STAGE_NAMES",
    "StageSample",
    "StageState",
    "StageVerdict",
    "StallRule",
    "read_stage_states",
    "stage_states_path",
    "write_stage_states",
]

StageState = Literal["idle", "flowing", "stalled", "unknown"]

# the stages the rule watches, in the order a record flows
STAGE_NAMES: tuple[str, ...] = ("ingest", "cdc", "stream")


@dataclass(frozen=True)
class StageSample:
    stage: str
    backlog: int | None
    output: int | None
    error: str | None = None


@dataclass(frozen=True)
class StageVerdict:
    stage: str
    state: StageState
    backlog: int | None = None
    output: int | None = None
    waiting_s: float | None = None  # how long something has waited with the output standing still
    detail: str = ""

    @property
    def stalled(self) -> bool:
        return self.state == "stalled"

    def as_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "state": self.state,
            "backlog": self.backlog,
            "output": self.output,
            "waiting_s": None if self.waiting_s is None else round(self.waiting_s, 1),
            "detail": self.detail,
        }


@dataclass
class _Track:
    output: int | None = None
    moved_at: float = 0.0  # when the output last changed (or tracking started)
    waiting_since: float | None = None  # start of the current stretch with a backlog


class StallRule:
    """Feeds on samples over time; one instance per watcher (the watchdog, the dashboard)."""

    def __init__(self, stall_after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_after_s <= 0:
            raise ValueError("stall_after_s must be positive")
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._tracks: dict[str, _Track] = {}

    def observe(self, sample: StageSample) -> StageVerdict:
        now = self._clock()
        track = self._tracks.setdefault(sample.stage, _Track(moved_at=now))
        if sample.error is not None or sample.backlog is None or sample.output is None:
            # an outage is not evidence either way: the clock restarts once the stage can be seen again
            self._tracks[sample.stage] = _Track(moved_at=now)
            return StageVerdict(sample.stage, "unknown", sample.backlog, sample.output, detail=sample.error or "")
        if track.output is None or sample.output != track.output:
            track.output = sample.output
            track.moved_at = now
        if sample.backlog <= 0:
            track.waiting_since = None
            return StageVerdict(sample.stage, "idle", sample.backlog, sample.output, 0.0, "nothing waiting")
        if track.waiting_since is None:
            track.waiting_since = now
        waiting = now - max(track.moved_at, track.waiting_since)
        if waiting >= self.stall_after_s:
            detail = f"{sample.backlog} waiting, no output for {waiting:.0f}s"
            return StageVerdict(sample.stage, "stalled", sample.backlog, sample.output, waiting, detail)
        detail = f"{sample.backlog} waiting, output moved {now - track.moved_at:.0f}s ago"
        return StageVerdict(sample.stage, "flowing", sample.backlog, sample.output, waiting, detail)

    def forget(self, stage: str) -> None:
        """Start over for ``stage`` (after the watchdog restarted it: give it a fresh window)."""
        self._tracks.pop(stage, None)


# --- the watchdog's verdicts, shared through one file (status, dashboard and /metrics read it) ------------


def stage_states_path(settings: Settings) -> Path:
    return settings.state_dir / "watchdog" / "stages.json"


def write_stage_states(settings: Settings, verdicts: Sequence[StageVerdict], actions: Sequence[str] = ()) -> None:
    """Atomically (rename), so a reader never sees half a document."""
    path = stage_states_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"updated_at": time.time(), "stages": [v.as_dict() for v in verdicts], "recent_actions": list(actions)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def read_stage_states(settings: Settings, max_age_s: float = 30.0) -> tuple[list[StageVerdict], str | None]:
    """The watchdog's latest verdicts, or ``([], why)`` when there are none or they are too old to trust."""
    path = stage_states_path(settings)
    try:
        doc: Any = json.loads(path.read_text())
        age = time.time() - float(doc["updated_at"])
        stages = [
            StageVerdict(
                stage=str(d["stage"]),
                state=d["state"] if d["state"] in ("idle", "flowing", "stalled", "unknown") else "unknown",
                backlog=d.get("backlog"),
                output=d.get("output"),
                waiting_s=d.get("waiting_s"),
                detail=str(d.get("detail", "")),
            )
            for d in doc["stages"]
        ]
    except FileNotFoundError:
        return [], "the watchdog has not run (start it with `userstream up`)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [], f"{path} unreadable: {exc}"
    if age > max_age_s:
        return [], f"the watchdog's last verdict is {age:.0f}s old (is it running? `userstream logs watchdog`)"
    return stages, None
