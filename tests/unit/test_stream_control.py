"""Schema cache, job paths/conf and the launcher of the streaming job (no Spark, no services)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from userstream.config import Settings
from userstream.stream import control, job, synthetic
from userstream.stream.registry import SchemaCache, record_fields


class FakeRegistry:
    def __init__(self, schemas: dict[int, str]) -> None:
        self.schemas = schemas
        self.calls: list[int] = []
        self.down = False

    def __call__(self, schema_id: int) -> str | None:
        self.calls.append(schema_id)
        if self.down:
            raise ConnectionError("registry down")
        return self.schemas.get(schema_id)


def test_schema_cache_fetches_once_and_retries_misses_after_ttl() -> None:
    now = [0.0]
    registry = FakeRegistry({1: json.dumps(synthetic.value_schema()), 2: '"string"'})
    cache = SchemaCache(registry, miss_ttl_s=60, clock=lambda: now[0])
    assert cache.lookup([1, 1, 2, 99]) == {1}
    assert cache.fields(1)[0] == "id" and cache.fields(1)[-1] == "__source_ts_ms"
    assert cache.lookup([1, 2, 99]) == set()  # hit kept; misses (2: not a record, 99: unknown) not re-asked
    assert registry.calls == [1, 2, 99]
    now[0] = 61
    registry.schemas[99] = json.dumps(synthetic.value_schema(["nick"]))
    assert cache.lookup([99]) == {99}
    assert "nick" in cache.fields(99)
    assert set(cache.known) == {1, 99}


def test_schema_cache_raises_when_the_registry_is_down() -> None:
    registry = FakeRegistry({})
    registry.down = True
    with pytest.raises(ConnectionError):  # the batch fails and is retried; nothing is dead-lettered
        SchemaCache(registry).lookup([5])


def test_record_fields() -> None:
    assert record_fields('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}') == ("a",)
    assert record_fields('"string"') is None and record_fields("{") is None


def test_evolved_schema_inserts_columns_before_the_commit_time() -> None:
    v2 = [f["name"] for f in synthetic.value_schema(["nick"])["fields"]]
    assert v2[-2:] == ["nick", "__source_ts_ms"]  # like Debezium's unwrap: so v1 is no prefix of v2


def test_paths_are_per_topic_and_keyspace(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    a = control.job_paths(s)
    b = control.job_paths(s.model_copy(update={"cassandra_keyspace": "other"}))
    assert a.progress == tmp_path.resolve() / "data" / "stream" / "progress.json"
    assert a.checkpoint != b.checkpoint and a.checkpoint.parent == b.checkpoint.parent
    assert a.users_checkpoint.name == "users" and a.aggregate_checkpoint.name == "country_minute"
    assert s.accepted_topic == "users.raw.accepted.spark_streams"


def test_job_conf_follows_settings() -> None:
    conf = control.job_conf(Settings(stream_cores_max=2))
    assert conf["spark.cores.max"] == "2"
    assert conf["spark.sql.shuffle.partitions"] == "2"
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert "avro.limits.string.maxLength" in conf["spark.executor.extraJavaOptions"]
    for side in ("executor", "driver"):  # a node lost without a FIN is found in seconds, not 35 s
        assert "datastax-java-driver.advanced.heartbeat.interval=5s" in conf[f"spark.{side}.extraJavaOptions"]
    # one scheduler pool per query, the users query favoured; pools named as the queries are
    pools = ElementTree.parse(conf["spark.scheduler.allocation.file"]).getroot().findall("pool")
    weights = {p.get("name"): int(p.findtext("weight") or 0) for p in pools}
    assert conf["spark.scheduler.mode"] == "FAIR" and set(weights) == {job.USERS_QUERY, job.AGGREGATE_QUERY}
    assert weights[job.USERS_QUERY] > weights[job.AGGREGATE_QUERY]
    assert conf["spark.sql.streaming.checkpointFileManagerClass"].endswith("FileSystemBasedCheckpointFileManager")
    # the executor's stderr is rolled by the worker: bounded however long the job runs
    assert conf["spark.executor.logs.rolling.strategy"] == "size"
    assert (
        int(conf["spark.executor.logs.rolling.maxSize"]) * int(conf["spark.executor.logs.rolling.maxRetainedFiles"])
        <= 64 << 20
    )


def test_submit_carries_settings_by_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("userstream.runtime.spark_submit.connector_jars", lambda settings: [Path("/x/a.jar")])
    s = Settings(data_dir=tmp_path, users_topic="t1")
    submit = control.build_job_submit(s, extra_conf={"spark.cassandra.output.concurrent.writes": "64"})
    cmd = submit.command
    settings_file = Path(cmd[cmd.index("--settings") + 1])
    assert Settings(**json.loads(settings_file.read_text())).users_topic == "t1"
    assert json.loads(settings_file.read_text())["data_dir"] == str(tmp_path.resolve())
    assert "spark.cassandra.output.concurrent.writes=64" in cmd
    assert cmd[cmd.index("--name") + 1] == "userstream-stream"
    same = control.build_job_submit(s, extra_conf={"spark.cassandra.output.concurrent.writes": "64"})
    assert same.command == cmd
    other = control.build_job_submit(s.model_copy(update={"users_topic": "t2"}))
    assert other.command[other.command.index("--settings") + 1] != str(settings_file)
