"""Monitoring: pipeline snapshots, the dashboard (FastAPI + Prometheus /metrics) and a live terminal view.

``collect_snapshot(settings)`` reads every backend once; a :class:`Collector` keeps clients and the previous
snapshot (for rates); ``create_app(settings)`` is the dashboard; ``run_live(settings)`` the terminal view.

Every export is imported here, at the top, as every monitor module imports what it needs at its top: the
collector's threads never import anything.
"""

from __future__ import annotations

from userstream.monitor.app import create_app
from userstream.monitor.auth import dashboard_token, dashboard_url
from userstream.monitor.collect import Collector, collect_snapshot
from userstream.monitor.live import run_live
from userstream.monitor.metrics import render_metrics
from userstream.monitor.models import PipelineSnapshot, StageStat
from userstream.monitor.server import serve

__all__ = [
    "Collector",
    "PipelineSnapshot",
    "StageStat",
    "collect_snapshot",
    "create_app",
    "dashboard_token",
    "dashboard_url",
    "render_metrics",
    "run_live",
    "serve",
]
