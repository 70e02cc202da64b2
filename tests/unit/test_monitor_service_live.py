"""The dashboard's runtime service and the live terminal view, without any backend."""

from __future__ import annotations

import io
import socket
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from userstream.config import Settings
from userstream.monitor.live import render_snapshot, run_live
from userstream.monitor.models import PipelineSnapshot, StageStat
from userstream.monitor.service import DashboardService, settings_environment
from userstream.runtime.stack import SERVICE_CLASSES, load_service_class


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # every backend on a closed port: each section must fail fast and independently
    port = _closed_port()
    return Settings(
        data_dir=tmp_path, bind_host="127.0.0.1", postgres_dsn=None, kafka_bootstrap=None, registry_url=None,
        cassandra_contact_points=None, spark_master_url=None, postgres_port=port, kafka_port=port,
        registry_port=port, cassandra_port=port, spark_master_ui_port=port, dashboard_port=port,
        kafka_heap="777m",
    )  # fmt: skip


def test_dashboard_is_the_last_registered_service() -> None:
    assert list(SERVICE_CLASSES)[-1] == "dashboard"
    assert load_service_class("dashboard") is DashboardService


def test_program_runs_the_module_with_this_stacks_settings(settings: Settings) -> None:
    service = DashboardService(settings)
    (program,) = service.programs()
    assert program.command == [sys.executable, "-m", "userstream.monitor"]
    assert program.env["USERSTREAM_DATA_DIR"] == str(settings.root)
    assert program.env["USERSTREAM_DASHBOARD_PORT"] == str(settings.dashboard_port)
    assert program.env["USERSTREAM_KAFKA_HEAP"] == "777m"
    assert "USERSTREAM_POSTGRES_DSN" not in program.env  # unset endpoint stays unset: "run it locally"
    assert service.ports == [settings.dashboard_port]


def test_settings_environment_reproduces_the_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("USERSTREAM_"):
            monkeypatch.delenv(key)
    for key, value in settings_environment(settings).items():
        monkeypatch.setenv(key, value)
    again = Settings()
    assert again.model_dump(exclude={"data_dir"}) == settings.model_dump(exclude={"data_dir"})
    assert again.root == settings.root


def test_health_is_false_when_nothing_listens(settings: Settings) -> None:
    health = DashboardService(settings).health()
    assert not health.healthy and "ConnectError" in health.detail


def test_urls_carry_the_token(settings: Settings) -> None:
    urls = DashboardService(settings).urls()
    assert "?token=" in urls["dashboard"] and urls["metrics"].endswith("/metrics")


def test_render_snapshot_shows_counts_rates_and_na() -> None:
    snap = PipelineSnapshot(
        taken_at=0.0,
        stages=[
            StageStat(key="landed", label="landed in Postgres", count=12345, rate=321.5),
            StageStat(key="cassandra", label="in Cassandra", error="Cassandra unreachable"),
            StageStat(key="rejected", label="rejected at ingest", count=7),
        ],
    )
    console = Console(file=io.StringIO(), width=140, record=True)
    console.print(render_snapshot(snap))
    text = console.export_text()
    assert "12,345" in text and "321.5" in text
    assert "Cassandra unreachable" in text and "n/a" in text
    assert "└ rejected at ingest" in text


def test_run_live_stops_on_the_event_with_every_backend_down(settings: Settings) -> None:
    stop = threading.Event()
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=False)
    thread = threading.Thread(target=run_live, args=(settings, stop), kwargs={"interval_s": 0.2, "console": console})
    thread.start()
    threading.Timer(1.5, stop.set).start()
    thread.join(15)
    assert not thread.is_alive()
    text = out.getvalue()
    assert "landed in Postgres" in text and "n/a" in text


def test_run_live_prints_one_line_per_interval_when_piped_and_a_table_on_a_terminal(settings: Settings) -> None:
    outputs = {}
    for terminal in (False, True):
        stop = threading.Event()
        out = io.StringIO()
        console = Console(file=out, width=200, force_terminal=terminal)
        threading.Timer(1.0, stop.set).start()
        run_live(settings, stop, interval_s=0.2, console=console)
        outputs[terminal] = out.getvalue()
    piped, table = outputs[False], outputs[True]
    assert "landed in Postgres n/a" in piped and "userstream pipeline" not in piped
    assert len(piped.strip().splitlines()) == 1, "piped output is one line per 10 s, not a redraw per refresh"
    assert "userstream pipeline" in table
