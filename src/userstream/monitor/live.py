"""A live terminal view (rich) of records per stage, with rates, refreshed every second until Ctrl-C."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from userstream.config import Settings
from userstream.monitor.collect import COUNT_SECTIONS, Collector
from userstream.monitor.models import PipelineSnapshot

__all__ = ["render_snapshot", "run_live"]


def _num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "n/a" if value is None else fmt.format(value)


def render_snapshot(snap: PipelineSnapshot) -> RenderableType:
    """The table of stages (pipeline order, then the rejected/DLQ branches) and a status line."""
    table = Table(title="userstream pipeline", title_justify="left", expand=False)
    table.add_column("stage")
    table.add_column("records", justify="right")
    table.add_column("records/s", justify="right")
    table.add_column("", overflow="fold", max_width=60)
    for i, stage in enumerate(snap.stages):
        branch = stage.key in ("rejected", "dlq")
        label = Text(("  └ " if branch else "") + stage.label, style="yellow" if branch else "")
        note = Text(stage.error, style="red") if stage.error else Text(stage.counted_by, style="dim")
        if stage.state == "stalled":  # the watchdog's verdict: input waiting, output standing still
            label.append("  stalled", style="bold red")
            note = Text(stage.state_detail or "stalled", style="red")
        table.add_row(
            label,
            _num(stage.count),
            _num(stage.rate, "{:,.1f}"),
            note,
            end_section=i + 1 < len(snap.stages) and snap.stages[i + 1].key == "rejected",
        )
    spark = snap.spark
    lags = ", ".join(f"{lag.consumer} {lag.lag:,}" for lag in snap.kafka.lags if lag.lag is not None) or "n/a"
    stale = [name for name in ("ingest", "postgres", "kafka", "spark", "cassandra") if getattr(snap, name).stale]
    latency = spark.latency_ms
    parts = [
        f"updated {datetime.fromtimestamp(snap.taken_at).strftime('%H:%M:%S')}",
        f"collect {snap.collect_ms:.0f} ms",
        f"consumer lag: {lags}",
        f"latency p50/p99: {_num(latency.get('p50'))}/{_num(latency.get('p99'))} ms",
        "Ctrl-C to stop",
    ]
    if stale:
        parts.insert(2, f"slow: {', '.join(stale)} (previous values)")
    if snap.health.error:
        parts.insert(2, f"stall check: {snap.health.error}")
    return Group(table, Text("  ·  ".join(parts), style="dim"))


def run_live(
    settings: Settings,
    stop_event: threading.Event | None = None,
    *,
    interval_s: float = 1.0,
    console: Console | None = None,
) -> None:
    """Refresh the view every ``interval_s`` until ``stop_event`` is set or Ctrl-C; returns cleanly."""
    stop = stop_event or threading.Event()
    console = console or Console()
    # sections answer within the refresh interval or show their previous value marked stale
    with Collector(settings, sections=COUNT_SECTIONS, timeout_s=max(0.3, interval_s * 0.8)) as collector:
        snap = collector.snapshot()
        if not console.is_terminal:
            # piped or logged: a redrawn table would print nothing until the end, so one line per interval
            _run_plain(collector, console, stop, max(interval_s, 10.0))
            return
        with Live(render_snapshot(snap), console=console, refresh_per_second=4, transient=False) as live:
            try:
                while not stop.wait(max(0.0, interval_s - (time.time() - snap.taken_at))):
                    snap = collector.snapshot()
                    live.update(render_snapshot(snap))
            except KeyboardInterrupt:
                pass  # Ctrl-C is the normal way out


def summary_line(snap: PipelineSnapshot) -> str:
    """One line of every stage's count and rate, for logs."""
    stages = ", ".join(
        f"{st.label} {_num(st.count)} ({_num(st.rate, '{:,.0f}')}/s)" + (" STALLED" if st.state == "stalled" else "")
        for st in snap.stages
    )
    return f"{datetime.fromtimestamp(snap.taken_at).strftime('%H:%M:%S')} {stages}"


def _run_plain(collector: Collector, console: Console, stop: threading.Event, interval_s: float) -> None:
    try:
        while True:
            console.print(summary_line(collector.snapshot()), highlight=False, soft_wrap=True)
            if stop.wait(interval_s):
                return
    except KeyboardInterrupt:
        pass
