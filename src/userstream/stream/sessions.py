"""Unwedges the driver's Cassandra session after a Cassandra restart.

Every Cassandra write of a micro-batch starts on the driver with ``Session.refreshSchema()`` (the connector
reads the table's definition). When Cassandra goes away, the Java driver (4.18) can fail one refresh
without clearing its "refresh in progress" slot; every later refresh of that session then queues behind it
and waits forever, uninterruptibly. The query neither fails nor progresses, and ``query.stop()`` would
wait on it too. Seen as: "Control channel not available, aborting schema refresh", then silence.

So the driver checks, every few seconds, for a streaming thread parked in ``refreshSchema``; one that is
still there ``wedged_after_s`` later is freed by closing the cached sessions (closing fails the queued
refresh, so the batch fails and :class:`~userstream.stream.keeper.QueryKeeper` restarts the query). The
next writes must not get the closed session back from the connector's cache, which is keyed by connection
settings: each generation gets its own keep-alive value, hence its own, new session.

Closing does not always free it: on a cluster, a node lost while it held the driver's control connection
once left a thread parked through every close (and the other query queued behind it: no batch for 15
minutes). A thread still parked after ``FUTILE_FREES`` closes raises :class:`CassandraWedged`; the job then
ends its driver (a crash it resumes from the checkpoint, restarted by its supervisor or container).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["FUTILE_FREES", "CassandraSessions", "CassandraWedged"]

log = logging.getLogger("userstream.stream")

KEEP_ALIVE_MS = 120_000  # the executor and driver keep their session between micro-batches
_STREAM_THREAD = "stream execution thread"
_WEDGE_CLASS, _WEDGE_METHOD = "Session", "refreshSchema"
FUTILE_FREES = 2  # closes after which a thread still parked is given up on


class CassandraWedged(RuntimeError):
    """A streaming thread stayed parked in ``refreshSchema`` through every close of the sessions."""


class CassandraSessions:
    def __init__(self, jvm: Any, *, wedged_after_s: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._jvm = jvm
        self._wedged_after_s = wedged_after_s
        self._clock = clock
        self._first_seen: dict[str, float] = {}
        self._freed: set[str] = set()  # threads the last close was for
        self._futile = 0  # closes in a row after which the same thread was parked again
        self.generation = 0

    def write_options(self) -> dict[str, str]:
        """Options of every Cassandra write: the generation picks the session (see the module's doc)."""
        return {"spark.cassandra.connection.keepAliveMS": str(KEEP_ALIVE_MS + self.generation)}

    def _parked_threads(self) -> set[str]:
        parked = set()
        traces = self._jvm.java.lang.Thread.getAllStackTraces()
        for thread in traces.keySet():
            name = str(thread.getName())
            if not name.startswith(_STREAM_THREAD):
                continue
            for frame in thread.getStackTrace():
                if frame.getMethodName() == _WEDGE_METHOD and frame.getClassName().endswith(_WEDGE_CLASS):
                    parked.add(name)
                    break
        return parked

    def check(self) -> bool:
        """True when it freed a wedged query (a new generation of sessions begins)."""
        now = self._clock()
        parked = self._parked_threads()
        self._first_seen = {n: self._first_seen.get(n, now) for n in parked}
        wedged = [n for n, since in self._first_seen.items() if now - since >= self._wedged_after_s]
        if not wedged:
            return False
        self._futile = self._futile + 1 if self._freed & set(wedged) else 0
        if self._futile >= FUTILE_FREES:
            raise CassandraWedged(
                f"{sorted(wedged)} still parked in {_WEDGE_CLASS}.{_WEDGE_METHOD} after {self._futile} closes "
                "of the driver's Cassandra sessions"
            )
        self._freed = set(wedged)
        log.error(
            "%s parked in %s for %.0fs+: closing the driver's Cassandra sessions",
            wedged,
            f"{_WEDGE_CLASS}.{_WEDGE_METHOD}",
            self._wedged_after_s,
        )
        self.generation += 1
        self._close_cached_sessions()
        self._first_seen.clear()
        return True

    def _close_cached_sessions(self) -> None:
        connector = getattr(self._jvm.com.datastax.spark.connector.cql, "CassandraConnector$")
        module = getattr(connector, "MODULE$")
        sessions = module.sessionCache().cache().values().iterator()
        while sessions.hasNext():
            sessions.next().closeAsync()
