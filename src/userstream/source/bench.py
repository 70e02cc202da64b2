"""Throughput of the source: generation on one core, serving over loopback, and the client end to end.

Run with ``userstream bench source``. The server runs in a child process (one event-loop thread, so at
most one core) and the client in this process, as they would in the pipeline.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from userstream.source.api import encode_page
from userstream.source.client import SourceClient
from userstream.source.generator import UserGenerator
from userstream.source.server import bind_socket, serve

__all__ = ["TARGET_USERS_PER_S", "Figure", "run_bench"]

TARGET_USERS_PER_S = 50_000.0


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    users: int
    wall_s: float
    cpu_s: float | None  # CPU seconds of the process doing the work (server for the serving figures)
    note: str = ""

    @property
    def rate(self) -> float:
        """Users per wall-clock second."""
        return self.users / self.wall_s if self.wall_s else 0.0

    @property
    def cpu_rate(self) -> float | None:
        """Users per CPU second of the working process: the one-core figure, immune to other load."""
        return self.users / self.cpu_s if self.cpu_s else None

    @property
    def ratio(self) -> float:
        return self.rate / TARGET_USERS_PER_S


def _proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a process, from /proc (Linux); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def bench_generate(generator: UserGenerator, pages: int, results: int) -> Figure:
    """Generation as the server does it: users -> the response body bytes, on this (one) thread."""
    generator.users_bytes("warm-up", 1, 100)
    total = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for page in range(1, pages + 1):
        users = generator.users_bytes("bench", page, results)
        body = encode_page(users, {"seed": "bench", "results": results, "page": page, "version": "1.4"})
        total += len(users)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Figure("generated (one core)", total, wall, cpu, f"{len(body) / results:.0f} B/user JSON")


def _child_main(sock_fd: int) -> None:
    """Entry point of the benchmark's server process: serve on the inherited listening socket."""
    serve("127.0.0.1", 0, sock=socket.socket(fileno=sock_fd), log_level="error")


def _wait_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    health = url.replace("/api/", "/healthz")
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("benchmark server did not start")


def bench_serve(url: str, server_pid: int, pages: int, results: int, connections: int) -> Figure:
    """Raw bytes over loopback: GET + full body, ``connections`` requests in flight."""
    params = [{"results": str(results), "seed": "serve", "page": str(p)} for p in range(1, pages + 1)]
    timeout = httpx.Timeout(60.0)
    with httpx.Client(timeout=timeout) as warm:
        warm.get(url, params={"results": "10", "seed": "w"})
    clients = [httpx.Client(timeout=timeout) for _ in range(connections)]
    received = 0

    def fetch(i: int) -> int:
        r = clients[i % connections].get(url, params=params[i])
        r.raise_for_status()
        return len(r.content)

    c0 = _proc_cpu_s(server_pid)
    w0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=connections) as pool:
        received = sum(pool.map(fetch, range(pages)))
    wall = time.perf_counter() - w0
    c1 = _proc_cpu_s(server_pid)
    for c in clients:
        c.close()
    cpu = c1 - c0 if c0 is not None and c1 is not None else None
    return Figure(
        f"served over loopback ({connections} conn)",
        pages * results,
        wall,
        cpu,
        f"{received / wall / 1e6:.0f} MB/s; cpu = server process",
    )


def bench_client(url: str, pages: int, results: int) -> Figure:
    """SourceClient end to end: HTTP + decode + validate every record + flat rows (iter_pages, which
    requests page n+1 while page n is validated)."""
    with SourceClient(url, seed="client", page_size=results, retries=0) as client:
        client.fetch_page(1)  # warm-up (also imports pydantic's validators)
        total = 0
        w0, c0 = time.perf_counter(), time.process_time()
        for result in client.iter_pages(2, pages):
            total += len(result.accepted)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Figure("client fetch+validate (end to end)", total, wall, cpu, "cpu = client process")


def run_bench(pages: int = 10, results: int = 5000, url: str | None = None) -> list[Figure]:
    """All figures. With ``url`` the serving/client figures use that server instead of a local child."""
    generator = UserGenerator()
    figures = [bench_generate(generator, pages, results)]
    proc: subprocess.Popen[bytes] | None = None
    server_pid = 0
    if url is None:
        sock = bind_socket("127.0.0.1", 0)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api/"
        # A fresh interpreter (not fork: this process may have threads) that inherits the bound socket.
        code = f"from userstream.source.bench import _child_main; _child_main({sock.fileno()})"
        proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(sock.fileno(),))
        sock.close()
        server_pid = proc.pid
    try:
        _wait_ready(url)
        figures.append(bench_serve(url, server_pid, pages, results, connections=1))
        figures.append(bench_client(url, pages, results))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if not server_pid:  # an external server: its CPU time is not ours to measure
        f = figures[1]
        figures[1] = Figure(f.name, f.users, f.wall_s, None, f.note.replace("; cpu = server process", ""))
    return figures
