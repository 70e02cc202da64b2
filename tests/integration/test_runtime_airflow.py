from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from userstream.config import Settings
from userstream.runtime.airflow import AirflowService
from userstream.runtime.stack import Stack

pytestmark = pytest.mark.integration


def test_airflow_healthy_and_lists_our_dags(require_services: Callable[..., Stack], settings: Settings) -> None:
    stack = require_services("airflow")
    airflow = stack.services["airflow"]
    assert isinstance(airflow, AirflowService)
    health = httpx.get(f"{settings.airflow_endpoint}/api/v2/monitor/health", timeout=5).json()
    assert {k: v["status"] for k, v in health.items() if k != "triggerer"} == {
        "metadatabase": "healthy",
        "scheduler": "healthy",
        "dag_processor": "healthy",
    }
    assert airflow.components == ("api-server", "scheduler", "dag-processor")  # no triggerer unless asked
    assert airflow.health().healthy
    headers = {"Authorization": f"Bearer {airflow.token()}"}
    deadline = time.monotonic() + 120
    dag_ids: set[str] = set()
    while time.monotonic() < deadline:
        body = httpx.get(f"{settings.airflow_endpoint}/api/v2/dags", headers=headers, timeout=10).json()
        dag_ids = {d["dag_id"] for d in body["dags"]}
        if {"users_ingest", "pipeline_bootstrap", "pipeline_audit"} <= dag_ids:
            break
        time.sleep(2)
    assert {"users_ingest", "pipeline_bootstrap", "pipeline_audit"} <= dag_ids
    errors = httpx.get(f"{settings.airflow_endpoint}/api/v2/importErrors", headers=headers, timeout=10).json()
    assert errors["total_entries"] == 0, errors


def test_airflow_api_rejects_anonymous_calls(require_services: Callable[..., Stack], settings: Settings) -> None:
    require_services("airflow")
    assert httpx.get(f"{settings.airflow_endpoint}/api/v2/dags", timeout=5).status_code == 401
