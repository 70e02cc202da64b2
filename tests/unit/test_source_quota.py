"""The provider's quota: the client's pacer (fake clock) and the bundled server's enforcement (over HTTP)."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from userstream.source import QuotaPacer, QuotaWaitCancelled, ServerLimits, UserGenerator, serve_in_thread
from userstream.source.quota import QuotaCounter

GEN = UserGenerator()


class FakeClock:
    """Time that moves only when slept (or advanced): the pacer's waits cost nothing."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "a zero wait would be a tight loop"
        self.slept.append(seconds)
        self.now += seconds


def pacer(users: int, window_s: float, burst: int, clock: FakeClock) -> QuotaPacer:
    return QuotaPacer(users, window_s, burst, clock=clock, sleep=clock.sleep)


def most_in_any_window(grants: list[tuple[float, int]], window_s: float) -> int:
    """The largest number of users granted inside any interval of ``window_s`` (whatever its phase)."""
    return max(sum(n for t, n in grants if start <= t < start + window_s) for start, _ in grants)


def test_starts_empty_then_paces_to_the_quota() -> None:
    clock = FakeClock()
    p = pacer(20_000, 300.0, 100, clock)
    assert p.rate == pytest.approx(19_900 / 315)  # (quota - one page) over the window, 5% clock slack
    p.acquire(100)
    assert clock.slept and sum(clock.slept) == pytest.approx(100 / p.rate)  # a new process waits a page
    grants = [(clock.now, 100)]
    for _ in range(600):  # 60,000 users: three windows' worth
        p.acquire(100)
        grants.append((clock.now, 100))
    assert most_in_any_window(grants, 300.0) <= 20_000
    elapsed = grants[-1][0] - grants[0][0]
    assert 600 * 100 / elapsed == pytest.approx(p.rate, rel=0.01)  # ~63 users/s, not 1000/s
    assert p.waited_s == pytest.approx(sum(clock.slept))


def test_idle_time_refills_at_most_one_page() -> None:
    clock = FakeClock()
    p = pacer(1000, 10.0, 100, clock)
    clock.now += 3600  # an hour idle
    p.acquire(100)
    assert clock.slept == []  # one page is free...
    p.acquire(100)
    assert sum(clock.slept) == pytest.approx(100 / p.rate)  # ...the next one waits: no burst of saved quota


def test_charged_retries_are_waited_off() -> None:
    clock = FakeClock()
    p = pacer(1000, 10.0, 100, clock)
    p.acquire(100)
    clock.slept.clear()
    p.charge(300)  # three retried attempts of a page
    p.acquire(100)
    assert sum(clock.slept) == pytest.approx(400 / p.rate)


def test_cancel_ends_a_wait() -> None:
    p = QuotaPacer(20_000, 300.0, 5000)  # the first page waits 5000 / 47.6 = ~105 s
    cancel = threading.Event()
    threading.Timer(0.1, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(QuotaWaitCancelled):
        p.acquire(5000, cancel)
    assert time.monotonic() - t0 < 2


def test_invalid_figures() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        QuotaPacer(100, 10.0, 100)
    with pytest.raises(ValueError, match="burst"):
        QuotaPacer(1000, 10.0, 100).acquire(101)
    assert QuotaPacer.sustainable_rate(20_000, 300.0, 100) == pytest.approx(QuotaPacer(20_000, 300.0, 100).rate)


@settings(max_examples=80, deadline=None)
@given(
    users=st.integers(200, 50_000),
    window_s=st.floats(1.0, 600.0),
    steps=st.lists(st.tuples(st.integers(1, 100), st.floats(0.0, 50.0)), min_size=1, max_size=120),
)
def test_no_window_of_any_phase_gets_more_than_the_quota(
    users: int, window_s: float, steps: list[tuple[int, float]]
) -> None:
    """Whatever the request sizes and the idle gaps, and across a restart (a new pacer, as each DAG run
    has), no interval of the window's length holds more than the quota."""
    clock = FakeClock()
    p = pacer(users, window_s, 100, clock)
    grants: list[tuple[float, int]] = []
    for i, (n, idle) in enumerate(steps):
        if i == len(steps) // 2:
            p = pacer(users, window_s, 100, clock)  # the next process starts where this one stopped
        clock.now += idle
        p.acquire(n)
        grants.append((clock.now, n))
    assert most_in_any_window(grants, window_s) <= users


# --- the server side ---------------------------------------------------------------------------------


def test_counter_fixed_windows_per_address() -> None:
    clock = FakeClock()
    counter = QuotaCounter(ServerLimits(quota_users=100, quota_window_s=60.0), clock=clock)
    assert counter.admit("a", 60) is None
    assert counter.admit("a", 60) is None  # 60 < 100: served, and crosses the limit (as the live site)
    assert counter.admit("a", 1) == 120  # refused, with the count served
    assert counter.admit("b", 60) is None  # another address has its own count
    clock.now += 60  # the window resets by itself
    assert counter.admit("a", 60) is None
    assert counter.refused == 1


def test_server_quota_429_without_retry_after_then_resets() -> None:
    limits = ServerLimits(quota_users=100, quota_window_s=1.0)
    with serve_in_thread(generator=GEN, limits=limits) as url, httpx.Client(timeout=10) as http:
        params: dict[str, str | int] = {"results": 40, "seed": "quota"}
        # a window may turn between two requests: retry the whole sequence in the next one if it did
        for _ in range(3):
            statuses = [http.get(url, params=params) for _ in range(4)]
            if [r.status_code for r in statuses] == [200, 200, 200, 429]:
                break
            time.sleep(1.0)
        refused = statuses[-1]
        assert refused.status_code == 429
        assert "retry-after" not in refused.headers
        assert "ease up" in refused.json()["error"] and "120 users" in refused.json()["error"]
        # another address is not refused (Linux routes all of 127/8 to loopback)
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10)
        with other:
            assert other.get(url, params=params).status_code == 200
        time.sleep(1.05)  # the window resets by itself
        assert http.get(url, params=params).status_code == 200


def test_server_serves_pages_above_max_page_as_page_1() -> None:
    with serve_in_thread(generator=GEN) as url, httpx.Client(timeout=10) as http:
        params: dict[str, str | int] = {"results": 5, "seed": "maxpage"}
        first = http.get(url, params={**params, "page": 1}).json()
        last = http.get(url, params={**params, "page": 10_000}).json()
        beyond = http.get(url, params={**params, "page": 10_001}).json()
        assert last["info"]["page"] == 10_000 and last["results"] != first["results"]
        assert beyond["info"]["page"] == 1 and beyond["results"] == first["results"]  # like the live site
    with serve_in_thread(generator=GEN, limits=ServerLimits(max_page=3)) as url, httpx.Client(timeout=10) as http:
        assert http.get(url, params={**params, "page": 4}).json()["info"]["page"] == 1


def test_server_limits_validation_and_describe() -> None:
    with pytest.raises(ValueError):
        ServerLimits(max_page=0)
    assert ServerLimits().describe() == "no quota, max page 10000"
    assert "quota 20000 users/300s per IP" in ServerLimits(quota_users=20_000).describe()
