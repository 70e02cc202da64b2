"""The driver's unwedging of a streaming thread parked in the Java driver's refreshSchema (a fake JVM)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from userstream.stream.sessions import FUTILE_FREES, CassandraSessions, CassandraWedged


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeJvm:
    """Threads with stack traces, and the connector's session cache (counts the closes)."""

    def __init__(self) -> None:
        self.parked: set[str] = set()
        self.closed = 0
        jvm = self

        class _Iterator:
            def __init__(self) -> None:
                self.left = 1

            def hasNext(self) -> bool:  # Java's name
                return self.left > 0

            def next(self) -> Any:
                self.left -= 1
                return SimpleNamespace(closeAsync=jvm._close)

        module = SimpleNamespace(
            sessionCache=lambda: SimpleNamespace(
                cache=lambda: SimpleNamespace(values=lambda: SimpleNamespace(iterator=_Iterator))
            )
        )
        self.com = SimpleNamespace(
            datastax=SimpleNamespace(
                spark=SimpleNamespace(
                    connector=SimpleNamespace(
                        cql=SimpleNamespace(**{"CassandraConnector$": SimpleNamespace(**{"MODULE$": module})})
                    )
                )
            )
        )
        self.java = SimpleNamespace(lang=SimpleNamespace(Thread=SimpleNamespace(getAllStackTraces=self._traces)))

    def _close(self) -> None:
        self.closed += 1

    def _traces(self) -> Any:
        frame = SimpleNamespace(getMethodName=lambda: "refreshSchema", getClassName=lambda: "com.datastax.Session")
        threads = [SimpleNamespace(getName=lambda n=n: n, getStackTrace=lambda: [frame]) for n in self.parked]
        return SimpleNamespace(keySet=lambda: threads)


THREAD = "stream execution thread for users [id = 1]"


def test_a_parked_thread_is_freed_by_closing_the_sessions_after_a_while() -> None:
    jvm, clock = FakeJvm(), Clock()
    sessions = CassandraSessions(jvm, wedged_after_s=15.0, clock=clock)
    jvm.parked = {THREAD}
    assert not sessions.check()  # first seen
    clock.now += 10
    assert not sessions.check() and jvm.closed == 0
    clock.now += 6
    assert sessions.check() and jvm.closed == 1 and sessions.generation == 1
    assert sessions.write_options()["spark.cassandra.connection.keepAliveMS"].endswith("1")
    jvm.parked = set()  # freed: the query failed and restarts
    clock.now += 20
    assert not sessions.check()


def test_a_thread_parked_through_every_close_is_given_up_on() -> None:
    """Closing did not free it: after FUTILE_FREES closes in a row the driver must end (and be restarted)."""
    jvm, clock = FakeJvm(), Clock()
    sessions = CassandraSessions(jvm, wedged_after_s=15.0, clock=clock)
    jvm.parked = {THREAD}
    assert not sessions.check()  # first seen
    for _ in range(FUTILE_FREES):
        clock.now += 16
        assert sessions.check()  # parked 15 s+: the sessions are closed
        clock.now += 16
        assert not sessions.check()  # parked again after the close: its 15 s start anew
    assert jvm.closed == FUTILE_FREES
    clock.now += 16
    with pytest.raises(CassandraWedged, match="still parked"):
        sessions.check()
