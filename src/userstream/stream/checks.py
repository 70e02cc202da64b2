"""Reading back what the job wrote (benchmark, tests, operators): exact counts, rows by id, the DLQ."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from cassandra.concurrent import execute_concurrent_with_args
from confluent_kafka import Consumer

from userstream.config import Settings
from userstream.kafka_clients import MONITOR_GROUP_PREFIX, client_config
from userstream.stream.rules import read_dlq_headers

_MIN_TOKEN, _MAX_TOKEN = -(2**63), 2**63 - 1


def token_ranges(slices: int) -> list[tuple[int, int]]:
    """``slices`` contiguous (start, end] ranges over the Murmur3 ring. No key has the minimum token (Murmur3
    maps it to the maximum), and ``token(k) = MIN`` would mean the whole ring, so it is left out."""
    step = (_MAX_TOKEN - _MIN_TOKEN) // slices
    bounds = [_MIN_TOKEN + i * step for i in range(slices)] + [_MAX_TOKEN]
    return list(itertools.pairwise(bounds))


def count_rows(session: Any, keyspace: str, table: str, key: str = "id", slices: int = 64) -> int:
    """Exact row count of a big table: one COUNT per token slice, concurrently (a single COUNT(*) of a
    million rows runs into the server's range timeout)."""
    stmt = session.prepare(f"SELECT count(*) FROM {keyspace}.{table} WHERE token({key}) > ? AND token({key}) <= ?")
    stmt.timeout = 60
    total = 0
    results = execute_concurrent_with_args(session, stmt, token_ranges(slices), concurrency=8)
    for ok, result in results:
        if not ok:
            raise result
        total += result.one()[0]
    return int(total)


def rows_by_id(session: Any, keyspace: str, table: str, ids: Iterable[uuid.UUID], columns: Sequence[str]) -> list[Any]:
    """The rows of ``ids`` (point reads, many in flight); missing ids are simply absent."""
    stmt = session.prepare(f"SELECT {', '.join(columns)} FROM {keyspace}.{table} WHERE id = ?")
    out = []
    for ok, result in execute_concurrent_with_args(session, stmt, [(i,) for i in ids], concurrency=128):
        if not ok:
            raise result
        out.extend(result)
    return out


def read_topic(
    settings: Settings, topic: str, *, expect: int | None = None, timeout_s: float = 60.0, idle_s: float = 5.0
) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the start: key, value, partition, offset, DLQ headers as text.

    Stops once ``expect`` records were read and nothing new came for ``idle_s`` (or at the timeout).
    """
    consumer = Consumer(
        client_config(
            settings,
            "monitor",
            "checks",
            **{
                "group.id": f"{MONITOR_GROUP_PREFIX}-read-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
        )
    )
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                if (expect is None or len(out) >= expect) and time.monotonic() - last_new > idle_s:
                    break
                continue
            if msg.error():
                continue
            last_new = time.monotonic()
            out.append(
                {
                    "key": msg.key(),
                    "value": msg.value(),
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "headers": read_dlq_headers(msg.headers()),
                }
            )
    finally:
        consumer.close()
    return out
