"""Recovery with fakes: a backend that fails then works shows the error, then recovers on its own; a hung call
never wedges the later refreshes; the watchdog's verdicts reach the snapshot, /metrics and the live view."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from userstream.config import Settings
from userstream.monitor.collect import Collector
from userstream.monitor.collectors.base import BackgroundValue, Reconnecting, ReconnectPending, SingleFlight
from userstream.monitor.collectors.services import ServicesCollector
from userstream.monitor.live import render_snapshot, summary_line
from userstream.monitor.metrics import render_metrics
from userstream.monitor.models import IngestSection, KafkaSection, ServiceHealth
from userstream.monitor.stall import StageVerdict, write_stage_states


class FakeServer:
    """A server that can go down and come back; a client built while it was up breaks when it goes down
    and stays broken (as a cached client did across a restart) until it is rebuilt."""

    def __init__(self) -> None:
        self.up = True
        self.epoch = 0  # bumped at every restart

    def restart(self) -> None:
        self.epoch += 1


class FakeClient:
    def __init__(self, server: FakeServer) -> None:
        if not server.up:
            raise ConnectionError("connection refused")
        self.server = server
        self.epoch = server.epoch
        self.closed = False

    def query(self) -> int:
        if not self.server.up or self.epoch != self.server.epoch:
            raise ConnectionError("broken pipe")
        return 42


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _close(client: FakeClient) -> None:
    client.closed = True


def test_failed_client_is_closed_and_rebuilt_after_the_backoff() -> None:
    server, clock = FakeServer(), Clock()
    holder = Reconnecting("fake", lambda: FakeClient(server), _close, backoff_s=(1.0, 5.0), clock=clock)
    with holder.use() as client:
        assert client.query() == 42
    first = holder.get()
    server.up = False
    server.restart()
    with pytest.raises(ConnectionError, match="broken pipe"), holder.use() as client:
        client.query()
    time.sleep(0.05)  # closed in the background
    assert first.closed
    # within the backoff: no new connection, the panel keeps the last error
    with pytest.raises(ReconnectPending, match="broken pipe"):
        holder.get()
    clock.now += 1.0
    with pytest.raises(ConnectionError, match="refused"):
        holder.get()  # still down: the next attempt waits longer
    clock.now += 1.0
    with pytest.raises(ReconnectPending):
        holder.get()
    server.up = True
    clock.now += 5.0
    with holder.use() as client:
        assert client is not first and client.query() == 42
    assert holder.builds == 2 and holder.last_error is None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, bind_host="127.0.0.1", postgres_port=1, postgres_dsn=None)


def test_section_shows_the_error_while_down_then_recovers_on_its_own(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = FakeServer()
    holder = Reconnecting("fake kafka", lambda: FakeClient(server), _close, backoff_s=(0.2,))

    def kafka(self: Collector) -> KafkaSection:
        with holder.use() as client:
            return KafkaSection(measured_at=time.time(), lags=[], dlq_reasons=[]) if client.query() else KafkaSection()

    monkeypatch.setattr(Collector, "collect_kafka", kafka)
    with Collector(settings, sections=["kafka"], timeout_s=1.0) as collector:
        assert collector.snapshot().kafka.error is None
        server.up = False
        server.restart()
        down = collector.snapshot().kafka
        assert down.error and "broken pipe" in down.error
        server.up = True
        deadline = time.monotonic() + 5
        snap = collector.snapshot()
        while snap.kafka.error is not None:
            assert time.monotonic() < deadline, f"never recovered: {snap.kafka.error}"
            time.sleep(0.1)
            snap = collector.snapshot()
    assert not snap.kafka.stale and holder.builds == 2


def test_hung_call_is_abandoned_and_later_refreshes_answer(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    never = threading.Event()
    calls: list[int] = []

    def ingest(self: Collector) -> IngestSection:
        calls.append(1)
        if len(calls) == 2:
            never.wait(30)  # a call that ignores every timeout
        if len(calls) == 3:
            time.sleep(0.3)  # the retry takes a while: meanwhile the panel says why
        return IngestSection(requested=len(calls), measured_at=time.time())

    monkeypatch.setattr(Collector, "collect_ingest", ingest)
    dropped: list[str] = []
    with Collector(settings, sections=["ingest"], timeout_s=0.1, hung_after_s=0.5) as collector:
        collector._slots[0].flight._on_hung = lambda: dropped.append("client")
        assert collector.snapshot().ingest.requested == 1
        stale = collector.snapshot().ingest
        assert stale.stale and stale.requested == 1  # hanging: the previous answer, marked stale
        time.sleep(0.6)
        given_up = collector.snapshot().ingest  # past hung_after_s: given up, a new call started
        assert given_up.error and "no answer for" in given_up.error
        assert dropped == ["client"]
        time.sleep(0.3)
        fresh = collector.snapshot().ingest
    never.set()
    assert fresh.error is None and not fresh.stale and (fresh.requested or 0) >= 3


def test_single_flight_stops_starting_threads_past_the_abandoned_limit() -> None:
    release = threading.Event()
    flight = SingleFlight("stuck", lambda: release.wait(10), hung_after_s=0.0, max_abandoned=2)
    for _ in range(5):
        flight.start_if_due()
    assert len(flight.abandoned) == 2  # two wedged threads, then no more
    release.set()
    time.sleep(0.1)
    assert flight.start_if_due() is not None and not flight.abandoned


def test_background_value_recovers_from_a_hung_refresh() -> None:
    release = threading.Event()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        if len(calls) == 1:
            release.wait(10)
        return len(calls)

    value = BackgroundValue(compute, min_interval_s=0.2, hung_after_s=0.3)
    assert value.get(wait_s=0.1)[0] is None
    time.sleep(0.35)
    value.refresh()  # the first refresh is abandoned, a second one starts
    time.sleep(0.1)
    assert value.get()[0] == 2
    release.set()


def test_one_hung_service_probe_does_not_hold_up_the_others(settings: Settings) -> None:
    services = ServicesCollector(settings, probe_timeout_s=0.2)
    release = threading.Event()

    def hung() -> ServiceHealth:
        release.wait(10)
        return ServiceHealth(name="kafka")

    services._probes = {
        "postgres": SingleFlight("p", lambda: ServiceHealth(name="postgres", running=True, healthy=True)),
        "kafka": SingleFlight("k", hung),
    }
    t0 = time.monotonic()
    rows = {s.name: s for s in services.collect().services}
    assert time.monotonic() - t0 < 2
    assert rows["postgres"].healthy
    assert not rows["kafka"].healthy and "no answer" in rows["kafka"].detail
    release.set()


def test_unreachable_kafka_reports_an_error_quickly(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, bind_host="127.0.0.1", kafka_bootstrap=None, kafka_port=1)
    with Collector(settings, sections=["kafka"]) as collector:
        snap = collector.snapshot()
    assert snap.kafka.error and "unreachable" in snap.kafka.error
    assert snap.stage("kafka").count is None  # type: ignore[union-attr]


def test_watchdog_verdicts_reach_the_snapshot_metrics_and_live_view(settings: Settings) -> None:
    write_stage_states(
        settings,
        [
            StageVerdict("ingest", "flowing", backlog=3, output=100, waiting_s=1.0, detail="3 waiting"),
            StageVerdict("cdc", "stalled", backlog=4096, output=7, waiting_s=75.0, detail="4096 waiting, no output"),
            StageVerdict("stream", "unknown", detail="Kafka down"),
        ],
    )
    with Collector(settings, sections=["health"]) as collector:
        snap = collector.snapshot()
    assert snap.health.error is None and [v.state for v in snap.health.stages] == ["flowing", "stalled", "unknown"]
    kafka = snap.stage("kafka")
    assert kafka is not None and kafka.state == "stalled" and "no output" in kafka.state_detail

    samples = {
        (s.name, tuple(s.labels.items())): s.value
        for family in text_string_to_metric_families(render_metrics(lambda: snap).decode())
        for s in family.samples
    }
    assert samples[("userstream_stage_stalled", (("stage", "cdc"),))] == 1.0
    assert samples[("userstream_stage_stalled", (("stage", "ingest"),))] == 0.0
    assert ("userstream_stage_stalled", (("stage", "stream"),)) not in samples  # unknown: left out
    assert samples[("userstream_stage_backlog", (("stage", "cdc"),))] == 4096.0

    console = Console(file=io.StringIO(), width=160, record=True)
    console.print(render_snapshot(snap))
    text = console.export_text()
    assert "stalled" in text and "4096 waiting" in text
    assert "in Kafka n/a (n/a/s) STALLED" in summary_line(snap)


def test_no_fresh_verdict_is_an_error_of_the_health_section(settings: Settings) -> None:
    with Collector(settings, sections=["health"]) as collector:
        snap = collector.snapshot()
    assert snap.health.error and "watchdog" in snap.health.error and not snap.health.stages
