"""The Cassandra section against a fake driver session: token-range count, windows, latency sample."""

from __future__ import annotations

import time
import uuid
from collections import namedtuple
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from userstream.config import Settings
from userstream.monitor.collect import Collector
from userstream.monitor.collectors.cassandra import CassandraCollector

UserRowT = namedtuple("UserRowT", "id first_name last_name email nat fetched_at written")
WindowRowT = namedtuple("WindowRowT", "country window_start window_end users")
ExecutionResult = namedtuple("ExecutionResult", "success result_or_exc")


class Result(list[Any]):
    def one(self) -> Any:
        return self[0] if self else None


def token(ident: uuid.UUID) -> int:
    """A stand-in for Murmur3: any deterministic spread over the signed 64-bit range."""
    return (ident.int % 2**64) - 2**63 + 1  # never the minimum token, like Murmur3


class FakeSession:
    def __init__(self, users: Sequence[UserRowT], windows: Sequence[WindowRowT]) -> None:
        self.users = {u.id: u for u in users}
        self.windows = list(windows)

    def prepare(self, query: str) -> str:
        return query

    def execute(self, query: str, params: Any = None) -> list[Any]:
        if "users_by_country_minute" in query:
            return self.windows
        if "created_users" in query and "LIMIT" in query:
            return list(self.users.values())
        raise AssertionError(query)


def fake_concurrent(session: FakeSession, stmt: str, params: Sequence[tuple[Any, ...]], **_: Any) -> list[Any]:
    results = []
    for p in params:
        if "count(*)" in stmt:
            lo, hi = p
            results.append(ExecutionResult(True, Result([(sum(1 for i in session.users if lo < token(i) <= hi),)])))
        else:
            row = session.users.get(p[0])
            results.append(ExecutionResult(True, Result([row] if row else [])))
    return results


@pytest.fixture
def world(tmp_path: Path) -> tuple[CassandraCollector, list[UserRowT]]:
    now = datetime(2026, 1, 1, 12, 0, 0)  # naive UTC, as the driver returns timestamps
    epoch = now.replace(tzinfo=UTC).timestamp()
    # user i was written 0.1 * i seconds after it was fetched
    users = [
        UserRowT(uuid.uuid4(), f"F{i}", f"L{i}", f"u{i}@x", "FR", now, int((epoch + 0.1 * i) * 1e6))
        for i in range(1, 41)
    ]
    windows = [
        WindowRowT("FR", now - timedelta(minutes=1), now, 12),
        WindowRowT("GB", now, now + timedelta(minutes=1), 3),
        WindowRowT("FR", now, now + timedelta(minutes=1), 7),
    ]
    session = FakeSession(users, windows)
    # the newest landed ids: 30 stored ones and 5 not stored yet
    landed = [u.id for u in users[10:]] + [uuid.uuid4() for _ in range(5)]
    collector = CassandraCollector(
        Settings(data_dir=tmp_path),
        lambda limit: landed,
        connect=lambda: session,
        execute_concurrent=fake_concurrent,
    )
    return collector, users


def test_token_range_count_covers_every_row_once(world: tuple[CassandraCollector, list[UserRowT]]) -> None:
    collector, users = world
    assert collector._count() == len(users)


def test_section_count_windows_and_latency(world: tuple[CassandraCollector, list[UserRowT]]) -> None:
    collector, _users = world
    section = collector.collect_cassandra()
    if section.users is None:  # the first count runs in the background
        time.sleep(0.3)
        section = collector.collect_cassandra()
    assert section.users == 40 and section.count_error is None and section.users_measured_at is not None
    assert [(w.country, w.users) for w in section.latest_windows] == [("FR", 7), ("GB", 3), ("FR", 12)]

    latency, latest = collector.collect_latency()
    assert latency.sample_size == 30 and "30 of the 35 most recently landed" in latency.sample
    assert latency.p50_ms is not None and 1000 < latency.p50_ms < 4100  # 0.1 s per user: 1.1 s .. 4.0 s
    assert [u.name for u in latest[:3]] == ["F40 L40", "F39 L39", "F38 L38"]
    assert len(latest) == 10 and latest[0].written_at is not None


def test_token_order_sample_when_recent_rows_are_not_stored(
    world: tuple[CassandraCollector, list[UserRowT]], monkeypatch: pytest.MonkeyPatch
) -> None:
    collector, _users = world
    monkeypatch.setattr(collector, "_recent_ids", lambda limit: [uuid.uuid4() for _ in range(50)])
    latency, latest = collector.collect_latency()
    assert latency.sample_size == 40 and "token order" in latency.sample
    assert len(latest) == 10


def test_whole_section_reports_an_unreachable_cassandra(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, cassandra_contact_points=None, cassandra_port=1)
    with Collector(settings, sections=["cassandra"]) as collector:
        snap = collector.snapshot()
    assert snap.cassandra.error and "unreachable" in snap.cassandra.error
    assert snap.latency.error == snap.cassandra.error
    assert snap.stage("cassandra").error  # type: ignore[union-attr]
