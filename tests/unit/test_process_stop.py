"""Stopping a service leaves nothing of it running (a real supervisord, no servers)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from userstream.config import Settings
from userstream.runtime.base import Health, Service
from userstream.runtime.process import ProcessManager, Program


class _ParentAndStubbornChild(Service):
    """A program whose child ignores SIGTERM, as a Spark executor hung in its shutdown hooks did."""

    name = "stubborn"

    def programs(self) -> list[Program]:
        child_pid = self.settings.root / "child.pid"
        script = f"(trap '' TERM; exec sleep 300) & echo $! > {child_pid}; wait"
        return [Program("stubborn", ["bash", "-c", script], start_secs=1, stop_wait_s=5)]

    def health(self) -> Health:
        return Health((self.settings.root / "child.pid").exists(), "child started")


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    settings = Settings(data_dir=tmp_path)
    yield settings
    ProcessManager(settings).shutdown_daemon()


def test_stop_kills_what_outlived_its_parent_in_the_programs_group(settings: Settings) -> None:
    service = _ParentAndStubbornChild(settings)
    service.start()
    child = int((settings.root / "child.pid").read_text())
    assert psutil.pid_exists(child) and os.getpgid(child) == service.processes.pid("stubborn")
    service.stop()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child that ignored SIGTERM is still running"
        time.sleep(0.1)
    assert service.processes.state("stubborn") == "STOPPED"
