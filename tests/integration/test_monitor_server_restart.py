"""The monitor reconnects by itself: kill -9 Kafka (then Cassandra), supervisord restarts it, and one long-lived
Collector shows the section's error while the server is down, then fresh answers without any restart."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from userstream.config import Settings
from userstream.monitor.collect import Collector
from userstream.monitor.models import PipelineSnapshot, Section
from userstream.runtime.process import ProcessManager
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def collector(require_services: Callable[..., Stack], settings: Settings) -> Iterator[Collector]:
    require_services("kafka", "cassandra")
    with Collector(settings, sections=["kafka", "cassandra"], timeout_s=4.0) as c:
        yield c


def section(snap: PipelineSnapshot, name: str) -> Section:
    value = getattr(snap, name)
    assert isinstance(value, Section)
    return value


def wait_snapshot(
    collector: Collector, check: Callable[[PipelineSnapshot], bool], timeout_s: float, what: str
) -> PipelineSnapshot:
    deadline = time.monotonic() + timeout_s
    snap = collector.snapshot()
    while not check(snap):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:.0f}s; last: {snap.model_dump_json()[:2000]}")
        time.sleep(0.5)
        snap = collector.snapshot()
    return snap


@pytest.mark.parametrize(("program", "recover_s"), [("kafka", 120.0), ("cassandra", 180.0)])
def test_section_recovers_after_its_server_is_killed(
    collector: Collector, settings: Settings, program: str, recover_s: float
) -> None:
    def fresh(snap: PipelineSnapshot) -> bool:
        sec = section(snap, program)
        return sec.error is None and not sec.stale

    wait_snapshot(collector, fresh, 60, f"{program} section answering before the kill")
    processes = ProcessManager(settings)
    pid = processes.pid(program)
    assert pid is not None, f"{program} is not running under supervisord"
    os.kill(pid, signal.SIGKILL)
    killed_at = time.time()

    down = wait_snapshot(
        collector,
        lambda s: section(s, program).error is not None or section(s, program).stale,
        30,
        f"{program} section showing the outage",
    )
    assert down.taken_at >= killed_at

    # supervisord restarts it (autorestart); the same collector must answer again, fresh and error-free
    recovered = wait_snapshot(
        collector,
        lambda s: fresh(s) and (section(s, program).measured_at or 0.0) > killed_at,
        recover_s,
        f"{program} section recovered",
    )
    new_pid = processes.pid(program)
    assert new_pid is not None and new_pid != pid
    if program == "kafka":
        assert recovered.kafka.topics, "the recovered Kafka section lists the pipeline's topics"
