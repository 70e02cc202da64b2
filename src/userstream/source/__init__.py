"""The data source: a randomuser.me-compatible server and generator, and a resilient client.

Public API::

    SourceClient(base_url=None, *, seed=None, page_size=None, nats=(), timeout_s=None, retries=None, ...)
        .fetch_page(page, *, seed=None, cancel=None) -> PageResult   # accepted (raw, user, row) + rejected
        .iter_pages(first=1, count=None) -> Iterator[PageResult]
    PageOutOfRange                                # SourceError: the page is past the seed's sequence
    QuotaPacer(users, window_s, burst).acquire(n)  # keeps requests under the provider's quota
    UserGenerator(anchor=DEFAULT_ANCHOR).users(seed, page, results, nats, gender, password) -> list[dict]
    FaultConfig(...)                              # fault injection for the server, off by default
    ServerLimits(quota_users=0, quota_window_s=300, max_page=10000)   # the live site's limits, for the server
    serve(host, port, *, faults=None, limits=None, ...)   # foreground server (the CLI's `source serve`)
    serve_in_thread(faults=None, ..., limits=None) -> ctx manager yielding the base URL (tests, demos)
"""

from __future__ import annotations

from userstream.source.client import AcceptedUser, PageOutOfRange, PageResult, RejectedRecord, SourceClient
from userstream.source.faults import FaultConfig
from userstream.source.generator import DEFAULT_ANCHOR, PasswordSpec, UserGenerator
from userstream.source.quota import QuotaPacer, QuotaWaitCancelled, ServerLimits
from userstream.source.server import serve, serve_in_thread

__all__ = [
    "DEFAULT_ANCHOR",
    "AcceptedUser",
    "FaultConfig",
    "PageOutOfRange",
    "PageResult",
    "PasswordSpec",
    "QuotaPacer",
    "QuotaWaitCancelled",
    "RejectedRecord",
    "ServerLimits",
    "SourceClient",
    "UserGenerator",
    "serve",
    "serve_in_thread",
]
