"""The control plane's one-shot setup, shared by the `pipeline_bootstrap` DAG and `userstream bootstrap`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import psycopg

from userstream.cdc import ensure_connector, ensure_subject, ensure_topics
from userstream.config import Settings
from userstream.ingest.run import live_runs, settle_dead_runs
from userstream.runtime.airflow import AirflowService
from userstream.store import apply_cassandra_schema, apply_postgres_schema
from userstream.stream import ensure_job_running

# the services bootstrap talks to; Airflow is not one of them, so bootstrap can run while it still starts
BOOTSTRAP_NEEDS = ("postgres", "kafka", "registry", "connect", "cassandra", "spark")


def bootstrap(settings: Settings, *, with_stream: bool = True) -> dict[str, Any]:
    """Topics, Avro subject compatibility, Postgres and Cassandra DDL, the CDC connector, the Spark job.

    Every step is idempotent, so a second run changes nothing; returns step -> outcome.
    """
    done: dict[str, Any] = {}
    done["postgres_schema"] = apply_postgres_schema(settings)
    done["kafka_topics"] = ensure_topics(settings)
    done["avro_subject"] = ensure_subject(settings)
    done["cassandra_schema"] = f"{len(apply_cassandra_schema(settings))} statements"
    done["cdc_connector"] = ensure_connector(settings)
    if with_stream:
        done["streaming_job"] = ensure_job_running(settings, schema_applied=True)  # topics and DDL done above
    return done


def demo_environment(settings: Settings) -> dict[str, str]:
    """Environment overrides for the demo: ingest from the bundled source unless a source URL was chosen.

    The bundled source has no quota (unless started with one), so the client-side quota pacing, whose
    default is the real site's, is turned off with it, unless USERSTREAM_SOURCE_QUOTA_USERS was set.
    """
    if "USERSTREAM_SOURCE_URL" in os.environ:
        return {}
    env = {"USERSTREAM_SOURCE_URL": settings.source_endpoint}
    if "USERSTREAM_SOURCE_QUOTA_USERS" not in os.environ:
        env["USERSTREAM_SOURCE_QUOTA_USERS"] = "0"
    return env


def bootstrap_when_ready(
    settings: Settings,
    wait_s: float,
    *,
    with_stream: bool = True,
    start_ingest: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """:func:`bootstrap` (then, with ``start_ingest``, :func:`start_flow`), tried again with backoff for up to
    ``wait_s`` while the services it needs do not answer yet: a cluster's bootstrap step starts with them."""
    deadline = time.monotonic() + wait_s
    delay = 2.0
    while True:
        try:
            done = bootstrap(settings, with_stream=with_stream)
            if start_ingest:
                start_flow(settings)
                done["ingest"] = "unpaused"
            return done
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                raise
            say(f"bootstrap: not ready yet ({type(exc).__name__}: {str(exc)[:200]}); again in {delay:.0f} s")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def start_flow(settings: Settings) -> None:
    """Unpause the ingest, audit and retention DAGs: records start to flow (bootstrap must have run)."""
    airflow = AirflowService(settings)
    airflow.set_paused("users_ingest", False)
    airflow.set_paused("pipeline_audit", False)
    airflow.set_paused("staging_retention", False)


def stop_flow(settings: Settings, timeout_s: float = 30.0) -> None:
    """Stop ingest: pause the DAG and end its running run, so no new records are fetched (each landed page is
    committed on its own, so an ended run loses nothing); what is in flight still drains.

    Returns once no ingest run is landing any more: Airflow terminates the ended run's task at its next
    heartbeat, and the task lands the page in hand, saves its run and lets go of the run's lock.
    """
    airflow = AirflowService(settings)
    airflow.set_paused("users_ingest", True)
    airflow.end_running_runs("users_ingest", note="ended by userstream: ingest stopped (Ctrl-C or a benchmark)")
    deadline = time.monotonic() + timeout_s
    try:
        with psycopg.connect(settings.postgres_conninfo, connect_timeout=5, autocommit=True) as conn:
            while (live := live_runs(conn)) and time.monotonic() < deadline:
                time.sleep(0.5)
            settle_dead_runs(conn, "stopped")
    except psycopg.Error:
        return  # Postgres is down: nothing lands
    if live:
        logging.getLogger(__name__).warning(
            "ingest runs %s still land %.0fs after ingest was stopped (a `userstream ingest` of its own?)",
            sorted(live),
            timeout_s,
        )
