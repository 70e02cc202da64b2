"""`make run` (`userstream up --demo`): the stack, an early bootstrap, ingest, the live view, a clean stop.

The CLI only parses options and prints; this module runs the demo, so the same flow serves the command, the
cold-start benchmark and the chaos runs. Whatever goes wrong on the way out (a service not answering, the
terminal gone: Ctrl-C of `make run | tee run.log` kills `tee` first), the stack is still stopped.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from rich.console import Console

from userstream.config import Settings
from userstream.monitor.live import run_live
from userstream.pipeline import BOOTSTRAP_NEEDS, bootstrap, start_flow, stop_flow
from userstream.runtime.base import Reporter
from userstream.runtime.stack import Stack

__all__ = ["EarlyBootstrap", "detach_broken_output", "run_demo"]


class EarlyBootstrap:
    """The demo's bootstrap, started as soon as the services it needs are healthy rather than after all of
    them: the streaming job's JVM then starts while Airflow (the slowest to start) still does."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready: set[str] = set()
        self.future: Future[dict[str, Any]] | None = None
        self.lock = threading.Lock()

    def _start(self, reporter: Reporter) -> None:
        reporter.step("bootstrap: topics, schemas, DDL, CDC connector, streaming job")
        pool = ThreadPoolExecutor(1, thread_name_prefix="bootstrap")
        self.future = pool.submit(bootstrap, self.settings)
        pool.shutdown(wait=False)  # its one thread ends with the task

    def service_healthy(self, name: str, reporter: Reporter) -> None:
        with self.lock:
            self.ready.add(name)
            if self.future is None and set(BOOTSTRAP_NEEDS) <= self.ready:
                self._start(reporter)

    def result(self, reporter: Reporter) -> dict[str, Any]:
        with self.lock:
            if self.future is None:
                self._start(reporter)
        assert self.future is not None
        return self.future.result()


def detach_broken_output(*consoles: Console) -> None:
    """After the reader of our output went away: further output goes nowhere instead of raising."""
    devnull = open(os.devnull, "w")  # noqa: SIM115 (lives as long as the process)
    for console in consoles:
        console.file = devnull
    sys.stdout = devnull
    sys.stderr = devnull


def run_demo(
    settings: Settings,
    stack: Stack,
    early: EarlyBootstrap,
    reporter: Reporter,
    say: Callable[[str], None],
    *,
    keep_running: bool = False,
    consoles: tuple[Console, ...] = (),
) -> None:
    """Bootstrap (already under way), unpause ingest, show the live view until Ctrl-C or TERM, then stop."""
    # Ctrl-C and a TERM from a process manager both stop the demo cleanly, even where SIGINT was inherited
    # as ignored (a job started in the background by a shell)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for step, outcome in early.result(reporter).items():
            say(f"  {step:<18} {outcome}")
        start_flow(settings)
        reporter.step(f"ingest DAG unpaused: {settings.ingest_rate:.0f} records/s from {settings.source_url}")
        say("[bold]pipeline running[/bold] — Ctrl-C stops it (data is kept)")
        run_live(settings)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        detach_broken_output(*consoles)
    finally:
        if not keep_running:
            _stop(settings, stack, reporter, say, consoles)


def _stop(
    settings: Settings, stack: Stack, reporter: Reporter, say: Callable[[str], None], consoles: tuple[Console, ...]
) -> None:
    # a second Ctrl-C while stopping must not leave half a stack
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        say("stopping: pausing ingest, then the stack")
    except BrokenPipeError:
        detach_broken_output(*consoles)
    try:
        stop_flow(settings)
    except Exception as exc:
        try:
            say(f"could not pause ingest first ({type(exc).__name__}: {exc}); stopping the stack anyway")
        except BrokenPipeError:
            detach_broken_output(*consoles)
    try:
        stack.down(reporter)
    except BrokenPipeError:
        detach_broken_output(*consoles)
        stack.down(reporter)
