"""The streaming stage: the Spark job users topic -> Cassandra (+ DLQ, per-minute aggregates) and its control.

Public API (no PySpark import: safe in the CLI and Airflow tasks)::

    ensure_job_running(settings) -> "started" | "running"
    stop_job(settings) -> bool
    job_status(settings) -> dict
"""

from userstream.stream.control import ensure_job_running, job_paths, job_status, stop_job

__all__ = ["ensure_job_running", "job_paths", "job_status", "stop_job"]
