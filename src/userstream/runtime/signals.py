"""Graceful stop of a supervised program: supervisord's TERM (or Ctrl-C) sets an event the main loop checks."""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["stop_on_signals"]


def stop_on_signals(*signums: int) -> threading.Event:
    """An event set by TERM and INT (or ``signums``); call from the main thread."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in signums or (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    return stop
