"""One collector per backend; :class:`userstream.monitor.collect.Collector` runs them and builds the snapshot.

Every module imports what it needs at its top: the section threads never import anything.
"""

from __future__ import annotations

from userstream.monitor.collectors.base import BackgroundValue, Budget, Reconnecting, ReconnectPending, SingleFlight
from userstream.monitor.collectors.cassandra import CassandraCollector, CassandraResult
from userstream.monitor.collectors.health import collect_health
from userstream.monitor.collectors.kafka import KafkaCollector, spark_lags
from userstream.monitor.collectors.postgres import PostgresCollector
from userstream.monitor.collectors.registry import RegistryCollector
from userstream.monitor.collectors.services import ServicesCollector
from userstream.monitor.collectors.spark import SparkCollector

__all__ = [
    "BackgroundValue",
    "Budget",
    "CassandraCollector",
    "CassandraResult",
    "KafkaCollector",
    "PostgresCollector",
    "ReconnectPending",
    "Reconnecting",
    "RegistryCollector",
    "ServicesCollector",
    "SingleFlight",
    "SparkCollector",
    "collect_health",
    "spark_lags",
]
