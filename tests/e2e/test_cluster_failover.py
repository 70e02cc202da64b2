"""The data tier as a cluster in containers (deploy/compose.yaml through podman-compose, the image built by
the test itself): 3 Kafka nodes in a KRaft quorum of 3, 3 Cassandra nodes at RF 3. A client container writes
at a steady rate through the standard clients (acks=all + idempotence; LOCAL_QUORUM) while one node is
killed and started again: the writes keep going (no gap over 30 s), and every record is there exactly once.
Then the whole cluster goes down and up again: the named volumes keep every record."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from userstream.config import Settings
from userstream.deploy.cluster import DATA_TIER, ComposeCluster
from userstream.deploy.images import build_all
from userstream.runtime.base import SilentReporter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

IMAGE = "localhost/userstream:test"
MAX_GAP_S = 30.0
KAFKA_RECORDS, KAFKA_RATE = 12_000, 200.0  # a minute of writes
CQL_ROWS, CQL_RATE = 6_000, 100.0


def _json(out: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    print(json.dumps(result))  # the figures, in the test's output (-s)
    return result


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[ComposeCluster]:
    t0 = time.monotonic()
    for built in build_all(settings, SilentReporter(), image=IMAGE):
        print(f"built {built.image} in {built.seconds:.0f} s: {built.size_bytes / 1e6:,.0f} MB")
    cluster = ComposeCluster(project="us-test", image=IMAGE)
    cluster.down(volumes=True)  # a previous run's leftovers
    t1 = time.monotonic()
    cluster.up(list(DATA_TIER))
    try:
        print(f"image {t1 - t0:.0f} s; nodes healthy after (s): {cluster.wait_healthy(list(DATA_TIER))}")
        yield cluster
    finally:
        cluster.down(volumes=True)


def _lose_and_restart(cluster: ComposeCluster, probe: str, argv: list[str], victim: str) -> dict[str, object]:
    """Start the load, kill ``victim`` after 15 s, start it 20 s later; the load's own report."""
    cluster.client_async(probe, *argv)
    time.sleep(15)
    cluster.kill(victim)
    assert not cluster.running(victim)
    time.sleep(20)
    cluster.start(victim)
    report = _json(cluster.client_result(probe))
    cluster.wait_healthy([victim], timeout_s=300)
    return report


def test_kafka_broker_loss_loses_nothing(cluster: ComposeCluster) -> None:
    load = ["kafka-load", "failover", "--count", str(KAFKA_RECORDS), "--rate", str(KAFKA_RATE)]
    report = _lose_and_restart(cluster, "us-test-kafka-load", load, "kafka-2")
    assert report["delivered"] == KAFKA_RECORDS and report["failed"] == 0
    assert float(report["max_gap_s"]) <= MAX_GAP_S  # type: ignore[arg-type]
    audit = _json(cluster.client("kafka-audit", "failover", "--count", str(KAFKA_RECORDS)))
    assert audit["found"] == KAFKA_RECORDS and audit["missing"] == 0 and audit["duplicated"] == 0


def test_cassandra_node_loss_loses_nothing(cluster: ComposeCluster) -> None:
    load = ["cassandra-load", "--count", str(CQL_ROWS), "--rate", str(CQL_RATE)]
    report = _lose_and_restart(cluster, "us-test-cql-load", load, "cassandra-3")
    assert report["written"] == CQL_ROWS
    assert float(report["max_gap_s"]) <= MAX_GAP_S  # type: ignore[arg-type]
    audit = _json(cluster.client("cassandra-audit", "--count", str(CQL_ROWS)))
    assert audit["found"] == CQL_ROWS and audit["missing"] == 0


def test_down_and_up_keeps_every_record(cluster: ComposeCluster) -> None:
    cluster.down()  # the containers go; the named volumes stay
    assert not any(cluster.running(n) for n in DATA_TIER)
    cluster.up(list(DATA_TIER))
    cluster.wait_healthy(list(DATA_TIER))
    kafka = _json(cluster.client("kafka-audit", "failover", "--count", str(KAFKA_RECORDS)))
    assert kafka["found"] == KAFKA_RECORDS and kafka["duplicated"] == 0
    cql = _json(cluster.client("cassandra-audit", "--count", str(CQL_ROWS)))
    assert cql["found"] == CQL_ROWS
