"""The control plane's one-shot setup, shared by the `pipeline_bootstrap` DAG and `userstream bootstrap`."""

from __future__ import annotations

from typing import Any

from userstream.config import Settings

# the services bootstrap talks to; Airflow is not one of them, so bootstrap can run while it still starts
BOOTSTRAP_NEEDS = ("postgres", "kafka", "registry", "connect", "cassandra", "spark")


def bootstrap(settings: Settings, *, with_stream: bool = True) -> dict[str, Any]:
    """Topics, Avro subject compatibility, Postgres and Cassandra DDL, the CDC connector, the Spark job.

    Every step is idempotent, so a second run changes nothing; returns step -> outcome.
    """
    from userstream.cdc import ensure_connector, ensure_subject, ensure_topics
    from userstream.store import apply_cassandra_schema, apply_postgres_schema

    done: dict[str, Any] = {}
    done["postgres_schema"] = apply_postgres_schema(settings)
    done["kafka_topics"] = ensure_topics(settings)
    done["avro_subject"] = ensure_subject(settings)
    done["cassandra_schema"] = f"{len(apply_cassandra_schema(settings))} statements"
    done["cdc_connector"] = ensure_connector(settings)
    if with_stream:
        from userstream.stream import ensure_job_running

        done["streaming_job"] = ensure_job_running(settings)
    return done


def demo_environment(settings: Settings) -> dict[str, str]:
    """Environment overrides for the demo: ingest from the bundled source unless a source URL was chosen."""
    import os

    if "USERSTREAM_SOURCE_URL" in os.environ:
        return {}
    return {"USERSTREAM_SOURCE_URL": f"http://{settings.bind_host}:{settings.source_port}/api/"}


def start_flow(settings: Settings) -> None:
    """Unpause the ingest and audit DAGs: records start to flow (bootstrap must have run)."""
    from userstream.runtime.airflow import AirflowService

    airflow = AirflowService(settings)
    airflow.set_paused("users_ingest", False)
    airflow.set_paused("pipeline_audit", False)


def stop_flow(settings: Settings) -> None:
    """Stop ingest: pause the DAG and end its running run, so no new records are fetched (each landed page is
    committed on its own, so an ended run loses nothing); what is in flight still drains."""
    from userstream.runtime.airflow import AirflowService

    airflow = AirflowService(settings)
    airflow.set_paused("users_ingest", True)
    if airflow.end_running_runs("users_ingest", note="ended by userstream: ingest stopped (Ctrl-C or a benchmark)"):
        _wait_ingest_runs_ended(settings, timeout_s=30.0)


def _wait_ingest_runs_ended(settings: Settings, timeout_s: float) -> None:
    """Until no ingest run is still landing (its task saves status 'stopped' once Airflow's TERM reaches it, a
    heartbeat after the run was ended): a stack stopped before that kills the task mid-report instead."""
    import time

    import psycopg

    deadline = time.monotonic() + timeout_s
    # a run older than a window (plus a margin) that still says 'running' was killed: not waited for
    recent = settings.ingest_window_s + 60
    with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM staging.ingest_runs WHERE status = 'running' "
                "AND started_at > now() - make_interval(secs => %s)",
                (recent,),
            ).fetchone()
            if not row or row[0] == 0:
                return
            time.sleep(0.5)
