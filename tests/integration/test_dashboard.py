"""The dashboard started through the runtime reflects rows written to Postgres, in JSON and in /metrics."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from cdc_flow import make_users  # tests/integration/cdc_flow.py
from prometheus_client.parser import text_string_to_metric_families

from userstream.config import Settings
from userstream.ingest.land import Reject, land_batch
from userstream.monitor.auth import dashboard_token
from userstream.runtime.stack import Stack
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dashboard(require_services: Callable[..., Stack], settings: Settings) -> Iterator[httpx.Client]:
    stack = require_services("dashboard", "postgres")
    assert stack.services["dashboard"].health().healthy
    apply_postgres_schema(settings)
    base = f"http://{settings.bind_host}:{settings.dashboard_port}"
    headers = {"Authorization": f"Bearer {dashboard_token(settings)}"}
    with httpx.Client(base_url=base, headers=headers, timeout=15.0) as client:
        yield client


def snapshot(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/api/snapshot")
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def stage_counts(snap: dict[str, Any]) -> dict[str, int | None]:
    return {s["key"]: s["count"] for s in snap["stages"]}


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def wait_for(client: httpx.Client, check: Callable[[dict[str, Any]], bool], timeout_s: float = 45.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    snap = snapshot(client)
    while not check(snap):
        if time.monotonic() > deadline:
            raise AssertionError(f"snapshot never matched: {json.dumps(snap)[:3000]}")
        time.sleep(1.0)
        snap = snapshot(client)
    return snap


def test_auth_is_required_except_for_healthz(dashboard: httpx.Client, settings: Settings) -> None:
    base = f"http://{settings.bind_host}:{settings.dashboard_port}"
    assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
    assert httpx.get(f"{base}/api/snapshot", timeout=5).status_code == 401
    assert httpx.get(f"{base}/metrics", timeout=5).status_code == 401


def test_snapshot_and_metrics_reflect_inserted_rows(dashboard: httpx.Client, settings: Settings) -> None:
    before = wait_for(dashboard, lambda s: stage_counts(s)["landed"] is not None)
    counts = stage_counts(before)
    tag = f"dash{uuid.uuid4().hex[:6]}"
    reason = f"email: not an address ({tag})"
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        result = land_batch(conn, make_users(250, tag), [Reject(reason, '{"email": "nope"}', f"test {tag}")])
        conn.execute(
            "INSERT INTO staging.ingest_runs (seed, first_page, last_page, requested, landed, duplicates, rejected, "
            "status, finished_at) VALUES (%s, 1, 1, 260, 250, 9, 1, 'finished', clock_timestamp())",
            (tag,),
        )
    assert result.landed == 250 and result.rejected == 1

    def reflected(s: dict[str, Any]) -> bool:
        # ">=": in a full test session something else may land rows at the same time
        c = stage_counts(s)
        return (
            (c["landed"] or 0) >= (counts["landed"] or 0) + 250
            and (c["rejected"] or 0) >= (counts["rejected"] or 0) + 1
            and (c["fetched"] or 0) >= (counts["fetched"] or 0) + 260
        )

    after = wait_for(dashboard, reflected)
    assert after["ingest"]["latest_run"]["seed"] == tag
    assert after["ingest"]["latest_run"]["duplicates"] == 9
    assert after["postgres"]["recent_rejects"][0]["reason"] == reason
    # a section whose service is down says so, and the rest still answers; in a full test session
    # earlier tests may have started them, so check each against the service's actual state
    health = {s.name: s.running for s in Stack(settings).status()}
    for section, service in (("kafka", "kafka"), ("cassandra", "cassandra")):
        if not health.get(service):
            assert after[section]["error"], f"{section} is down but its section shows no error"

    # /metrics agrees with the snapshot (the dashboard shares one snapshot per second between viewers)
    deadline = time.monotonic() + 30
    while True:
        response = dashboard.get("/metrics")
        assert response.status_code == 200
        samples = metric_samples(response.text)
        landed = samples.get(("userstream_stage_records_total", (("stage", "landed"),)))
        postgres_up = samples.get(("userstream_service_up", (("service", "postgres"),)))
        dashboard_up = samples.get(("userstream_service_up", (("service", "dashboard"),)))
        if (landed or 0) >= (stage_counts(after)["landed"] or 0) and postgres_up == 1.0 and dashboard_up == 1.0:
            break
        assert time.monotonic() < deadline, f"/metrics never caught up: landed={landed} up={postgres_up}"
        time.sleep(1.0)
    assert samples[("userstream_postgres_rows", (("table", "staging.rejected"),))] >= (
        stage_counts(after)["rejected"] or 0
    )
    assert samples[("userstream_ingest_records_total", (("kind", "requested"),))] >= (
        stage_counts(after)["fetched"] or 0
    )
    assert samples[("userstream_monitor_section_up", (("section", "postgres"),))] == 1.0
    # the kafka section is up exactly when Kafka is (other tests of a full session may have started it)
    kafka_up = 1.0 if health.get("kafka") else 0.0
    assert samples[("userstream_monitor_section_up", (("section", "kafka"),))] == kafka_up

    # the watchdog's verdicts: a list, or the reason there is none (this test does not start the watchdog)
    assert isinstance(after["health"]["stages"], list)
    assert after["health"]["stages"] or after["health"]["error"]
    assert ("userstream_monitor_section_up", (("section", "health"),)) in samples

    # the health table lists every service of the stack
    names = {s["name"] for s in after["services"]["services"]}
    assert {"postgres", "kafka", "cassandra", "spark", "airflow", "dashboard"} <= names
