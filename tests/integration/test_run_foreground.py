"""`userstream run SERVICE`, a container's command: the service in the foreground through the same contract as
`up` (prepared, healthy, its setup after start done), stopped gracefully by SIGTERM, and a child that dies
ends the run with a failure (so the container restarts)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from userstream.coldstart import fresh_data_dir
from userstream.config import Settings
from userstream.runtime.postgres import PostgresService
from userstream.store.postgres import conninfo

pytestmark = pytest.mark.integration

PORT = 15532  # apart from the test stack's Postgres, which may be running


@pytest.fixture
def own(settings: Settings) -> Iterator[Settings]:
    fresh = fresh_data_dir(settings).model_copy(update={"postgres_port": PORT})
    PostgresService(fresh).install(reporter=_Quiet())
    yield fresh
    shutil.rmtree(fresh.root, ignore_errors=True)


class _Quiet:
    def step(self, message: str) -> None:
        pass


def _run(s: Settings) -> subprocess.Popen[bytes]:
    env = {**os.environ, "USERSTREAM_DATA_DIR": str(s.root), "USERSTREAM_POSTGRES_PORT": str(PORT)}
    cli = Path(sys.executable).with_name("userstream")
    return subprocess.Popen([str(cli), "run", "postgres"], env=env)


def _wait_healthy(s: Settings, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    service = PostgresService(s)
    while not service.health().healthy:
        assert proc.poll() is None, f"`userstream run postgres` exited with {proc.returncode}"
        assert time.monotonic() < deadline, "not healthy in time"
        time.sleep(1)


def _ingest_role_logs_in(s: Settings, timeout_s: float = 60) -> None:
    """after_start ran: the component roles exist with their generated passwords."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(conninfo(s, "ingest"), connect_timeout=3) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("userstream_ingest",)
                return
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the ingest role never logged in: after_start did not run"
            time.sleep(1)


def test_run_in_the_foreground_then_sigterm_stops_it_cleanly(own: Settings) -> None:
    proc = _run(own)
    try:
        _wait_healthy(own, proc)
        _ingest_role_logs_in(own)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0
        assert not PostgresService(own).health().healthy
        assert not [c for c in psutil.net_connections("tcp") if c.laddr.port == PORT and c.status == "LISTEN"]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_server_that_dies_fails_the_run(own: Settings) -> None:
    proc = _run(own)
    try:
        _wait_healthy(own, proc)
        server = next(c for c in psutil.Process(proc.pid).children() if c.name() == "postgres")
        server.kill()
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
