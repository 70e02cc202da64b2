"""The provider's quota: a pacer that keeps a client under it, and the bundled server's enforcement of it.

randomuser.me (API 1.4) counts the users it serves each client IP in a **fixed** 5-minute window and, once
an address has been served 20,000 in the current window, answers 429 (no Retry-After) until the window
resets. :class:`QuotaPacer` is the client side (ingest paces every request through it);
:class:`ServerLimits` / :class:`QuotaCounter` are the server side (``userstream source serve --quota-users``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["QuotaCounter", "QuotaPacer", "QuotaWaitCancelled", "ServerLimits", "quota_error_body"]

# Slack for the gap between our clock and the server's: requests reach it after a varying network delay, so
# one of its windows can hold a little more than a window's worth of our sending.
_CLOCK_SLACK = 1.05
# Float refills land a hair short of a whole page: accept that, and never pause less than a millisecond
# (a shorter wait may not even move the clock, and the loop would spin).
_EPSILON = 1e-6
_MIN_PAUSE_S = 0.001


class QuotaWaitCancelled(Exception):
    """The wait for quota was cancelled (the caller is stopping)."""


class QuotaPacer:
    """A token bucket sized so that no interval of ``window_s`` seconds holds more than ``users`` requested.

    Why a token bucket and not a fixed window of our own: the server's window boundaries are unknown to us,
    and a fixed-window client can send a full quota at the end of its window and another at the start of
    the next, both inside one server window (429). A bucket of capacity ``burst`` (one page) refilled at
    ``rate`` sends at most ``burst + rate * T`` in any interval T, whatever the phase, so
    ``rate = (users - burst) / window`` never exceeds the quota. It starts **empty**: a new process (each
    DAG run is one) cannot know what the previous one sent, and an empty start keeps the same bound across
    restarts. It is also smooth (a page every few seconds), where a window-sized burst would look like a
    stall to the stages downstream.

    One consumer thread; ``clock``/``sleep`` are injectable for tests (the real wait is ``cancel.wait``).
    """

    def __init__(
        self,
        users: int,
        window_s: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if not 0 < burst < users:
            raise ValueError(f"a page of {burst} users does not fit a quota of {users} users per window")
        self.users = users
        self.window_s = window_s
        self.burst = burst
        self.rate = (users - burst) / (window_s * _CLOCK_SLACK)
        self.waited_s = 0.0
        self._clock = clock
        self._sleep = sleep
        self._tokens = 0.0
        self._stamp = clock()

    @classmethod
    def sustainable_rate(cls, users: int, window_s: float, burst: int) -> float:
        """The records/s a pacer of these figures allows (without building one)."""
        return max(users - burst, 0) / (window_s * _CLOCK_SLACK)

    def acquire(self, n: int, cancel: threading.Event | None = None) -> float:
        """Take ``n`` users' worth of quota, waiting until the bucket holds them; the seconds waited.

        Raises :class:`QuotaWaitCancelled` as soon as ``cancel`` is set while waiting.
        """
        if n > self.burst:
            raise ValueError(f"{n} users exceed the pacer's burst of {self.burst}")
        started = self._clock()
        while True:
            self._refill()
            if self._tokens >= n - _EPSILON:
                self._tokens -= n
                waited = self._clock() - started
                self.waited_s += waited
                return waited
            if cancel is not None and cancel.is_set():
                self.waited_s += self._clock() - started
                raise QuotaWaitCancelled
            self._pause(max((n - self._tokens) / self.rate, _MIN_PAUSE_S), cancel)

    def charge(self, n: int) -> None:
        """Account users requested outside :meth:`acquire` (retried attempts): the bucket may go into debt,
        which later requests wait off."""
        self._refill()
        self._tokens -= n

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def _pause(self, seconds: float, cancel: threading.Event | None) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            (cancel or threading.Event()).wait(seconds)


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The real site's limits, for the bundled server: a per-IP quota (off unless ``quota_users`` > 0) and
    the highest page served (above it, page 1 is served and ``info.page`` says 1)."""

    quota_users: int = 0
    quota_window_s: float = 300.0
    max_page: int = 10_000

    def __post_init__(self) -> None:
        if self.quota_users < 0 or self.quota_window_s <= 0 or self.max_page < 1:
            raise ValueError("quota_users >= 0, quota_window_s > 0 and max_page >= 1 are required")

    def describe(self) -> str:
        quota = f"quota {self.quota_users} users/{self.quota_window_s:g}s per IP" if self.quota_users else "no quota"
        return f"{quota}, max page {self.max_page}"


def quota_error_body(served: int) -> dict[str, str]:
    """The live site's error body once an address is over its quota (its wording says "last minute")."""
    return {
        "error": f"Whoa, ease up there cowboy. You've requested {served} users in the last minute. "
        "Help us keep this service free and spare some bandwidth for other users please :)"
    }


class QuotaCounter:
    """Users served per client address in fixed windows of the server's clock, as the live site counts them:
    an address already served ``quota_users`` in the current window is refused until the window ends
    (the request that crosses the limit is still served). Thread-safe."""

    def __init__(self, limits: ServerLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._origin = clock()
        self._window = 0
        self._served: dict[str, int] = {}
        self._lock = threading.Lock()
        self.refused = 0

    def admit(self, address: str, users: int) -> int | None:
        """Count ``users`` for ``address`` and return None, or return the count served so far (refused)."""
        with self._lock:
            window = int((self._clock() - self._origin) // self.limits.quota_window_s)
            if window != self._window:
                self._window, self._served = window, {}
            served = self._served.get(address, 0)
            if served >= self.limits.quota_users:
                self.refused += 1
                return served
            self._served[address] = served + users
            return None
