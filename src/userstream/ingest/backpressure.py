"""Backpressure: ingest slows down when the pipeline behind it falls behind, and speeds up again as it drains.

The signal is the pipeline's backlog: users landed in Postgres that the streaming job has not yet processed
(landed by ingest runs minus the job's consumer-group offsets on the users topic, the sum of the CDC and
stream backlogs of :class:`~userstream.monitor.stage_probe.StageProbe`), less the page being landed: a page
lands at once, so it is in flight, not behind (counted, one page of 100 at a floor of 5/s read as 20 s behind
and held the rate at the floor long after a stall had drained). Divided by the current rate it is a lag in
seconds. The rate follows AIMD, as TCP does: above ``max_lag_s`` it is cut to
``DECREASE`` of itself (never below ``floor``); below half of it, it grows by ``INCREASE`` of the configured
rate (never above it). So on any machine ingest settles near the rate the rest of the pipeline sustains,
with a bounded lag.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from userstream.config import Settings
from userstream.monitor.stage_probe import StageProbe

__all__ = ["Backpressure", "pipeline_backlog"]

log = logging.getLogger(__name__)

DECREASE = 0.7  # multiplicative cut when behind
INCREASE = 0.1  # additive step, as a share of the configured rate, when drained
FLOOR_SHARE = 0.05  # the rate never drops below this share of the configured one (nor below 1/s)


class Backpressure:
    """The rate ingest may run at now. ``backlog`` returns records landed but not yet processed (None when it
    cannot tell: the rate is then held, neither raised nor cut)."""

    def __init__(
        self,
        ceiling: float,
        max_lag_s: float,
        backlog: Callable[[], int | None],
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        in_flight: int = 0,
    ) -> None:
        if ceiling <= 0 or max_lag_s <= 0 or interval_s <= 0:
            raise ValueError("backpressure needs ceiling, max_lag_s and interval_s > 0")
        self.ceiling = ceiling
        self.max_lag_s = max_lag_s
        self.floor = max(1.0, ceiling * FLOOR_SHARE)
        self.backlog = backlog
        self.interval_s = interval_s
        self.clock = clock
        self.in_flight = in_flight  # records landed together (a page): in flight, not behind
        self.current = ceiling
        self._checked_at: float | None = None
        self.held_s = 0.0  # time spent below the ceiling: how long backpressure was what limited ingest

    @property
    def limiting(self) -> bool:
        return self.current < self.ceiling

    def rate(self) -> float:
        """The allowed rate, re-evaluated at most every ``interval_s``."""
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.interval_s:
            return self.current
        if self._checked_at is not None and self.limiting:
            self.held_s += now - self._checked_at
        self._checked_at = now
        backlog = self.backlog()
        if backlog is None:
            return self.current
        lag_s = max(0, backlog - self.in_flight) / self.current
        before = self.current
        if lag_s > self.max_lag_s:
            self.current = max(self.floor, self.current * DECREASE)
        elif lag_s < self.max_lag_s / 2:
            self.current = min(self.ceiling, self.current + self.ceiling * INCREASE)
        if self.current != before:
            log.info(
                "backpressure: %d records behind (%.1fs): rate %.0f -> %.0f/s", backlog, lag_s, before, self.current
            )
        return self.current


def pipeline_backlog(settings: Settings) -> tuple[Callable[[], int | None], Callable[[], None]]:
    """A ``backlog`` for :class:`Backpressure` from the stage probe, and a function that closes its client."""
    probe = StageProbe(settings)

    def backlog() -> int | None:
        samples = {s.stage: s for s in probe.sample()}
        parts = [samples["cdc"].backlog, samples["stream"].backlog]
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)

    return backlog, probe.close
