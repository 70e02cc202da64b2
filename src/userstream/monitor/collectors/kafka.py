"""Kafka: end offsets of the pipeline's topics, consumer-group lags, the reasons of the newest dead letters.

The consumer and admin client are kept between refreshes (librdkafka clients are costly to start) inside a
:class:`Reconnecting` holder: any error closes both and the next refresh builds new ones. A client kept
across a broker restart could stay wedged (an admin future that never resolved held the whole section,
showing "in Kafka n/a" for the rest of a run); now every call has a timeout taken from the refresh's
:class:`Budget`, and futures are waited on with a timeout too.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from userstream.config import Settings
from userstream.kafka_clients import MONITOR_GROUP_PREFIX, client_config
from userstream.monitor.collectors.base import Budget, Reconnecting, short
from userstream.monitor.models import ConsumerLag, KafkaSection, ReasonCount, SparkSection, TopicOffsets
from userstream.runtime.base import tcp_open

__all__ = ["MONITOR_GROUP", "KafkaCollector", "reason_from_headers", "spark_lags"]

# only assign() is used with this group: nothing is ever committed, it never shows up as a consumer
MONITOR_GROUP = MONITOR_GROUP_PREFIX

# DLQ header names that may carry the failure reason, most specific first
_REASON_HEADERS = ("dlq.reason", "reason", "error", "error.message", "x-reason", "exception")
_PARTITION_EOF = -191

KafkaClients = tuple[Consumer, AdminClient]


class KafkaCollector:
    def __init__(self, settings: Settings, *, budget_s: float = 8.0) -> None:
        self.settings = settings
        self.budget_s = budget_s
        self.clients: Reconnecting[KafkaClients] = Reconnecting("kafka clients", self._build, _close_clients)
        self._dlq_cache: tuple[int, list[ReasonCount]] | None = None

    def _build(self) -> KafkaClients:
        common: dict[str, Any] = {
            "socket.timeout.ms": 3000,
            "socket.connection.setup.timeout.ms": 2000,
            "reconnect.backoff.max.ms": 2000,
            "log.connection.close": False,
        }
        consumer = Consumer(
            client_config(
                self.settings,
                "monitor",
                "monitor",
                **common,
                **{
                    "group.id": MONITOR_GROUP,
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                },
            )
        )
        return consumer, AdminClient(client_config(self.settings, "monitor", "monitor", **common))

    def close(self) -> None:
        self.clients.close()

    def collect(self) -> KafkaSection:
        s = self.settings
        if s.kafka_bootstrap is None and not any(tcp_open(h, s.kafka_port, timeout_s=1.0) for h in s.kafka_hosts):
            error = ConnectionError(f"Kafka {s.kafka_bootstrap_servers} unreachable")
            self.clients.failed(error)  # the broker went away: its clients start afresh when it is back
            return KafkaSection(error=str(error), measured_at=time.time())
        budget = Budget(self.budget_s)
        wedged: Exception | None = None
        with self.clients.use() as (consumer, admin):
            section = KafkaSection()
            metadata = consumer.list_topics(timeout=budget.left(3.0))
            for topic in (s.users_topic, s.dlq_topic):
                section.topics[topic] = topic_offsets(consumer, metadata, topic, budget)
            section.measured_at = time.time()
            try:  # group lags are a bonus (Spark commits no offsets): their failure is not the section's
                section.lags = self._group_lags(admin, section.topics, budget)
            except _AdminWedged as exc:
                wedged = exc
                section.lags = [ConsumerLag(consumer="(groups)", topic="?", source=str(exc))]
            except Exception:
                section.lags = []
            dlq = section.topics.get(s.dlq_topic)
            if dlq is not None and dlq.error is None and dlq.retained > 0 and not budget.expired:
                try:
                    section.dlq_reasons = self._dlq_reasons(consumer, dlq, budget)
                except Exception as exc:
                    section.dlq_reasons = [ReasonCount(reason=f"(headers unreadable: {short(exc)})", count=0)]
            # serve the clients' queued log lines (delivered to Python logging on poll)
            consumer.poll(0)
            admin.poll(0)
        if wedged is not None:  # an admin request that outlived its own timeout: start clean next time
            self.clients.failed(wedged)
        return section

    def _group_lags(self, admin: AdminClient, topics: dict[str, TopicOffsets], budget: Budget) -> list[ConsumerLag]:
        listing = _result(admin.list_consumer_groups(request_timeout=budget.left(2.0)), budget.left(3.0))
        lags: list[ConsumerLag] = []
        groups = [g.group_id for g in listing.valid if g.group_id != MONITOR_GROUP][:10]
        for group in groups:
            wait = budget.left(2.0)
            futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=wait)
            committed = _result(futures[group], wait + 1.0)
            per_topic: dict[str, int] = {}
            for tp in committed.topic_partitions or []:
                offsets = topics.get(tp.topic)
                if offsets is None or tp.offset < 0 or tp.partition not in offsets.partitions:
                    continue
                per_topic[tp.topic] = per_topic.get(tp.topic, 0) + max(0, offsets.partitions[tp.partition] - tp.offset)
            lags += [
                ConsumerLag(consumer=group, topic=t, lag=lag, source="committed offsets")
                for t, lag in per_topic.items()
            ]
        return lags

    def _dlq_reasons(
        self, consumer: Consumer, dlq: TopicOffsets, budget: Budget, newest: int = 50
    ) -> list[ReasonCount]:
        """Reasons (from headers) of the newest DLQ records; re-read only when the DLQ grew."""
        if self._dlq_cache is not None and self._dlq_cache[0] == dlq.end_total:
            return self._dlq_cache[1]
        per_partition = max(1, newest // max(1, len(dlq.partitions)))
        assignment = []
        remaining: set[int] = set()
        for p, high in dlq.partitions.items():
            start = max(dlq.start_offsets.get(p, 0), high - per_partition)
            if start < high:
                assignment.append(TopicPartition(dlq.topic, p, start))
                remaining.add(p)
        reasons: Counter[str] = Counter()
        consumer.assign(assignment)
        try:
            deadline = time.monotonic() + budget.left(2.0)
            while remaining and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == _PARTITION_EOF:  # that partition is read to its end
                        remaining.discard(msg.partition() or 0)
                    continue
                # one record may break several rules, joined by "; ": count each rule
                for reason in reason_from_headers(msg.headers()).split("; "):
                    reasons[reason] += 1
                if (msg.offset() or 0) + 1 >= dlq.partitions.get(msg.partition() or 0, 0):
                    remaining.discard(msg.partition() or 0)
        finally:
            consumer.unassign()
        result = [ReasonCount(reason=r, count=c) for r, c in reasons.most_common(8)]
        self._dlq_cache = (dlq.end_total, result)
        return result


class _AdminWedged(Exception):
    """An admin future was not resolved within its request timeout."""


def _result(future: Any, timeout_s: float) -> Any:
    try:
        return future.result(timeout=timeout_s)
    except FutureTimeout as exc:
        raise _AdminWedged(f"admin request unanswered after {timeout_s:.0f}s") from exc


def _close_clients(clients: KafkaClients) -> None:
    consumer, _admin = clients
    consumer.close()  # the admin client has no close(): it goes with its last reference


def topic_offsets(consumer: Consumer, metadata: Any, topic: str, budget: Budget) -> TopicOffsets:
    meta = metadata.topics.get(topic)
    if meta is None:
        return TopicOffsets(topic=topic, error="topic does not exist")
    if meta.error is not None:
        return TopicOffsets(topic=topic, error=str(meta.error))
    out = TopicOffsets(topic=topic)
    for p in sorted(meta.partitions):
        tp = TopicPartition(topic, p)
        low, high = consumer.get_watermark_offsets(tp, timeout=budget.left(3.0), cached=False)
        out.partitions[p] = int(high)
        out.start_offsets[p] = int(low)
    out.end_total = sum(out.partitions.values())
    out.retained = out.end_total - sum(out.start_offsets.values())
    return out


Headers = list[tuple[str, str | bytes | None]] | dict[str, str | bytes | None] | None


def reason_from_headers(headers: Headers) -> str:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    if not pairs:
        return "(no reason header)"
    by_key = {k.lower(): v for k, v in pairs}
    for key in _REASON_HEADERS:
        if by_key.get(key) is not None:
            return _decode(by_key[key])
    for key, value in pairs:  # unknown naming: the first header that looks like a reason
        if value is not None and ("reason" in key.lower() or "error" in key.lower()):
            return _decode(value)
    return "(no reason header)"


def _decode(value: str | bytes | None) -> str:
    raw = value.encode() if isinstance(value, str) else (value or b"")
    text = raw.decode("utf-8", errors="replace").strip()
    return text[:200] or "(empty reason)"


def spark_lags(spark: SparkSection, kafka: KafkaSection) -> list[ConsumerLag]:
    """The streaming job's lag per query: the broker's end offsets minus the offsets its last batch reached
    (Spark keeps offsets in its checkpoint, not in a consumer group); the job's own figure otherwise."""
    lags = []
    for q in spark.queries:
        if q.end_offsets:
            for topic, parts in q.end_offsets.items():
                broker = kafka.topics.get(topic)
                if broker is None or broker.error is not None or not broker.partitions:
                    continue
                lag = sum(max(0, end - parts.get(str(p), 0)) for p, end in broker.partitions.items())
                lags.append(ConsumerLag(consumer=f"spark:{q.name}", topic=topic, lag=lag, source="broker - batch end"))
        elif q.offsets_behind is not None:
            lags.append(
                ConsumerLag(consumer=f"spark:{q.name}", topic="?", lag=q.offsets_behind, source="job's offsets_behind")
            )
    return lags
