"""The job's processed offsets, committed to a Kafka consumer group so Kafka's own tools see its lag.

Recovery still comes from the checkpoint (Spark never reads these back): the group is a mirror, written
after each micro-batch of the users query, so `kafka-consumer-groups --describe`, Burrow or any Kafka UI
shows how far behind the job is. Committing goes through the admin API (no consumer joins the group), in
the background: a broker that is down delays the mirror, never a batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

from userstream.config import Settings
from userstream.kafka_clients import client_config

__all__ = ["OffsetCommitter", "stream_group"]

log = logging.getLogger("userstream.stream.offsets")


def stream_group(settings: Settings) -> str:
    """Per keyspace, like the job's checkpoint: two jobs on one topic keep apart."""
    return f"{settings.stream_consumer_group}.{settings.cassandra_keyspace}"


def _partitions(end_offsets: Mapping[str, Mapping[str, int]]) -> list[TopicPartition]:
    return [
        TopicPartition(topic, int(partition), int(offset))
        for topic, partitions in end_offsets.items()
        for partition, offset in partitions.items()
    ]


class OffsetCommitter:
    """``commit(end_offsets)`` with Spark's ``endOffset`` of a batch ({topic: {partition: next offset}})."""

    def __init__(self, settings: Settings, admin: Callable[[], AdminClient] | None = None) -> None:
        self.group = stream_group(settings)
        config = client_config(settings, "stream", "stream-offsets", **{"socket.timeout.ms": 10000})
        self._new_admin = admin or (lambda: AdminClient(config))
        self._admin = self._new_admin()
        self._lock = threading.Lock()
        self._latest: list[TopicPartition] | None = None
        self._wake = threading.Event()
        self._closed = False
        self._last_error_log = 0.0
        self._thread = threading.Thread(target=self._run, name="offset-commit", daemon=True)
        self._thread.start()

    def commit(self, end_offsets: Mapping[str, Mapping[str, int]]) -> None:
        partitions = _partitions(end_offsets)
        if not partitions:
            return
        with self._lock:
            self._latest = partitions  # only the newest matters: older ones are superseded
        self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            with self._lock:
                partitions, self._latest = self._latest, None
            if partitions is None or self._closed:
                continue
            try:
                request = [ConsumerGroupTopicPartitions(self.group, partitions)]
                futures = self._admin.alter_consumer_group_offsets(request)
                for future in futures.values():
                    future.result(timeout=15)
            except (KafkaException, TimeoutError, RuntimeError) as exc:
                # after a broker restart an admin client can keep timing out on a stale connection: a new one
                # finds the restarted broker (and its group coordinator) at once
                self._admin = self._new_admin()
                with self._lock:
                    if self._latest is None:
                        self._latest = partitions  # retried with the next batch's offsets, or these
                if time.monotonic() - self._last_error_log > 60:
                    self._last_error_log = time.monotonic()
                    log.warning("could not commit the job's offsets to group %s: %s", self.group, exc)
                time.sleep(2)
                self._wake.set()
