"""A cluster's configuration, derived from Settings alone: every node of deploy/compose.yaml (no containers)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from userstream import pipeline
from userstream.certificates import server_names
from userstream.config import Settings
from userstream.deploy.bench import ClusterRun, go_duration_s
from userstream.deploy.cluster import COMPOSE_FILE, DATA_TIER, ComposeCluster
from userstream.deploy.failover import NodeLoss, _save_logs, longest_gap
from userstream.deploy.images import stage_context
from userstream.kafka_clients import jvm_client_props
from userstream.runtime.cassandra import CassandraService, initial_token
from userstream.runtime.connect import ConnectService
from userstream.runtime.kafka import KafkaService
from userstream.runtime.spark import SparkService
from userstream.runtime.stack import RUN_ONLY_CLASSES, SERVICE_CLASSES

NODES = "kafka-1,kafka-2,kafka-3"


def node(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, secrets_dir=tmp_path / "shared-secrets", bind_host="0.0.0.0", **values)


def test_one_node_defaults_are_unchanged(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092" and s.kafka_replication == 1 and s.kafka_min_insync == 1
    config = KafkaService(s).server_config()
    assert config["controller.quorum.voters"] == "1@127.0.0.1:9093" and config["node.id"] == 1
    assert config["default.replication.factor"] == 1
    conf = yaml.safe_load(CassandraService(s).cassandra_yaml())
    assert conf["initial_token"] == 0 and conf["listen_address"] == conf["rpc_address"] == "127.0.0.1"
    assert "broadcast_rpc_address" not in conf


def test_kafka_node_of_three(tmp_path: Path) -> None:
    s = node(tmp_path, kafka_nodes=NODES, kafka_node_id=2, advertised_host="kafka-2")
    assert s.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert (s.kafka_replication, s.kafka_min_insync) == (3, 2)
    config = KafkaService(s).server_config()
    assert config["node.id"] == 2
    assert config["controller.quorum.voters"] == "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    assert str(config["listeners"]).startswith("CLIENT://0.0.0.0:9092,")
    assert config["advertised.listeners"] == "CLIENT://kafka-2:9092,BROKER://kafka-2:9094"
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert config[key] == 3
    assert config["min.insync.replicas"] == config["transaction.state.log.min.isr"] == 2


def test_kafka_nodes_share_one_cluster_id_derived_from_the_shared_secret(tmp_path: Path) -> None:
    one = KafkaService(node(tmp_path / "a", kafka_nodes=NODES, kafka_node_id=1, advertised_host="kafka-1"))
    one.settings.secret_store.put("kafka_broker_password", "s3cret-of-this-install")
    two = KafkaService(
        Settings(data_dir=tmp_path / "b", secrets_dir=one.settings.secrets_dir, kafka_nodes=NODES, kafka_node_id=2)
    )
    assert one.cluster_id == two.cluster_id and len(one.cluster_id) == 22
    assert not one.cluster_id.startswith("-")
    other = KafkaService(node(tmp_path / "c", kafka_nodes=NODES))
    other.settings.secret_store.put("kafka_broker_password", "another install")
    assert other.cluster_id != one.cluster_id
    assert one.identity == "kafka-kafka-1" and KafkaService(Settings(data_dir=tmp_path)).identity == "kafka"


def test_cassandra_tokens_evenly_spaced() -> None:
    tokens = [initial_token(i, 3) for i in range(3)]
    assert tokens[0] == -(2**63)
    assert tokens[1] - tokens[0] == tokens[2] - tokens[1] == 2**64 // 3
    assert tokens[2] < 2**63
    assert initial_token(0, 1) == 0


def test_cassandra_node_of_three(tmp_path: Path) -> None:
    nodes = "cassandra-1,cassandra-2,cassandra-3"
    service = CassandraService(node(tmp_path, cassandra_nodes=nodes, advertised_host="cassandra-3"))
    conf = yaml.safe_load(service.cassandra_yaml())
    assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "cassandra-1:7000,cassandra-2:7000,cassandra-3:7000"
    assert conf["listen_address"] == conf["broadcast_rpc_address"] == "cassandra-3"
    assert conf["rpc_address"] == "0.0.0.0"
    assert conf["initial_token"] == initial_token(2, 3)
    assert service.identity == "cassandra-cassandra-3"  # each node its own certificate in the shared dir
    assert service.settings.cassandra_hosts == ["cassandra-1", "cassandra-2", "cassandra-3"]


def test_certificates_never_name_the_wildcard_address() -> None:
    assert server_names("kafka-2", "0.0.0.0") == ["kafka-2", "localhost", "127.0.0.1"]


@pytest.mark.parametrize(("roles", "programs"), [("master", ["spark-master"]), ("worker", ["spark-worker"]),
                                                 ("master,worker", ["spark-master", "spark-worker"])])  # fmt: skip
def test_spark_roles_choose_the_daemons(tmp_path: Path, roles: str, programs: list[str]) -> None:
    s = node(tmp_path, spark_roles=roles, spark_master_host="spark-master", advertised_host="spark-worker-1")
    assert [p.name for p in SparkService(s).programs()] == programs
    assert s.spark_master == "spark://spark-master:7077"
    worker = [p for p in SparkService(s).programs() if p.name == "spark-worker"]
    if worker:
        assert worker[0].command[worker[0].command.index("--host") + 1] == "spark-worker-1"


def test_compose_file_speaks_only_settings_and_known_services() -> None:
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    fields = {f"USERSTREAM_{name.upper()}" for name in Settings.model_fields}
    services = compose["services"]
    assert set(DATA_TIER) <= set(services)
    for name, spec in services.items():
        if name == "bootstrap":  # the one-shot step: tried until it has done its work once
            assert spec["command"][0] == "bootstrap" and spec["restart"] == "on-failure"
        else:
            assert spec["command"][0] == "run" and spec["command"][1] in {*SERVICE_CLASSES, *RUN_ONLY_CLASSES}, name
            assert spec["restart"] == "unless-stopped"
        assert spec["pull_policy"] == "never"
        env = spec["environment"]
        assert set(env) <= fields, f"{name}: {set(env) - fields} are no settings"
        # secrets come from the shared volume, generated per install: none in this file
        assert not [k for k in env if k.endswith(("PASSWORD", "SECRET", "TOKEN"))], name
        assert env["USERSTREAM_SECRETS_DIR"] == "/run/userstream/secrets"
        volumes = spec["volumes"]
        assert "secrets:/run/userstream/secrets" in volumes and f"{name}:/var/lib/userstream" in volumes
    kafka_ids = sorted(int(services[f"kafka-{i}"]["environment"]["USERSTREAM_KAFKA_NODE_ID"]) for i in (1, 2, 3))
    assert kafka_ids == [1, 2, 3]
    # the job's state store is written by the executors: the driver and every worker see one checkpoint volume
    for name in ("stream", "spark-worker-1", "spark-worker-2"):
        assert "checkpoints:/var/lib/userstream/checkpoints" in services[name]["volumes"], name
    assert {services[n]["environment"]["USERSTREAM_SPARK_ROLES"] for n in ("spark-master", "spark-worker-1")} == {
        "master",
        "worker",
    }


def test_image_context_holds_code_jars_and_host_cas(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "kafka").mkdir(parents=True)
    (lib / "kafka" / ".installed").write_text("digest")
    (lib / "kafka" / "kafka.jar").write_bytes(b"jar")
    context = stage_context(Settings(data_dir=tmp_path, install_dir=lib), tmp_path / "context")
    assert (context / "lib" / "kafka" / "kafka.jar").read_bytes() == b"jar"
    assert (context / "app" / "pyproject.toml").exists() and (context / "app" / "src" / "userstream").is_dir()
    assert (context / "app" / "jvm").is_dir() and (context / "ca").is_dir()
    assert not list((context / "app").rglob("__pycache__"))


def test_longest_delivery_gap_within_a_loss_window() -> None:
    # stored counts every 5 s: flat from t=20 to t=45 (the node's loss), growing again after
    samples = [(float(t), n) for t, n in [(0, 0), (5, 10), (10, 20), (15, 30), (20, 40), (25, 40), (30, 40),
                                          (35, 40), (40, 40), (45, 40), (50, 55), (55, 70), (60, 80)]]  # fmt: skip
    assert longest_gap(samples, 12.0, 58.0) == 50.0 - 20.0
    assert longest_gap(samples, 0.0, 20.0) == 5.0
    assert longest_gap(samples, 0.0, 90.0) is None  # not watched to the window's end: no figure


def test_a_loss_over_its_target_leaves_the_logs_of_its_window(tmp_path: Path) -> None:
    calls: list[tuple[str, ...]] = []

    class Logged(ComposeCluster):
        def podman(self, *args: str, check: bool = True, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
            calls.append(args)
            return subprocess.CompletedProcess(args, 0, stdout=f"log of {args[-1]}\n", stderr="")

    cluster = Logged()
    _save_logs(cluster, NodeLoss("kafka-2", "kafka-2", killed_at=1000.0, window_end=1100.0), tmp_path)
    saved = sorted(p.name for p in tmp_path.iterdir())
    nodes = ["connect-1", "connect-2", "kafka-1", "kafka-2", "kafka-3"]
    assert saved == [f"e2e-cluster-kafka-2-{n}.log" for n in nodes]
    assert (tmp_path / "e2e-cluster-kafka-2-connect-1.log").read_text() == f"log of {cluster.container('connect-1')}\n"
    assert all(c[:6] == ("logs", "--timestamps", "--since", "970", "--until", "1105") and len(c) == 7 for c in calls)


def test_bootstrap_when_ready_retries_until_the_services_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []

    def flaky(settings: Settings, *, with_stream: bool) -> dict[str, object]:
        calls.append(with_stream)
        if len(calls) < 3:
            raise ConnectionError("kafka-1:9092 refused")
        return {"kafka_topics": "exists"}

    monkeypatch.setattr(pipeline, "bootstrap", flaky)
    monkeypatch.setattr(pipeline.time, "sleep", lambda _s: None)
    said: list[str] = []
    done = pipeline.bootstrap_when_ready(Settings(), 600, with_stream=False, say=said.append)
    assert done == {"kafka_topics": "exists"} and calls == [False, False, False] and len(said) == 2
    with pytest.raises(ConnectionError):  # no time to wait: the first failure is the answer
        calls.clear()
        pipeline.bootstrap_when_ready(Settings(), 0, say=said.append)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("42.353031138s", 42.353031138), ("1m2.5s", 62.5), ("1h0m1s", 3601.0), ("750ms", 0.75), ("3µs", 3e-6)],
)
def test_podman_cpu_times_are_read_as_seconds(text: str, seconds: float) -> None:
    assert go_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "42", "1.5x", "s", "1m 2s"])
def test_a_cpu_time_podman_never_prints_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        go_duration_s(text)


def test_a_cluster_runs_cpu_is_the_clients_plus_every_nodes() -> None:
    run = ClusterRun("flat out", {"cpu_us_per_record": {"ingest client": 20.0}}, {"kafka-1": 30.0, "stream": 50.0})
    assert run.cpu_us_total == 100.0


def test_clients_of_several_brokers_give_up_on_a_dead_one_sooner(tmp_path: Path) -> None:
    """A broker lost: it is fenced sooner than Kafka's 9 s, Connect's worker rides out its group coordinator
    moving (a heartbeat interval longer than the fencing), a dead worker's task moves once the session expires,
    and a Java client's request stuck on the dead broker is retried elsewhere after 10 s. One broker: defaults."""
    one = Settings(data_dir=tmp_path / "one")
    assert not {"kafka.request.timeout.ms", "kafka.metadata.max.age.ms"} & set(
        jvm_client_props(one, "stream", "kafka.")
    )
    worker = ConnectService(one).worker_config()
    assert "heartbeat.interval.ms" not in worker and "producer.request.timeout.ms" not in worker
    assert "broker.session.timeout.ms" not in KafkaService(one).server_config()

    three = node(tmp_path / "three", kafka_nodes=NODES, connect_nodes="connect-1,connect-2")
    stream = jvm_client_props(three, "stream", "kafka.")
    assert stream["kafka.request.timeout.ms"] == "10000"
    # a refresh that came before the dead broker was fenced is not kept for Kafka's 5 min
    assert int(stream["kafka.metadata.max.age.ms"]) <= 5_000
    broker = KafkaService(three).server_config()
    fenced_after_ms = int(broker["broker.session.timeout.ms"])  # type: ignore[call-overload]
    assert 3 * int(broker["broker.heartbeat.interval.ms"]) <= fenced_after_ms < 9_000  # type: ignore[call-overload]
    worker = ConnectService(three).worker_config()
    heartbeat_ms, session_ms = int(worker["heartbeat.interval.ms"]), int(worker["session.timeout.ms"])  # type: ignore[call-overload]
    assert fenced_after_ms < heartbeat_ms < session_ms
    assert session_ms + heartbeat_ms <= 20_000  # the dead worker's task moves within 20 s
    assert worker["scheduled.rebalance.max.delay.ms"] == 0
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert worker[f"{prefix}request.timeout.ms"] == "10000"
        assert worker[f"{prefix}socket.connection.setup.timeout.max.ms"] == "10000"
    # the offset log's reads (which Debezium's commit waits on) time out and are retried with a fresh call
    # before 30 s without a record, and still outlast one request's timeout
    api_timeout_ms = int(worker["default.api.timeout.ms"])  # type: ignore[call-overload]
    assert 10_000 < api_timeout_ms <= 15_000
    assert "default.api.timeout.ms" not in ConnectService(one).worker_config()
