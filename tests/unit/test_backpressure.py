"""The backpressure controller: bounds, AIMD steps, and a simulated pipeline slower than the configured rate."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from userstream.ingest import Backpressure, RateLimiter
from userstream.ingest.backpressure import DECREASE


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def controller(
    backlogs: list[int | None], ceiling: float = 1000.0, max_lag_s: float = 5.0
) -> tuple[Backpressure, Clock]:
    clock = Clock()
    values = iter(backlogs)
    return Backpressure(ceiling, max_lag_s, lambda: next(values), interval_s=2.0, clock=clock), clock


@given(st.lists(st.one_of(st.none(), st.integers(0, 10**7)), min_size=1, max_size=60))
def test_rate_stays_between_floor_and_ceiling(backlogs: list[int | None]) -> None:
    bp, clock = controller(backlogs)
    for _ in backlogs:
        rate = bp.rate()
        assert bp.floor <= rate <= bp.ceiling
        clock.now += 2.0


def test_cut_when_behind_raised_when_drained_held_when_unknown() -> None:
    bp, clock = controller([10_000, None, 10_000, 0, 0])
    assert bp.rate() == pytest.approx(1000 * DECREASE)  # 10 s behind at 1000/s: over the 5 s bound
    assert bp.rate() == pytest.approx(700)  # within the interval: not probed again
    clock.now += 2.0
    assert bp.rate() == pytest.approx(700)  # the backlog is unknown (Kafka down): held
    clock.now += 2.0
    assert bp.rate() == pytest.approx(490)
    clock.now += 2.0
    assert bp.rate() == pytest.approx(590)  # drained: +10 % of the configured rate
    clock.now += 2.0
    assert bp.rate() == pytest.approx(690)
    assert bp.limiting and bp.held_s == pytest.approx(8.0)


def test_between_half_and_full_bound_the_rate_is_kept() -> None:
    bp, _ = controller([3_500])  # 3.5 s at 1000/s: inside [2.5, 5] s
    assert bp.rate() == 1000 and not bp.limiting


@pytest.mark.parametrize("capacity", [150.0, 400.0, 800.0])
def test_settles_near_what_a_slower_pipeline_sustains(capacity: float) -> None:
    """The rest of the pipeline processes ``capacity``/s; ingest asks for 1000/s. Over ten minutes the
    controller lands close to that capacity while the backlog stays within a few times its bound."""
    state = {"backlog": 0.0}
    bp = Backpressure(1000.0, 5.0, lambda: int(state["backlog"]), interval_s=2.0, clock=Clock())
    landed, worst = 0.0, 0.0
    for step in range(300):  # 2 s steps
        rate = bp.rate()
        bp.clock.now += 2.0  # type: ignore[attr-defined]
        state["backlog"] = max(0.0, state["backlog"] + (rate - capacity) * 2.0)
        if step >= 60:  # after the first two minutes
            landed += rate * 2.0
            worst = max(worst, state["backlog"] / capacity)
    average = landed / (240 * 2.0)
    assert 0.75 * capacity <= average <= 1.05 * capacity
    assert worst <= 4 * 5.0  # seconds of the pipeline's own rate


def test_rate_limiter_set_rate_paces_from_then_on() -> None:
    clock = Clock()
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.now += s

    limiter = RateLimiter(100.0, clock=clock)
    limiter.wait_for(100, sleep)
    limiter.wait_for(100, sleep)  # 100 sent at 100/s: waits 1 s
    assert slept == [pytest.approx(1.0)]
    limiter.set_rate(10.0)
    limiter.wait_for(10, sleep)
    limiter.wait_for(10, sleep)  # at the new rate: 10 records take 1 s
    assert slept[-1] == pytest.approx(1.0) and len(slept) == 2


def test_after_a_stall_the_rate_comes_back() -> None:
    """100/s configured; the pipeline stalls 20 s (the backlog grows), then drains it within a few seconds
    and keeps up, one page (100) in flight at any time. The rate climbs back to the ceiling within a minute
    (measured against the ingest rate alone it stayed at the floor: 100 in flight at 5/s was "20 s behind")."""
    state = {"backlog": 0.0}
    bp = Backpressure(100.0, 10.0, lambda: int(state["backlog"]), interval_s=2.0, clock=Clock(), in_flight=100)
    rates = []
    for step in range(60):  # 2 s steps
        rate = bp.rate()
        rates.append(rate)
        bp.clock.now += 2.0  # type: ignore[attr-defined]
        if step < 10:
            state["backlog"] += rate * 2.0  # stalled: everything landed stays behind
        else:
            state["backlog"] = 100.0  # drained: one page in flight
    assert min(rates[:10]) < 50  # cut while stalled
    assert rates[-1] == 100.0 and rates.index(100.0, 10) <= 10 + 30
