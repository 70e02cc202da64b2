"""pipeline_bootstrap: topics, schemas, DDL, CDC connector, streaming job. Idempotent: a rerun changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task


@dag(
    dag_id="pipeline_bootstrap",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["userstream"],
)
def pipeline_bootstrap() -> None:
    @task
    def postgres_schema() -> list[str]:
        from userstream.config import get_settings
        from userstream.store.postgres import apply_postgres_schema

        return apply_postgres_schema(get_settings())

    @task
    def kafka_topics() -> dict[str, str]:
        from userstream.cdc import ensure_topics
        from userstream.config import get_settings

        return ensure_topics(get_settings())

    @task
    def avro_subject() -> dict[str, Any]:
        from userstream.cdc import ensure_subject
        from userstream.config import get_settings

        return ensure_subject(get_settings())

    @task
    def cassandra_schema() -> list[str]:
        from userstream.config import get_settings
        from userstream.store.cassandra import apply_cassandra_schema

        return apply_cassandra_schema(get_settings())

    @task
    def cdc_connector() -> str:
        from userstream.cdc import ensure_connector
        from userstream.config import get_settings

        return ensure_connector(get_settings())

    @task
    def streaming_job() -> str:
        from userstream.config import get_settings
        from userstream.stream import ensure_job_running

        return ensure_job_running(get_settings())

    pg = postgres_schema()
    topics = kafka_topics()
    subject = avro_subject()
    cql = cassandra_schema()
    connector = cdc_connector()
    job = streaming_job()
    [pg, topics, subject] >> connector
    [topics, cql, subject] >> job


pipeline_bootstrap()
