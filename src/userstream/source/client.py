"""A client for the randomuser.me API (the live one, or ours) that survives how it fails.

* explicit httpx timeouts; retries with exponential backoff and full jitter on 5xx, timeouts, connection
  errors, malformed bodies and 200-with-empty-``results`` (``retries`` of them);
* a 429 is waited out on its own budget of time (about the provider's quota window): its ``Retry-After``
  when sent, else a jittered backoff of seconds, since the live site sends none and resets on its own;
* pages through a seeded sequence (``seed`` + ``page``), so a replay fetches the same users; a page the
  server answers as another one (``info.page``: the live site serves page 1 above page 10,000) raises
  :class:`PageOutOfRange` instead of passing page 1's users off as new ones;
* :meth:`SourceClient.close` ends retry loops in flight (the read-ahead of ``iter_pages`` included);
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
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from pydantic import ValidationError

from userstream.config import Settings, get_settings
from userstream.errors import SourceError
from userstream.model import ApiUser, UserRow, to_row, validation_reason
from userstream.source.decode import decode_body, decode_body_lenient, decode_user_row

__all__ = ["AcceptedUser", "PageOutOfRange", "PageResult", "RejectedRecord", "SourceClient"]

log = logging.getLogger(__name__)

_USER_AGENT = "userstream-source-client/0.1"


@dataclass(frozen=True, slots=True)
class AcceptedUser:
    """A record that validated: the payload as received (its JSON text) and its flat row."""

    index: int  # position in the page's ``results``
    raw_text: str
    row: UserRow

    def raw_json(self) -> str:
        return self.raw_text

    @property
    def raw(self) -> dict[str, Any]:
        value: dict[str, Any] = msgspec.json.decode(self.raw_text)
        return value

    @property
    def user(self) -> ApiUser:
        """The typed user (validated again on each access: the hot path needs only the row)."""
        return ApiUser.model_validate(self.raw)


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
    rate_limited_s: float = 0.0  # time spent waiting out 429s for this page

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
    seed: str
    page: int
    results: list[msgspec.Raw]
    info: dict[str, Any] | None
    attempts: int
    elapsed_s: float
    rate_limited_s: float


class PageOutOfRange(SourceError):
    """The page is past the end of the seed's sequence: above ``max_page`` (never asked), or answered as
    another page (``info.page``), as the live site answers page 1 above page 10,000."""

    def __init__(self, seed: str, page: int, served: int | None) -> None:
        said = f"answered as page {served}" if served is not None else "above the provider's last page"
        super().__init__(
            f"page {page} of seed {seed!r} is {said}: the seed's sequence ends before it",
            fix="continue with another seed (ingest does: <seed>~2, <seed>~3, ...)",
        )
        self.seed = seed
        self.page = page
        self.served = served


class _Retryable(Exception):
    """A whole-response failure worth another attempt."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _RateLimited(_Retryable):
    """HTTP 429: waited out on the rate-limit budget, not counted as a failure."""


def _encoding_problem(record: bytes) -> str | None:
    """Why a record's bytes are not text: the body parser checks escapes (a lone surrogate fails the page as
    malformed) but not raw bytes inside strings; None when they are UTF-8."""
    try:
        record.decode()
    except UnicodeDecodeError as exc:
        return f"record is not valid UTF-8: {exc.reason} at byte {exc.start}"
    return None


class SourceClient:
    """Fetches validated pages from a randomuser.me-compatible API.

    Every argument left at ``None`` comes from :class:`~userstream.config.Settings`
    (``USERSTREAM_SOURCE_URL``, ``_SOURCE_SEED``, ``_SOURCE_PAGE_SIZE``, ``_SOURCE_TIMEOUT_S``,
    ``_SOURCE_RETRIES``, ``_SOURCE_MAX_PAGE``). ``retries`` counts retries after the first attempt (5xx,
    timeouts, broken bodies); 429s are waited out for up to ``rate_limit_wait_s`` seconds per page in total
    (default: the quota window, ``USERSTREAM_SOURCE_QUOTA_WINDOW_S``, plus 30 s, so the window resets
    inside it). ``sleep`` replaces the waits (tests); by default they end at once when the client closes.
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
        rate_limit_wait_s: float | None = None,
        rate_limit_backoff_s: float = 5.0,
        max_rate_limit_backoff_s: float = 60.0,
        max_page: int | None = None,
        settings: Settings | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] | None = None,
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
        self.rate_limit_wait_s = s.source_quota_window_s + 30.0 if rate_limit_wait_s is None else rate_limit_wait_s
        self.rate_limit_backoff_s = rate_limit_backoff_s
        self.max_rate_limit_backoff_s = max_rate_limit_backoff_s
        self.max_page = s.source_max_page if max_page is None else max_page
        self._sleep = sleep
        self._jitter = random.Random()  # jitter must differ between clients: never seeded
        # close() sets every fetch's cancel event: retry loops in other threads end at their next step
        self._closed = False
        self._active: set[threading.Event] = set()
        self._lock = threading.Lock()
        timeout = s.source_timeout_s if timeout_s is None else timeout_s
        self._http = httpx.Client(
            timeout=httpx.Timeout(connect=min(timeout, 5.0), read=timeout, write=timeout, pool=timeout),
            headers={"user-agent": _USER_AGENT, "accept": "application/json"},
            transport=transport,
            follow_redirects=True,
        )

    # --- public API -----------------------------------------------------------------------
    def fetch_page(self, page: int, *, seed: str | None = None, cancel: threading.Event | None = None) -> PageResult:
        """Page ``page`` (1-based) of the seeded sequence (the client's seed unless ``seed`` is given).

        Raises :class:`SourceError` when the response still fails after every retry (or fails in a way
        retrying cannot fix, like a 404), :class:`PageOutOfRange` past the sequence's end. Setting
        ``cancel`` (or closing the client) ends the retries: :class:`SourceError` at the next step.
        """
        return self._validate(self._fetch_raw(page, seed or self.seed, cancel))

    def iter_pages(
        self, first: int = 1, count: int | None = None, *, prefetch: bool = True
    ) -> Generator[PageResult, None, None]:
        """Pages ``first``, ``first + 1``, ... (``count`` of them, or forever), one request each.

        With ``prefetch`` the next page is requested while the current one is validated and consumed
        (one background thread, one page ahead): the server's time and ours overlap. A failure of the
        prefetched page is raised when that page is reached, not before; a consumer that stops early ends
        the read-ahead's retries with it.
        """
        pages: Iterator[int] = itertools.count(first) if count is None else iter(range(first, first + count))
        if not prefetch:
            for page in pages:
                yield self.fetch_page(page)
            return
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="source-prefetch")
        cancel = threading.Event()
        try:
            nxt = next(pages, None)
            pending = pool.submit(self._fetch_raw, nxt, self.seed, cancel) if nxt is not None else None
            while pending is not None:
                raw = pending.result()
                nxt = next(pages, None)
                pending = pool.submit(self._fetch_raw, nxt, self.seed, cancel) if nxt is not None else None
                yield self._validate(raw)
        finally:
            # The consumer may stop early: do not wait for (or surface, or retry) a page nobody asked for.
            cancel.set()
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for cancel in self._active:
                cancel.set()
        self._http.close()

    def __enter__(self) -> SourceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------
    def params(self, page: int, seed: str | None = None) -> dict[str, str]:
        p = {"results": str(self.page_size), "seed": seed or self.seed, "page": str(page)}
        if self.nats:
            p["nat"] = ",".join(self.nats)
        return p

    def _fetch_raw(self, page: int, seed: str, cancel: threading.Event | None = None) -> _RawPage:
        if page < 1:
            raise ValueError("pages start at 1")
        if page > self.max_page:
            raise PageOutOfRange(seed, page, None)  # never asked: the live site would answer page 1
        cancel = cancel or threading.Event()
        with self._lock:
            if self._closed:
                cancel.set()
            self._active.add(cancel)
        try:
            return self._attempts(page, seed, cancel)
        finally:
            with self._lock:
                self._active.discard(cancel)

    def _attempts(self, page: int, seed: str, cancel: threading.Event) -> _RawPage:
        t0 = time.monotonic()
        attempts = failures = limited = 0
        limited_s = 0.0
        where = f"{self.base_url} page {page} (seed {seed!r})"
        while True:
            if cancel.is_set():
                raise SourceError(f"{where}: cancelled (the client was closed or its caller stopped)")
            attempts += 1
            try:
                results, info = self._get(page, seed)
            except _RateLimited as exc:
                limited += 1
                left = self.rate_limit_wait_s - limited_s
                if left <= 0:
                    raise SourceError(
                        f"{where} still rate limited after waiting {limited_s:.0f}s over {limited} answers; "
                        f"last: {exc.reason}",
                        fix="another client may share this address's quota; lower USERSTREAM_SOURCE_QUOTA_USERS "
                        "or wait for the provider's window to reset",
                    ) from exc
                wait = min(self._rate_limit_wait(limited, exc.retry_after), left)
                limited_s += wait
                reason = exc.reason
            except _Retryable as exc:
                failures += 1
                if failures > self.retries:
                    if cancel.is_set():  # a closed connection's error, not the server's
                        raise SourceError(f"{where}: cancelled (the client was closed or its caller stopped)") from exc
                    raise SourceError(
                        f"{where} failed after {attempts} attempts; last error: {exc.reason}",
                        fix="check that the API is reachable (USERSTREAM_SOURCE_URL; `userstream source serve` "
                        "runs a local one) or raise USERSTREAM_SOURCE_RETRIES",
                    ) from exc
                wait = self._backoff(failures, exc.retry_after)
                reason = exc.reason
            else:
                served = info.get("page") if info is not None else None
                if isinstance(served, int) and not isinstance(served, bool) and served != page:
                    raise PageOutOfRange(seed, page, served)
                return _RawPage(seed, page, results, info, attempts, time.monotonic() - t0, limited_s)
            if cancel.is_set():
                continue  # closing made this attempt fail: end quietly, no "retrying" line
            log.warning("source attempt %d of %s failed (%s); retrying in %.2fs", attempts, where, reason, wait)
            self._pause(wait, cancel)

    def _get(self, page: int, seed: str) -> tuple[list[msgspec.Raw], dict[str, Any] | None]:
        try:
            resp = self._http.get(self.base_url, params=self.params(page, seed))
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from exc
        except (httpx.TransportError, RuntimeError) as exc:
            # RuntimeError: httpx's "client has been closed" when close() won the race with this attempt
            raise _Retryable(f"connection failed: {exc or type(exc).__name__}") from exc
        status = resp.status_code
        if status == 429 or status >= 500:
            detail = _error_text(resp.content)
            retry_after = self._retry_after(resp.headers.get("retry-after"))
            kind = _RateLimited if status == 429 else _Retryable
            raise kind(f"HTTP {status}{': ' + detail if detail else ''}", retry_after)
        if status != 200:
            # 4xx other than 429 will not get better by asking again: fail now, with the body.
            raise SourceError(
                f"{resp.request.url} answered HTTP {status}: {_error_text(resp.content) or resp.text[:200]}",
                fix="check USERSTREAM_SOURCE_URL (it should end in /api/ or /api/1.4/)",
            )
        try:
            with _gc_paused():
                body = decode_body(resp.content)
        except msgspec.DecodeError as exc:
            lenient = decode_body_lenient(resp.content)
            if lenient is None:
                raise _Retryable(f"malformed body ({len(resp.content)} bytes): {exc}") from exc
            body = lenient  # JSON after all, with lone surrogates msgspec refuses: those records are rejected
        except msgspec.ValidationError as exc:
            raise _Retryable(f"body is not an object with a 'results' list: {exc}") from exc
        results = body.results
        if results is None and body.error is not None:
            raise _Retryable(f"API error: {body.error}")
        if results is None:
            raise _Retryable("body has no 'results' list")
        if not results:
            # Seen on the live API in 2026: 200 with "results": []. Asking again usually works.
            raise _Retryable("200 with an empty 'results' list")
        return results, body.info if isinstance(body.info, dict) else None

    def _validate(self, raw: _RawPage) -> PageResult:
        page, results, seed = raw.page, raw.results, raw.seed
        fetched_at = datetime.now(UTC)
        accepted: list[AcceptedUser] = []
        rejected: list[RejectedRecord] = []
        with _gc_paused():
            self._validate_into(seed, page, results, fetched_at, accepted, rejected)
        if rejected:
            log.warning("page %d: %d of %d records rejected", page, len(rejected), len(results))
        return PageResult(
            seed=seed,
            page=page,
            requested=self.page_size,
            accepted=accepted,
            rejected=rejected,
            attempts=raw.attempts,
            fetched_at=fetched_at,
            elapsed_s=raw.elapsed_s,
            info=raw.info,
            rate_limited_s=raw.rate_limited_s,
        )

    def _validate_into(
        self,
        seed: str,
        page: int,
        results: list[msgspec.Raw],
        fetched_at: datetime,
        accepted: list[AcceptedUser],
        rejected: list[RejectedRecord],
    ) -> None:
        for index, record in enumerate(results):
            problem = _encoding_problem(bytes(record))
            if problem is not None:  # kept as received, escaped, so that nothing is lost
                kept = bytes(record).decode("utf-8", "backslashreplace")
                rejected.append(RejectedRecord(seed, page, index, problem, kept, fetched_at))
                continue
            text = bytes(record).decode()
            row = decode_user_row(record, fetched_at)
            if row is not None:
                accepted.append(AcceptedUser(index, text, row))
                continue
            # the slow path: pydantic accepts the record after all, or says why it is rejected
            try:
                raw = msgspec.json.decode(record)
            except msgspec.DecodeError as exc:  # a lone surrogate (a lenient page's record): no text holds it
                reason = f"record holds a lone UTF-16 surrogate escape, which no text can carry ({exc})"
                rejected.append(RejectedRecord(seed, page, index, reason, text, fetched_at))
                continue
            if not isinstance(raw, dict):
                reason = f"record is a JSON {'null' if raw is None else type(raw).__name__}, not an object"
                rejected.append(RejectedRecord(seed, page, index, reason, raw, fetched_at))
                continue
            try:
                user = ApiUser.model_validate(raw)
            except ValidationError as exc:
                rejected.append(RejectedRecord(seed, page, index, validation_reason(exc), raw, fetched_at))
                continue
            accepted.append(AcceptedUser(index, text, to_row(user, fetched_at)))

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

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        # Full jitter (uniform in [0, min(cap, base * 2^n)]) spreads clients out; a Retry-After is a floor.
        backoff = self._jitter.uniform(0, min(self.max_backoff_s, self.backoff_s * 2.0 ** (failures - 1)))
        return backoff if retry_after is None else max(retry_after, backoff)

    def _rate_limit_wait(self, limited: int, retry_after: float | None) -> float:
        """A sent Retry-After is the wait; without one (the live site's 429), an exponential backoff of
        seconds with "equal" jitter: never less than half the step, so never a tight loop."""
        if retry_after is not None:
            return max(retry_after, self._jitter.uniform(0, self.backoff_s))
        step = min(self.max_rate_limit_backoff_s, self.rate_limit_backoff_s * 2.0 ** (limited - 1))
        return step / 2 + self._jitter.uniform(0, step / 2)

    def _pause(self, seconds: float, cancel: threading.Event) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        else:
            cancel.wait(seconds)  # close() or the caller's cancel ends it at once


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
