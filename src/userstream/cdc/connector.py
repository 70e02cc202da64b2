"""The Debezium Postgres connector that streams staging.users into the users topic, in Avro."""

from __future__ import annotations

import time
from typing import Any

import httpx

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.runtime.connect import (
    DEBEZIUM_POSTGRES_CONNECTOR,
    avro_converter_config,
    rest_client,
    restart_failed_parts,
    secret_reference,
)
from userstream.store.postgres import PASSWORD_SECRETS, PUBLICATION, conninfo_params

CONNECTOR_NAME = "userstream-users-cdc"
SLOT_NAME = "userstream_users"
# Debezium adds the Postgres commit time of each change, so CDC lag can be measured downstream.
COMMIT_TS_FIELD = "__source_ts_ms"


def _database_password(settings: Settings, pg: dict[str, str]) -> str:
    """A reference the worker resolves from the secrets dir (our own worker and password), else the value."""
    if settings.postgres_dsn or settings.connect_url:
        return pg.get("password", "")
    return secret_reference(settings, PASSWORD_SECRETS["cdc"])


def connector_config(settings: Settings) -> dict[str, str]:
    pg = conninfo_params(settings, "cdc")  # Debezium's own role: replication + SELECT on staging.users
    return {
        "connector.class": DEBEZIUM_POSTGRES_CONNECTOR,
        "tasks.max": "1",
        "plugin.name": "pgoutput",
        "database.hostname": pg["host"],
        "database.port": pg["port"],
        "database.user": pg["user"],
        "database.password": _database_password(settings, pg),
        "database.dbname": pg["dbname"],
        "topic.prefix": "userstream",
        "table.include.list": "staging.users",
        # the raw API JSON stays in Postgres; Kafka carries the flat record
        "column.exclude.list": "staging.users.raw",
        "publication.name": PUBLICATION,
        "publication.autocreate.mode": "disabled",
        "slot.name": SLOT_NAME,
        # rows landed before the connector existed are snapshotted first: nothing acked is skipped
        "snapshot.mode": "initial",
        "decimal.handling.mode": "string",
        # heartbeats move the slot on while only other databases write WAL (else WAL piles up)
        "heartbeat.interval.ms": "10000",
        # the broker does not auto-create: Connect creates the heartbeat topic (users.raw is ours)
        "topic.creation.default.replication.factor": "-1",
        "topic.creation.default.partitions": "1",
        # throughput: bigger batches from the WAL reader, polled often for low latency
        "max.batch.size": "10240",
        "max.queue.size": "40960",
        "poll.interval.ms": "50",
        # new-record-state unwrap: the value is the row itself, plus the commit time
        "transforms": "unwrap,route",
        "transforms.unwrap.type": "io.debezium.transforms.ExtractNewRecordState",
        "transforms.unwrap.delete.tombstone.handling.mode": "drop",
        "transforms.unwrap.add.fields": "source.ts_ms",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        # only the table topic: heartbeats and other Debezium topics keep their own names
        "transforms.route.regex": r"userstream\.staging\.users",
        "transforms.route.replacement": settings.users_topic,
        # faults: retriable errors are retried in place rather than failing the task. Debezium retries a lost
        # Postgres connection forever (it restarts its own task after retriable.restart.connector.wait.ms);
        # Connect retries converter/transform failures (a registry restarting) with capped backoff; records
        # are never skipped (errors.tolerance stays "none"). What still fails, the watchdog restarts.
        "errors.max.retries": "-1",
        "retriable.restart.connector.wait.ms": "5000",
        "errors.retry.timeout": "-1",
        "errors.retry.delay.max.ms": "30000",
        "errors.log.enable": "true",
        # at-least-once into Kafka with the idempotent producer
        "producer.override.enable.idempotence": "true",
        "producer.override.acks": "all",
        "producer.override.linger.ms": "20",
        "producer.override.batch.size": "262144",
        "producer.override.compression.type": "lz4",
        **avro_converter_config(settings, "key"),
        **avro_converter_config(settings, "value"),
    }


def _connect(settings: Settings) -> httpx.Client:
    return rest_client(settings)


def ensure_connector(settings: Settings, wait_s: float = 60.0) -> str:
    """Create or update the connector (PUT is idempotent) and wait until it and its task run.

    Returns "created", "updated" or "unchanged".
    """
    wanted = connector_config(settings)
    with _connect(settings) as http:
        current = http.get(f"/connectors/{CONNECTOR_NAME}/config")
        if current.status_code == 200:
            have = {k: v for k, v in current.json().items() if k != "name"}
            outcome = "unchanged" if have == wanted else "updated"
        else:
            outcome = "created"
        if outcome != "unchanged":
            resp = http.put(f"/connectors/{CONNECTOR_NAME}/config", json=wanted)
            if resp.status_code >= 400:
                raise ServiceError(
                    f"Kafka Connect refused the connector config: HTTP {resp.status_code} {resp.text[:500]}",
                    fix="check `userstream logs connect`",
                )
        _wait_running(http, wait_s)
    return outcome


def connector_status(settings: Settings) -> dict[str, Any]:
    with _connect(settings) as http:
        resp = http.get(f"/connectors/{CONNECTOR_NAME}/status")
        if resp.status_code == 404:
            return {"connector": {"state": "ABSENT"}, "tasks": []}
        resp.raise_for_status()
        status: dict[str, Any] = resp.json()
        return status


def restart_connector(settings: Settings, wait_s: float = 60.0) -> None:
    """Restart the connector and its task (they read their secrets again), and wait until they run."""
    with _connect(settings) as http:
        resp = http.post(f"/connectors/{CONNECTOR_NAME}/restart", params={"includeTasks": "true"})
        if resp.status_code >= 400 and resp.status_code != 404:
            raise ServiceError(f"Kafka Connect refused to restart the connector: HTTP {resp.status_code}",
                               fix="check `userstream logs connect`")  # fmt: skip
        # asynchronous: the old RUNNING states may still show, then RESTARTING, then RUNNING again
        seen_restarting = False
        unseen_after = time.monotonic() + 10  # a restart that was over before the first look
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            status = http.get(f"/connectors/{CONNECTOR_NAME}/status").json()
            states = [status.get("connector", {}).get("state")] + [t.get("state") for t in status.get("tasks", [])]
            restarting = "RESTARTING" in states
            seen_restarting |= restarting
            if not restarting and (seen_restarting or time.monotonic() > unseen_after):
                break
            time.sleep(0.3)
        _wait_running(http, wait_s)


def restart_failed(settings: Settings) -> list[str]:
    """Restart the connector's FAILED parts, the way Strimzi's auto-restart does; returns what was failed."""
    with _connect(settings) as http:
        return _restart_failed(http)


def _restart_failed(http: httpx.Client) -> list[str]:
    return restart_failed_parts(http, CONNECTOR_NAME)


def _wait_running(http: httpx.Client, wait_s: float) -> None:
    """Until the connector and its task run; a task FAILED (e.g. by an outage before this start) is restarted
    every 10 s meanwhile, and its trace is raised only if it is still failing at the deadline."""
    deadline = time.monotonic() + wait_s
    last: dict[str, Any] = {}
    next_restart = time.monotonic()
    while time.monotonic() < deadline:
        resp = http.get(f"/connectors/{CONNECTOR_NAME}/status")
        if resp.status_code == 200:
            last = resp.json()
            tasks = last.get("tasks", [])
            if (
                last.get("connector", {}).get("state") == "RUNNING"
                and tasks
                and all(t.get("state") == "RUNNING" for t in tasks)
            ):
                return
            if time.monotonic() >= next_restart and _restart_failed(http):
                next_restart = time.monotonic() + 10
        time.sleep(0.5)
    failed = [t for t in last.get("tasks", []) if t.get("state") == "FAILED"]
    if failed:
        trace = str(failed[0].get("trace", ""))[:1500]
        raise ServiceError(f"CDC connector task failed:\n{trace}", fix="see `userstream logs connect`")
    raise ServiceError(f"CDC connector not running after {wait_s:.0f}s: {last}", fix="see `userstream logs connect`")


def delete_connector(settings: Settings) -> bool:
    """Remove the connector (its replication slot stays, so a re-create resumes where it stopped)."""
    with _connect(settings) as http:
        return http.delete(f"/connectors/{CONNECTOR_NAME}").status_code in (200, 204)
