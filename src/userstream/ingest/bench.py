"""`userstream bench ingest`: landing rate into Postgres from the bundled source, next to the source alone."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from userstream.config import Settings
from userstream.errors import ServiceError
from userstream.ingest.run import ingest
from userstream.runtime.base import port_free
from userstream.source import SourceClient
from userstream.store.postgres import apply_postgres_schema


@dataclass
class Figure:
    name: str
    records: int
    seconds: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def source_server(settings: Settings) -> Iterator[str]:
    """The bundled source in a child process (its own core), yielding its base URL."""
    host = settings.bind_host
    port = settings.source_port if port_free(host, settings.source_port) else _free_port(host)
    proc = subprocess.Popen(
        [sys.executable, "-m", "userstream.cli", "source", "serve", "--host", host, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://{host}:{port}/api/"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url, params={"results": "1"}, timeout=2).status_code == 200:
                    break
            if proc.poll() is not None:
                raise ServiceError("the bundled source server exited at start")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def bench_ingest(settings: Settings, records: int = 200_000, page_size: int = 5000) -> list[Figure]:
    """Ingest (fetch + validate + COPY) as fast as possible, next to the fetch+validate ceiling alone."""
    apply_postgres_schema(settings)
    seed = f"bench-{uuid.uuid4().hex[:8]}"
    pages = max(1, records // page_size)
    with source_server(settings) as url:
        with SourceClient(url, settings=settings, seed=seed, page_size=page_size) as client:
            client.fetch_page(pages + 1)  # warm-up
            t0 = time.perf_counter()
            fetched = sum(len(p.accepted) for p in client.iter_pages(1, pages))
            ceiling = Figure("source fetch+validate alone (reference)", fetched, time.perf_counter() - t0)
        with SourceClient(url, settings=settings, seed=seed + "-land", page_size=page_size) as client:
            report = ingest(settings, max_records=pages * page_size, seed=seed + "-land", source=client)
    landed = Figure("ingest into Postgres (fetch+validate+COPY)", report.landed, report.seconds)
    landed.extra["ratio_to_reference"] = landed.rate / ceiling.rate if ceiling.rate else 0.0
    return [ceiling, landed]
