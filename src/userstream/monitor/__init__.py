"""Monitoring: pipeline snapshots, the dashboard (FastAPI + Prometheus /metrics) and a live terminal view.

``collect_snapshot(settings)`` reads every backend once; a :class:`Collector` keeps clients and the previous
snapshot (for rates); ``create_app(settings)`` is the dashboard; ``run_live(settings)`` the terminal view.

Exports are imported lazily: ``userstream.monitor.audit`` (run inside Airflow tasks) must not pull in
FastAPI, uvicorn and rich. This is import-safe: the lazy import runs only when a caller asks for one of
these names (the CLI, from its main thread); no module of the monitor uses it, and every monitor module
imports what it needs at its top, so the collector's threads never import anything.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from userstream.monitor.app import create_app
    from userstream.monitor.auth import dashboard_token, dashboard_url
    from userstream.monitor.collect import Collector, collect_snapshot
    from userstream.monitor.live import run_live
    from userstream.monitor.metrics import render_metrics
    from userstream.monitor.models import PipelineSnapshot, StageStat
    from userstream.monitor.server import serve

_EXPORTS = {
    "Collector": "collect",
    "PipelineSnapshot": "models",
    "StageStat": "models",
    "collect_snapshot": "collect",
    "create_app": "app",
    "dashboard_token": "auth",
    "dashboard_url": "auth",
    "render_metrics": "metrics",
    "run_live": "live",
    "serve": "server",
}

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"userstream.monitor.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
