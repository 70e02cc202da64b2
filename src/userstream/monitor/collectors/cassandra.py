"""Cassandra: the exact row count (background, cached), the newest country windows and the latency sample.

One driver session, shared by the page's queries and the background count, inside a :class:`Reconnecting`
holder. Before, the session was built under a lock: a ``connect()`` that never returned (a node that
accepts TCP while starting) held that lock, so the section answered "no answer within 4s" for good, and
a session kept across a restart waited on the driver's exponential reconnection schedule (up to 10 min).
Now a driver error (other than a refused query) shuts the session down and the next refresh reconnects.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from cassandra import RequestValidationException
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import ConstantReconnectionPolicy
from pydantic import Field

from userstream.config import Settings
from userstream.monitor.collectors.base import BackgroundValue, Reconnecting, epoch, short
from userstream.monitor.models import CassandraSection, CountryWindow, LatencySection, Section, StoredUser
from userstream.monitor.stages import latency_histogram
from userstream.runtime.base import tcp_open
from userstream.store.cassandra import cluster_options

__all__ = ["CassandraCollector", "CassandraResult"]

COUNT_PROFILE = "userstream-monitor-count"
ExecuteConcurrent = Callable[..., Iterable[Any]]


class CassandraResult(Section):
    """The cassandra and latency sections, collected together (one session, one sample)."""

    cassandra: CassandraSection = Field(default_factory=CassandraSection)
    latency: LatencySection = Field(default_factory=LatencySection)


def _fatal(exc: BaseException) -> bool:
    # the server refused one query (missing table, bad CQL): the session itself is fine
    return not isinstance(exc, RequestValidationException)


class CassandraCollector:
    def __init__(
        self,
        settings: Settings,
        recent_ids: Callable[[int], list[UUID]],
        *,
        sample_size: int = 100,
        count_wait_s: float = 2.0,
        connect: Callable[[], Session] | None = None,
        execute_concurrent: ExecuteConcurrent = execute_concurrent_with_args,
    ) -> None:
        self.settings = settings
        self.sample_size = sample_size
        self.count_wait_s = count_wait_s
        self._recent_ids = recent_ids
        self._concurrent = execute_concurrent
        self.session: Reconnecting[Session] = Reconnecting(
            "cassandra session", connect or self._connect, _shutdown, fatal=_fatal
        )
        self.count = BackgroundValue(
            self._count,
            min_interval_s=settings.dashboard_count_interval_s,
            name="cassandra-count",
            hung_after_s=300.0,
            on_hung=lambda: self.session.failed(TimeoutError("count hung")),
        )

    def _connect(self) -> Session:
        s = self.settings
        ours = s.cassandra_contact_points is None
        if ours and not any(tcp_open(h, s.cassandra_port, 1.0) for h in s.cassandra_hosts):
            raise ConnectionError(f"Cassandra {','.join(s.cassandra_hosts)}:{s.cassandra_port} unreachable")
        logging.getLogger("cassandra").setLevel(logging.ERROR)  # no reconnect warnings in our log
        # short client timeouts for the page's queries; a long one for the background count
        profiles = {
            EXEC_PROFILE_DEFAULT: ExecutionProfile(request_timeout=5.0),
            COUNT_PROFILE: ExecutionProfile(request_timeout=60.0),
        }
        cluster = Cluster(
            s.cassandra_hosts,
            connect_timeout=3,
            control_connection_timeout=3,
            execution_profiles=profiles,
            reconnection_policy=ConstantReconnectionPolicy(2.0, max_attempts=None),
            **cluster_options(s, "monitor"),
        )
        try:
            return cluster.connect()
        except BaseException:
            cluster.shutdown()
            raise

    def close(self) -> None:
        self.session.close()

    def _count(self) -> int:
        """Exact row count by token range: ``count(*)`` over the whole table times out on the server at
        millions of rows; 64 sub-range counts each stay well within the read timeout."""
        with self.session.use() as session:
            ks = self.settings.cassandra_keyspace
            stmt = session.prepare(f"SELECT count(*) FROM {ks}.created_users WHERE token(id) > ? AND token(id) <= ?")
            lo, hi, splits = -(2**63), 2**63 - 1, 64
            step = (hi - lo) // splits
            bounds = [(lo + i * step, hi if i == splits - 1 else lo + (i + 1) * step) for i in range(splits)]
            results = self._concurrent(
                session, stmt, bounds, concurrency=2, raise_on_first_error=True, execution_profile=COUNT_PROFILE
            )
            return sum(int(r.result_or_exc.one()[0]) for r in results)

    def collect(self) -> CassandraResult:
        out = CassandraResult()
        try:
            out.cassandra = self.collect_cassandra()
        except Exception as exc:
            out.cassandra = CassandraSection(error=short(exc), measured_at=time.time())
            out.latency = LatencySection(error=out.cassandra.error, measured_at=time.time())
            return out
        try:
            out.latency, out.cassandra.latest_users = self.collect_latency()
        except Exception as exc:
            out.latency = LatencySection(error=short(exc), measured_at=time.time())
        return out

    def collect_cassandra(self) -> CassandraSection:
        with self.session.use() as session:
            ks = self.settings.cassandra_keyspace
            section = CassandraSection(count_method="exact, by 64 token ranges, cached")
            count, counted_at, count_error = self.count.get(wait_s=self.count_wait_s)
            section.users, section.users_measured_at = count, counted_at
            section.count_error = count_error if count is None or count_error else None
            if count is None and count_error is None:
                section.count_error = "counting..."
            # the clustering order is window_start DESC: PER PARTITION LIMIT reads each country's newest windows
            try:
                rows: Sequence[Any] = list(
                    session.execute(
                        f"SELECT country, window_start, window_end, users FROM {ks}.users_by_country_minute "
                        "PER PARTITION LIMIT 2"
                    )
                )
            except Exception as exc:  # the aggregate table is optional for the rest of the section
                section.windows_error = short(exc)
                rows = []
                if _fatal(exc):  # but a broken session is not: reconnect at the next refresh
                    self.session.failed(exc)
        windows = [
            CountryWindow(country=r.country, window_start=epoch(r.window_start) or 0.0,
                          window_end=epoch(r.window_end), users=int(r.users or 0))
            for r in rows
        ]  # fmt: skip
        windows.sort(key=lambda w: (-w.window_start, -w.users, w.country))
        section.latest_windows = windows[:15]
        section.measured_at = time.time()
        return section

    def collect_latency(self) -> tuple[LatencySection, list[StoredUser]]:
        """Latency histogram and latest users from a sample: the most recently landed ids that are already
        in Cassandra (a token-order sample when Postgres is unavailable or Spark is far behind)."""
        with self.session.use() as session:
            ks = self.settings.cassandra_keyspace
            cols = "id, first_name, last_name, email, nat, fetched_at, writetime(email) AS written"
            rows: list[Any] = []
            sample = ""
            with contextlib.suppress(Exception):  # Postgres down: the token-order sample below
                ids = self._recent_ids(self.sample_size)
                if ids:
                    stmt = session.prepare(f"SELECT {cols} FROM {ks}.created_users WHERE id = ?")
                    results = self._concurrent(
                        session, stmt, [(i,) for i in ids], concurrency=20, raise_on_first_error=True
                    )
                    rows = [row for r in results if r.success for row in r.result_or_exc]
                    sample = f"{len(rows)} of the {len(ids)} most recently landed users"
            if len(rows) < 10:
                rows += list(session.execute(f"SELECT {cols} FROM {ks}.created_users LIMIT {self.sample_size}"))
                sample = f"{len(rows)} rows in token order (recent landed rows not stored yet)"
        latencies = [
            r.written / 1000.0 - (epoch(r.fetched_at) or 0.0) * 1000.0
            for r in rows
            if r.written is not None and r.fetched_at is not None
        ]
        histogram = latency_histogram(latencies, sample=sample, measured_at=time.time())
        return histogram, latest_users(rows)


def latest_users(rows: Iterable[Any], limit: int = 10) -> list[StoredUser]:
    """The newest-written distinct users among ``rows``."""
    seen: set[str] = set()
    users: list[StoredUser] = []
    for r in sorted(rows, key=lambda r: r.written or 0, reverse=True):
        if str(r.id) in seen:
            continue
        seen.add(str(r.id))
        users.append(
            StoredUser(
                id=str(r.id),
                name=f"{r.first_name or ''} {r.last_name or ''}".strip(),
                email=r.email,
                nat=r.nat,
                fetched_at=epoch(r.fetched_at),
                written_at=r.written / 1e6 if r.written else None,
            )
        )
        if len(users) == limit:
            break
    return users


def _shutdown(session: Session) -> None:
    session.cluster.shutdown()
