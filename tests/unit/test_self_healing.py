"""The pieces of self-healing that need no server: backoff, the stalled-stage rule, the query keeper."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]
from hypothesis import given
from hypothesis import strategies as st

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.monitor.stall import StageSample, StallRule
from userstream.runtime.backoff import Backoff
from userstream.runtime.base import Health, Service
from userstream.runtime.process import Program
from userstream.stream.keeper import QueryKeeper
from userstream.stream.offsets import OffsetCommitter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- backoff ---------------------------------------------------------------------------------------------


@given(st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=2**32))
def test_backoff_doubles_up_to_its_cap_and_is_never_zero(failures: int, seed: int) -> None:
    backoff = Backoff(1.0, 60.0, rng=random.Random(seed))
    delays = [backoff.next_delay() for _ in range(failures)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling  # jittered within [ceiling/2, ceiling]: never a tight loop
    assert max(delays) <= 60.0


def test_backoff_gates_tries_and_resets_on_success() -> None:
    clock = Clock()
    backoff = Backoff(4.0, 60.0, clock=clock, rng=random.Random(1))
    assert backoff.ready()
    delay = backoff.failed()
    assert 2.0 <= delay <= 4.0 and not backoff.ready()
    clock.now += delay
    assert backoff.ready()
    second = backoff.failed()
    assert 4.0 <= second <= 8.0
    backoff.succeeded()
    assert backoff.ready() and backoff.failures == 0
    assert backoff.failed() <= 4.0


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(10.0, 1.0)


# --- the stalled-stage rule ------------------------------------------------------------------------------


def test_a_stage_with_a_backlog_and_no_output_is_stalled_after_the_window() -> None:
    clock = Clock()
    rule = StallRule(60.0, clock=clock)
    assert rule.observe(StageSample("stream", 100, 5)).state == "flowing"
    clock.now += 59
    assert rule.observe(StageSample("stream", 500, 5)).state == "flowing"
    clock.now += 2
    verdict = rule.observe(StageSample("stream", 900, 5))
    assert verdict.stalled and verdict.waiting_s == pytest.approx(61)
    assert "900 waiting" in verdict.detail
    clock.now += 1
    assert rule.observe(StageSample("stream", 900, 6)).state == "flowing"  # output moved: no longer stalled


def test_a_stage_with_nothing_waiting_is_idle_however_long_its_output_stands_still() -> None:
    clock = Clock()
    rule = StallRule(10.0, clock=clock)
    for _ in range(5):
        assert rule.observe(StageSample("cdc", 0, 42)).state == "idle"
        clock.now += 100
    # a backlog that appears after a long idle time gets the whole window
    assert rule.observe(StageSample("cdc", 7, 42)).state == "flowing"
    clock.now += 9
    assert rule.observe(StageSample("cdc", 7, 42)).state == "flowing"
    clock.now += 2
    assert rule.observe(StageSample("cdc", 7, 42)).state == "stalled"


def test_an_outage_is_unknown_and_restarts_the_window() -> None:
    clock = Clock()
    rule = StallRule(10.0, clock=clock)
    rule.observe(StageSample("stream", 5, 1))
    clock.now += 20
    assert rule.observe(StageSample("stream", None, None, "kafka: down")).state == "unknown"
    assert rule.observe(StageSample("stream", 5, 1)).state == "flowing"
    clock.now += 11
    assert rule.observe(StageSample("stream", 5, 1)).state == "stalled"
    rule.forget("stream")
    assert rule.observe(StageSample("stream", 5, 1)).state == "flowing"


# whole seconds: the rule's `now - moved_at >= 30` and the test's window bound agree exactly
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(0, 30)), min_size=1, max_size=40))
def test_stalled_only_when_output_stood_still_for_the_whole_window(steps: list[tuple[int, int, int]]) -> None:
    clock = Clock()
    rule = StallRule(30.0, clock=clock)
    history: list[tuple[float, int, int]] = []
    for backlog, output, dt in steps:
        clock.now += dt
        history.append((clock.now, backlog, output))
        verdict = rule.observe(StageSample("s", backlog, output))
        if verdict.stalled:
            # the samples after the window's start (one at the very start may be the last move itself)
            window = [h for h in history if h[0] > clock.now - 30.0]
            assert all(b > 0 for _, b, _ in window), "stalled needs a backlog throughout the window"
            assert len({o for _, _, o in window}) == 1, "stalled needs the output unchanged in the window"


# --- the query keeper ------------------------------------------------------------------------------------


class FakeQuery:
    def __init__(self) -> None:
        self.isActive = True
        self.error: str | None = None
        self.stopped = False

    def exception(self) -> object | None:
        return self.error

    def stop(self) -> None:
        self.stopped = True
        self.isActive = False

    def fail(self, error: str) -> None:
        self.isActive = False
        self.error = error


def test_keeper_restarts_a_failed_query_after_its_backoff_and_leaves_a_stopped_one_alone() -> None:
    clock = Clock()
    started: list[FakeQuery] = []

    def start() -> FakeQuery:
        started.append(FakeQuery())
        return started[-1]

    keeper = QueryKeeper(clock=clock, backoff=lambda: Backoff(2.0, 60.0, clock=clock, rng=random.Random(3)))
    keeper.start("users", start)
    assert keeper.check() == []
    started[-1].fail("Control channel not available")
    assert keeper.check() == []  # noticed; waits its backoff (1-2 s)
    assert "Control channel" in keeper.failures()["users"]
    clock.now += 2.0
    assert keeper.check() == ["users"]
    assert len(started) == 2 and keeper.failures() == {} and keeper.restarts() == {"users": 1}
    started[-1].stop()  # stopped on purpose: no error, no restart
    clock.now += 100
    assert keeper.check() == []
    assert len(started) == 2


def test_keeper_keeps_trying_when_a_restart_itself_fails_with_growing_delays() -> None:
    clock = Clock()
    attempts: list[float] = []
    fail = {"on": False}

    def start() -> FakeQuery:
        attempts.append(clock.now)
        if fail["on"]:
            raise RuntimeError("Kafka still down")
        return FakeQuery()

    keeper = QueryKeeper(clock=clock, backoff=lambda: Backoff(2.0, 16.0, clock=clock, rng=random.Random(5)))
    first = keeper.start("users", start)
    assert isinstance(first, FakeQuery)
    first.fail("broker down")
    fail["on"] = True
    for _ in range(400):  # 40 s of ticks
        keeper.check()
        clock.now += 0.1
    gaps = [b - a for a, b in itertools.pairwise(attempts[1:])]
    assert len(attempts) >= 4, "it keeps retrying"
    assert all(g >= 0.9 for g in gaps), "never a tight loop"
    assert max(gaps) <= 16.0 + 0.2, "bounded by the cap"
    assert "Kafka still down" in keeper.failures()["users"]
    fail["on"] = False
    for _ in range(200):
        keeper.check()
        clock.now += 0.1
    assert keeper.failures() == {} and keeper.restarts()["users"] == 1


# --- the job's consumer-group mirror ---------------------------------------------------------------------


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def result(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class FakeAdmin:
    def __init__(self, fail: bool, calls: list[list[tuple[str, int, int]]]) -> None:
        self.fail = fail
        self.calls = calls

    def alter_consumer_group_offsets(self, requests: list[Any]) -> dict[str, _Future]:
        request = requests[0]
        self.calls.append([(tp.topic, tp.partition, tp.offset) for tp in request.topic_partitions])
        error = KafkaException(KafkaError(KafkaError._TIMED_OUT)) if self.fail else None
        return {request.group_id: _Future(error)}


def test_offset_mirror_rebuilds_its_admin_client_after_a_failure_and_commits_the_newest_offsets() -> None:
    calls: list[list[tuple[str, int, int]]] = []
    admins = iter([FakeAdmin(True, calls), FakeAdmin(False, calls)])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    committer = OffsetCommitter(settings, admin=lambda: cast(AdminClient, next(admins)))
    try:
        assert committer.group == f"{settings.stream_consumer_group}.{settings.cassandra_keyspace}"
        committer.commit({"users.raw": {"0": 10, "1": 7}})
        deadline = time.monotonic() + 10
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        committer.close()
    assert calls[0] == calls[1] == [("users.raw", 0, 10), ("users.raw", 1, 7)], "retried on a new client"


class _HealsWhenRecovered(Service):
    """Unhealthy until its recover() ran twice (a FAILED task restarted, say)."""

    name = "probe"
    recover_every_s = 0.01

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.recovered = 0

    @property
    def external(self) -> bool:
        return True  # no programs to supervise

    def programs(self) -> list[Program]:
        return []

    def health(self) -> Health:
        return Health(self.recovered >= 2, f"recovered {self.recovered}x")

    def recover(self) -> None:
        self.recovered += 1


def test_a_starting_service_takes_its_recovery_steps_until_healthy(tmp_path: Path) -> None:
    service = _HealsWhenRecovered(Settings(data_dir=tmp_path))
    service.wait_healthy(timeout_s=10)
    assert service.recovered == 2  # and no more once healthy


def test_a_service_that_cannot_recover_still_times_out_with_its_health(tmp_path: Path) -> None:
    service = _HealsWhenRecovered(Settings(data_dir=tmp_path))
    service.recover = lambda: None  # type: ignore[method-assign]
    with pytest.raises(ServiceError, match="recovered 0x"):
        service.wait_healthy(timeout_s=1)


class _SupervisedStates:
    """A process manager stand-in whose one program walks through the supervisor states it is given."""

    def __init__(self, states: list[str]) -> None:
        self._states = iter(states)
        self.current = "STARTING"

    def state(self, name: str) -> str:
        self.current = next(self._states, self.current)
        return self.current

    def log_file(self, name: str) -> Path:
        return Path(f"/nonexistent/{name}.log")


class _SupervisedProbe(Service):
    """Healthy once its program is RUNNING."""

    name = "probe"

    def programs(self) -> list[Program]:
        return [Program("probe", ["true"])]

    def health(self) -> Health:
        running = cast(_SupervisedStates, self.processes).current == "RUNNING"
        return Health(running, "up" if running else "connection reset")


def test_a_program_supervisord_is_about_to_restart_is_not_a_failed_start(tmp_path: Path) -> None:
    # killed by a signal: EXITED until supervisord's next loop restarts it (the kill -9 test met this in CI)
    states = _SupervisedStates(["EXITED", "EXITED", "STARTING", "RUNNING"])
    service = _SupervisedProbe(Settings(data_dir=tmp_path), processes=cast(Any, states))
    service.wait_healthy(timeout_s=30)
    assert states.current == "RUNNING"


def test_a_program_that_stays_exited_or_ends_fatal_fails_the_start_at_once(tmp_path: Path) -> None:
    for states in (["EXITED"], ["STARTING", "FATAL"]):
        service = _SupervisedProbe(Settings(data_dir=tmp_path), processes=cast(Any, _SupervisedStates(states)))
        started = time.monotonic()
        with pytest.raises(ServiceError, match="exited during start"):
            service.wait_healthy(timeout_s=60)
        assert time.monotonic() - started < 10, "a dead program fails the start long before its timeout"
