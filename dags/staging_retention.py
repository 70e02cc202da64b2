"""staging_retention: delete landed users and rejects older than USERSTREAM_STAGING_RETENTION_DAYS (thin
shell over userstream.ingest.retention)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task


@dag(
    dag_id="staging_retention",
    schedule=timedelta(hours=1),
    max_active_runs=1,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1)},
    tags=["userstream"],
)
def staging_retention() -> None:
    @task
    def prune() -> dict[str, Any]:
        # imported inside the task so DAG parsing stays fast
        from userstream.config import get_settings
        from userstream.ingest.retention import prune_staging

        report = prune_staging(get_settings())
        print(report.summary())
        return {"users": report.users, "rejected": report.rejected}

    prune()


staging_retention()
