"""`userstream bench cluster`: the pipeline's throughput, latency and CPU per record on the compose cluster,
measured as `bench pipeline` measures the local mode (the same `run_once`, run by a client container of the
cluster), with each node's CPU read from podman (cgroup CPU time), and this machine's speed from the same
reference loops."""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from userstream.cpu_budget import Calibration, calibrate
from userstream.deploy.cluster import ComposeCluster, compose_nodes
from userstream.runtime.base import Reporter

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration_s(text: str) -> float:
    """Seconds of a Go duration as podman prints it ("1m2.5s", "750ms", "42.35s")."""
    parts = _DURATION_PART.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def node_cpu_seconds(cluster: ComposeCluster) -> dict[str, float]:
    """node -> CPU seconds its container has used (user + system, every process in it)."""
    names = {cluster.container(node): node for node in compose_nodes(cluster.compose_file)}
    out = cluster.podman("stats", "--no-stream", "--format", "json", *names, check=False, timeout_s=60).stdout
    return {names[row["name"]]: go_duration_s(row["cpu_time"]) for row in json.loads(out or "[]")}


@dataclass
class ClusterRun:
    label: str
    run: dict[str, Any]  # `benchmark.RunResult.row()` as the client measured it
    node_cpu_us_per_record: dict[str, float]

    @property
    def cpu_us_total(self) -> float:
        client = sum(float(v) for v in self.run["cpu_us_per_record"].values())
        return client + sum(self.node_cpu_us_per_record.values())


@dataclass
class ClusterBench:
    runs: list[ClusterRun]
    calibration: Calibration | None = None
    nodes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "mode": "cluster",
            "nodes": self.nodes,
            "calibration": self.calibration.as_dict() if self.calibration else None,
            "runs": [{**asdict(r), "cpu_us_total": round(r.cpu_us_total, 1)} for r in self.runs],
        }


def bench_cluster(
    cluster: ComposeCluster,
    reporter: Reporter,
    *,
    flat_out_s: float = 30.0,
    rates: tuple[float, ...] = (1000.0,),
    rate_duration_s: float = 20.0,
    json_path: Path | None = None,
) -> ClusterBench:
    """Needs the cluster up and healthy. Pauses the cluster's own ingest (Airflow's), drains, then ingests
    from a client container flat out and at each of ``rates``."""
    calibration = calibrate()  # first: before the load
    reporter.step("cluster bench: pausing the cluster's ingest and draining")
    cluster.client("drain-audit", "--timeout", "600")
    runs = []
    plan: list[tuple[str, float, float]] = [("max sustained", 0.0, flat_out_s)]
    plan += [(f"{rate:.0f} records/s", rate, rate_duration_s) for rate in rates]
    for label, rate, seconds in plan:
        reporter.step(f"cluster bench: {label} for {seconds:.0f} s")
        before = node_cpu_seconds(cluster)
        out = cluster.client("pipeline-run", "--label", label, "--rate", f"{rate:g}", "--seconds", f"{seconds:g}")
        after = node_cpu_seconds(cluster)
        run: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        stored = max(int(run["stored"]), 1)
        per_node = {n: (after[n] - before.get(n, 0.0)) / stored * 1e6 for n in after}
        ranked = dict(sorted(((n, round(v, 1)) for n, v in per_node.items() if v > 0), key=lambda kv: -kv[1]))
        runs.append(ClusterRun(label, run, ranked))
        time.sleep(5)  # the last batch's follow-up work (offsets, progress) before the next snapshot
    result = ClusterBench(runs, calibration, list(compose_nodes(cluster.compose_file)))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(result.as_dict(), indent=2))
    return result


def render_runs(result: ClusterBench) -> Table:
    table = Table("run", "landed", "in Cassandra", "ingest/s", "end-to-end/s", "p50 s", "p99 s", "CPU µs/record",
                  title="bench cluster")  # fmt: skip
    for r in result.runs:
        lat = r.run["latency_ms"]
        table.add_row(r.label, str(r.run["landed"]), str(r.run["stored"]), f"{r.run['ingest_rate']:,.0f}",
                      f"{r.run['end_to_end_rate']:,.0f}", f"{lat['p50'] / 1000:.2f}", f"{lat['p99'] / 1000:.2f}",
                      f"{r.cpu_us_total:,.0f}")  # fmt: skip
    return table


def render_cpu(run: ClusterRun) -> Table:
    table = Table("node (container)", "CPU µs/record", title=f"CPU per record by node: {run.label}")
    for name, us in run.run["cpu_us_per_record"].items():
        table.add_row(f"bench client: {name}", f"{us:,.0f}")
    for node, us in run.node_cpu_us_per_record.items():
        table.add_row(node, f"{us:,.0f}")
    table.add_row("total", f"{run.cpu_us_total:,.0f}")
    return table


__all__ = ["ClusterBench", "ClusterRun", "bench_cluster", "go_duration_s", "node_cpu_seconds", "render_cpu",
           "render_runs"]  # fmt: skip
