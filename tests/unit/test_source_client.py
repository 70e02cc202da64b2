"""The resilient client against the real (in-process) server, one fault at a time, then all at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from uuid import UUID

import httpx
import pytest

from userstream.config import Settings
from userstream.errors import SourceError
from userstream.model import ApiUser, to_row
from userstream.source import FaultConfig, PageResult, SourceClient, UserGenerator, serve_in_thread

GEN = UserGenerator()
SEED = "client-tests"


class Sleeps:
    """Records the client's back-off waits instead of sleeping them (keeps the tests fast)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(url: str, sleeps: Callable[[float], None] | None = None, **kw: Any) -> SourceClient:
    opts: dict[str, Any] = {
        "seed": SEED,
        "page_size": 50,
        "timeout_s": 5.0,
        "retries": 8,
        "backoff_s": 0.001,
        "max_backoff_s": 0.005,
        "settings": Settings(),
        "sleep": sleeps or Sleeps(),
    }
    opts.update(kw)
    return SourceClient(url, **opts)


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    stack: list[Any] = []

    def start(faults: FaultConfig | None = None) -> str:
        ctx = serve_in_thread(faults, generator=GEN)
        stack.append(ctx)
        return ctx.__enter__()

    yield start
    for ctx in reversed(stack):
        ctx.__exit__(None, None, None)


def expected_rows(page: int, results: int, seed: str = SEED) -> list[Any]:
    return [to_row(ApiUser.model_validate(u)) for u in GEN.users(seed, page, results)]


def assert_page_is_exact(result: PageResult, results: int) -> None:
    """Every record of the page is accepted xor rejected, and accepted ones are the generator's users."""
    expected = expected_rows(result.page, results)
    accepted = {a.index: a for a in result.accepted}
    rejected = {r.index: r for r in result.rejected}
    assert not accepted.keys() & rejected.keys()
    assert sorted(accepted.keys() | rejected.keys()) == list(range(results))
    for index, acc in accepted.items():
        want = expected[index]
        assert acc.row.id == want.id and acc.row.email == want.email and acc.row.address == want.address
        assert acc.row.fetched_at == result.fetched_at
    for rej in rejected.values():
        assert rej.reason and rej.page == result.page and rej.seed == SEED


def test_clean_pages_match_the_generator(serve: Callable[..., str]) -> None:
    url = serve()
    with make_client(url) as client:
        pages = list(client.iter_pages(1, 3))
        assert [p.page for p in pages] == [1, 2, 3]
        for p in pages:
            assert p.attempts == 1 and not p.rejected and len(p.rows) == 50
            assert_page_is_exact(p, 50)
            assert p.info == {"seed": SEED, "results": 50, "page": p.page, "version": "1.4"}
        without_prefetch = list(client.iter_pages(1, 3, prefetch=False))
        assert [p.rows[0].id for p in without_prefetch] == [p.rows[0].id for p in pages]
        assert pages[0].accepted[0].raw_json().startswith('{"gender":')


def test_retries_5xx(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(error_rate=0.5, seed=1))
    sleeps = Sleeps()
    with make_client(url, sleeps) as client:
        pages = list(client.iter_pages(1, 10))
    assert sum(p.attempts for p in pages) > 10  # some pages needed retries...
    for p in pages:  # ...and all arrived whole
        assert not p.rejected
        assert_page_is_exact(p, 50)
    assert len(sleeps.waits) == sum(p.attempts for p in pages) - 10
    assert all(0 <= w <= 0.005 for w in sleeps.waits)  # jittered, capped backoff


def test_gives_up_with_a_clear_error(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(error_rate=1.0, seed=1))
    with make_client(url, retries=2) as client, pytest.raises(SourceError) as info:
        client.fetch_page(4)
    msg = str(info.value)
    assert "page 4" in msg and "failed after 3 attempts" in msg and "HTTP 50" in msg
    assert "tweet us" in msg  # the API's error body is passed on
    assert info.value.fix and "USERSTREAM_SOURCE_URL" in info.value.fix


def test_honours_retry_after(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(rate_limit_rate=0.5, retry_after_s=0.25, seed=2))
    sleeps = Sleeps()
    with make_client(url, sleeps) as client:
        pages = list(client.iter_pages(1, 8, prefetch=False))
    assert sleeps.waits, "no 429 drawn: change the fault seed"
    assert all(w >= 0.25 for w in sleeps.waits)  # every retry waited at least Retry-After
    for p in pages:
        assert_page_is_exact(p, 50)


def test_retry_after_really_waits(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(rate_limit_rate=0.5, retry_after_s=0.2, seed=2))
    with make_client(url, sleeps=time.sleep) as client:
        t0 = time.monotonic()
        pages = list(client.iter_pages(1, 4, prefetch=False))
        elapsed = time.monotonic() - t0
    retries = sum(p.attempts for p in pages) - len(pages)
    assert retries >= 1
    assert elapsed >= 0.2 * retries


def test_retries_empty_results(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(empty_rate=0.6, seed=3))
    with make_client(url) as client:
        pages = list(client.iter_pages(1, 6))
    assert sum(p.attempts for p in pages) > 6
    for p in pages:
        assert_page_is_exact(p, 50)


def test_retries_malformed_bodies(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(malformed_rate=0.6, seed=4))
    with make_client(url) as client:
        pages = list(client.iter_pages(1, 8))
    assert sum(p.attempts for p in pages) > 8
    for p in pages:
        assert_page_is_exact(p, 50)


def test_retries_timeouts(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(latency_s=0.6, latency_rate=0.5, seed=5))
    with make_client(url, timeout_s=0.2) as client:
        pages = list(client.iter_pages(1, 4, prefetch=False))
    assert sum(p.attempts for p in pages) > 4
    for p in pages:
        assert_page_is_exact(p, 50)


def test_all_timeouts_raise(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(latency_s=0.5, seed=5))
    with make_client(url, timeout_s=0.1, retries=1) as client, pytest.raises(SourceError, match="timed out"):
        client.fetch_page(1)


def test_quarantines_bad_records_with_reasons(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig(bad_record_rate=0.2, seed=6))
    with make_client(url, page_size=300) as client:
        page = client.fetch_page(1)
    assert page.attempts == 1
    assert 20 <= len(page.rejected) <= 110
    assert_page_is_exact(page, 300)
    expected = GEN.users(SEED, 1, 300)
    reasons = " | ".join(r.reason for r in page.rejected)
    for word in ("Field required", "valid integer", "valid string", "UUID", "not an object"):
        assert word in reasons
    for rej in page.rejected:
        assert rej.raw != expected[rej.index]  # the corrupted payload is kept as received
        assert rej.as_db_dict()["raw"] == rej.raw_json()


def test_ten_percent_faults_every_good_record_exactly_once(serve: Callable[..., str]) -> None:
    url = serve(FaultConfig.mixed(0.10, retry_after_s=0.01, seed=7))
    pages_n, size = 40, 100
    with make_client(url, page_size=size) as client:
        pages = list(client.iter_pages(1, pages_n))
    assert [p.page for p in pages] == list(range(1, pages_n + 1))
    assert sum(p.attempts for p in pages) > pages_n  # response faults happened and were retried
    ids = [row.id for p in pages for row in p.rows]
    assert len(ids) == len(set(ids))  # no good record twice
    for p in pages:
        assert_page_is_exact(p, size)  # no good record lost: every index accepted xor quarantined
    rejected = sum(len(p.rejected) for p in pages)
    assert 0.05 * pages_n * size < rejected < 0.15 * pages_n * size


def test_connection_refused_raises(serve: Callable[..., str]) -> None:
    url = serve()
    dead = url.replace(url.split(":")[-1].split("/")[0], "1")  # port 1: nothing listens
    with make_client(dead, retries=1) as client, pytest.raises(SourceError, match="connection failed"):
        client.fetch_page(1)


# --- transport-level cases (httpx.MockTransport): behaviours the server has no switch for -------------


def mock_client(handler: Callable[[httpx.Request], httpx.Response], **kw: Any) -> SourceClient:
    return make_client("http://mock/api/", transport=httpx.MockTransport(handler), **kw)


def test_404_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(404, json={"error": "not found"})

    with mock_client(handler) as client, pytest.raises(SourceError, match="HTTP 404"):
        client.fetch_page(1)
    assert len(calls) == 1


def test_request_parameters() -> None:
    seen: list[httpx.URL] = []
    body = {"results": GEN.users(SEED, 3, 2, ["GB"]), "info": {}}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json=body)

    with mock_client(handler, page_size=2, nats=["gb"]) as client:
        client.fetch_page(3)
    params = dict(seen[0].params)
    assert params == {"results": "2", "seed": SEED, "page": "3", "nat": "GB"}


def test_non_object_records_are_rejected_not_raised() -> None:
    good = GEN.users(SEED, 1, 2)

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"results": [good[0], None, "x", 7, good[1]]})

    with mock_client(handler) as client:
        page = client.fetch_page(1)
    assert [a.index for a in page.accepted] == [0, 4]
    assert [(r.index, r.raw) for r in page.rejected] == [(1, None), (2, "x"), (3, 7)]
    assert page.rejected[0].reason == "record is a JSON null, not an object"
    assert len(page) == 5


def test_a_lone_surrogate_costs_its_record_not_the_page() -> None:
    """msgspec refuses a body with a lone surrogate escape; the page is not retried for ever: the record
    with it is rejected (kept escaped, so nothing is lost), the others land."""
    good = GEN.users(SEED, 1, 3)
    bad = json.dumps({**good[1], "phone": "\ud800"})  # ensure_ascii: the escape as a server sends it
    text = '{"results": [' + ", ".join([json.dumps(good[0]), bad, json.dumps(good[2])]) + '], "info": {"page": 1}}'
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})

    with mock_client(handler) as client:
        page = client.fetch_page(1)
    assert calls == 1
    assert [a.index for a in page.accepted] == [0, 2]
    assert [a.row.id for a in page.accepted] == [UUID(good[0]["login"]["uuid"]), UUID(good[2]["login"]["uuid"])]
    (rejected,) = page.rejected
    assert rejected.index == 1 and "lone UTF-16 surrogate" in rejected.reason
    assert "\\ud800" in rejected.raw_json() and json.loads(json.loads(rejected.raw_json()))["phone"] == "\ud800"


def test_retry_after_http_date_and_cap() -> None:
    with mock_client(lambda r: httpx.Response(200)) as client:
        later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
        assert 25 <= (client._retry_after(later) or 0) <= 30
        assert client._retry_after("100000") == client.max_retry_after_s
        assert client._retry_after("-5") == 0.0
        assert client._retry_after("soon") is None
        assert client._retry_after(None) is None


def test_prefetched_failure_is_not_raised_if_never_reached() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "3":
            return httpx.Response(404, json={"error": "gone"})
        return httpx.Response(200, json={"results": GEN.users(SEED, 1, 1)})

    with mock_client(handler) as client:
        seen = []
        for page in client.iter_pages(1, 5):
            seen.append(page.page)
            if page.page == 2:
                break
        assert seen == [1, 2]
        with pytest.raises(SourceError, match="HTTP 404"):
            list(client.iter_pages(1, 5))


def test_page_size_bounds() -> None:
    with pytest.raises(ValueError, match="page_size"):
        make_client("http://mock/api/", page_size=5001)
