"""``userstream stream start|stop|status`` and ``userstream bench stream`` (no PySpark import here)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from userstream.config import get_settings
from userstream.stream.bench import bench_stream as run_bench
from userstream.stream.control import ensure_job_running, job_status, stop_job

app = typer.Typer(
    help="The Spark streaming job: users topic -> Cassandra (+ DLQ, per-minute counts).", no_args_is_help=True
)
console = Console(stderr=True)


@app.command()
def start() -> None:
    """Apply the Cassandra schema and start the job under supervisord unless it already runs."""
    settings = get_settings()
    outcome = ensure_job_running(settings)
    console.print(f"stream job {outcome} ({settings.users_topic} -> {settings.cassandra_keyspace})")


@app.command()
def stop() -> None:
    """Stop the job cleanly; the checkpoint keeps its place for the next start."""
    console.print("stopped" if stop_job(get_settings()) else "not running")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Supervisor state, paths and the last progress of the job."""
    info = job_status(get_settings())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    progress: dict[str, Any] = info.get("progress") or {}
    console.print(f"[bold]{info['name']}[/bold]: {info['state']} (pid {info['pid'] or '-'})")
    console.print(f"  {info['users_topic']} -> {info['keyspace']}; dlq {info['dlq_topic']}")
    console.print(f"  checkpoint {info['checkpoint']}\n  log {info['log']}")
    if not progress:
        console.print("  no progress yet")
        return
    totals = progress.get("totals", {})
    console.print(
        f"  progress {progress.get('state')} at {progress.get('updated_at')}: "
        f"{totals.get('valid', 0):,} valid, {totals.get('dlq', 0):,} to the DLQ this run"
    )
    table = Table("query", "batch", "rows", "in/s", "done/s", "batch ms", "behind")
    for name, q in (progress.get("queries") or {}).items():
        table.add_row(
            name,
            str(q.get("batch_id")),
            str(q.get("num_input_rows")),
            _fmt(q.get("input_rows_per_second")),
            _fmt(q.get("processed_rows_per_second")),
            str(q.get("batch_duration_ms")),
            str(q.get("offsets_behind")),
        )
    Console().print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def bench_stream(
    records: Annotated[int, typer.Option(help="records pre-filled in the topic")] = 1_000_000,
    ceiling_records: Annotated[int | None, typer.Option(help="rows for the ceiling (default: --records)")] = None,
    concurrency: Annotated[int, typer.Option(help="ceiling: inserts in flight per client")] = 256,
    clients: Annotated[int, typer.Option(help="ceiling: client processes side by side")] = 1,
    latency_rate: Annotated[float, typer.Option(help="records/s of the latency phase")] = 1000.0,
    latency_seconds: Annotated[float, typer.Option(help="length of the latency phase (0: skip)")] = 60.0,
    keep: Annotated[bool, typer.Option(help="keep the benchmark topics")] = False,
    json_out: Annotated[str | None, typer.Option("--json", help="also write the figures to this file")] = None,
) -> None:
    """Job throughput (pre-filled topic -> Cassandra) vs a cassandra-driver write ceiling; batch latency."""
    result = run_bench(
        get_settings(),
        records=records,
        ceiling_records=ceiling_records,
        ceiling_concurrency=concurrency,
        ceiling_processes=clients,
        latency_rate=latency_rate,
        latency_seconds=latency_seconds,
        keep=keep,
        say=console.print,
    )
    out = Console()
    table = Table("figure", "value")
    table.add_row("job throughput", f"{result.job_rows_per_s:,.0f} rows/s ({result.records:,} rows)")
    table.add_row("Cassandra ceiling", f"{result.ceiling_rows_per_s:,.0f} rows/s ({result.ceiling_records:,} rows)")
    table.add_row("ratio (target >= 0.5)", f"{result.ratio:.2f}")
    table.add_row(
        "Cassandra CPU: ceiling / job phase", f"{result.ceiling_cassandra_cpu_s}s / {result.job_cassandra_cpu_s}s"
    )
    table.add_row("job wall time from spark-submit", f"{result.job_wall_seconds:.1f}s")
    if result.batch_ms:
        b, r = result.batch_ms, result.record_latency_ms
        table.add_row(f"batch duration at {result.latency_rate:,.0f}/s", f"p50 {_ms(b['p50'])}, p99 {_ms(b['p99'])}")
        table.add_row("record latency fetched_at->processed_at", f"p50 {_ms(r['p50'])}, p99 {_ms(r['p99'])}")
    out.print(table)
    out.print(f"config: {result.config}")
    if json_out:
        with open(json_out, "w") as fh:
            json.dump(result.as_dict(), fh, indent=2)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"
