"""The client against the provider's limits: 429 without Retry-After waited out, pages past the sequence's
end detected, and close() ending retry loops in flight (the read-ahead included)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from userstream.config import Settings
from userstream.errors import SourceError
from userstream.source import PageOutOfRange, ServerLimits, SourceClient, UserGenerator, serve_in_thread

GEN = UserGenerator()
SEED = "limits-tests"
QUOTA_BODY = {"error": "Whoa, ease up there cowboy. You've requested 20000 users in the last minute."}


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def ok(request: httpx.Request, served: int | None = None) -> httpx.Response:
    page = int(request.url.params["page"])
    seed = request.url.params["seed"]
    info = {"seed": seed, "results": 3, "page": served or page, "version": "1.4"}
    return httpx.Response(200, json={"results": GEN.users(seed, served or page, 3), "info": info})


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> SourceClient:
    opts: dict[str, Any] = {
        "seed": SEED,
        "page_size": 3,
        "retries": 2,
        "backoff_s": 0.001,
        "max_backoff_s": 0.005,
        "settings": Settings(),
        "sleep": Sleeps(),
        "transport": httpx.MockTransport(handler),
    }
    opts.update(kw)
    return SourceClient("http://mock/api/", **opts)


def test_429_without_retry_after_is_waited_out_without_using_the_retry_budget() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 6:  # the live site's 429: an error body, no Retry-After
            return httpx.Response(429, json=QUOTA_BODY)
        if len(calls) <= 8:  # then two 5xx: the whole retry budget (2) is still there for them
            return httpx.Response(503, json={"error": "down"})
        return ok(request)

    sleeps = Sleeps()
    with mock_client(handler, sleep=sleeps) as client:
        page = client.fetch_page(1)
    assert len(page.accepted) == 3 and page.attempts == 9
    limited, failed = sleeps.waits[:6], sleeps.waits[6:]
    assert all(w >= 2.5 for w in limited)  # seconds, not a tight loop: half of a 5 s step at least
    assert limited[-1] >= 30  # backing off towards the 60 s cap
    assert page.rate_limited_s == pytest.approx(sum(limited))
    assert sum(limited) <= client.rate_limit_wait_s
    assert all(w <= 0.005 for w in failed)


def test_429_wait_is_bounded_by_the_quota_window() -> None:
    sleeps = Sleeps()
    settings = Settings(source_quota_window_s=300)
    with (
        mock_client(lambda r: httpx.Response(429, json=QUOTA_BODY), sleep=sleeps, settings=settings) as client,
        pytest.raises(SourceError, match="still rate limited") as info,
    ):
        client.fetch_page(1)
    assert client.rate_limit_wait_s == 330  # the window + 30 s: a window's reset always falls inside it
    assert sum(sleeps.waits) == pytest.approx(330)
    assert max(sleeps.waits) <= 60 and min(sleeps.waits[:-1]) >= 2.5  # capped steps; only the last one is cut
    assert "ease up" in str(info.value) and info.value.fix


def test_429_with_retry_after_is_honoured() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) <= 4:  # more than the retry budget (2): 429s do not spend it
            return httpx.Response(429, headers={"retry-after": "7"}, json=QUOTA_BODY)
        return ok(request)

    sleeps = Sleeps()
    with mock_client(handler, sleep=sleeps) as client:
        assert client.fetch_page(2).page == 2
    assert len(sleeps.waits) == 4 and all(7 <= w < 7.01 for w in sleeps.waits)


def test_a_page_served_as_another_is_out_of_range_and_not_retried() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.params["page"])
        return ok(request, served=1)  # the live site above page 10,000

    with mock_client(handler) as client, pytest.raises(PageOutOfRange) as info:
        client.fetch_page(11, seed="other")  # answered as page 1
    assert calls == ["11"]
    assert (info.value.seed, info.value.page, info.value.served) == ("other", 11, 1)


def test_a_page_above_max_page_is_never_asked() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return ok(request)

    with mock_client(handler, settings=Settings(source_max_page=5)) as client:
        assert client.fetch_page(5).page == 5
        with pytest.raises(PageOutOfRange, match="above the provider's last page"):
            client.fetch_page(6)
    assert len(calls) == 1


def test_seed_argument_fetches_another_sequence() -> None:
    with mock_client(ok) as client:
        page = client.fetch_page(1, seed=f"{SEED}~2")
    assert page.seed == f"{SEED}~2"
    assert [a.raw for a in page.accepted] == GEN.users(f"{SEED}~2", 1, 3)


def test_client_waits_out_the_bundled_servers_quota() -> None:
    """End to end with real waits: the server's 429 (no Retry-After) is waited out until its window resets."""
    limits = ServerLimits(quota_users=6, quota_window_s=1.0)
    with (
        serve_in_thread(generator=GEN, limits=limits) as url,
        SourceClient(url, seed=SEED, page_size=3, settings=Settings(), rate_limit_backoff_s=0.2) as client,
    ):
        t0 = time.monotonic()
        pages = [client.fetch_page(p) for p in range(1, 5)]  # 12 users through a quota of 6 per second
        took = time.monotonic() - t0
    assert [len(p.accepted) for p in pages] == [3, 3, 3, 3]
    assert sum(p.rate_limited_s for p in pages) > 0 and took < 10


def test_close_ends_the_read_ahead() -> None:
    """A consumer that stops early ends the prefetched page's retries; close() ends any left, quietly."""
    calls: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "1":
            return ok(request)
        calls.append(time.monotonic())
        return httpx.Response(503, json={"error": "down"})

    client = mock_client(handler, retries=1000, backoff_s=0.02, max_backoff_s=0.02, sleep=None)
    pages = client.iter_pages(1, 5)
    assert next(pages).page == 1
    time.sleep(0.2)  # the read-ahead of page 2 is retrying
    assert calls
    pages.close()  # the consumer stops
    time.sleep(0.1)
    settled = len(calls)
    time.sleep(0.3)
    assert len(calls) == settled  # no more attempts
    client.close()


def test_close_interrupts_a_429_wait_and_logs_no_spurious_retry(caplog: pytest.LogCaptureFixture) -> None:
    entered = threading.Event()
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "1":
            return httpx.Response(429, json=QUOTA_BODY)  # waited out for 2.5 s and more
        entered.set()
        release.wait(5)
        raise httpx.ReadError("[Errno 9] Bad file descriptor")  # what a request cut by close() sees

    client = mock_client(handler, retries=5, sleep=None)
    errors: list[BaseException] = []

    def fetch(page: int) -> None:
        try:
            client.fetch_page(page)
        except SourceError as exc:
            errors.append(exc)

    waiting = threading.Thread(target=fetch, args=(1,))
    in_flight = threading.Thread(target=fetch, args=(2,))
    waiting.start()
    in_flight.start()
    assert entered.wait(5)
    time.sleep(0.1)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="userstream.source.client"):
        t0 = time.monotonic()
        client.close()
        release.set()
        waiting.join(5)
        in_flight.join(5)
        took = time.monotonic() - t0
    assert not waiting.is_alive() and not in_flight.is_alive() and took < 2
    assert len(errors) == 2 and all("cancelled" in str(e) for e in errors)
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]
    with pytest.raises(SourceError, match="cancelled"):
        client.fetch_page(3)  # a closed client does not try
