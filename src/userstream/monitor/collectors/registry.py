"""The schema registry: subjects, their versions, the latest schema id and the compatibility levels.

A fresh client per refresh (the client caches "latest version" answers), closed after it; every request
has a 3 s timeout and the refresh stops listing subjects when its budget is spent.
"""

from __future__ import annotations

import contextlib
import time

from confluent_kafka.schema_registry.error import SchemaRegistryError

from userstream.config import Settings
from userstream.monitor.collectors.base import Budget
from userstream.monitor.models import RegistrySection, Subject
from userstream.registry_clients import registry_client
from userstream.runtime.base import tcp_open

__all__ = ["RegistryCollector"]


class RegistryCollector:
    def __init__(self, settings: Settings, *, budget_s: float = 8.0, max_subjects: int = 30) -> None:
        self.settings = settings
        self.budget_s = budget_s
        self.max_subjects = max_subjects

    def collect(self) -> RegistrySection:
        s = self.settings
        section = RegistrySection(url=s.registry_endpoint)
        if s.registry_url is None and not tcp_open(s.registry_host or s.bind_host, s.registry_port, timeout_s=1.0):
            section.error = f"registry {s.registry_endpoint} unreachable"
            section.measured_at = time.time()
            return section
        budget = Budget(self.budget_s)
        with registry_client(s, "monitor", timeout=3, **{"max.retries": 0}) as client:
            with contextlib.suppress(SchemaRegistryError):
                section.compatibility = str(client.get_compatibility())
            names = sorted(client.get_subjects())[: self.max_subjects]
            for i, name in enumerate(names):
                if budget.expired:
                    section.error = f"slow registry: {len(names) - i} subject(s) not read in {self.budget_s:.0f}s"
                    break
                subject = Subject(name=name, versions=sorted(int(v) for v in client.get_versions(name)))
                with contextlib.suppress(SchemaRegistryError):
                    schema_id = client.get_latest_version(name).schema_id
                    subject.latest_schema_id = int(schema_id) if schema_id is not None else None
                with contextlib.suppress(SchemaRegistryError):  # no subject-level override: the global level
                    subject.compatibility = str(client.get_compatibility(subject_name=name))
                section.subjects.append(subject)
        section.measured_at = time.time()
        return section
