"""Shared fixtures. Real services are started once per session through the runtime code itself."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Tests keep their state apart from a user's `.userstream/` (same ports: stop your stack first).
os.environ.setdefault("USERSTREAM_DATA_DIR", str(Path(__file__).resolve().parents[1] / ".userstream-test"))

from userstream.config import Settings
from userstream.runtime.stack import Stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def require_services(settings: Settings) -> Iterator[Callable[..., Stack]]:
    """``require_services("kafka", "cassandra")`` starts those (and their dependencies) once."""
    started: list[Stack] = []

    def require(*names: str) -> Stack:
        stack = Stack(settings, names)
        stack.up()
        started.append(stack)
        return stack

    yield require
    if started:
        for stack in reversed(started):
            stack.down()
        Stack(settings, []).processes.shutdown_daemon()
