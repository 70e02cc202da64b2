"""One cheap sample of each stage's (backlog, output), for :class:`~userstream.monitor.stall.StallRule`.

* ingest: backlog = runs in progress (started within the last few windows), output = records fetched;
* cdc:    backlog = WAL bytes past the replication slot's confirmed LSN, output = that LSN (it moves
          whenever Debezium commits, heartbeats included, so an idle but working connector is not stalled);
* stream: backlog = users-topic end offsets minus the job's consumer-group offsets, output = those offsets.

Each probe is a couple of small queries with short timeouts; a backend that is down yields an ``unknown``
sample (its error), never an exception.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from userstream.cdc.connector import SLOT_NAME
from userstream.config import Settings
from userstream.monitor.stall import StageSample
from userstream.stream.offsets import stream_group

__all__ = ["StageProbe"]

_KAFKA_TIMEOUT_S = 5.0


class StageProbe:
    """Keeps its Kafka consumer between samples (rebuilt after an error); Postgres connects per sample."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: Consumer | None = None

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def sample(self) -> list[StageSample]:
        ingest, cdc = self._postgres()
        return [ingest, cdc, self._stream()]

    # --- Postgres: ingest and CDC ----------------------------------------------------------------------
    def _postgres(self) -> tuple[StageSample, StageSample]:
        recent_s = max(3 * self.settings.ingest_window_s, 180.0)
        try:
            with psycopg.connect(self.settings.postgres_conninfo, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SET statement_timeout = 3000")
                runs = conn.execute(
                    "SELECT coalesce(sum(requested), 0), count(*) FILTER (WHERE status = 'running' "
                    "AND started_at > now() - make_interval(secs => %s)) FROM staging.ingest_runs",
                    (recent_s,),
                ).fetchone()
                slot = conn.execute(
                    "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, "
                    "pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint "
                    "FROM pg_replication_slots WHERE slot_name = %s",
                    (SLOT_NAME,),
                ).fetchone()
        except psycopg.Error as exc:
            error = f"postgres: {type(exc).__name__}: {str(exc).strip()[:200]}"
            return StageSample("ingest", None, None, error), StageSample("cdc", None, None, error)
        assert runs is not None
        ingest = StageSample("ingest", int(runs[1]), int(runs[0]))
        if slot is None or slot[1] is None:
            cdc = StageSample("cdc", 0, 0)  # no slot yet: the connector was never created
        else:
            cdc = StageSample("cdc", max(0, int(slot[0] or 0)), int(slot[1]))
        return ingest, cdc

    # --- Kafka: the streaming job ------------------------------------------------------------------------
    def _kafka(self) -> Consumer:
        if self._consumer is None:
            config: dict[str, Any] = {
                "bootstrap.servers": self.settings.kafka_bootstrap_servers,
                "group.id": stream_group(self.settings),  # only read: this consumer never joins or commits
                "enable.auto.commit": False,
                "socket.timeout.ms": 5000,
                "logger": logging.getLogger("userstream.kafka.stage-probe"),
            }
            self._consumer = Consumer(config)
        return self._consumer

    def _stream(self) -> StageSample:
        topic = self.settings.users_topic
        try:
            consumer = self._kafka()
            meta = consumer.list_topics(topic, timeout=_KAFKA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return StageSample("stream", 0, 0)  # no topic yet: nothing to process
            partitions = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
            end = sum(consumer.get_watermark_offsets(tp, timeout=_KAFKA_TIMEOUT_S)[1] for tp in partitions)
            committed = consumer.committed(partitions, timeout=_KAFKA_TIMEOUT_S)
        except (KafkaException, RuntimeError) as exc:
            self.close()
            return StageSample("stream", None, None, f"kafka: {exc}"[:300])
        done = sum(max(0, tp.offset) for tp in committed)
        return StageSample("stream", max(0, end - done), done)
