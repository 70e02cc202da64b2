"""Config generation of the Cassandra and Spark services (no servers needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from userstream.config import Settings
from userstream.runtime.cassandra import JVM17_MODULE_OPTIONS, CassandraService
from userstream.runtime.spark import SparkService
from userstream.runtime.spark_submit import build_submit, jar_artifact
from userstream.stream import control


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, cassandra_port=19042, cassandra_storage_port=17000)


def test_cassandra_yaml_single_node_under_data_dir(settings: Settings) -> None:
    service = CassandraService(settings)
    conf = yaml.safe_load(service.cassandra_yaml())
    assert conf["native_transport_port"] == 19042 and conf["storage_port"] == 17000
    assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "127.0.0.1:17000"
    assert conf["listen_address"] == conf["rpc_address"] == "127.0.0.1"
    for key in ("commitlog_directory", "saved_caches_directory", "hints_directory", "cdc_raw_directory"):
        assert Path(conf[key]).is_relative_to(service.data_path)
    assert Path(conf["data_file_directories"][0]).is_relative_to(service.data_path)
    assert conf["endpoint_snitch"] == "SimpleSnitch"
    assert service.ports == [19042, 17000]
    # the connector's batches (32 rows, each its own partition) draw no warning per batch
    assert conf["unlogged_batch_across_partitions_warn_threshold"] > int(
        control.job_conf(settings)["spark.cassandra.output.batch.size.rows"]
    )


def test_cassandra_module_options_come_in_pairs() -> None:
    flags = [f for f in JVM17_MODULE_OPTIONS if not f.startswith("-D")]
    assert all(flag in {"--add-exports", "--add-opens"} for flag in flags[::2])
    assert all(target.endswith("=ALL-UNNAMED") for target in flags[1::2])


def test_cassandra_heap_fixed_and_pre_touched(tmp_path: Path) -> None:
    # a heap that grows toward -Xmx reads as a leak in a soak; a fixed one is taken once at start
    options = CassandraService(Settings(data_dir=tmp_path, cassandra_heap="768M")).jvm_options()
    heap = [o for o in options if o.startswith(("-Xms", "-Xmx"))]
    assert heap == ["-Xms768M", "-Xmx768M"] and "-XX:+AlwaysPreTouch" in options


def test_cassandra_external_starts_nothing(tmp_path: Path) -> None:
    service = CassandraService(Settings(data_dir=tmp_path, cassandra_contact_points="db1, db2"))
    assert service.external and service.programs() == []
    assert service.settings.cassandra_hosts == ["db1", "db2"]


def test_spark_programs_and_ports(settings: Settings) -> None:
    service = SparkService(settings)
    master, worker = service.programs()
    assert master.command[1].endswith("master.Master") and "8090" in master.command
    assert worker.command[-1] == "spark://127.0.0.1:7077" and "8091" in worker.command
    assert worker.env["SPARK_LOCAL_DIRS"].startswith(str(settings.root))
    assert service.ports == [7077, 8090, 8091]
    # memory that stays flat in a long run: a fixed, pre-touched heap, and glibc's arenas bounded
    for program in (master, worker):
        memory = program.env["SPARK_DAEMON_MEMORY"]
        assert program.env["SPARK_DAEMON_JAVA_OPTS"].split() == [f"-Xms{memory}", "-XX:+AlwaysPreTouch"]
        assert program.env["MALLOC_ARENA_MAX"] == "2"


def test_spark_external_starts_nothing(tmp_path: Path) -> None:
    service = SparkService(Settings(data_dir=tmp_path, spark_master_url="spark://cluster:7077"))
    assert service.external and service.programs() == []


@pytest.mark.parametrize(
    ("name", "artifact"),
    [
        ("spark-sql-kafka-0-10_2.12-3.5.7.jar", "spark-sql-kafka-0-10_2.12"),
        ("java-driver-shaded-guava-25.1-jre-graal-sub-1.jar", "java-driver-shaded-guava"),
        ("netty-transport-native-epoll-4.1.96.Final-linux-x86_64.jar", "netty-transport-native-epoll"),
        ("scala-library-2.12.18.jar", "scala-library"),
        ("hive-exec-2.3.9-core.jar", "hive-exec"),
    ],
)
def test_jar_artifact(name: str, artifact: str) -> None:
    assert jar_artifact(name) == artifact


def test_submit_command(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    jars = [Path("/lib/a.jar"), Path("/lib/b.jar")]
    monkeypatch.setattr("userstream.runtime.spark_submit.connector_jars", lambda _s: jars)
    job = build_submit(settings, Path("/jobs/x.py"), ["--n", "1"], conf={"spark.cores.max": "1"})
    cmd = job.command
    assert cmd[0].endswith("bin/spark-submit")
    assert cmd[cmd.index("--master") + 1] == "spark://127.0.0.1:7077"
    assert cmd[cmd.index("--jars") + 1] == "/lib/a.jar,/lib/b.jar"
    assert "spark.cores.max=1" in cmd and "spark.cassandra.connection.port=19042" in cmd
    assert cmd[-3:] == ["/jobs/x.py", "--n", "1"]
    external = build_submit(settings.model_copy(update={"spark_master_url": "spark://c:7077"}), "x.py")
    assert external.command[external.command.index("--master") + 1] == "spark://c:7077"
    assert not any(c.startswith("spark.driver.host") for c in external.command)
