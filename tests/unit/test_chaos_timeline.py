"""The sampler's arithmetic: rates over a window, cohort latencies, "caught up", the warm-up verdict and the
stored counter across restarts of the streaming job."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from userstream.chaos.timeline import Sample, Sampler, _StoredCounter, caught_up, rates, warmup_verdict
from userstream.config import Settings

T = 10_000.0


def steady(n: int, rate: float = 500.0, latency: float | None = 1.5, t0: float = T) -> list[Sample]:
    return [Sample(t0 + i, landed=int(rate * i), stored=int(rate * i), pages=i, latency_s=latency, cohort_size=50)
            for i in range(n)]  # fmt: skip


def test_rates_are_over_the_last_window_and_skip_missing_readings() -> None:
    samples = steady(11)
    samples[5].stored = None  # the progress file was being replaced
    out = rates(samples, window_s=5.0)
    assert out[0] == (T, None, None)
    t, landed, stored = out[10]
    assert t == T + 10 and landed == pytest.approx(500.0) and stored == pytest.approx(500.0)
    assert out[5][2] is None and out[5][1] == pytest.approx(500.0)


def test_a_stall_shows_as_zero_stored_per_second() -> None:
    samples = steady(10)
    for s in samples[5:]:
        s.stored = samples[4].stored
    assert rates(samples, window_s=3.0)[9][2] == 0.0


def test_caught_up_needs_every_due_cohort_stored_and_a_prompt_streak() -> None:
    samples = steady(40)
    for s in samples[10:20]:  # the outage: cohorts stored late
        s.latency_s = 30.0 - (s.t - samples[10].t)
    for s in samples[20:22]:  # not stored yet
        s.latency_s = None
    assert caught_up(samples, since=T + 10, now=T + 40, bound_s=10.0) is None, "older cohorts still pending"
    samples[20].latency_s, samples[21].latency_s = 12.0, 9.0
    at = caught_up(samples, since=T + 10, now=T + 40, bound_s=10.0)
    assert at == T + 21 + 9.0, "the first cohort of the final prompt run, when it was stored"
    assert caught_up(samples, since=T + 10, now=T + 23, bound_s=10.0) is None, "too few cohorts old enough"


def test_a_lost_cohort_does_not_block_catching_up() -> None:
    samples = steady(30)
    samples[12].latency_s, samples[12].cohort_lost = None, True
    assert caught_up(samples, since=T + 10, now=T + 30, bound_s=5.0) == T + 10 + 1.5


def test_warmup_sustained_when_stored_keeps_up_and_latency_is_bounded() -> None:
    check = warmup_verdict(steady(61, rate=450.0), rate=500.0, start=T, end=T + 60, bound_s=10.0)
    assert check.sustained, check.detail
    assert check.landed_per_s == pytest.approx(450.0, rel=0.01) and check.latency_max_s == 1.5


def test_warmup_not_sustained_when_stored_falls_behind_or_latency_grows() -> None:
    behind = steady(61)
    for s in behind:
        s.stored = int(300 * (s.t - T))
    check = warmup_verdict(behind, rate=500.0, start=T, end=T + 60, bound_s=10.0)
    assert not check.sustained and "stored 300/s < landed 500/s" in check.detail
    slow = steady(61)
    for s in slow[30:]:
        s.latency_s = None  # the newest users never stored within the bound
    check = warmup_verdict(slow, rate=500.0, start=T, end=T + 60, bound_s=10.0)
    assert not check.sustained and "cohorts not stored" in check.detail
    late = steady(61, latency=14.0)
    assert "latency up to 14.0s" in warmup_verdict(late, 500.0, T, T + 60, 10.0).detail
    starved = steady(61, rate=100.0)
    assert "ingest landed 100/s of 500/s" in warmup_verdict(starved, 500.0, T, T + 60, 10.0).detail


def test_the_stored_counter_adds_up_across_restarts_of_the_job(tmp_path: Path) -> None:
    counter = _StoredCounter(Settings(data_dir=tmp_path))
    assert counter.read() is None
    counter.path.parent.mkdir(parents=True)

    def write(started: str, valid: int, dlq: int) -> None:
        doc = {"job": {"started_at": started}, "totals": {"valid": valid, "dlq": dlq}}
        counter.path.write_text(json.dumps(doc))

    write("a", 100, 2)
    assert counter.read() == 102
    write("a", 500, 5)
    assert counter.read() == 505
    write("b", 20, 0)  # the driver was killed and restarted: its totals start again
    assert counter.read() == 525


class FakeProbe:
    def __init__(self, written: dict[uuid.UUID, float]) -> None:
        self.written = written

    def writetimes(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
        return {i: self.written[i] for i in ids if i in self.written}


def test_cohorts_resolve_to_their_worst_latency_and_give_up_after_the_patience(tmp_path: Path) -> None:
    now = time.time()
    sampler = Sampler(Settings(data_dir=tmp_path), patience_s=600.0)
    ids = [uuid.uuid4() for _ in range(30)]
    full = Sample(now - 20, 0, 0, 0, cohort=[(i, now - 21) for i in ids[:10]], cohort_size=10)
    dlq = Sample(now - 40, 0, 0, 0, cohort=[(i, now - 41) for i in ids[10:20]], cohort_size=10)
    lost = Sample(now - 700, 0, 0, 0, cohort=[(i, now - 701) for i in ids[20:]], cohort_size=10)
    sampler._samples = [lost, dlq, full]
    written = {i: now - 18 + k * 0.1 for k, i in enumerate(ids[:10])}
    written.update({i: now - 30 for i in ids[10:19]})  # one of these was dead-lettered by the job
    sampler._resolve(FakeProbe(written))  # type: ignore[arg-type]
    assert full.latency_s == pytest.approx(3.9)
    assert dlq.latency_s == pytest.approx(11.0), "90 % stored after 30 s: the rest went to the DLQ"
    assert lost.cohort_lost and lost.latency_s is None
    assert all(s.resolved and not s.cohort for s in (full, dlq, lost))
