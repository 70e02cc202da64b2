"""A client for the randomuser.me API (the live one, or ours) that survives how it fails.

* explicit httpx timeouts; retries with exponential backoff and full jitter on 5xx, 429, timeouts,
  connection errors, malformed bodies and 200-with-empty-``results``; a ``Retry-After`` is honoured;
* pages through a seeded sequence (``seed`` + ``page``), so a replay fetches the same users;
* validates each record into :class:`~userstream.model.ApiUser`: a record that fails is returned as a
  :class:`RejectedRecord` with the reason and the raw payload (never raised, never dropped);
* a response that still fails after every retry raises :class:`~userstream.errors.SourceError`.

Typical use (the ingest stage)::

    with SourceClient() as client:               # base URL, seed, page size... from Settings
        for page in client.iter_pages(first=1, count=10):
            store(page.rows, page.rejected)
"""

from __future__ import annotations

import contextlib
import email.utils
import gc
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from userstream.config import Settings, get_settings
from userstream.errors import SourceError
from userstream.model import ApiUser, UserRow, to_row, validation_reason

__all__ = ["AcceptedUser", "PageResult", "RejectedRecord", "SourceClient"]

log = logging.getLogger(__name__)

_USER_AGENT = "userstream-source-client/0.1"


@dataclass(frozen=True, slots=True)
class AcceptedUser:
    """A record that validated: the payload as received, the typed user, and its flat row."""

    index: int  # position in the page's ``results``
    raw: dict[str, Any]
    user: ApiUser
    row: UserRow

    def raw_json(self) -> str:
        return msgspec.json.encode(self.raw).decode()


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that failed validation, kept with why (for ``staging.rejected`` / the DLQ)."""

    seed: str
    page: int
    index: int  # position in the page's ``results``
    reason: str
    raw: Any  # the decoded JSON value as received (may be null, a string, a partial object...)
    fetched_at: datetime

    def raw_json(self) -> str:
        return msgspec.json.encode(self.raw).decode()

    def as_db_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "page": self.page,
            "index": self.index,
            "reason": self.reason,
            "raw": self.raw_json(),
            "fetched_at": self.fetched_at,
        }


@dataclass(frozen=True, slots=True)
class PageResult:
    """One page of the seeded sequence: every record of the response is in ``accepted`` or ``rejected``."""

    seed: str
    page: int
    requested: int
    accepted: list[AcceptedUser]
    rejected: list[RejectedRecord]
    attempts: int
    fetched_at: datetime
    elapsed_s: float
    info: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[UserRow]:
        return [a.row for a in self.accepted]

    @property
    def users(self) -> list[ApiUser]:
        return [a.user for a in self.accepted]

    def __len__(self) -> int:
        return len(self.accepted) + len(self.rejected)


@dataclass(frozen=True, slots=True)
class _RawPage:
    page: int
    results: list[Any]
    info: dict[str, Any] | None
    attempts: int
    elapsed_s: float


class _Retryable(Exception):
    """A whole-response failure worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class SourceClient:
    """Fetches validated pages from a randomuser.me-compatible API.

    Every argument left at ``None`` comes from :class:`~userstream.config.Settings`
    (``USERSTREAM_SOURCE_URL``, ``_SOURCE_SEED``, ``_SOURCE_PAGE_SIZE``, ``_SOURCE_TIMEOUT_S``,
    ``_SOURCE_RETRIES``). ``retries`` counts retries after the first attempt.
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        seed: str | None = None,
        page_size: int | None = None,
        nats: Sequence[str] = (),
        timeout_s: float | None = None,
        retries: int | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_retry_after_s: float = 120.0,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        s = settings or get_settings()
        self.base_url = base_url or s.source_url
        self.seed = seed or s.source_seed
        self.page_size = page_size or s.source_page_size
        if not 1 <= self.page_size <= 5000:
            raise ValueError("page_size must be between 1 and 5000 (the API's limit)")
        self.nats = tuple(n.upper() for n in nats)
        self.retries = s.source_retries if retries is None else retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._jitter = random.Random()  # jitter must differ between clients: never seeded
        timeout = s.source_timeout_s if timeout_s is None else timeout_s
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=min(timeout, 5.0), read=timeout, write=timeout, pool=timeout),
            headers={"user-agent": _USER_AGENT, "accept": "application/json"},
            transport=transport,
            follow_redirects=True,
        )

    # --- public API -----------------------------------------------------------------------
    def fetch_page(self, page: int) -> PageResult:
        """Page ``page`` (1-based) of the client's seeded sequence; raises :class:`SourceError` when the
        response still fails after every retry (or fails in a way retrying cannot fix, like a 404)."""
        return self._validate(self._fetch_raw(page))

    def iter_pages(self, first: int = 1, count: int | None = None, *, prefetch: bool = True) -> Iterator[PageResult]:
        """Pages ``first``, ``first + 1``, ... (``count`` of them, or forever), one request each.

        With ``prefetch`` the next page is requested while the current one is validated and consumed
        (one background thread, one page ahead): the server's time and ours overlap. A failure of the
        prefetched page is raised when that page is reached, not before.
        """
        pages: Iterator[int] = itertools.count(first) if count is None else iter(range(first, first + count))
        if not prefetch:
            for page in pages:
                yield self.fetch_page(page)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-prefetch")
        try:
            nxt = next(pages, None)
            pending = pool.submit(self._fetch_raw, nxt) if nxt is not None else None
            while pending is not None:
                raw = pending.result()
                nxt = next(pages, None)
                pending = pool.submit(self._fetch_raw, nxt) if nxt is not None else None
                yield self._validate(raw)
        finally:
            # The consumer may stop early: do not wait for (or surface) a page nobody asked for.
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------
    def params(self, page: int) -> dict[str, str]:
        p = {"results": str(self.page_size), "seed": self.seed, "page": str(page)}
        if self.nats:
            p["nat"] = ",".join(self.nats)
        return p

    def _fetch_raw(self, page: int) -> _RawPage:
        if page < 1:
            raise ValueError("pages start at 1")
        t0 = time.monotonic()
        attempts = 0

        def attempt() -> tuple[list[Any], dict[str, Any] | None]:
            nonlocal attempts
            attempts += 1
            return self._get(page)

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            results, info = retrying(attempt)
        except _Retryable as exc:
            raise SourceError(
                f"{self.base_url} page {page} (seed {self.seed!r}) failed after {attempts} attempts; "
                f"last error: {exc.reason}",
                fix="check that the API is reachable (USERSTREAM_SOURCE_URL; `userstream source serve` runs "
                "a local one) or raise USERSTREAM_SOURCE_RETRIES",
            ) from exc
        return _RawPage(page, results, info, attempts, time.monotonic() - t0)

    def _get(self, page: int) -> tuple[list[Any], dict[str, Any] | None]:
        try:
            resp = self._http.get(self.base_url, params=self.params(page))
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed: {exc or type(exc).__name__}") from exc
        status = resp.status_code
        if status == 429 or status >= 500:
            detail = _error_text(resp.content)
            retry_after = self._retry_after(resp.headers.get("retry-after"))
            raise _Retryable(f"HTTP {status}{': ' + detail if detail else ''}", retry_after)
        if status != 200:
            # 4xx other than 429 will not get better by asking again: fail now, with the body.
            raise SourceError(
                f"{resp.request.url} answered HTTP {status}: {_error_text(resp.content) or resp.text[:200]}",
                fix="check USERSTREAM_SOURCE_URL (it should end in /api/ or /api/1.4/)",
            )
        try:
            with _gc_paused():
                doc = msgspec.json.decode(resp.content)
        except msgspec.DecodeError as exc:
            raise _Retryable(f"malformed body ({len(resp.content)} bytes): {exc}") from exc
        if not isinstance(doc, dict):
            raise _Retryable(f"body is a JSON {type(doc).__name__}, not an object")
        results = doc.get("results")
        if results is None and "error" in doc:
            raise _Retryable(f"API error: {doc['error']}")
        if not isinstance(results, list):
            raise _Retryable("body has no 'results' list")
        if not results:
            # Seen on the live API in 2026: 200 with "results": []. Asking again usually works.
            raise _Retryable("200 with an empty 'results' list")
        info = doc.get("info")
        return results, info if isinstance(info, dict) else None

    def _validate(self, raw: _RawPage) -> PageResult:
        page, results = raw.page, raw.results
        fetched_at = datetime.now(UTC)
        accepted: list[AcceptedUser] = []
        rejected: list[RejectedRecord] = []
        with _gc_paused():
            self._validate_into(page, results, fetched_at, accepted, rejected)
        if rejected:
            log.warning("page %d: %d of %d records rejected", page, len(rejected), len(results))
        return PageResult(
            seed=self.seed,
            page=page,
            requested=self.page_size,
            accepted=accepted,
            rejected=rejected,
            attempts=raw.attempts,
            fetched_at=fetched_at,
            elapsed_s=raw.elapsed_s,
            info=raw.info,
        )

    def _validate_into(
        self,
        page: int,
        results: list[Any],
        fetched_at: datetime,
        accepted: list[AcceptedUser],
        rejected: list[RejectedRecord],
    ) -> None:
        for index, raw in enumerate(results):
            if not isinstance(raw, dict):
                reason = f"record is a JSON {'null' if raw is None else type(raw).__name__}, not an object"
                rejected.append(RejectedRecord(self.seed, page, index, reason, raw, fetched_at))
                continue
            try:
                user = ApiUser.model_validate(raw)
            except ValidationError as exc:
                rejected.append(RejectedRecord(self.seed, page, index, validation_reason(exc), raw, fetched_at))
                continue
            accepted.append(AcceptedUser(index, raw, user, to_row(user, fetched_at)))

    def _retry_after(self, value: str | None) -> float | None:
        """Seconds from a Retry-After header: a number (fractions accepted) or an HTTP date."""
        if not value:
            return None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            seconds = (when - datetime.now(UTC)).total_seconds()
        return min(max(seconds, 0.0), self.max_retry_after_s)

    def _wait(self, state: RetryCallState) -> float:
        # Full jitter (uniform in [0, min(cap, base * 2^n)]) spreads clients out; a Retry-After is a floor.
        n = state.attempt_number
        backoff = self._jitter.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (n - 1)))
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return max(exc.retry_after, backoff)
        return backoff

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning("source attempt %d failed (%s); retrying in %.2fs", state.attempt_number, exc, wait)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a page's ~70,000 objects are built: none of them form cycles, and the
    collector's repeated full passes over the growing heap otherwise cost 4x the validation itself."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _error_text(body: bytes) -> str:
    """The ``error`` message of an API error body, if it is one."""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("error"), str):
        return str(doc["error"])
    return ""
