"""The dashboard app: token auth (query, cookie, bearer), open /healthz, snapshot JSON and /metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from userstream.config import Settings
from userstream.monitor.app import STATIC_DIR, cookie_name, create_app
from userstream.monitor.auth import dashboard_token, dashboard_url, token_file
from userstream.monitor.collect import Collector
from userstream.monitor.models import PipelineSnapshot, StageStat


class FakeCollector(Collector):
    """No backends: a fixed snapshot whose landed counter grows at every call."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, sections=[])
        self.calls = 0

    def snapshot(self) -> PipelineSnapshot:
        self.calls += 1
        stage = StageStat(
            key="landed", label="landed in Postgres", count=100 * self.calls, measured_at=float(self.calls)
        )
        return PipelineSnapshot(taken_at=float(self.calls), stages=[stage])


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, dashboard_port=18400, dashboard_token=None, dashboard_require_token=True)


@pytest.fixture
def client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, FakeCollector(settings)))


def test_token_is_generated_once_into_the_data_dir(settings: Settings) -> None:
    token = dashboard_token(settings)
    assert len(token) >= 24
    assert dashboard_token(settings) == token
    path = token_file(settings)
    assert path.read_text().strip() == token
    assert path.stat().st_mode & 0o077 == 0
    assert dashboard_url(settings) == f"http://127.0.0.1:18400/?token={token}"


def test_configured_token_wins(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dashboard_token="s3cret")
    assert dashboard_token(settings) == "s3cret"
    assert not token_file(settings).exists()


def test_healthz_is_open(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/", "/api/snapshot", "/metrics", "/static/app.js"])
def test_everything_else_needs_the_token(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_token_is_refused(client: TestClient) -> None:
    assert client.get("/api/snapshot", params={"token": "nope"}).status_code == 401
    assert client.get("/api/snapshot", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_browser_without_token_gets_an_explanation(client: TestClient, settings: Settings) -> None:
    response = client.get("/", headers={"Accept": "text/html"})
    assert response.status_code == 401
    assert str(token_file(settings)) in response.text


def test_query_token_sets_a_cookie_that_then_suffices(client: TestClient, settings: Settings) -> None:
    token = dashboard_token(settings)
    page = client.get("/", params={"token": token})
    assert page.status_code == 200 and "<title>" in page.text
    assert client.cookies.get(cookie_name(settings)) == token
    assert "httponly" in page.headers["set-cookie"].lower()
    # the page's own requests carry no token, only the cookie
    assert client.get("/static/app.js").status_code == 200
    snap = client.get("/api/snapshot")
    assert snap.status_code == 200 and snap.json()["stages"][0]["key"] == "landed"


def test_bearer_header(client: TestClient, settings: Settings) -> None:
    headers = {"Authorization": f"Bearer {dashboard_token(settings)}"}
    first = client.get("/api/snapshot", headers=headers).json()
    second = client.get("/api/snapshot", headers=headers).json()
    assert second["stages"][0]["count"] > first["stages"][0]["count"]
    metrics = client.get("/metrics", headers=headers)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'userstream_stage_records_total{stage="landed"}' in metrics.text


def test_open_mode_needs_no_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, dashboard_require_token=False)
    client = TestClient(create_app(settings, FakeCollector(settings)))
    assert client.get("/api/snapshot").status_code == 200
    assert not token_file(settings).exists()
    assert dashboard_url(settings) == f"http://127.0.0.1:{settings.dashboard_port}/"


def test_static_page_references_only_local_assets() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # no CDN
    for asset in ("app.js", "style.css"):
        assert (STATIC_DIR / asset).exists() and f"/static/{asset}" in html


def test_every_element_the_page_script_fills_exists() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    script = (STATIC_DIR / "app.js").read_text()
    ids = set(re.findall(r'\$\("([a-z0-9-]+)"\)', script)) | set(re.findall(r'setError\("([a-z0-9-]+)"', script))
    assert {"health-stages", "health-error", "health-hint"} <= ids
    missing = sorted(i for i in ids if f'id="{i}"' not in html)
    assert not missing, f"app.js fills elements index.html lacks: {missing}"
