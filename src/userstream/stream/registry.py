"""Writer schemas by id from the registry, fetched once each (the driver of the job asks per micro-batch)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

log = logging.getLogger(__name__)


class SchemaSource(Protocol):
    def __call__(self, schema_id: int) -> str | None:
        """The schema text of ``schema_id``; None when the registry does not know it; raises when unreachable."""


def registry_fetcher(config: dict[str, Any], attempts: int = 4) -> SchemaSource:
    """A :class:`SchemaSource` over the Confluent-compatible API (our Apicurio at ``/apis/ccompat/v7``);
    ``config`` is a ``SchemaRegistryClient``'s (``registry_clients.registry_client_config``)."""
    client = SchemaRegistryClient(config)

    def fetch(schema_id: int) -> str | None:
        for attempt in range(attempts):
            try:
                return str(client.get_schema(schema_id).schema_str)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    return None  # not a schema of this registry: the record goes to the DLQ
                if attempt == attempts - 1 or (exc.http_status_code or 500) < 500:
                    raise
            except Exception:  # connection refused/timeouts: the registry is down, not the record bad
                if attempt == attempts - 1:
                    raise
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    return fetch


def subject_schema_ids(config: dict[str, Any], subject: str) -> list[int]:
    """Ids of every version registered under ``subject`` (empty when the subject does not exist yet)."""
    client = SchemaRegistryClient(config)
    try:
        ids = [client.get_version(subject, v).schema_id for v in client.get_versions(subject)]
        return [int(i) for i in ids if i is not None]
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return []
        raise


class SchemaCache:
    """Schema id -> Avro schema JSON. Hits are kept for ever (ids are immutable); misses are retried after
    ``miss_ttl_s`` (a schema may be registered later, but garbage ids must not hit the registry every batch).
    A registry outage raises: the micro-batch fails and is retried, its records are not dead-lettered."""

    def __init__(self, fetch: SchemaSource, miss_ttl_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self._fetch = fetch
        self._miss_ttl_s = miss_ttl_s
        self._clock = clock
        self._schemas: dict[int, str] = {}
        self._fields: dict[int, tuple[str, ...]] = {}
        self._misses: dict[int, float] = {}

    @property
    def known(self) -> dict[int, str]:
        return dict(self._schemas)

    def fields(self, schema_id: int) -> tuple[str, ...]:
        return self._fields[schema_id]

    def lookup(self, ids: Iterable[int]) -> set[int]:
        """Resolve ids not cached yet (misses only once their TTL ran out); returns the newly known ones."""
        now = self._clock()
        found: set[int] = set()
        for schema_id in sorted(set(ids)):
            if schema_id in self._schemas:
                continue
            missed = self._misses.get(schema_id)
            if missed is not None and now - missed < self._miss_ttl_s:
                continue
            text = self._fetch(schema_id)
            fields = record_fields(text) if text is not None else None
            if text is None or fields is None:
                self._misses[schema_id] = now
                why = "unknown to the registry" if text is None else "not an Avro record"
                log.warning("schema id %s: %s", schema_id, why)
                continue
            self._misses.pop(schema_id, None)
            self._schemas[schema_id] = text
            self._fields[schema_id] = fields
            found.add(schema_id)
            log.info("schema id %s: writer schema with %d fields", schema_id, len(fields))
        return found


def record_fields(schema_text: str) -> tuple[str, ...] | None:
    """Top-level field names of an Avro record schema (None when it is not a record)."""
    try:
        schema: Any = json.loads(schema_text)
    except ValueError:
        return None
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    return tuple(str(f["name"]) for f in schema.get("fields", []) if isinstance(f, dict) and "name" in f)
