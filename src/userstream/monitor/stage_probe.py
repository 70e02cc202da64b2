"""One cheap sample of each stage's (backlog, output), for :class:`~userstream.monitor.stall.StallRule`.

All three in records:

* ingest: backlog = runs in progress (started within the last few windows), output = records fetched;
* cdc:    backlog = users landed by ingest runs minus records in the users topic, output = the topic's end
          offsets (Debezium's replays after a restart only make the backlog look smaller, never stalled);
* stream: backlog = the users topic's end offsets minus the job's consumer-group offsets, output = those.

(The replication slot's WAL lag is no measure: Airflow's metadata writes WAL in the same cluster, which the
slot only confirms when a change of ours comes by, so an idle connector would look stalled.)

Each probe is a couple of small queries with short timeouts; a backend that is down yields ``unknown``
samples (with its error), never an exception.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from userstream.config import Settings
from userstream.kafka_clients import client_config
from userstream.monitor.stall import StageSample
from userstream.store.postgres import conninfo
from userstream.stream.offsets import stream_group

__all__ = ["StageProbe"]

_KAFKA_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class _Ingest:
    fetched: int
    landed: int
    running: int


@dataclass(frozen=True)
class _Topic:
    end: int
    committed: int


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
        ingest, pg_error = self._ingest()
        topic, kafka_error = self._topic()
        out = [
            StageSample("ingest", None, None, pg_error)
            if ingest is None
            else StageSample("ingest", ingest.running, ingest.fetched)
        ]
        if ingest is None or topic is None:
            out.append(StageSample("cdc", None, None, pg_error or kafka_error))
        else:
            out.append(StageSample("cdc", max(0, ingest.landed - topic.end), topic.end))
        if topic is None:
            out.append(StageSample("stream", None, None, kafka_error))
        else:
            out.append(StageSample("stream", max(0, topic.end - topic.committed), topic.committed))
        return out

    def _ingest(self) -> tuple[_Ingest | None, str | None]:
        recent_s = max(3 * self.settings.ingest_window_s, 180.0)
        try:
            with psycopg.connect(conninfo(self.settings, "monitor"), connect_timeout=3, autocommit=True) as conn:
                conn.execute("SET statement_timeout = 3000")
                row = conn.execute(
                    "SELECT coalesce(sum(requested), 0), coalesce(sum(landed), 0), count(*) FILTER "
                    "(WHERE status = 'running' AND started_at > now() - make_interval(secs => %s)) "
                    "FROM staging.ingest_runs",
                    (recent_s,),
                ).fetchone()
        except psycopg.Error as exc:
            return None, f"postgres: {type(exc).__name__}: {str(exc).strip()[:200]}"
        assert row is not None
        return _Ingest(fetched=int(row[0]), landed=int(row[1]), running=int(row[2])), None

    def _kafka(self) -> Consumer:
        if self._consumer is None:
            config = client_config(
                self.settings,
                "monitor",
                "stage-probe",
                # only read: this consumer never joins or commits (DESCRIBE on the group is enough)
                **{"group.id": stream_group(self.settings), "enable.auto.commit": False, "socket.timeout.ms": 5000},
            )
            self._consumer = Consumer(config)
        return self._consumer

    def _topic(self) -> tuple[_Topic | None, str | None]:
        topic = self.settings.users_topic
        try:
            consumer = self._kafka()
            meta = consumer.list_topics(topic, timeout=_KAFKA_TIMEOUT_S).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                return _Topic(0, 0), None  # no topic yet: nothing produced, nothing to process
            partitions = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
            end = sum(consumer.get_watermark_offsets(tp, timeout=_KAFKA_TIMEOUT_S)[1] for tp in partitions)
            committed = consumer.committed(partitions, timeout=_KAFKA_TIMEOUT_S)
        except (KafkaException, RuntimeError) as exc:
            self.close()  # a client left over from before a broker restart is rebuilt next time
            return None, f"kafka: {exc}"[:300]
        return _Topic(end, sum(max(0, tp.offset) for tp in committed)), None
