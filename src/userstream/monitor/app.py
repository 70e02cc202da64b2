"""The dashboard: one static page polling ``/api/snapshot``, Prometheus text at ``/metrics``, ``/healthz``."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from userstream import __version__
from userstream.config import Settings
from userstream.monitor.auth import dashboard_token, token_file
from userstream.monitor.collect import Collector
from userstream.monitor.metrics import render_metrics

__all__ = ["STATIC_DIR", "cookie_name", "create_app"]

STATIC_DIR = Path(__file__).with_name("static")
OPEN_PATHS = frozenset({"/healthz"})

_LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>userstream dashboard</title>
<style>body{{font:15px system-ui,sans-serif;margin:3em;color:#1d2733}}code{{background:#eef1f5;padding:2px 5px}}</style>
</head><body><h1>userstream dashboard</h1><p>This dashboard needs its access token.</p>
<p>Open the URL printed by <code>userstream dashboard</code> or <code>userstream up</code>
(it ends in <code>?token=...</code>); the token is stored in <code>{path}</code>.</p></body></html>"""


def cookie_name(settings: Settings) -> str:
    # cookies ignore ports: two dashboards on one host must not overwrite each other's token
    return f"userstream_dashboard_{settings.dashboard_port}"


def _same(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def create_app(settings: Settings, collector: Collector | None = None, *, token: str | None = None) -> FastAPI:
    """The dashboard app; ``collector`` defaults to one over every section, shared by all viewers."""
    require_token = settings.dashboard_require_token
    expected = (token or dashboard_token(settings)) if require_token else ""
    owned = collector is None
    # a page polls every 2 s; with several tabs and a Prometheus scrape, collect at most once a second
    the_collector = collector or Collector(settings, min_age_s=1.0)
    started = time.time()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owned:
            the_collector.close()

    app = FastAPI(title="userstream dashboard", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.collector = the_collector
    cookie = cookie_name(settings)

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not require_token or request.url.path in OPEN_PATHS:
            return await call_next(request)
        query_token = request.query_params.get("token")
        if _same(query_token, expected):
            response = await call_next(request)
            # the page's own requests (JS, CSS, API) then authenticate by cookie, without the token in URLs
            response.set_cookie(cookie, expected, httponly=True, samesite="strict", path="/")
            return response
        authorization = request.headers.get("authorization", "")
        bearer = authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        if _same(bearer, expected) or _same(request.cookies.get(cookie), expected):
            return await call_next(request)
        if request.url.path == "/" and "text/html" in request.headers.get("accept", ""):
            return HTMLResponse(_LOGIN_PAGE.format(path=token_file(settings)), status_code=401)
        return JSONResponse(
            {"detail": "missing or wrong token: use ?token=..., a Bearer header, or open the printed URL"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.get("/healthz")
    def healthz() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "uptime_s": round(time.time() - started, 1)}

    @app.get("/", response_class=FileResponse)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    # sync handlers run in FastAPI's thread pool: a slow backend never blocks /healthz on the event loop
    @app.get("/api/snapshot")
    def api_snapshot() -> Response:
        snap = the_collector.snapshot()
        return Response(snap.model_dump_json(), media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render_metrics(the_collector.snapshot), media_type=CONTENT_TYPE_LATEST)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
