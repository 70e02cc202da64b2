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
    # a run failing on an outage (Postgres or the source restarting) is retried with capped backoff; a run that
    # still fails is followed by the next @continuous run, so ingest never stops for good
    default_args={
        "retries": 8,
        "retry_delay": timedelta(seconds=5),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(seconds=60),
    },
    tags=["userstream"],
    doc_md="Each run ingests for `USERSTREAM_INGEST_WINDOW_S` seconds at up to `USERSTREAM_INGEST_RATE` records/s, "
    "slower while the pipeline is behind (backpressure, `USERSTREAM_INGEST_MAX_LAG_S`).",
)
def users_ingest() -> None:
    @task
    def ingest_window() -> dict[str, Any]:
        # imported inside the task so DAG parsing stays fast
        import signal
        import threading

        from userstream.config import get_settings
        from userstream.ingest import ingest_window as run_window

        # Airflow sends TERM when the run is ended or the task killed: finish the page, save the run, return
        stop = threading.Event()
        airflows = signal.getsignal(signal.SIGTERM)

        def on_term(signum: int, frame: Any) -> None:
            stop.set()
            if callable(airflows):
                airflows(signum, frame)

        signal.signal(signal.SIGTERM, on_term)
        report = run_window(get_settings(), stop=stop)
        print(report.summary())  # the run's counts in the task log; the return value goes to XCom
        return report.as_dict()

    ingest_window()


users_ingest()
