"""What every collector shares: error text, cached clients that reconnect, single-flight calls, background values.

The three rules that keep a panel from sticking after its server restarts:

* every backend call is bounded (the collectors pass timeouts; :class:`SingleFlight` abandons a call that
  ignores them, so one wedged call never blocks the later refreshes);
* a client that errored is closed and rebuilt on the next refresh (:class:`Reconnecting`), after a short
  backoff so a server that is down is not hammered;
* no lock is held across a backend call, so an abandoned call cannot block the next one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "BackgroundValue",
    "Budget",
    "ReconnectPending",
    "Reconnecting",
    "SingleFlight",
    "epoch",
    "short",
]

log = logging.getLogger("userstream.monitor")

T = TypeVar("T")
C = TypeVar("C")


def short(exc: BaseException) -> str:
    """``Type: first line`` of an exception, at most 300 characters."""
    if isinstance(exc, ReconnectPending):  # already says what failed and when the next attempt is
        return str(exc)[:300]
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300] if first else type(exc).__name__


def epoch(value: Any) -> float | None:
    """Unix seconds of a datetime (naive values are UTC, as the Cassandra driver returns them)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


class Budget:
    """The time left for one refresh: each call gets ``min(its own timeout, what is left)``."""

    def __init__(self, total_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._deadline = clock() + total_s

    def left(self, cap_s: float) -> float:
        remaining = self._deadline - self._clock()
        if remaining <= 0.05:
            raise TimeoutError("out of time for this refresh")
        return min(cap_s, remaining)

    @property
    def expired(self) -> bool:
        return self._deadline - self._clock() <= 0.05


class ReconnectPending(ConnectionError):
    """The client failed recently: no new connection before the backoff ends."""


def _close_in_background(name: str, close: Callable[[], None]) -> None:
    # closing a client whose server is gone may block (driver shutdowns join their threads): never in a refresh
    def run() -> None:
        with contextlib.suppress(Exception):
            close()

    threading.Thread(target=run, name=f"monitor-close-{name}", daemon=True).start()


class Reconnecting(Generic[C]):
    """A cached client, built on first use; closed and rebuilt after a failure, with a backoff between builds.

    Use it as ``with holder.use() as client: ...``: an exception inside the block (for which ``fatal``
    says so) closes the client, and the next ``use()`` within the backoff raises :class:`ReconnectPending`
    carrying the last error, so the panel keeps showing why.
    """

    def __init__(
        self,
        name: str,
        build: Callable[[], C],
        close: Callable[[C], None],
        *,
        backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0),
        fatal: Callable[[BaseException], bool] = lambda exc: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._build = build
        self._close = close
        self._backoff_s = backoff_s
        self._fatal = fatal
        self._clock = clock
        self._lock = threading.Lock()
        self._client: C | None = None
        self._generation = 0  # bumped by every reset: a build that started before it is thrown away
        self._building = False
        self._failures = 0
        self._retry_at = 0.0
        self.last_error: str | None = None
        self.builds = 0

    def get(self) -> C:
        with self._lock:
            if self._client is not None:
                return self._client
            wait = self._retry_at - self._clock()
            if wait > 0:
                raise ReconnectPending(f"{self.last_error or 'failed'} (reconnecting in {wait:.0f}s)")
            if self._building:
                raise ReconnectPending(f"{self.name}: still connecting")
            generation = self._generation
            self._building = True
        try:
            client = self._build()
        except BaseException as exc:
            with self._lock:
                if generation == self._generation:
                    self._building = False
                    self._note_failure(exc)
            raise
        with self._lock:
            if generation == self._generation:
                self._client, self._building = client, False
                self.builds += 1
                return client
        # reset while this build ran (it was abandoned as hung): its client belongs to nobody
        _close_in_background(self.name, lambda: self._close(client))
        raise ReconnectPending(f"{self.name}: connection reset while connecting")

    def _note_failure(self, exc: BaseException) -> None:
        self._failures += 1
        self.last_error = short(exc)
        self._retry_at = self._clock() + self._backoff_s[min(self._failures, len(self._backoff_s)) - 1]

    def failed(self, exc: BaseException) -> None:
        """Close the client (it may be half-broken after its server restarted); rebuild after the backoff."""
        with self._lock:
            client, self._client = self._client, None
            self._generation += 1
            self._building = False
            self._note_failure(exc)
        if client is not None:
            log.info("monitor: %s failed (%s); reconnecting", self.name, short(exc))
            _close_in_background(self.name, lambda: self._close(client))

    def succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self.last_error = None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self._generation += 1
            self._building = False
        if client is not None:
            with contextlib.suppress(Exception):
                self._close(client)

    @contextlib.contextmanager
    def use(self) -> Iterator[C]:
        client = self.get()
        try:
            yield client
        except Exception as exc:
            if self._fatal(exc):
                self.failed(exc)
            raise
        self.succeeded()


class SingleFlight(Generic[T]):
    """At most one call of ``fn`` at a time, each in its own daemon thread.

    A call still running after ``hung_after_s`` ignored every timeout it was given: it is abandoned (its
    thread is left to finish or not; daemon threads never block the process's exit, unlike a thread
    pool's), ``on_hung`` drops the client it was using, and the next call starts at once. At most
    ``max_abandoned`` abandoned calls may still be alive: past that no new thread is started.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[[], T],
        *,
        min_interval_s: float = 0.0,
        hung_after_s: float = 30.0,
        on_hung: Callable[[], None] | None = None,
        max_abandoned: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._fn = fn
        self.min_interval_s = min_interval_s
        self.hung_after_s = hung_after_s
        self._on_hung = on_hung
        self._max_abandoned = max_abandoned
        self._clock = clock
        self.future: Future[T] | None = None
        self.started: float | None = None
        self.abandoned: list[Future[T]] = []

    @property
    def running(self) -> bool:
        return self.future is not None and not self.future.done()

    def running_for(self) -> float:
        return self._clock() - self.started if self.running and self.started is not None else 0.0

    def abandon_if_hung(self) -> bool:
        """Give up on a call past ``hung_after_s``; True when one was abandoned."""
        if not self.running or self.running_for() < self.hung_after_s:
            return False
        assert self.future is not None
        log.warning("monitor: %s gave no answer for %.0fs; abandoning that call", self.name, self.running_for())
        self.abandoned.append(self.future)
        self.future = None
        if self._on_hung is not None:
            self._on_hung()
        return True

    def start_if_due(self) -> Future[T] | None:
        """Start a call unless one runs or the last one started less than ``min_interval_s`` ago."""
        self.abandon_if_hung()
        self.abandoned = [f for f in self.abandoned if not f.done()]
        if self.running or len(self.abandoned) >= self._max_abandoned:
            return self.future
        now = self._clock()
        if self.started is not None and now - self.started < self.min_interval_s:
            return self.future
        future: Future[T] = Future()
        future.set_running_or_notify_cancel()

        def run() -> None:
            try:
                future.set_result(self._fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.started = now
        self.future = future
        threading.Thread(target=run, name=f"monitor-{self.name}", daemon=True).start()
        return future


class BackgroundValue(Generic[T]):
    """A value that is slow to compute (an exact count), refreshed in its own thread and cached.

    A refresh starts when the previous one started at least ``max(min_interval_s, duration / duty)``
    seconds ago, so a count that takes 3 s runs at most every 30 s with the default duty of 10%. A refresh
    running past ``hung_after_s`` is abandoned and the next one starts: a count blocked on a dead
    connection must not freeze the cached value forever.
    """

    def __init__(
        self,
        compute: Callable[[], T],
        *,
        min_interval_s: float,
        duty: float = 0.1,
        clock: Callable[[], float] = time.time,
        name: str = "count",
        hung_after_s: float = 300.0,
        on_hung: Callable[[], None] | None = None,
    ) -> None:
        self._compute = compute
        self.min_interval_s = min_interval_s
        self.duty = duty
        self._clock = clock
        self._lock = threading.Lock()
        self._duration_s = 0.0
        self._flight: SingleFlight[None] = SingleFlight(
            name, self._run, hung_after_s=hung_after_s, on_hung=self._hung(on_hung), clock=clock
        )
        self.value: T | None = None
        self.measured_at: float | None = None
        self.error: str | None = None

    def _hung(self, on_hung: Callable[[], None] | None) -> Callable[[], None]:
        def note() -> None:
            with self._lock:
                self.error = f"no answer for {self._flight.hung_after_s:.0f}s (abandoned, retrying)"
            if on_hung is not None:
                on_hung()

        return note

    def _run(self) -> None:
        t0 = time.monotonic()
        try:
            value = self._compute()
        except Exception as exc:
            with self._lock:
                self.error = short(exc)
        else:
            with self._lock:
                self.value, self.measured_at, self.error = value, self._clock(), None
        finally:
            with self._lock:
                self._duration_s = time.monotonic() - t0

    def refresh(self) -> None:
        """Start a refresh in the background if one is due and none is running."""
        with self._lock:
            interval = max(self.min_interval_s, self._duration_s / self.duty if self.duty > 0 else 0.0)
        self._flight.min_interval_s = interval
        self._flight.start_if_due()

    def get(self, wait_s: float = 0.0) -> tuple[T | None, float | None, str | None]:
        """(value, measured_at, error); waits up to ``wait_s`` when there is no value yet."""
        self.refresh()
        future = self._flight.future
        if self.value is None and self.error is None and future is not None and wait_s > 0:
            with contextlib.suppress(Exception):
                future.exception(timeout=wait_s)
        with self._lock:
            return self.value, self.measured_at, self.error
