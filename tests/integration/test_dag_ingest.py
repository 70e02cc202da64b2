"""`airflow dags test users_ingest` against the real stack lands users in PostgreSQL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import psycopg
import pytest

from userstream.config import Settings
from userstream.runtime.airflow import AirflowService, airflow_bin
from userstream.runtime.stack import Stack
from userstream.source import serve_in_thread
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


def test_users_ingest_dag_lands_users(require_services: Callable[..., Stack], settings: Settings) -> None:
    stack = require_services("airflow")
    airflow = stack.services["airflow"]
    assert isinstance(airflow, AirflowService)
    apply_postgres_schema(settings)
    seed = f"dag-{os.getpid()}"
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn, serve_in_thread() as url:
        env = {
            **os.environ,
            **airflow.environment(),
            "USERSTREAM_SOURCE_URL": url,
            "USERSTREAM_SOURCE_SEED": seed,
            "USERSTREAM_SOURCE_PAGE_SIZE": "250",
            "USERSTREAM_INGEST_WINDOW_S": "3",
            "USERSTREAM_INGEST_RATE": "500",
            "USERSTREAM_SOURCE_QUOTA_USERS": "0",  # the bundled server has no quota: do not pace to the real site's
        }
        proc = subprocess.run(
            [airflow_bin(), "dags", "test", "users_ingest"], env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        run = conn.execute(
            "SELECT landed, requested, status FROM staging.ingest_runs WHERE seed = %s", (seed,)
        ).fetchone()
    assert run is not None
    landed, requested, status = run
    assert status == "finished"
    # 500 records/s for a 3 s window, in pages of 250
    assert 1000 <= requested <= 2500
    assert landed == requested
