"""The streaming job's progress file, read by the dashboard (format: docs/stream.md).

Pure Python: the job feeds :class:`ProgressTracker` from its foreachBatch (rows written, latency) and from a
StreamingQueryListener (one ``StreamingQueryProgress`` JSON per micro-batch); the tracker rewrites the file
atomically, so a reader never sees half a document.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
RECENT_BATCHES = 50

Offsets = dict[str, dict[str, int]]  # topic -> partition -> offset


def iso_ms(at: datetime) -> str:
    """``at`` as ISO-8601 UTC text with milliseconds and ``Z`` (the progress file's times, the job's batch time)."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_now(clock: Callable[[], float] | None = None) -> str:
    ts = clock() if clock else datetime.now(UTC).timestamp()
    return iso_ms(datetime.fromtimestamp(ts, UTC))


def parse_offsets(value: object) -> Offsets:
    """A Kafka source offset (``{"topic": {"0": 12, "1": 40}}``, as JSON text or already parsed) -> dict."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, Mapping):
        return {}
    out: Offsets = {}
    for topic, parts in value.items():
        if isinstance(parts, Mapping):
            out[str(topic)] = {str(p): int(o) for p, o in parts.items() if isinstance(o, int | float)}
    return out


def offsets_behind(latest: Offsets, end: Offsets) -> int:
    """Records available but not yet processed: latest minus end offset, per partition, summed (never < 0)."""
    behind = 0
    for topic, parts in latest.items():
        done = end.get(topic, {})
        for partition, last in parts.items():
            behind += max(0, last - done.get(partition, 0))
    return behind


def _number(value: object) -> float | None:
    # Spark reports NaN/Infinity for rates of empty or instant batches; JSON has neither
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def summarize_progress(progress: Mapping[str, Any]) -> dict[str, Any]:
    """One query's entry in ``queries`` from a StreamingQueryProgress JSON (``progress.json`` of PySpark)."""
    start: Offsets = {}
    end: Offsets = {}
    latest: Offsets = {}
    for source in progress.get("sources") or []:
        for offsets, key in ((start, "startOffset"), (end, "endOffset"), (latest, "latestOffset")):
            for topic, parts in parse_offsets(source.get(key)).items():
                offsets.setdefault(topic, {}).update(parts)
    rows = int(progress.get("numInputRows") or 0)
    if start and end:
        # records consumed, from the offsets: Spark's numInputRows counts the source once per read, and a
        # foreachBatch that reads its micro-batch twice (a new writer schema) would show double
        rows = offsets_behind(end, start)
    duration = progress.get("batchDuration")
    if duration is None:
        duration = (progress.get("durationMs") or {}).get("triggerExecution")
    return {
        "batch_id": progress.get("batchId"),
        "timestamp": progress.get("timestamp"),
        "num_input_rows": rows,
        "input_rows_per_second": _number(progress.get("inputRowsPerSecond")),
        "processed_rows_per_second": _number(progress.get("processedRowsPerSecond")),
        "batch_duration_ms": int(duration) if duration is not None else None,
        # where the batch time went: addBatch (our foreachBatch), latestOffset, queryPlanning, walCommit, ...
        "durations_ms": {
            k: int(v) for k, v in (progress.get("durationMs") or {}).items() if isinstance(v, int | float)
        },
        "offsets_behind": offsets_behind(latest, end) if latest else None,
        "end_offsets": end,
        "watermark": (progress.get("eventTime") or {}).get("watermark"),
        "state": [_state_operator(op) for op in progress.get("stateOperators") or []],
    }


# a stateful operator's figures in a StreamingQueryProgress, by our name; RocksDB's reads and writes are among
# its customMetrics (what the state store costs per record)
_STATE_FIELDS = {
    "rows_total": "numRowsTotal",
    "rows_updated": "numRowsUpdated",
    "rows_removed": "numRowsRemoved",
    "update_ms": "allUpdatesTimeMs",
    "remove_ms": "allRemovalsTimeMs",
    "commit_ms": "commitTimeMs",
    "memory_bytes": "memoryUsedBytes",
}
_STATE_STORE_METRICS = {"store_gets": "rocksdbGetCount", "store_puts": "rocksdbPutCount"}


def _state_operator(op: Mapping[str, Any]) -> dict[str, Any]:
    custom = op.get("customMetrics") or {}
    return {
        "operator": op.get("operatorName"),
        **{ours: _number(op.get(spark)) for ours, spark in _STATE_FIELDS.items()},
        **{ours: _number(custom.get(spark)) for ours, spark in _STATE_STORE_METRICS.items()},
    }


def write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    """Write to a temp file in the same directory, fsync, rename over ``path`` (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_progress(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data


class ProgressTracker:
    """The state behind the progress file; thread-safe (foreachBatch and listener calls come on py4j threads)."""

    def __init__(
        self,
        path: Path,
        job: Mapping[str, Any],
        *,
        recent: int = RECENT_BATCHES,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._job = {**job, "started_at": iso_now(clock)}
        self._state = "starting"
        self._error: str | None = None
        self._queries: dict[str, dict[str, Any]] = {}
        self._totals = {"valid": 0, "dlq": 0}
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self._latency: dict[str, Any] | None = None

    # --- inputs --------------------------------------------------------------------------------------
    def record_written(self, valid: int, dlq: int, latency_ms: Mapping[str, float | None] | None = None) -> None:
        """Rows one users micro-batch wrote (Cassandra, DLQ) and its fetched_at -> processed_at latency."""
        with self._lock:
            self._totals["valid"] += valid
            self._totals["dlq"] += dlq
            if latency_ms and any(v is not None for v in latency_ms.values()):
                self._latency = {k: (round(v, 1) if v is not None else None) for k, v in latency_ms.items()}
                self._latency["rows"] = valid

    def record_progress(self, progress: Mapping[str, Any]) -> dict[str, Any]:
        """A StreamingQueryProgress (as JSON dict): updates the query's entry and the recent batches."""
        name = str(progress.get("name") or progress.get("id") or "query")
        summary = summarize_progress(progress)
        with self._lock:
            self._state = "running"
            self._queries[name] = summary
            if summary["num_input_rows"] > 0:  # idle triggers would push real batches out of the window
                self._recent.append(
                    {
                        "query": name,
                        "batch_id": summary["batch_id"],
                        "rows": summary["num_input_rows"],
                        "duration_ms": summary["batch_duration_ms"],
                        "phases_ms": summary["durations_ms"],
                        "ts": summary["timestamp"],
                    }
                )
        return summary

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def set_state(self, state: str, error: str | None = None) -> None:
        """``error`` is kept until a later state says another (``running`` after a restart clears it)."""
        with self._lock:
            self._state = state
            if error is not None:
                self._error = error[:2000]
            elif state == "running":
                self._error = None

    # --- output --------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "version": FORMAT_VERSION,
                "updated_at": iso_now(self._clock),
                "state": self._state,
                "error": self._error,
                "job": dict(self._job),
                "queries": {k: dict(v) for k, v in self._queries.items()},
                "totals": dict(self._totals),
                "recent_batches": list(self._recent),
                "latency_ms": dict(self._latency) if self._latency else None,
            }

    def write(self) -> None:
        write_json_atomic(self.path, self.snapshot())
