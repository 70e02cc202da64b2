"""The fault catalogue, `--faults` parsing, and injection through a program's pid (on throwaway processes)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import psutil
import pytest

from userstream.chaos import faults as chaos_faults
from userstream.chaos.faults import FAULT_NAMES, FAULTS, ChaosError, Fault, Injection, Kind, parse_faults
from userstream.runtime.base import Health
from userstream.runtime.process import ProcessManager
from userstream.runtime.stack import Stack

SPEC_NAMES = {"kafka", "connect", "cassandra", "postgres", "registry", "spark-worker", "stream-driver",
              "airflow-scheduler", "cassandra-freeze", "kafka-freeze"}  # fmt: skip


def test_the_catalogue_has_the_issue_s_faults_on_the_right_programs() -> None:
    assert set(FAULT_NAMES) == SPEC_NAMES
    by_name = {f.name: f for f in FAULTS}
    assert by_name["stream-driver"].program == "stream" and by_name["stream-driver"].service is None
    assert by_name["spark-worker"].tree, "the executor runs under the worker: the whole tree dies"
    assert by_name["cassandra-freeze"].kind is Kind.FREEZE and by_name["cassandra-freeze"].program == "cassandra"
    assert by_name["kafka-freeze"].kind is Kind.FREEZE and by_name["kafka-freeze"].program == "kafka"
    assert by_name["airflow-scheduler"].program == "airflow-scheduler"
    assert all(f.kind is Kind.KILL for f in FAULTS if not f.name.endswith("-freeze"))


def test_parse_faults_keeps_the_order_drops_repeats_and_knows_all_and_none() -> None:
    assert [f.name for f in parse_faults("postgres, Kafka,postgres")] == ["postgres", "kafka"]
    assert parse_faults("none") == ()
    assert parse_faults("all") == FAULTS
    assert parse_faults("") == FAULTS


def test_an_unknown_fault_is_a_clear_error_naming_the_valid_ones() -> None:
    with pytest.raises(ChaosError) as err:
        parse_faults("kafka,zookeeper,cassandra-frozen")
    message = str(err.value)
    assert "zookeeper" in message and "cassandra-frozen" in message
    for name in FAULT_NAMES:
        assert name in message, f"the error should list {name}"


@dataclass
class FakeProcesses:
    """A ProcessManager stand-in: program -> (state, pid)."""

    programs: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    def pid(self, name: str) -> int | None:
        return self.programs.get(name, ("ABSENT", None))[1]

    def state(self, name: str) -> str:
        return self.programs.get(name, ("ABSENT", None))[0]


@dataclass
class FakeService:
    healthy: bool

    def health(self) -> Health:
        return Health(self.healthy)


@dataclass
class FakeStack:
    services: dict[str, FakeService]


def procs(**programs: tuple[str, int | None]) -> ProcessManager:
    return cast(ProcessManager, FakeProcesses(dict(programs)))


def stack(**healthy: bool) -> Stack:
    return cast(Stack, FakeStack({name: FakeService(ok) for name, ok in healthy.items()}))


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A group leader with two children, like a supervised program (its own session)."""
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], start_new_session=True)
    deadline = time.monotonic() + 5
    while len(psutil.Process(proc.pid).children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_tree_kill_takes_the_program_and_everything_under_it(tree: subprocess.Popen[bytes]) -> None:
    children = [c.pid for c in psutil.Process(tree.pid).children()]
    assert len(children) == 2
    fault = Fault("spark-worker", "spark-worker", "spark", tree=True)
    injection = chaos_faults.inject(fault, procs(**{"spark-worker": ("RUNNING", tree.pid)}))
    assert injection.pids[0] == tree.pid and set(children) <= set(injection.pids)
    tree.wait(5)
    assert tree.returncode == -9
    deadline = time.monotonic() + 5
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(c) for c in children), "the executor must die with the worker"


def test_a_plain_kill_signals_only_the_program(tree: subprocess.Popen[bytes]) -> None:
    children = [c.pid for c in psutil.Process(tree.pid).children()]
    chaos_faults.inject(Fault("kafka", "kafka", "kafka"), procs(kafka=("RUNNING", tree.pid)))
    tree.wait(5)
    assert all(_alive(c) for c in children)
    for c in children:
        psutil.Process(c).kill()


def test_a_freeze_stops_the_process_until_resumed() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        fault = Fault("cassandra-freeze", "cassandra", "cassandra", Kind.FREEZE)
        injection = chaos_faults.inject(fault, procs(cassandra=("RUNNING", proc.pid)))
        time.sleep(0.2)
        assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
        chaos_faults.resume(injection)
        time.sleep(0.2)
        assert psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED
        assert proc.poll() is None, "a freeze must not kill"
    finally:
        proc.kill()
        proc.wait()


def test_injecting_into_a_program_that_is_not_running_is_an_error() -> None:
    with pytest.raises(ChaosError, match="postgres is not running"):
        chaos_faults.inject(Fault("postgres", "postgres", "postgres"), procs())


def test_back_after_a_kill_means_a_new_process_running_and_healthy() -> None:
    fault = Fault("kafka", "kafka", "kafka")
    injection = Injection(fault, (100,), time.time())
    up = stack(kafka=True)
    # supervisord still shows the killed process: not back, even though a stale probe says healthy
    assert not chaos_faults.is_back(injection, procs(kafka=("RUNNING", 100)), up)
    assert not chaos_faults.is_back(injection, procs(kafka=("STARTING", 101)), up)
    assert not chaos_faults.is_back(injection, procs(kafka=("RUNNING", 101)), stack(kafka=False))
    assert chaos_faults.is_back(injection, procs(kafka=("RUNNING", 101)), up)


def test_back_after_a_freeze_is_the_same_process_healthy_and_the_driver_needs_its_job_healthy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    freeze = Injection(Fault("kafka-freeze", "kafka", "kafka", Kind.FREEZE), (100,), time.time())
    assert chaos_faults.is_back(freeze, procs(kafka=("RUNNING", 100)), stack(kafka=True))
    driver = Injection(Fault("stream-driver", "stream", None, tree=True), (200, 201), time.time())
    job = {"healthy": False}
    monkeypatch.setattr(chaos_faults, "job_health", lambda settings: (job["healthy"], "detail"))
    no_services = stack()
    setattr(no_services, "settings", None)  # noqa: B010 (the fake has no settings; job_health is patched)
    assert not chaos_faults.is_back(driver, procs(stream=("RUNNING", 202)), no_services), "a JVM still starting"
    job["healthy"] = True
    assert chaos_faults.is_back(driver, procs(stream=("RUNNING", 202)), no_services)
    assert not chaos_faults.is_back(driver, procs(stream=("BACKOFF", None)), no_services)
