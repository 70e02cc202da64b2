"""Headless Chromium (Debian's package, driven by Playwright) opens the dashboard and sees counters move."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from userstream.config import Settings
from userstream.ingest.land import LandedUser, Reject, land_batch
from userstream.model import UserRow
from userstream.monitor.auth import dashboard_url
from userstream.monitor.progress import progress_path
from userstream.runtime.base import PROJECT_ROOT
from userstream.runtime.stack import Stack
from userstream.store.postgres import apply_postgres_schema

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT = PROJECT_ROOT / "artifacts" / "dashboard.png"


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when missing (never a browser downloaded by Playwright)."""
    found = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if found:
        return found
    why = "not root or no apt-get"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False, timeout=600)
        proc = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"], env=env, capture_output=True, text=True, timeout=1200
        )
        why = (proc.stderr or proc.stdout).strip()[-500:] or f"exit {proc.returncode}"
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"Debian's chromium is not installed and could not be installed: {why}")
    return found


def make_users(n: int, tag: str) -> list[LandedUser]:
    now = datetime.now(UTC)
    return [
        LandedUser(
            row=UserRow(
                id=uuid.uuid4(), first_name=f"Ada{i}", last_name=f"Browser-{tag}", gender="female",
                address=f"{i} Rue Test, Lyon, Rhone, France", post_code=f"69{i:03d}", email=f"ada{i}.{tag}@example.com",
                username=f"{tag}{i}", dob=now, registered_date=now, phone="04-23", picture="https://p/w.jpg",
                nat="FR", fetched_at=now,
            ),
            raw_json=json.dumps({"tag": tag, "i": i}),
        )
        for i in range(n)
    ]  # fmt: skip


class FakeProgress:
    """Stands in for the streaming job's progress.json while no real job writes it (restored afterwards)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.saved = path.read_bytes() if path.exists() else None
        self.valid = 0
        self.dlq = 0
        self.batch = 0

    @property
    def real_job_running(self) -> bool:
        return self.path.exists() and time.time() - self.path.stat().st_mtime < 30

    def advance(self, valid: int, dlq: int) -> None:
        self.valid, self.dlq, self.batch = self.valid + valid, self.dlq + dlq, self.batch + 1
        now = datetime.now(UTC).isoformat()
        doc: dict[str, Any] = {
            "updated_at": now,
            "state": "running",
            "queries": {
                "users": {
                    "batch_id": self.batch, "num_input_rows": valid + dlq, "input_rows_per_second": 150.0,
                    "processed_rows_per_second": 180.0, "batch_duration_ms": 700 + 40 * self.batch,
                    "offsets_behind": 0, "end_offsets": {},
                }
            },
            "totals": {"valid": self.valid, "dlq": self.dlq},
            "recent_batches": [
                {"batch_id": b, "rows": 100, "duration_ms": 700 + 40 * b, "ts": now} for b in range(1, self.batch + 1)
            ],
            "latency_ms": {"p50": 850.0, "p95": 1400.0, "p99": 1900.0},
        }  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.path)

    def restore(self) -> None:
        if self.saved is None:
            self.path.unlink(missing_ok=True)
        else:
            self.path.write_bytes(self.saved)


@pytest.fixture
def fake_progress(settings: Settings) -> Iterator[FakeProgress | None]:
    fake = FakeProgress(progress_path(settings))
    if fake.real_job_running:
        yield None  # a real streaming job reports: leave its file alone
        return
    try:
        yield fake
    finally:
        fake.restore()


def test_dashboard_in_chromium_sees_counters_move(
    require_services: Callable[..., Stack], settings: Settings, fake_progress: FakeProgress | None
) -> None:
    from playwright.sync_api import sync_playwright

    executable = ensure_chromium()
    require_services("dashboard", "postgres")
    apply_postgres_schema(settings)
    tag = uuid.uuid4().hex[:6]
    errors: list[str] = []

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1200})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(dashboard_url(settings), wait_until="domcontentloaded")
            page.wait_for_function(
                "document.querySelector('#stage-landed .count').textContent.trim() !== 'n/a'", timeout=30_000
            )
            assert "token=" not in page.url  # dropped from the address bar once the cookie is set

            def count(stage: str) -> int | None:
                text = page.inner_text(f"#stage-{stage} .count").strip()
                return None if text == "n/a" else int(text.replace(",", ""))

            before = {stage: count(stage) for stage in ("fetched", "landed", "rejected", "spark")}
            assert before["landed"] is not None and before["rejected"] is not None and before["fetched"] is not None

            # land users in a few rounds, like an ingest run would, so rates and sparklines show movement
            rounds, per_round = 6, 120
            with psycopg.connect(settings.postgres_conninfo, autocommit=True) as conn:
                for r in range(rounds):
                    rejects = [Reject(f"dob.age: Input should be a valid integer (round {r})", "{}", f"browser {tag}")]
                    land_batch(conn, make_users(per_round, f"{tag}r{r}"), rejects)
                    conn.execute(
                        "INSERT INTO staging.ingest_runs (seed, first_page, last_page, requested, landed, rejected, "
                        "status) VALUES (%s, %s, %s, %s, %s, 1, 'running')",
                        (f"browser-{tag}", r + 1, r + 1, per_round + 1, per_round),
                    )
                    if fake_progress is not None:
                        fake_progress.advance(valid=per_round - 5, dlq=5)
                    time.sleep(2.0)

            expected = {
                "landed": before["landed"] + rounds * per_round,
                "rejected": before["rejected"] + rounds,
                "fetched": before["fetched"] + rounds * (per_round + 1),
            }
            if fake_progress is not None:
                expected["spark"] = fake_progress.valid + fake_progress.dlq
            # ">=": in a full test session something else may land rows at the same time
            for stage, value in expected.items():
                page.wait_for_function(
                    "([sel, want]) => Number(document.querySelector(sel).textContent.replace(/,/g, '')) >= want",
                    arg=[f"#stage-{stage} .count", value],
                    timeout=45_000,
                )
            # the newest rejection reason and the ingest run are on the page too
            page.wait_for_function(
                "document.querySelector('#rej-reasons').textContent.includes('(round 5)')", timeout=20_000
            )
            assert "browser-" + tag in page.inner_text("#ingest-kvs")
            assert page.inner_text("#services").count("postgres") == 1
            # stages whose services are not running say so instead of breaking the page
            if count("cassandra") is None:
                assert page.inner_text("#stage-cassandra .err").strip()
            page.wait_for_timeout(2500)  # one more poll so the last rates are drawn
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"
    assert SCREENSHOT.stat().st_size > 10_000
