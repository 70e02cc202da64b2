"""The data source: a randomuser.me-compatible server and generator, and a resilient client.

Public API::

    SourceClient(base_url=None, *, seed=None, page_size=None, nats=(), timeout_s=None, retries=None, ...)
        .fetch_page(page) -> PageResult          # accepted (raw, user, row) + rejected (raw, reason)
        .iter_pages(first=1, count=None) -> Iterator[PageResult]
    UserGenerator(anchor=DEFAULT_ANCHOR).users(seed, page, results, nats, gender, password) -> list[dict]
    FaultConfig(...)                              # fault injection for the server, off by default
    serve(host, port, *, faults=None, ...)        # foreground server (the CLI's `source serve`)
    serve_in_thread(faults=None, ...) -> ctx manager yielding the base URL (tests, demos)

Importing this package is cheap: Faker and uvicorn load only when a generator or server is built.
"""

from __future__ import annotations

from userstream.source.client import AcceptedUser, PageResult, RejectedRecord, SourceClient
from userstream.source.faults import FaultConfig
from userstream.source.generator import DEFAULT_ANCHOR, PasswordSpec, UserGenerator
from userstream.source.server import serve, serve_in_thread

__all__ = [
    "DEFAULT_ANCHOR",
    "AcceptedUser",
    "FaultConfig",
    "PageResult",
    "PasswordSpec",
    "RejectedRecord",
    "SourceClient",
    "UserGenerator",
    "serve",
    "serve_in_thread",
]
