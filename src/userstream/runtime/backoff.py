"""Bounded exponential backoff with jitter, for loops that retry forever (restarts, reconnects).

tenacity covers a call retried to completion; these loops instead ask "may I try again yet?" on every
tick and never give up, so the state is a small object: the next delay doubles up to ``max_s``, jittered
in [delay/2, delay] (never a tight loop, and clients that failed together do not retry together).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        self.initial_s = initial_s
        self.max_s = max_s
        self.failures = 0
        self._clock = clock
        self._rng = rng or random.Random()
        self._not_before = 0.0

    def next_delay(self) -> float:
        """The delay after one more failure (and counts it)."""
        ceiling = min(self.max_s, self.initial_s * 2**self.failures)
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def failed(self) -> float:
        """Record a failure; returns seconds until the next try is due."""
        delay = self.next_delay()
        self._not_before = self._clock() + delay
        return delay

    def ready(self) -> bool:
        return self._clock() >= self._not_before

    def succeeded(self) -> None:
        self.failures = 0
        self._not_before = 0.0
