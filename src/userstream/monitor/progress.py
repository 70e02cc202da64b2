"""Tolerant reader of the streaming job's ``progress.json``.

The job is written independently and may be mid-write, older, or newer than this reader: a missing file,
bad JSON or absent/ill-typed fields become ``None``/empty values and an explanatory ``progress_error``,
never an exception.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from userstream.config import Settings
from userstream.monitor.models import SparkBatch, SparkQuery, SparkSection

__all__ = ["parse_progress", "progress_path", "read_progress"]

_PERCENTILE = re.compile(r"^p\d{1,3}(\.\d+)?$")


def progress_path(settings: Settings) -> Path:
    return settings.state_dir / "stream" / "progress.json"


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _offsets(value: Any) -> dict[str, dict[str, int]]:
    """Spark reports Kafka offsets as ``{"topic": {"0": 12, "1": 30}}``, sometimes as a JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    out: dict[str, dict[str, int]] = {}
    for topic, parts in value.items():
        if not isinstance(parts, dict):
            continue
        clean = {str(p): o for p, raw in parts.items() if (o := _int(raw)) is not None}
        if clean:
            out[str(topic)] = clean
    return out


def _timestamp(value: Any) -> float | None:
    """Unix seconds from an ISO-8601 string or a number (seconds, or milliseconds when huge)."""
    number = _float(value)
    if number is not None:
        return number / 1000.0 if number > 1e11 else number
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def parse_progress(data: Any, *, now: float | None = None) -> SparkSection:
    """A SparkSection (progress part only) from the decoded JSON document."""
    section = SparkSection()
    if not isinstance(data, dict):
        section.progress_error = "progress.json is not a JSON object"
        return section
    section.updated_at = _str(data.get("updated_at"))
    section.job_state = _str(data.get("state"))
    section.job_error = _str(data.get("error"))
    updated = _timestamp(data.get("updated_at"))
    if updated is not None:
        section.measured_at = updated
        section.progress_age_s = max(0.0, (now if now is not None else time.time()) - updated)
    queries = data.get("queries")
    if isinstance(queries, dict):
        for name, q in sorted(queries.items()):
            if not isinstance(q, dict):
                q = {}
            section.queries.append(
                SparkQuery(
                    name=str(name),
                    batch_id=_int(q.get("batch_id")),
                    num_input_rows=_int(q.get("num_input_rows")),
                    input_rows_per_second=_float(q.get("input_rows_per_second")),
                    processed_rows_per_second=_float(q.get("processed_rows_per_second")),
                    batch_duration_ms=_float(q.get("batch_duration_ms")),
                    offsets_behind=_int(q.get("offsets_behind")),
                    end_offsets=_offsets(q.get("end_offsets")),
                )
            )
    totals = data.get("totals")
    if isinstance(totals, dict):
        section.total_valid = _int(totals.get("valid"))
        section.total_dlq = _int(totals.get("dlq"))
    batches = data.get("recent_batches")
    if isinstance(batches, list):
        for b in batches[-60:]:  # the page draws at most this many bars
            if isinstance(b, dict):
                section.recent_batches.append(
                    SparkBatch(
                        batch_id=_int(b.get("batch_id")),
                        rows=_int(b.get("rows")),
                        duration_ms=_float(b.get("duration_ms")),
                        ts=_str(b.get("ts")),
                    )
                )
    latency = data.get("latency_ms")
    if isinstance(latency, dict):
        # percentiles only ("p50", "p99", ...): the job may add other keys, such as the rows measured
        section.latency_ms = {
            str(k): v for k, raw in latency.items() if _PERCENTILE.match(str(k)) and (v := _float(raw)) is not None
        }
    return section


def read_progress(path: Path, *, now: float | None = None) -> SparkSection:
    """Parse the file at ``path``; every failure is reported in ``progress_error``."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return SparkSection(progress_file=str(path), progress_error="no progress.json yet (streaming job not started)")
    except OSError as exc:
        return SparkSection(progress_file=str(path), progress_error=f"cannot read progress.json: {exc}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        # the job may be rewriting it right now; the next poll will see the complete file
        return SparkSection(progress_file=str(path), progress_error=f"progress.json is not valid JSON: {exc}")
    section = parse_progress(data, now=now)
    section.progress_file = str(path)
    return section
