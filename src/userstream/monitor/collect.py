"""Collect one :class:`PipelineSnapshot` from every backend, each through its own collector (``collectors/``).

Design:
- every section runs in its own call (:class:`SingleFlight`: one daemon thread per call, at most one in
  flight per section) with a deadline: a backend that is down or slow yields its section with ``error``
  (or the previous answer marked ``stale``) and never holds up the others;
- a call that outlives every timeout it was given (``hung_after_s``) is abandoned, the client it used is
  dropped, and the next refresh starts a new call: a wedged backend call cannot freeze a panel for good;
- clients that failed are closed and rebuilt at the next refresh, after a short backoff;
- exact counts of the big tables (``staging.users``, ``created_users``) run in a background thread and are
  cached: they are refreshed at most every ``dashboard_count_interval_s`` (Cassandra) and never take more
  than ~10% of the wall time (the interval grows with the count's own duration);
- rates come from differences with the previous snapshot, kept in the collector.

Every import is at the top of each module: imports done lazily inside the section threads raced each other
(``ImportError: cannot import name ... from partially initialized module``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from uuid import UUID

import httpx
from pydantic import BaseModel

from userstream.config import Settings
from userstream.monitor.collectors.base import BackgroundValue, SingleFlight, short
from userstream.monitor.collectors.cassandra import CassandraCollector, CassandraResult
from userstream.monitor.collectors.health import collect_health
from userstream.monitor.collectors.kafka import KafkaCollector, spark_lags
from userstream.monitor.collectors.postgres import PostgresCollector
from userstream.monitor.collectors.registry import RegistryCollector
from userstream.monitor.collectors.services import ServicesCollector
from userstream.monitor.collectors.spark import SparkCollector
from userstream.monitor.models import (
    IngestSection,
    KafkaSection,
    PipelineSnapshot,
    PostgresSection,
    RegistrySection,
    Section,
    ServicesSection,
    SparkSection,
    StageHealthSection,
)
from userstream.monitor.stages import apply_health, apply_rates, build_stages

__all__ = [
    "ALL_SECTIONS",
    "COUNT_SECTIONS",
    "BackgroundValue",
    "Collector",
    "collect_snapshot",
    "links",
    "spark_lags",
]

log = logging.getLogger(__name__)

ALL_SECTIONS = ("ingest", "postgres", "kafka", "registry", "spark", "cassandra", "services", "health")
# what the terminal view needs: the per-stage counters and the watchdog's verdicts
COUNT_SECTIONS = ("ingest", "postgres", "kafka", "spark", "cassandra", "health")


def links(settings: Settings) -> dict[str, str]:
    """Human-facing UIs of the stack."""
    out = {"Airflow UI": settings.airflow_endpoint}
    if settings.spark_master_url is None:
        master = settings.spark_master_host or settings.bind_host
        out["Spark master UI"] = f"http://{master}:{settings.spark_master_ui_port}"
    out["Schema registry"] = settings.registry_endpoint.rstrip("/") + "/subjects"
    out["Kafka Connect"] = settings.connect_endpoint + "/connectors"
    return out


@dataclass
class _Slot:
    name: str
    flight: SingleFlight[BaseModel]
    default: Callable[[], BaseModel]
    last: BaseModel | None = None


class Collector:
    """Builds snapshots; keep one per process (it holds the clients, caches and the previous snapshot)."""

    def __init__(
        self,
        settings: Settings,
        *,
        sections: Iterable[str] | None = None,
        timeout_s: float = 4.0,
        min_age_s: float = 0.0,
        sample_size: int = 100,
        hung_after_s: float | None = None,
    ) -> None:
        self.settings = settings
        self.sections = tuple(sections) if sections is not None else ALL_SECTIONS
        unknown = set(self.sections) - set(ALL_SECTIONS)
        if unknown:
            raise ValueError(f"unknown monitor sections: {sorted(unknown)}")
        self.timeout_s = timeout_s
        self.min_age_s = min_age_s
        self.hung_after_s = hung_after_s if hung_after_s is not None else max(30.0, 5 * timeout_s)
        self.previous: PipelineSnapshot | None = None
        self._lock = threading.Lock()
        # one plain-HTTP client for local UIs: a new httpx client loads the CA bundle (~20 ms CPU) each time
        self._http = httpx.Client(timeout=2.0, verify=False)
        count_wait_s = min(2.0, timeout_s / 2)
        self.pg = PostgresCollector(settings, count_wait_s=count_wait_s)
        self.kafka = KafkaCollector(settings)
        self.registry = RegistryCollector(settings)
        self.spark = SparkCollector(settings, self._http)
        self.cassandra = CassandraCollector(
            settings, self.recent_landed_ids, sample_size=sample_size, count_wait_s=count_wait_s
        )
        self.services = ServicesCollector(settings, probe_timeout_s=timeout_s) if "services" in self.sections else None
        specs: dict[str, tuple[Callable[[], BaseModel], Callable[[], BaseModel], float, Callable[[], None] | None]] = {
            "ingest": (self.collect_ingest, IngestSection, 0.0, None),
            "postgres": (self.collect_postgres, PostgresSection, 0.0, None),
            "kafka": (self.collect_kafka, KafkaSection, 0.0, self._drop_kafka),
            "registry": (self.collect_registry, RegistrySection, 10.0, None),
            "spark": (self.collect_spark, SparkSection, 0.0, None),
            "cassandra": (self.collect_cassandra_all, CassandraResult, 2.0, self._drop_cassandra),
            "services": (self.collect_services, ServicesSection, 5.0, None),
            "health": (self.collect_health, StageHealthSection, 0.0, None),
        }
        self._slots = []
        for name in self.sections:
            fn, default, min_interval_s, on_hung = specs[name]
            flight: SingleFlight[BaseModel] = SingleFlight(
                name,
                self._guarded(name, fn, default),
                min_interval_s=min_interval_s,
                hung_after_s=self.hung_after_s,
                on_hung=on_hung,
            )
            self._slots.append(_Slot(name, flight, default))

    # --- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()
        self.kafka.close()
        self.cassandra.close()

    def _drop_kafka(self) -> None:
        self.kafka.clients.failed(TimeoutError(f"kafka: a call gave no answer for {self.hung_after_s:.0f}s"))

    def _drop_cassandra(self) -> None:
        self.cassandra.session.failed(TimeoutError(f"cassandra: a call gave no answer for {self.hung_after_s:.0f}s"))

    # --- the sections (one method each, so a test can replace one) ------------------------------
    def collect_ingest(self) -> IngestSection:
        return self.pg.ingest()

    def collect_postgres(self) -> PostgresSection:
        return self.pg.postgres()

    def recent_landed_ids(self, limit: int) -> list[UUID]:
        return self.pg.recent_landed_ids(limit)

    def collect_kafka(self) -> KafkaSection:
        return self.kafka.collect()

    def collect_registry(self) -> RegistrySection:
        return self.registry.collect()

    def collect_spark(self) -> SparkSection:
        return self.spark.collect()

    def collect_cassandra_all(self) -> CassandraResult:
        return self.cassandra.collect()

    def collect_services(self) -> ServicesSection:
        if self.services is None:
            self.services = ServicesCollector(self.settings, probe_timeout_s=self.timeout_s)
        return self.services.collect()

    def collect_health(self) -> StageHealthSection:
        return collect_health(self.settings)

    # --- the snapshot --------------------------------------------------------------------------
    def snapshot(self) -> PipelineSnapshot:
        """A new snapshot (or the last one if younger than ``min_age_s``: many viewers, one collection)."""
        with self._lock:
            if self.previous is not None and time.time() - self.previous.taken_at < self.min_age_s:
                return self.previous
            snap = self._collect()
            self.previous = snap
            return snap

    @staticmethod
    def _guarded(name: str, fn: Callable[[], BaseModel], default: Callable[[], BaseModel]) -> Callable[[], BaseModel]:
        def run() -> BaseModel:
            try:
                return fn()
            except Exception as exc:  # a section never raises: it reports
                log.debug("monitor section %s failed", name, exc_info=True)
                return _with_error(default(), short(exc))

        return run

    def _result(self, slot: _Slot) -> BaseModel:
        flight = slot.flight
        future = flight.future
        if future is not None and future.done():
            slot.last = future.result()
        if not flight.running:
            return slot.last if slot.last is not None else _with_error(slot.default(), "not collected yet")
        if slot.last is None:
            return _with_error(slot.default(), f"no answer yet (waiting {flight.running_for():.0f}s)")
        return slot.last.model_copy(update={"stale": True})

    def _collect(self) -> PipelineSnapshot:
        t0 = time.monotonic()
        for slot in self._slots:
            waited = slot.flight.running_for()
            if slot.flight.abandon_if_hung():
                slot.last = _with_error(slot.default(), f"no answer for {waited:.0f}s: gave up on that call, retrying")
            slot.flight.start_if_due()
        pending = [s.flight.future for s in self._slots if s.flight.running and s.flight.future is not None]
        if pending:
            wait_futures(pending, timeout=max(0.0, t0 + self.timeout_s - time.monotonic()))
        results = {slot.name: self._result(slot) for slot in self._slots}
        snap = PipelineSnapshot(taken_at=time.time(), links=links(self.settings))
        for name in ("ingest", "postgres", "kafka", "registry", "spark", "services", "health"):
            if name in results:
                setattr(snap, name, results[name])
        cass = results.get("cassandra")
        if isinstance(cass, CassandraResult):
            snap.cassandra = cass.cassandra.model_copy(update={"stale": cass.stale})
            snap.latency = cass.latency.model_copy(update={"stale": cass.stale})
            if cass.error:
                snap.cassandra.error = snap.cassandra.error or cass.error
                snap.latency.error = snap.latency.error or cass.error
        snap.kafka = snap.kafka.model_copy(
            update={"lags": [*snap.kafka.lags, *spark_lags(snap.spark, snap.kafka)]}, deep=True
        )
        stages = apply_health(build_stages(snap, self.settings.users_topic, self.settings.dlq_topic), snap.health)
        snap.stages = apply_rates(self.previous, stages, now=snap.taken_at)
        snap.collect_ms = (time.monotonic() - t0) * 1000.0
        return snap


def _with_error(model: BaseModel, error: str) -> BaseModel:
    if isinstance(model, Section):
        model.error = error
        model.measured_at = time.time()
    return model


def collect_snapshot(
    settings: Settings, *, sections: Iterable[str] | None = None, timeout_s: float = 5.0
) -> PipelineSnapshot:
    """One snapshot with fresh clients (rates need two: keep a :class:`Collector` for that)."""
    with Collector(settings, sections=sections, timeout_s=timeout_s) as collector:
        return collector.snapshot()
