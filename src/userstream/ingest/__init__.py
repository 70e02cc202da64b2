"""Ingest: fetch pages from the source, validate, land them in PostgreSQL (used by the DAG and the CLI)."""

from userstream.ingest.backpressure import Backpressure
from userstream.ingest.land import LandedUser, LandResult, Reject, land_batch
from userstream.ingest.run import IngestReport, PageSource, RateLimiter, ingest, ingest_window

__all__ = [
    "Backpressure",
    "IngestReport",
    "LandResult",
    "LandedUser",
    "PageSource",
    "RateLimiter",
    "Reject",
    "ingest",
    "ingest_window",
    "land_batch",
]
