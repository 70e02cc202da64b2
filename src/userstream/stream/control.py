"""Start, stop and inspect the streaming job (a supervisord program running ``spark-submit``).

No PySpark here: this runs in the CLI and in Airflow tasks.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from userstream.cdc.topics import ensure_topics
from userstream.config import Settings
from userstream.runtime.process import ProcessManager
from userstream.runtime.spark_submit import SparkSubmit, build_submit
from userstream.secret_store import write_private
from userstream.store.cassandra import apply_cassandra_schema
from userstream.stream.progress import read_progress

PROGRAM = "stream"
ENTRY = Path(__file__).with_name("spark_entry.py")

# Avro allocates a string's buffer from the length the bytes claim: a garbage record that decodes a
# 2 GB length must fail that record (PERMISSIVE -> DLQ), not the executor with an OutOfMemoryError.
AVRO_LIMITS = (
    "-Dorg.apache.avro.limits.string.maxLength=4194304 "
    "-Dorg.apache.avro.limits.bytes.maxLength=4194304 "
    "-Dorg.apache.avro.limits.collectionItems.maxLength=1000000"
)
# The Java driver finds a dead Cassandra node by a heartbeat on a connection with no reads for 30 s: a node
# lost without closing its connections (a host gone, a partition) would hold the writes sent to it ~35 s.
CASSANDRA_HEARTBEAT = (
    "-Ddatastax-java-driver.advanced.heartbeat.interval=5s -Ddatastax-java-driver.advanced.heartbeat.timeout=5s"
)


@dataclass(frozen=True)
class JobPaths:
    """Where one job keeps its state. The checkpoint is per (users topic, keyspace): the same job against
    another keyspace (or topic) starts from the beginning of the topic instead of resuming someone else's."""

    state: Path
    progress: Path
    checkpoint: Path

    @property
    def stop_file(self) -> Path:
        """Created by :func:`stop_job`: the driver sees it within seconds and stops its queries cleanly."""
        return self.state / "stop-requested"

    @property
    def users_checkpoint(self) -> Path:
        return self.checkpoint / "users"

    @property
    def aggregate_checkpoint(self) -> Path:
        return self.checkpoint / "country_minute"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def job_paths(settings: Settings, name: str = PROGRAM) -> JobPaths:
    state = settings.state_dir / name
    checkpoint = settings.checkpoint_dir / "stream" / f"{_slug(settings.users_topic)}--{settings.cassandra_keyspace}"
    return JobPaths(state=state, progress=state / "progress.json", checkpoint=checkpoint)


FAIR_SCHEDULER_FILE = Path(__file__).with_name("fairscheduler.xml")


def job_conf(settings: Settings) -> dict[str, str]:
    """Spark conf of the job on top of ``spark_submit.default_conf`` (tuned for 2 cores; see docs/stream.md)."""
    return {
        # leave worker cores to other applications (the worker has spark_worker_cores in all)
        "spark.cores.max": str(settings.stream_cores_max),
        "spark.executor.cores": str(settings.stream_cores_max),
        "spark.sql.shuffle.partitions": "2",
        "spark.sql.session.timeZone": "UTC",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        # the aggregate's dedup state holds every id within the watermark: RocksDB keeps it off the heap
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # streaming checkpoints of a restarted job are trusted; the old ones are pruned
        "spark.sql.streaming.minBatchesToRetain": "20",
        # writes: many single-row partitions (id is the key), so many in flight, unlogged multi-row batches
        "spark.cassandra.output.concurrent.writes": "32",
        "spark.cassandra.output.batch.grouping.key": "replica_set",
        "spark.cassandra.output.batch.size.rows": "32",
        "spark.cassandra.output.consistency.level": "LOCAL_QUORUM",
        # faults: the driver reconnects to a restarted Cassandra within 10 s; a write retries a few times, then
        # its task fails and the query with it, and the driver's QueryKeeper restarts the query with backoff
        "spark.cassandra.connection.reconnectionDelayMS.min": "1000",
        "spark.cassandra.connection.reconnectionDelayMS.max": "10000",
        "spark.cassandra.query.retry.count": "10",
        # keep the executor's Cassandra session between micro-batches (default: closed after 5 s idle)
        "spark.cassandra.connection.keepAliveMS": "120000",
        # a fixed, pre-touched heap (as the servers'): the executor's memory stays flat in a long run
        "spark.executor.extraJavaOptions": (
            f"{AVRO_LIMITS} {CASSANDRA_HEARTBEAT} -Xms{settings.spark_executor_memory} -XX:+AlwaysPreTouch"
        ),
        "spark.driver.extraJavaOptions": f"{AVRO_LIMITS} {CASSANDRA_HEARTBEAT}",
        "spark.driver.memory": "768m",
        # the micro-batch cache lives a few seconds: compressing it costs more CPU than it saves
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # a job that runs for weeks: the driver UI keeps recent history only (heap)
        "spark.ui.retainedJobs": "200",
        "spark.ui.retainedStages": "200",
        "spark.sql.ui.retainedExecutions": "100",
        "spark.sql.streaming.ui.retainedQueries": "20",
        "spark.ui.showConsoleProgress": "false",
        # each query in its own scheduler pool (stream/fairscheduler.xml): users first when both wait
        "spark.scheduler.mode": "FAIR",
        "spark.scheduler.allocation.file": str(FAIR_SCHEDULER_FILE),
        # checkpoints are on the local disk, where a plain rename is atomic; the default (FileContext) manager
        # forks `readlink`/`stat` for every checkpoint file it renames, several per micro-batch
        "spark.sql.streaming.checkpointFileManagerClass": (
            "org.apache.spark.sql.execution.streaming.FileSystemBasedCheckpointFileManager"
        ),
        # the worker rolls the executor's stderr (work/<app>/<id>/stderr): a job that runs for weeks
        "spark.executor.logs.rolling.strategy": "size",
        "spark.executor.logs.rolling.maxSize": str(16 * 1024 * 1024),
        "spark.executor.logs.rolling.maxRetainedFiles": "3",
    }


def _settings_payload(settings: Settings) -> str:
    # absolute data dir: the program runs with another working directory
    data = settings.model_dump(mode="json")
    data["data_dir"] = str(settings.root)
    return json.dumps(data, sort_keys=True, indent=1)


def build_job_submit(
    settings: Settings, name: str = PROGRAM, extra_conf: Mapping[str, str] | None = None
) -> SparkSubmit:
    """The job's spark-submit; its settings go in a file named by their hash, so a change restarts the job."""
    paths = job_paths(settings, name)
    paths.state.mkdir(parents=True, exist_ok=True)
    payload = _settings_payload(settings)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:12]
    settings_file = paths.state / f"settings-{digest}.json"
    # an external cluster's login may be in it: private, like the secret files
    write_private(settings_file, payload)
    args = ["--settings", str(settings_file), "--name", name]
    conf = {**job_conf(settings), **(extra_conf or {})}
    return build_submit(settings, ENTRY, args, conf=conf, name=f"userstream-{name}")


def ensure_job_running(
    settings: Settings,
    *,
    name: str = PROGRAM,
    extra_conf: Mapping[str, str] | None = None,
    schema_applied: bool = False,
) -> str:
    """Apply the Cassandra schema and the Kafka topics with their ACLs (as the admins: the job itself runs
    with least privilege), unless the caller just did (``schema_applied``: bootstrap), then start the job
    unless it already runs with these settings.

    Returns "running" (nothing to do) or "started" (started, or restarted with changed settings or conf).
    ``extra_conf`` overrides Spark properties of :func:`job_conf` (benchmarks, tuning).
    """
    if not schema_applied:
        apply_cassandra_schema(settings)
        ensure_topics(settings)
    processes = ProcessManager(settings)
    submit = build_job_submit(settings, name, extra_conf)
    conf_file = processes.programs_dir / f"{name}.conf"
    # the same command line (settings file named by their hash, Spark conf) = the same job
    same = conf_file.exists() and shlex.join(submit.command).replace("%", "%%") in conf_file.read_text()
    if same and processes.is_alive(name):
        return "running"
    paths = job_paths(settings, name)
    paths.stop_file.unlink(missing_ok=True)
    # the last run's progress would pass for this one's until the driver writes its first document
    paths.progress.unlink(missing_ok=True)
    processes.start(submit.program(name))  # a changed command stops the old one first
    return "started"


def stop_job(settings: Settings, *, name: str = PROGRAM, wait_s: float = 60.0) -> bool:
    """Stop the job; True if it was running. The checkpoint stays: the next start resumes after the last
    committed micro-batch.

    First asked through a stop file, so the driver stops its queries and exits 0 (a signal would reach the
    JVM too, which exits at once and takes the Python driver's last words with it); supervisord's
    stop (SIGINT, SIGKILL after a minute) only if the driver did not exit within ``wait_s``.
    """
    processes = ProcessManager(settings)
    if not processes.is_alive(name):
        return False
    stop_file = job_paths(settings, name).stop_file
    stop_file.parent.mkdir(parents=True, exist_ok=True)
    stop_file.touch()
    deadline = time.monotonic() + wait_s
    while processes.is_alive(name) and time.monotonic() < deadline:
        time.sleep(0.5)
    processes.stop(name)
    stop_file.unlink(missing_ok=True)
    return True


def job_status(settings: Settings, *, name: str = PROGRAM) -> dict[str, Any]:
    """Supervisor state of the job, its paths and its last progress document (None before the first)."""
    processes = ProcessManager(settings)
    paths = job_paths(settings, name)
    state = processes.state(name)
    return {
        "name": name,
        "state": state,
        "running": processes.is_alive(name),
        "pid": processes.pid(name),
        "users_topic": settings.users_topic,
        "dlq_topic": settings.dlq_topic,
        "accepted_topic": settings.accepted_topic,
        "keyspace": settings.cassandra_keyspace,
        "checkpoint": str(paths.checkpoint),
        "progress_file": str(paths.progress),
        "log": str(processes.log_file(name)),
        "progress": read_progress(paths.progress),
    }


def job_health(settings: Settings, *, name: str = PROGRAM, max_age_s: float = 30.0) -> tuple[bool, str]:
    """(healthy, detail): the driver runs, its heartbeat is fresh and every query is active.

    Whether the queries also make progress while their input waits is the stall rule's to say
    (:mod:`userstream.monitor.stall`); `userstream status` shows both.
    """
    status = job_status(settings, name=name)
    if not status["running"]:
        return False, str(status["state"]).lower()
    return progress_health(status["progress"], max_age_s)


def progress_health(progress: Mapping[str, Any] | None, max_age_s: float = 30.0) -> tuple[bool, str]:
    """(healthy, detail) from the driver's progress document: a fresh heartbeat, every query active."""
    if progress is None:
        return False, "driver started; no progress document yet"
    try:
        updated = datetime.fromisoformat(str(progress.get("updated_at")).replace("Z", "+00:00"))
    except ValueError:
        return False, "progress document has no valid updated_at"
    age = (datetime.now(UTC) - updated).total_seconds()
    if age > max_age_s:
        return False, f"driver heartbeat {age:.0f}s old"
    state = str(progress.get("state"))
    if state != "running":
        error = progress.get("error")
        return False, f"{state}{': ' + str(error)[:300] if error else ''}"
    totals = progress.get("totals") or {}
    return True, f"queries active; {totals.get('valid', 0)} valid, {totals.get('dlq', 0)} to the DLQ so far"
