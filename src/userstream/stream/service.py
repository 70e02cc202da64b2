"""The streaming job as a service of the runtime contract, for `userstream run stream`: a container (or any
process manager) runs the driver in the foreground. Locally `bootstrap` starts it beside the services."""

from __future__ import annotations

import logging
import time

from userstream.cdc.topics import ensure_topics
from userstream.runtime.base import Health, Service
from userstream.runtime.process import Program
from userstream.store.cassandra import apply_cassandra_schema
from userstream.stream.control import PROGRAM, build_job_submit, job_paths, progress_health
from userstream.stream.progress import read_progress

log = logging.getLogger("userstream.stream")


class StreamJobService(Service):
    name = PROGRAM
    depends_on = ("kafka", "registry", "cassandra", "spark")
    start_timeout_s = 900.0  # the first micro-batch of a backlog on cold JVMs
    schema_timeout_s = 600.0

    def programs(self) -> list[Program]:
        return [build_job_submit(self.settings).program(PROGRAM)]

    def prepare(self) -> None:
        """The job's topics and tables (idempotent), once Kafka and Cassandra answer: the job's own
        dependencies are waited for here, with backoff, not by the order containers start in."""
        deadline = time.monotonic() + self.schema_timeout_s
        delay = 2.0
        while True:
            try:
                apply_cassandra_schema(self.settings)
                ensure_topics(self.settings)
                break
            except Exception as exc:  # a node not up yet, or roles not created yet
                if time.monotonic() > deadline:
                    raise
                log.warning("stream: Kafka or Cassandra not ready (tried again in %.0f s): %s", delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        paths = job_paths(self.settings)
        paths.stop_file.unlink(missing_ok=True)
        paths.progress.unlink(missing_ok=True)  # the last run's progress would pass for this one's

    def health(self) -> Health:
        ok, detail = progress_health(read_progress(job_paths(self.settings).progress))
        return Health(ok, detail)


__all__ = ["StreamJobService"]
