"""users_ingest: keep random users flowing from the API into PostgreSQL (thin shell over userstream.ingest)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task


@dag(
    dag_id="users_ingest",
    schedule="@continuous",
    max_active_runs=1,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=5), "retry_exponential_backoff": True},
    tags=["userstream"],
    doc_md="Each run ingests for `USERSTREAM_INGEST_WINDOW_S` seconds at `USERSTREAM_INGEST_RATE` records/s.",
)
def users_ingest() -> None:
    @task
    def ingest_window() -> dict[str, Any]:
        # imported inside the task so DAG parsing stays fast
        from userstream.config import get_settings
        from userstream.ingest import ingest

        settings = get_settings()
        report = ingest(settings, duration_s=settings.ingest_window_s, rate=settings.ingest_rate)
        print(report.summary())  # the run's counts in the task log; the return value goes to XCom
        return report.as_dict()

    ingest_window()


users_ingest()
