"""DAG integrity: every DAG in dags/ imports, has no cycle, and has the tasks the pipeline relies on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory: pytest.TempPathFactory) -> Any:
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow_home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_all_dags_import(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= {"users_ingest", "pipeline_bootstrap", "pipeline_audit", "staging_retention"}


@pytest.mark.parametrize(
    ("dag_id", "tasks"),
    [
        ("users_ingest", {"ingest_window"}),
        (
            "pipeline_bootstrap",
            {"postgres_schema", "kafka_topics", "avro_subject", "cassandra_schema", "cdc_connector", "streaming_job"},
        ),
        ("pipeline_audit", {"audit"}),
        ("staging_retention", {"prune"}),
    ],
)
def test_expected_tasks(dagbag: Any, dag_id: str, tasks: set[str]) -> None:
    dag = dagbag.dags[dag_id]
    assert set(dag.task_ids) == tasks
    # a cycle makes DagBag report an import error, so importing cleanly also proves acyclicity
    assert len(dag.tasks) == len(tasks)


def test_users_ingest_is_continuous_single_run(dagbag: Any) -> None:
    dag = dagbag.dags["users_ingest"]
    assert dag.max_active_runs == 1
    assert type(dag.timetable).__name__ == "ContinuousTimetable"
    assert dag.default_args["retries"] >= 1


def test_bootstrap_connector_waits_for_schema_and_topics(dagbag: Any) -> None:
    dag = dagbag.dags["pipeline_bootstrap"]
    upstream = dag.get_task("cdc_connector").upstream_task_ids
    assert {"postgres_schema", "kafka_topics", "avro_subject"} <= upstream
    assert {"kafka_topics", "cassandra_schema", "avro_subject"} <= dag.get_task("streaming_job").upstream_task_ids
