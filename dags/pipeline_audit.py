"""pipeline_audit: ids acked in Postgres must be in Cassandra or the DLQ; fails loudly when some are missing."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task


@dag(
    dag_id="pipeline_audit",
    schedule=timedelta(minutes=5),
    max_active_runs=1,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["userstream"],
)
def pipeline_audit() -> None:
    @task
    def audit() -> dict[str, Any]:
        from userstream.config import get_settings
        from userstream.monitor.audit import run_audit

        report = run_audit(get_settings())
        print(report.summary())
        report.raise_if_missing()
        return report.as_dict()

    audit()


pipeline_audit()
