"""Rates between consecutive snapshots, and the collector's per-section isolation and caching."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from userstream.config import Settings
from userstream.monitor.collect import BackgroundValue, Collector
from userstream.monitor.models import IngestSection, PipelineSnapshot, PostgresSection, StageStat
from userstream.monitor.stages import apply_rates


def _stage(count: int | None, at: float | None, rate: float | None = None) -> StageStat:
    return StageStat(key="landed", label="landed", count=count, measured_at=at, rate=rate)


def _snap(*stages: StageStat) -> PipelineSnapshot:
    return PipelineSnapshot(taken_at=0.0, stages=list(stages))


def test_first_snapshot_has_no_rate() -> None:
    assert apply_rates(None, [_stage(10, 1.0)])[0].rate is None


def test_rate_is_delta_over_the_counters_own_measurement_times() -> None:
    (stage,) = apply_rates(_snap(_stage(100, 10.0)), [_stage(400, 12.0)])
    assert stage.rate == pytest.approx(150.0)


def test_counter_not_remeasured_carries_the_previous_rate() -> None:
    # a cached count (same measured_at) must not read as 0/s between two refreshes
    (stage,) = apply_rates(_snap(_stage(400, 12.0, rate=150.0)), [_stage(400, 12.0)])
    assert stage.rate == 150.0


def test_rate_of_a_measurement_that_stopped_refreshing_expires() -> None:
    previous = _snap(_stage(400, 12.0, rate=150.0))
    assert apply_rates(previous, [_stage(400, 12.0)], now=100.0)[0].rate == 150.0
    assert apply_rates(previous, [_stage(400, 12.0)], now=200.0)[0].rate is None


def test_idle_counter_has_zero_rate() -> None:
    (stage,) = apply_rates(_snap(_stage(400, 12.0, rate=150.0)), [_stage(400, 14.0)])
    assert stage.rate == 0.0


def test_counter_reset_or_unknown_values_give_no_rate() -> None:
    assert apply_rates(_snap(_stage(400, 12.0)), [_stage(3, 13.0)])[0].rate is None
    assert apply_rates(_snap(_stage(None, 12.0)), [_stage(3, 13.0)])[0].rate is None
    assert apply_rates(_snap(_stage(1, 12.0)), [_stage(None, 13.0)])[0].rate is None
    assert apply_rates(_snap(_stage(1, None)), [_stage(3, 13.0)])[0].rate is None


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, bind_host="127.0.0.1", postgres_port=1, postgres_dsn=None)


def test_collector_rates_between_consecutive_snapshots(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    counts = iter([1000, 1600])
    clock = iter([100.0, 102.0])

    def fake_ingest(self: Collector) -> IngestSection:
        return IngestSection(requested=next(counts), measured_at=next(clock))

    monkeypatch.setattr(Collector, "collect_ingest", fake_ingest)
    with Collector(settings, sections=["ingest"]) as collector:
        first = collector.snapshot()
        second = collector.snapshot()
    assert first.stage("fetched").count == 1000  # type: ignore[union-attr]
    assert first.stage("fetched").rate is None  # type: ignore[union-attr]
    assert second.stage("fetched").rate == pytest.approx(300.0)  # type: ignore[union-attr]
    assert collector.previous is second


def test_failing_section_reports_its_error_and_others_still_answer(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Collector) -> PostgresSection:
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(Collector, "collect_postgres", broken)
    monkeypatch.setattr(Collector, "collect_ingest", lambda self: IngestSection(requested=5, measured_at=1.0))
    with Collector(settings, sections=["ingest", "postgres"]) as collector:
        snap = collector.snapshot()
    assert snap.postgres.error == "RuntimeError: disk on fire"
    assert snap.ingest.requested == 5 and snap.ingest.error is None


def test_slow_section_times_out_then_serves_its_previous_answer_as_stale(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    calls = []

    def slow(self: Collector) -> IngestSection:
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return IngestSection(requested=len(calls), measured_at=time.time())

    monkeypatch.setattr(Collector, "collect_ingest", slow)
    with Collector(settings, sections=["ingest"], timeout_s=0.3) as collector:
        assert collector.snapshot().ingest.requested == 1
        t0 = time.monotonic()
        second = collector.snapshot()  # the second query hangs: previous answer, marked stale
        assert time.monotonic() - t0 < 2
        assert second.ingest.stale and second.ingest.requested == 1
        third = collector.snapshot()  # still hanging: no second query piles up behind it
        assert third.ingest.stale and len(calls) == 2
        release.set()
        time.sleep(0.1)
        fresh = collector.snapshot()  # the backend answers again: a new query, not stale
        assert not fresh.ingest.stale and fresh.ingest.requested == 3


def test_snapshot_younger_than_min_age_is_shared(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def counted(self: Collector) -> IngestSection:
        calls.append(1)
        return IngestSection(measured_at=time.time())

    monkeypatch.setattr(Collector, "collect_ingest", counted)
    with Collector(settings, sections=["ingest"], min_age_s=30) as collector:
        assert collector.snapshot() is collector.snapshot()
    assert len(calls) == 1


def test_unknown_section_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="unknown monitor sections"):
        Collector(settings, sections=["nope"])


def test_background_value_is_cached_and_throttled_by_its_own_duration() -> None:
    now = [1000.0]
    calls = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    value = BackgroundValue(compute, min_interval_s=10.0, clock=lambda: now[0])
    assert value.get(wait_s=2)[0] == 1
    now[0] += 5
    assert value.get(wait_s=2)[0] == 1 and len(calls) == 1  # not due yet: cached
    now[0] += 6
    value.refresh()
    assert value.get(wait_s=0)[0] in (1, 2)
    time.sleep(0.2)
    assert value.get()[0] == 2


def test_background_value_keeps_the_error() -> None:
    def boom() -> int:
        raise OSError("unreachable")

    value: BackgroundValue[int] = BackgroundValue(boom, min_interval_s=1.0)
    result, measured_at, error = value.get(wait_s=2)
    assert result is None and measured_at is None and error == "OSError: unreachable"
