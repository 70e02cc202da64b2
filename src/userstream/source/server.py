"""The randomuser.me-compatible HTTP server: a raw ASGI app on uvicorn (httptools and uvloop when present).

A framework route would work, but at 5,000 users (~5.4 MB) a response the per-request overhead is nothing
and the raw app keeps the byte path free of copies: generator -> bytes -> socket.

Routes: ``GET /api/`` and ``/api/1.4/`` (with or without the trailing slash); any other ``/api/<version>/``
is 404, as on the live service; ``/healthz`` answers ``ok``.

Like the live site (:class:`~userstream.source.quota.ServerLimits`): a page above ``max_page`` (10,000) is
served as page 1 with ``info.page`` 1, and, when ``quota_users`` is set, an address already served that many
users in the current fixed window gets 429 with the site's error body and no Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

import msgspec
import uvicorn

from userstream.errors import PortInUseError, SourceError
from userstream.model import API_VERSION
from userstream.source.api import Query, encode_page, render, stream, streamable
from userstream.source.faults import ERROR_BODY, RATE_LIMIT_BODY, Fault, FaultConfig, FaultInjector
from userstream.source.generator import DEFAULT_ANCHOR, UserGenerator
from userstream.source.quota import QuotaCounter, ServerLimits, quota_error_body

__all__ = ["SourceApp", "bind_socket", "serve", "serve_in_thread"]

log = logging.getLogger(__name__)

try:  # uvicorn's faster event loop, when installed
    import uvloop  # noqa: F401

    _LOOP = "uvloop"
except ImportError:
    _LOOP = "asyncio"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_API_PATHS = frozenset({"/api", "/api/", f"/api/{API_VERSION}", f"/api/{API_VERSION}/"})
_JSON = b"application/json; charset=utf-8"


class SourceApp:
    """The ASGI application. Generation runs on the event loop thread: a 5,000-user page takes ~70 ms
    of CPU, and handing it to a thread would only add GIL contention."""

    def __init__(
        self,
        generator: UserGenerator | None = None,
        faults: FaultConfig | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        self.generator = generator or UserGenerator()
        self.faults = FaultInjector(faults) if faults is not None and faults.enabled else None
        self.limits = limits or ServerLimits()
        self.quota = QuotaCounter(self.limits) if self.limits.quota_users else None
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        self.requests += 1
        if scope["method"] not in ("GET", "HEAD"):
            await _respond(send, 405, msgspec.json.encode({"error": "method not allowed"}), _JSON)
            return
        path: str = scope["path"]
        if path == "/healthz":
            await _respond(send, 200, b"ok", b"text/plain")
            return
        if path not in _API_PATHS:
            await _respond(send, 404, msgspec.json.encode({"error": f"not found: {path}"}), _JSON)
            return
        query = Query.parse(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        head = scope["method"] == "HEAD"
        if query.page > self.limits.max_page:
            query = dataclasses.replace(query, page=1)  # as the live site: silently page 1
        if self.quota is not None and not head:
            client = scope.get("client")
            refused = self.quota.admit(str(client[0]) if client else "", query.results)
            if refused is not None:  # no Retry-After, as the live site: its window resets on its own
                await _respond(send, 429, msgspec.json.encode(quota_error_body(refused)), _JSON)
                return
        if self.faults is None:
            if streamable(query) and not head:
                await self._stream(query, send)
                return
            out = render(query, self.generator)
            await _respond(send, 200, out.body, out.content_type.encode(), head=head)
            return
        await self._faulty(query, send, head)

    async def _faulty(self, query: Query, send: Send, head: bool) -> None:
        assert self.faults is not None
        fault, delay = self.faults.draw()
        if delay:
            await asyncio.sleep(delay)
        if fault is Fault.ERROR:
            await _respond(send, self.faults.error_status(), msgspec.json.encode(ERROR_BODY), _JSON)
        elif fault is Fault.RATE_LIMIT:
            retry = f"{self.faults.config.retry_after_s:g}".encode()
            body = msgspec.json.encode(RATE_LIMIT_BODY)
            await _respond(send, 429, body, _JSON, extra=[(b"retry-after", retry)])
        elif fault is Fault.EMPTY:
            info = {"seed": query.seed or "", "results": 0, "page": query.page, "version": API_VERSION}
            await _respond(send, 200, encode_page([], None if query.noinfo else info), _JSON, head=head)
        else:
            out = render(query, self.generator, corrupt=self.faults.corrupt)
            body, ctype = out.body, out.content_type
            if fault is Fault.MALFORMED:
                body, ctype = self.faults.malformed(body)
            await _respond(send, 200, body, ctype.encode(), head=head)

    async def _stream(self, query: Query, send: Send) -> None:
        # Chunked transfer: each piece goes to the socket as soon as it is generated, so the client
        # reads page n's first users while the rest are still being made (the transfer of ~5 MB no
        # longer adds to the generation time). The sleep(0) lets other requests (health checks) in.
        headers = [
            (b"content-type", _JSON),
            (b"access-control-allow-origin", b"*"),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for piece in stream(query, self.generator):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    *,
    head: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"access-control-allow-origin", b"*"),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket, or :class:`PortInUseError` with a fix; port 0 picks a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use",
                fix="stop whatever listens there, or pass --port (or set USERSTREAM_SOURCE_PORT)",
            ) from exc
        raise SourceError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _config(app: SourceApp, log_level: str) -> Any:
    return uvicorn.Config(
        app,
        loop=_LOOP,
        http="auto",  # httptools when installed (faster on 5 MB bodies), else h11
        lifespan="on",
        log_level=log_level,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
    )


def serve(
    host: str,
    port: int,
    *,
    faults: FaultConfig | None = None,
    limits: ServerLimits | None = None,
    anchor: date = DEFAULT_ANCHOR,
    log_level: str = "warning",
    sock: socket.socket | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run the server in the foreground until interrupted (Ctrl-C / SIGTERM).

    Pools are built before the socket accepts, so the first request is as fast as the rest. ``on_ready``
    receives the base URL (``http://host:port/api/``) once listening.
    """
    app = SourceApp(UserGenerator(anchor), faults, limits)
    sock = sock or bind_socket(host, port)
    bound_port = sock.getsockname()[1]
    config = _config(app, log_level)
    server = uvicorn.Server(config)
    url = f"http://{_url_host(host)}:{bound_port}/api/"

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(url)
        await task

    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(main())


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@contextlib.contextmanager
def serve_in_thread(
    faults: FaultConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    generator: UserGenerator | None = None,
    limits: ServerLimits | None = None,
) -> Iterator[str]:
    """Run the server on a background thread (tests, demos); yields the base URL ``http://h:p/api/``."""
    app = SourceApp(generator, faults, limits)
    sock = bind_socket(host, port)
    server = uvicorn.Server(_config(app, "warning"))  # off the main thread: no signal handlers
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="source")
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise SourceError("the source server did not start within 10 s")
        yield f"http://{_url_host(host)}:{sock.getsockname()[1]}/api/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
