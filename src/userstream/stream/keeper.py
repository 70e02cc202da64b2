"""Keeps the job's streaming queries running: one that terminates with an error is restarted from its
checkpoint, after a bounded exponential backoff, for as long as the job runs.

Restarting in the driver costs a new query plan (a second or two), not a new JVM and executors (~45 s):
a Cassandra or Kafka restart then costs the pipeline the outage plus a backoff. The restarted query resumes
after its last committed micro-batch; every sink is an upsert by key, so a replayed batch changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from userstream.runtime.backoff import Backoff

__all__ = ["QueryKeeper", "QueryLike"]

log = logging.getLogger("userstream.stream")


class QueryLike(Protocol):
    """What the keeper needs of a pyspark StreamingQuery."""

    @property
    def isActive(self) -> bool: ...

    def exception(self) -> object | None: ...

    def stop(self) -> None: ...


@dataclass
class _Kept:
    start: Callable[[], QueryLike]
    backoff: Backoff
    query: QueryLike | None = None
    started_at: float = 0.0
    failure: str | None = None  # the last error, until the query runs again
    restarts: int = 0
    pending: bool = field(default=False)  # failed, waiting for its backoff


class QueryKeeper:
    """``start(name, starter)`` once per query, then ``check()`` on every tick of the driver's loop."""

    def __init__(
        self,
        *,
        healthy_after_s: float = 120.0,
        backoff: Callable[[], Backoff] = lambda: Backoff(2.0, 60.0),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kept: dict[str, _Kept] = {}
        self._healthy_after_s = healthy_after_s
        self._new_backoff = backoff
        self._clock = clock

    def start(self, name: str, starter: Callable[[], QueryLike]) -> QueryLike:
        kept = _Kept(start=starter, backoff=self._new_backoff())
        self._kept[name] = kept
        kept.query = starter()
        kept.started_at = self._clock()
        return kept.query

    @property
    def queries(self) -> list[QueryLike]:
        return [k.query for k in self._kept.values() if k.query is not None]

    def failures(self) -> dict[str, str]:
        """Queries down right now, with their last error."""
        return {n: k.failure for n, k in self._kept.items() if k.pending and k.failure}

    def restarts(self) -> dict[str, int]:
        return {n: k.restarts for n, k in self._kept.items()}

    def check(self) -> list[str]:
        """Notice terminated queries and restart those whose backoff has passed; returns the restarted."""
        restarted = []
        now = self._clock()
        for name, kept in self._kept.items():
            query = kept.query
            if query is not None and query.isActive:
                if kept.backoff.failures and now - kept.started_at >= self._healthy_after_s:
                    kept.backoff.succeeded()  # ran long enough: the next failure starts from a short delay
                continue
            if not kept.pending:
                error = query.exception() if query is not None else None
                if query is not None and error is None:
                    continue  # stopped on purpose
                kept.failure = str(error)[:2000] if error is not None else "did not start"
                kept.pending = True
                delay = kept.backoff.failed()
                log.error(
                    "query %s terminated (%s); restarting from its checkpoint in %.1fs", name, kept.failure, delay
                )
            if not kept.backoff.ready():
                continue
            try:
                kept.query = kept.start()
            except Exception as exc:  # e.g. Kafka still down while planning: try again later
                kept.query = None
                kept.failure = f"restart failed: {exc}"[:2000]
                delay = kept.backoff.failed()
                log.error("query %s could not restart (%s); next try in %.1fs", name, exc, delay)
                continue
            kept.pending = False
            kept.restarts += 1
            kept.started_at = self._clock()
            restarted.append(name)
            log.warning("query %s restarted (restart %d)", name, kept.restarts)
        return restarted

    def stop_all(self) -> None:
        for name, kept in self._kept.items():
            if kept.query is None:
                continue
            try:
                kept.query.stop()
            except Exception:
                log.debug("stopping %s", name, exc_info=True)
