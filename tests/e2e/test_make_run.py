"""`make run` as a user runs it: `userstream up --demo` in its own process, records flowing through the
scheduled Airflow DAG from a faulty source, then a pause, an audit with nothing missing, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from userstream.config import Settings
from userstream.monitor.audit import wait_until_drained
from userstream.pipeline import stop_flow
from userstream.runtime.stack import Stack
from userstream.source import FaultConfig, serve_in_thread

pytestmark = pytest.mark.e2e

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _landed_and_rejected_since(settings: Settings, since: datetime) -> tuple[int, int]:
    try:
        with psycopg.connect(settings.postgres_conninfo, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM staging.users WHERE fetched_at >= %s), "
                "(SELECT count(*) FROM staging.rejected WHERE rejected_at >= %s)",
                (since, since),
            ).fetchone()
    except psycopg.Error:  # Postgres or the schema not there yet
        return 0, 0
    assert row is not None
    return int(row[0]), int(row[1])


def test_demo_ingests_through_the_dag_drains_with_nothing_missing_and_stops_on_ctrl_c(settings: Settings) -> None:
    faults = FaultConfig.mixed(0.1, seed=7)  # 5xx, 429, empty, malformed pages and broken records
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / "e2e-make-run.log"
    with serve_in_thread(faults) as url, log_path.open("w") as log:
        env = {
            **os.environ,
            "USERSTREAM_DATA_DIR": str(settings.root),
            "USERSTREAM_SOURCE_URL": url,
            "USERSTREAM_INGEST_WINDOW_S": "120",  # longer than the test waits: stopping must end the run
            "USERSTREAM_SOURCE_QUOTA_USERS": "0",  # the in-thread server enforces no quota
        }
        since = datetime.now(UTC)
        demo = subprocess.Popen(
            [str(Path(sys.executable).with_name("userstream")), "up", "--demo"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 420
            landed = rejected = 0
            while (landed < 3000 or rejected == 0) and time.monotonic() < deadline:
                assert demo.poll() is None, f"the demo exited {demo.returncode}: see {log_path}"
                time.sleep(2)
                landed, rejected = _landed_and_rejected_since(settings, since)
            assert landed >= 3000, f"only {landed} users landed through the DAG: see {log_path}"
            assert rejected > 0, "the fault mix corrupts some records: they must be quarantined, not landed"

            t_stop = time.monotonic()
            stop_flow(settings)  # what Ctrl-C does first: pause the DAG, end its running run, wait for its task
            assert time.monotonic() - t_stop < 30, "the ingest task must stop long before its 120 s window ends"
            counts = _landed_and_rejected_since(settings, since)
            time.sleep(10)
            assert _landed_and_rejected_since(settings, since) == counts, "ingest went on after stop_flow"
            with psycopg.connect(settings.postgres_conninfo) as conn:
                last = conn.execute("SELECT status FROM staging.ingest_runs ORDER BY run_id DESC LIMIT 1").fetchone()
            assert last == ("stopped",), "the ended DAG run's task saved its run as stopped"
            audit = wait_until_drained(settings, timeout_s=300, grace_s=0)
            assert audit.ok, audit.summary()
            assert audit.missing == [] and audit.duplicated == []
            assert demo.poll() is None, "the demo must keep running until Ctrl-C"
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGINT)
            code = demo.wait(240)
    output = log_path.read_text()
    assert code == 0, f"Ctrl-C must stop the demo cleanly: exit {code}, see {log_path}"
    assert "stopping: pausing ingest, then the stack" in output
    assert "in Cassandra" in output, "piped output still shows the per-stage counts"
    assert not any(s.running for s in Stack(settings).status() if not s.external), "Ctrl-C stops every service"
