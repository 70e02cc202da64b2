"""Spark: the streaming job's ``progress.json`` and the master's ``/json/`` (workers, applications)."""

from __future__ import annotations

import httpx

from userstream.config import Settings
from userstream.monitor.collectors.base import short
from userstream.monitor.models import SparkApp, SparkSection
from userstream.monitor.progress import progress_path, read_progress
from userstream.runtime.spark_ui_auth import ui_login

__all__ = ["SparkCollector"]


class SparkCollector:
    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self.settings = settings
        self._http = http  # shared, with a 2 s timeout; httpx drops a pooled connection that broke

    def collect(self) -> SparkSection:
        s = self.settings
        section = read_progress(progress_path(s))
        if s.spark_master_url is not None:
            section.master_url = s.spark_master
            section.master_error = "external master: its web UI address is not configured"
            return section
        url = f"http://{s.spark_master_host or s.bind_host}:{s.spark_master_ui_port}/json/"
        section.master_url = url
        try:
            response = self._http.get(url, auth=ui_login(s))  # the UIs' login, read each time: follows a new one
            response.raise_for_status()
            state = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            section.master_error = short(exc)
            return section
        section.master_status = state.get("status")
        section.workers_alive = sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")
        apps = [*state.get("activeapps", []), *state.get("completedapps", [])[-5:]]
        for app in apps:
            duration = app.get("duration")
            section.apps.append(
                SparkApp(
                    id=str(app.get("id", "?")),
                    name=str(app.get("name", "?")),
                    state=str(app.get("state", "?")),
                    cores=app["cores"] if isinstance(app.get("cores"), int) else None,
                    duration_s=duration / 1000.0 if isinstance(duration, int | float) else None,
                )
            )
        return section
