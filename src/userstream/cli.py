"""The `userstream` command line."""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import httpx
import psycopg
import typer
from rich.console import Console
from rich.table import Table

from userstream.benchmark import bench_pipeline
from userstream.cdc.bench import bench_cdc
from userstream.chaos import ChaosOptions, exit_code, parse_faults, render_table, run_chaos
from userstream.coldstart import bench_first_row
from userstream.config import get_settings
from userstream.demo import EarlyBootstrap, detach_broken_output, run_demo
from userstream.deploy.cli import bench_cluster_cmd, cluster_app, images_app
from userstream.deploy.cluster import ComposeCluster
from userstream.deploy.failover import render_table as failover_table
from userstream.deploy.failover import run_cluster_failover
from userstream.errors import UserstreamError
from userstream.ingest import IngestReport, ingest
from userstream.ingest.bench import bench_ingest
from userstream.monitor.audit import wait_until_drained
from userstream.monitor.live import run_live
from userstream.monitor.server import serve as serve_dashboard
from userstream.pipeline import bootstrap as run_bootstrap
from userstream.pipeline import bootstrap_when_ready, demo_environment
from userstream.runtime.bench import bench_stack
from userstream.runtime.foreground import run_foreground
from userstream.runtime.health import health_report
from userstream.runtime.secrets import ROTATABLE, secrets_overview
from userstream.runtime.secrets import rotate as rotate_secrets
from userstream.runtime.stack import Stack, runnable_service
from userstream.source import SourceClient
from userstream.source.cli import app as source_app
from userstream.source.cli import bench_source
from userstream.store.postgres import apply_postgres_schema
from userstream.stream.cli import app as stream_app
from userstream.stream.cli import bench_stream

console = Console(stderr=True)
app = typer.Typer(
    help="userstream: random-user API -> Airflow -> Postgres -> Debezium/Kafka -> Spark -> Cassandra.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

bench_app = typer.Typer(help="Benchmarks that print their figures (and targets) for each stage.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(source_app, name="source")
app.add_typer(images_app, name="images")
app.add_typer(cluster_app, name="cluster")
bench_app.command("source")(bench_source)
bench_app.command("cluster")(bench_cluster_cmd)
app.add_typer(stream_app, name="stream")
bench_app.command("stream")(bench_stream)

ServicesArg = Annotated[
    list[str] | None, typer.Argument(help="services to act on (default: all, with their dependencies)")
]


class ConsoleReporter:
    """Progress lines for long steps."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def step(self, message: str) -> None:
        try:
            console.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/dim] {message}")
        except BrokenPipeError:  # the reader is gone (`... | tee` ended by Ctrl-C): keep working, silently
            detach_broken_output(console)


def _stack(names: list[str] | None = None) -> Stack:
    return Stack(get_settings(), names or None)


@app.command()
def install(services: ServicesArg = None) -> None:
    """Fetch everything the local services need (jars, Postgres); idempotent."""
    reporter = ConsoleReporter()
    timings = _stack(services).install(reporter)
    for name, secs in timings.items():
        console.print(f"  {name:<10} ready ({secs:.1f}s)")


@app.command()
def up(
    services: ServicesArg = None,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="run the whole pipeline: bootstrap, ingest from the bundled source, live view; Ctrl-C stops",
        ),
    ] = False,
    keep_running: Annotated[
        bool, typer.Option("--keep-running", help="with --demo: leave the stack up when the view is closed")
    ] = False,
) -> None:
    """Install what is missing and start the services in dependency order; harmless when already up."""
    reporter = ConsoleReporter()
    if demo:
        os.environ.update(demo_environment(get_settings()))
        get_settings.cache_clear()
    settings = get_settings()
    stack = _stack(None if demo else services)
    early = EarlyBootstrap(settings) if demo else None

    def healthy(name: str, elapsed: float) -> None:
        console.print(f"[green]✓[/green] {name} healthy at {elapsed:.1f}s")
        if early is not None:
            early.service_healthy(name, reporter)

    timings = stack.up(reporter, on_healthy=healthy)
    console.print(f"[bold]stack up in {timings['total']:.1f}s[/bold]")
    for st in stack.status():
        for label, url in st.urls.items():
            console.print(f"  {st.name:<10} {label:<14} {url}")
    if early is not None:
        run_demo(settings, stack, early, reporter, console.print, keep_running=keep_running, consoles=(console,))


@app.command()
def down(services: ServicesArg = None) -> None:
    """Stop the services gracefully; all data is kept."""
    _stack(services).down(ConsoleReporter())
    console.print("stopped")


@app.command()
def run(
    service: Annotated[str, typer.Argument(help="a service of `userstream status`, or `stream` (the job)")],
) -> None:
    """Run one service in the foreground (a container's command): prepared and set up as by `up`, logs on
    stdout; SIGTERM or Ctrl-C stops it gracefully. Its dependencies are not started."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    raise typer.Exit(run_foreground(runnable_service(get_settings(), service)))


secrets_app = typer.Typer(help="Secrets generated per install: logins, files, rotation.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("show")
def secrets_show() -> None:
    """Print the logins a person needs (Airflow, the Spark UIs, the dashboard URL with its token) and secret files."""
    logins, infos = secrets_overview(get_settings())
    for label, value in logins.items():
        Console().print(f"{label:<11} {value}", soft_wrap=True, highlight=False)
    table = Table("secret", "file (0600)", "source", title="secrets")
    for info in infos:
        table.add_row(info.name, info.path, "USERSTREAM_" + info.name.upper() if info.overridden else "generated")
    Console().print(table)


@secrets_app.command("rotate")
def secrets_rotate(
    service: Annotated[str | None, typer.Argument(help=f"one of {', '.join(ROTATABLE)} (default: all)")] = None,
) -> None:
    """New random secrets for SERVICE (default: all), applied: Postgres' roles altered, the programs that
    read them at start restarted (Kafka, the registry, ...), the CDC connector and streaming job restarted."""
    rotated = rotate_secrets(get_settings(), service, ConsoleReporter())
    console.print(f"rotated: {', '.join(rotated)}")


@app.command()
def status(
    services: ServicesArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Show each service (running, healthy, endpoints), the streaming job and each stage (flowing, idle,
    stalled). Exits 1 when anything is unhealthy or stalled, so scripts and probes can use it."""
    report = health_report(_stack(services), whole_pipeline=not services)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        raise typer.Exit(0 if report.ok else 1)
    table = Table("service", "state", "health", "endpoints")
    for s in report.services:
        state = "external" if s.external else ("running" if s.running else "stopped")
        mark = "[green]healthy[/green]" if s.health.healthy else "[red]down[/red]"
        health = f"{mark} {s.health.detail}"
        table.add_row(s.name, state, health, "\n".join(s.urls.values()))
    if report.job is not None:
        mark = "[green]healthy[/green]" if report.job.healthy else "[red]down[/red]"
        table.add_row("stream (job)", "running" if report.job.healthy else "-", f"{mark} {report.job.detail}", "")
    out = Console()
    out.print(table)
    if not services:
        stages = Table("stage", "state", "backlog", "detail")
        colour = {"stalled": "red", "flowing": "green", "idle": "cyan", "unknown": "yellow"}
        for v in report.stages:
            stages.add_row(v.stage, f"[{colour[v.state]}]{v.state}[/]", str(v.backlog), v.detail)
        if report.stages_error:
            stages.add_row("-", "[yellow]unknown[/]", "", report.stages_error)
        out.print(stages)
    if not report.ok:
        out.print(f"[red]not ok:[/red] {'; '.join(report.problems)}")
        raise typer.Exit(1)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="service name")],
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 100,
) -> None:
    """Print (or follow) a service's log files."""
    stack = _stack([service])
    files = [str(p) for p in stack.services[service].log_files() if p.exists()]
    if not files:
        raise UserstreamError(f"{service} has no log yet", fix=f"start it with `userstream up {service}`")
    subprocess.run(["tail", "-n", str(lines), *(["-F"] if follow else []), *files], check=False)


@app.command()
def bootstrap(
    with_stream: Annotated[bool, typer.Option("--stream/--no-stream", help="also start the Spark job")] = True,
    wait: Annotated[float, typer.Option(help="seconds to keep trying while the services do not answer yet")] = 0,
    start_ingest: Annotated[bool, typer.Option(help="then unpause the ingest DAGs (records start to flow)")] = False,
) -> None:
    """Create topics, schemas, DDL and the CDC connector (what the pipeline_bootstrap DAG does); idempotent."""
    steps = bootstrap_when_ready(
        get_settings(), wait, with_stream=with_stream, start_ingest=start_ingest, say=console.print
    )
    for step, outcome in steps.items():
        console.print(f"  {step:<18} {outcome}")


@app.command()
def verify(
    wait: Annotated[float, typer.Option(help="keep auditing up to this many seconds until nothing is missing")] = 0.0,
    grace: Annotated[float, typer.Option(help="rows landed within this many seconds count as in flight")] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Audit: ids landed in Postgres = ids in Cassandra + ids in the DLQ; exit 1 on missing or duplicated ids."""
    report = wait_until_drained(get_settings(), timeout_s=wait, grace_s=grace)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(report.summary())
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def dashboard() -> None:
    """Serve the monitoring dashboard and Prometheus /metrics (foreground; `up` also runs it as a service)."""
    serve_dashboard(get_settings(), announce=lambda line: console.print(line, soft_wrap=True))


@app.command()
def watch(
    interval: Annotated[float, typer.Option(help="seconds between refreshes")] = 1.0,
) -> None:
    """Live terminal view of records per stage, with rates; Ctrl-C to stop."""
    run_live(get_settings(), interval_s=interval)


@app.command("ingest")
def ingest_cmd(
    records: Annotated[int | None, typer.Option(help="stop after this many records (whole pages)")] = None,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    rate: Annotated[float | None, typer.Option(help="records per second (default: as fast as possible)")] = None,
    seed: Annotated[str | None, typer.Option(help="seeded sequence [default: USERSTREAM_SOURCE_SEED]")] = None,
    start_page: Annotated[int | None, typer.Option(help="first page (default: after the last one landed)")] = None,
    source_url: Annotated[str | None, typer.Option(help="API base URL [default: USERSTREAM_SOURCE_URL]")] = None,
) -> None:
    """Fetch users from the API and land them in PostgreSQL, without Airflow (schema applied first)."""
    if records is None and duration is None:
        raise UserstreamError("ingest needs a bound", fix="pass --records N or --duration SECONDS")
    settings = get_settings()
    apply_postgres_schema(settings)
    source = SourceClient(source_url, settings=settings, seed=seed) if source_url else None

    def progress(report: IngestReport) -> None:
        console.print(
            f"[dim]{report.seconds:6.1f}s[/dim] page {report.last_page}: landed {report.landed} "
            f"dup {report.duplicates} rejected {report.rejected} ({report.rate:.0f}/s)"
        )

    try:
        report = ingest(
            settings, max_records=records, duration_s=duration, rate=rate, seed=seed,
            start_page=start_page, source=source, on_progress=progress,
        )  # fmt: skip
    finally:
        if source is not None:
            source.close()
    console.print(report.summary())


@bench_app.command("stack")
def bench_stack_cmd(
    idle_s: Annotated[float, typer.Option(help="seconds to let the stack settle before sampling memory")] = 20.0,
    json_out: Annotated[str | None, typer.Option("--json", help="also write the figures to this file")] = None,
) -> None:
    """Stop the stack, start it, and report seconds-to-healthy per service and idle memory (PSS)."""
    result = bench_stack(get_settings(), idle_s=idle_s)
    table = Table("service", "healthy after (s)", "idle PSS (MiB)")
    for name, secs in result.seconds_to_healthy.items():
        if name != "total":
            table.add_row(name, f"{secs:.1f}", f"{result.pss_mib.get(name, 0):.0f}")
    table.add_row("[bold]total[/bold]", f"{result.seconds_to_healthy['total']:.1f}", f"{result.total_pss_mib:.0f}")
    Console().print(table)
    total_s, total_gib = result.seconds_to_healthy["total"], result.total_pss_mib / 1024
    Console().print(
        f"all healthy in {total_s:.1f}s (target <= 90s, ratio {total_s / 90:.2f}); "
        f"stack memory {total_gib:.2f} GiB (target <= 6 GiB, ratio {total_gib / 6:.2f})"
    )
    if json_out:
        payload = {"seconds_to_healthy": result.seconds_to_healthy, "pss_mib": result.pss_mib}
        with open(json_out, "w") as fh:
            json.dump(payload, fh, indent=2)


@bench_app.command("ingest")
def bench_ingest_cmd(
    records: Annotated[int, typer.Option(help="records to ingest")] = 200_000,
) -> None:
    """Ingest rate into PostgreSQL from the bundled source, next to the source's fetch+validate rate alone."""
    figures = bench_ingest(get_settings(), records=records)
    table = Table("figure", "records", "seconds", "records/s")
    for f in figures:
        table.add_row(f.name, str(f.records), f"{f.seconds:.2f}", f"{f.rate:,.0f}")
    Console().print(table)
    Console().print(f"ingest / source-alone ratio: {figures[1].extra['ratio_to_reference']:.2f}")


@bench_app.command("cdc")
def bench_cdc_cmd(
    rate: Annotated[float, typer.Option(help="fixed landing rate for the lag figure (records/s)")] = 1000.0,
    duration: Annotated[float, typer.Option(help="seconds at the fixed rate")] = 20.0,
    max_records: Annotated[int, typer.Option(help="records landed flat out for the max-rate figure")] = 100_000,
) -> None:
    """CDC rate and lag (Postgres commit -> record in Kafka, p50/p99) at a fixed rate and flat out.

    Needs postgres, kafka, registry and connect up and the connector registered (`userstream bootstrap`).
    """
    settings = get_settings()
    results = [bench_cdc(settings, rate, int(rate * duration)), bench_cdc(settings, None, max_records)]
    table = Table("run", "records in Kafka", "seconds", "records/s", "lag p50 (ms)", "lag p99 (ms)")
    for r in results:
        lag = (f"{r.pct(0.5):.0f}", f"{r.pct(0.99):.0f}")
        table.add_row(r.label, str(r.records), f"{r.seconds:.1f}", f"{r.rate:,.0f}", *lag)
    Console().print(table)


@bench_app.command("pipeline")
def bench_pipeline_cmd(
    max_duration: Annotated[float, typer.Option(help="seconds of the flat-out run")] = 60.0,
    rates: Annotated[str, typer.Option(help="fixed rates (records/s), comma-separated")] = "100,1000,5000",
    rate_duration: Annotated[float, typer.Option(help="seconds of each fixed-rate run")] = 30.0,
    ceiling_records: Annotated[int, typer.Option(help="users of the stage-ceiling measurement")] = 100_000,
    warmup: Annotated[
        float, typer.Option(help="seconds of a flat-out run after the ceilings, left out of the figures (JIT)")
    ] = 20.0,
    out: Annotated[str, typer.Option(help="directory for pipeline-bench.json and .png")] = "artifacts",
) -> None:
    """The whole pipeline flat out, then at fixed rates: throughput, latency p50/p95/p99 (fetched_at ->
    Cassandra WRITETIME), per-stage rates, and the slowest stage's standalone ceiling as a ratio. Also the
    CPU each process spent per record against its budget (200 us in all), and this machine's speed from
    reference loops in Python and the JVM timed in the same run.

    Starts the stack and bootstraps it if needed.
    """
    settings = get_settings()
    reporter = ConsoleReporter()
    _stack().up(reporter)
    run_bootstrap(settings)
    reporter.step("bootstrapped; measuring")
    result = bench_pipeline(
        settings,
        max_duration_s=max_duration,
        rates=tuple(float(r) for r in rates.split(",") if r.strip()),
        rate_duration_s=rate_duration,
        ceiling_records=ceiling_records,
        warmup_s=warmup,
        out_dir=Path(out),
    )
    table = Table("run", "landed", "in Cassandra", "ingest/s", "end-to-end/s", "Spark/s", "p50 s", "p95 s", "p99 s")
    for r in result.runs:
        lat = [f"{r.latency_ms[k] / 1000:.2f}" for k in ("p50", "p95", "p99")]
        spark = f"{r.spark_rate:,.0f}" if r.spark_rate else "n/a"
        table.add_row(r.label, str(r.landed), str(r.stored), f"{r.ingest_rate:,.0f}", f"{r.end_to_end_rate:,.0f}",
                      spark, *lat)  # fmt: skip
    Console().print(table)
    for r in result.runs:
        if r.batch_ms:
            b = r.batch_ms
            phases = ", ".join(f"{k} {v:,.0f}" for k, v in b.items() if k not in {"batches", "rows", "duration"})
            Console().print(
                f"{r.label}: {b['batches']:.0f} users micro-batches of {b['rows']:,.0f} rows, {b['duration']:,.0f} ms "
                f"each on average ({phases} ms)"
            )
    if result.warmup is not None:
        w = result.warmup
        Console().print(
            f"warm-up (left out): {w.duration_s:.0f}s flat out after the job's restart, {w.stored:,} users, "
            f"{w.cpu_us_total:,.0f} CPU us/record"
        )
    flat_out = result.runs[0]
    cpu = Table("process", "CPU us/record", title=f"CPU cost per record ({flat_out.label})")
    for name, us in flat_out.cpu_us_per_record.items():
        cpu.add_row(name, f"{us:,.0f}")
    bound = flat_out.cpu_bound_rate
    cpu.add_row("[bold]total[/bold]", f"[bold]{flat_out.cpu_us_total:,.0f}[/bold]")
    Console().print(cpu)
    cal = result.calibration
    budget = Table("budget line", "CPU us/record", "target", "", "at reference speed", title="CPU budget")
    for row in result.budget:
        mark = "[green]ok[/green]" if row.within else "[red]over[/red]"
        budget.add_row(row.group, f"{row.us_per_record:,.0f}", f"<= {row.target_us:,.0f}", mark,
                       f"{row.normalized_us:,.0f}")  # fmt: skip
    Console().print(budget)
    if cal is not None:
        jvm = f"{cal.jvm_s:.3f}s" if cal.jvm_s else "n/a (no java)"
        Console().print(
            f"calibration (same run): Python reference loop {cal.python_s:.3f}s, JVM {jvm}; this machine runs "
            f"at {cal.python_factor:.2f} x (Python) and {cal.jvm_factor:.2f} x (JVM) the reference machine's speed"
        )
    stages = Table("stage, alone (same invocation)", "records/s", title="stage ceilings")
    for stage, ceiling in result.ceilings.items():
        mark = " [bold](slowest)[/bold]" if stage == result.ceiling_stage else ""
        stages.add_row(stage + mark, f"{ceiling:,.0f}")
    Console().print(stages)
    best = flat_out.end_to_end_rate
    Console().print(
        f"slowest stage standalone: {result.ceiling_stage} {result.ceiling_rate:,.0f} records/s; "
        f"end to end flat out {best:,.0f} records/s = {best / result.ceiling_rate:.2f} x the ceiling "
        f"(targets: >= 10,000 records/s and >= 0.8 x). At {flat_out.cpu_us_total:,.0f} CPU us per record, "
        f"{result.cpus} cores carry at most {bound or 0:,.0f} records/s. "
        f"Figures in {out}/pipeline-bench.json and .png"
    )


@bench_app.command("first-row")
def bench_first_row_cmd(
    command: Annotated[
        str, typer.Option(help="what a user types; run from the current directory (e.g. 'make run')")
    ] = "",
    fresh: Annotated[
        bool, typer.Option("--fresh/--kept", help="a new, empty data dir (jars shared), or the configured one")
    ] = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the first user in Cassandra")] = 300.0,
    out: Annotated[str, typer.Option(help="directory for first-row.json and the command's output")] = "artifacts",
) -> None:
    """Cold start: stop the stack, start `userstream up --demo` (on a fresh data dir by default), time the
    first new user in Cassandra, then Ctrl-C it and time the graceful stop. Target: first row <= 90 s."""
    argv = shlex.split(command) if command else [str(Path(sys.executable).with_name("userstream")), "up", "--demo"]
    outdir = Path(out)
    log = outdir / "first-row.log"
    result = bench_first_row(get_settings(), argv, log_path=log, fresh=fresh, timeout_s=timeout)
    outdir.mkdir(parents=True, exist_ok=True)
    (outdir / "first-row.json").write_text(json.dumps(result.as_dict(), indent=2))

    def secs(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    title = f"{' '.join(argv)} ({'fresh data dir' if fresh else 'data kept'})"
    table = Table("from the start of the command to", "seconds", title=title)
    table.add_row("every service healthy (as printed)", secs(result.stack_up_s))
    table.add_row("ingest DAG unpaused (as printed)", secs(result.flow_started_s))
    table.add_row("first user landed in Postgres (fetched_at)", secs(result.first_landed_s))
    table.add_row("[bold]first user in Cassandra (WRITETIME)[/bold]", f"[bold]{secs(result.first_row_s)}[/bold]")
    table.add_row("Ctrl-C to stopped", secs(result.stopped_s))
    Console().print(table)
    verdict = "met" if result.first_row_s is not None and result.first_row_s <= 90 else "NOT met"
    Console().print(f"target first row <= 90 s: {verdict}; exit code after Ctrl-C {result.exit_code}; "
                    f"figures in {outdir}/first-row.json, output in {result.log}")  # fmt: skip


@app.command()
def chaos(
    rate: Annotated[
        float, typer.Option(help="records/s of ingest (lowered when the warm-up shows it is not kept up)")
    ] = 500.0,
    repeat: Annotated[int, typer.Option(help="times each fault is injected")] = 2,
    pause: Annotated[float, typer.Option(help="seconds a freeze (SIGSTOP) lasts before SIGCONT")] = 45.0,
    faults: Annotated[
        str,
        typer.Option(
            help="comma-separated faults (kafka, connect, cassandra, postgres, registry, spark-worker, "
            "stream-driver, airflow-scheduler, cassandra-freeze, kafka-freeze), `all`, or `none`"
        ),
    ] = "all",
    json_out: Annotated[str, typer.Option("--json", help="where to write the figures")] = "artifacts/chaos.json",
    png: Annotated[str, typer.Option(help="where to write the timeline plot")] = "artifacts/chaos.png",
    soak: Annotated[
        float, typer.Option(help="run this many seconds after the warm-up (with --faults none: a soak)")
    ] = 0.0,
    warmup: Annotated[
        float, typer.Option(help="seconds without faults to check the rate is sustained (0: no check)")
    ] = 60.0,
    settle: Annotated[
        float, typer.Option(help="a soak judges memory growth from this many seconds in (heaps and caches warm)")
    ] = 900.0,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="against the compose cluster (deploy/compose.yaml): kill one Kafka broker, Cassandra node, Spark "
            "worker, then each Connect worker (the idle one, then the CDC task's) in turn (--pause: seconds each "
            "stays down)",
        ),
    ] = False,
) -> None:
    """Run the pipeline (`up --demo`, source at 10 % faults) at a steady rate, kill or freeze its servers one
    after another, and report how long each took to heal on its own; then drain and audit. Exit 1 if a target
    is missed: every fault recovered with no human action, flowing <= 60 s after healthy, nothing missing or
    duplicated. Stops a stack of this data dir first when it runs with other settings."""
    if cluster:
        outcome = run_cluster_failover(
            ComposeCluster(), ConsoleReporter(), rate=rate, down_s=pause, warmup_s=warmup, json_path=Path(json_out)
        )
        Console().print(failover_table(outcome))
        Console().print(f"audit: {outcome.audit}")
        for miss in outcome.misses:
            Console().print(f"[red]target missed:[/red] {miss}")
        raise typer.Exit(0 if outcome.ok else 1)

    options = ChaosOptions(
        rate=rate, repeat=repeat, pause_s=pause, faults=parse_faults(faults), warmup_s=warmup, soak_s=soak,
        memory_settle_s=settle, json_path=Path(json_out), png_path=Path(png),
    )  # fmt: skip
    result = run_chaos(get_settings(), options, ConsoleReporter())
    Console().print(render_table(result))
    if result.audit is not None:
        a = result.audit
        Console().print(f"audit: {a.landed} landed, {a.stored} in Cassandra, {a.dlq} in the DLQ; "
                        f"missing {a.missing}, duplicated {a.duplicated}")  # fmt: skip
    if result.resources is not None and soak:
        settled = result.resources.get("settled_after_s")
        for name, r in result.resources["rss"].items():
            Console().print(f"  RSS {name:<20} {r['start_bytes'] or 0:>12,} -> {r['end_bytes'] or 0:>12,} B "
                            f"({r['growth_pct']}%); anonymous from {settled}s {r.get('anon_settled_bytes') or 0:>12,}"
                            f" -> {r.get('anon_end_bytes') or 0:>12,} B ({r.get('anon_growth_pct')}%, "
                            f"{r.get('anon_slope_pct_per_h')}%/h over the second half)")  # fmt: skip
        for label, d in result.resources["disk"].items():
            Console().print(f"  disk {label:<19} {d['start_bytes'] or 0:>12,} -> {d['end_bytes'] or 0:>12,} B")
    for note in result.notes:
        Console().print(f"[yellow]note:[/yellow] {note}")
    for miss in result.misses:
        Console().print(f"[red]target missed:[/red] {miss}")
    Console().print(f"{'all targets met' if result.ok else 'targets NOT met'} at {result.rate:.0f} records/s; "
                    f"figures in {json_out}, timeline in {png}")  # fmt: skip
    if exit_code(result):
        raise typer.Exit(exit_code(result))


def _unreachable_service(exc: BaseException) -> str | None:
    """Which service a connection error is about, for a one-line message instead of a traceback."""
    if isinstance(exc, psycopg.OperationalError):
        return "PostgreSQL"
    if isinstance(exc, httpx.TransportError):
        return "an HTTP service"
    name = type(exc).__name__
    if name == "NoHostAvailable":
        return "Cassandra"
    if name == "KafkaException":
        return "Kafka"
    return None


def main() -> None:
    try:
        app()
    except UserstreamError as exc:
        console.print(f"[red]error:[/red] {exc}")
        sys.exit(2)
    except Exception as exc:
        unreachable = _unreachable_service(exc)
        if unreachable is None:
            raise
        console.print(f"[red]error:[/red] cannot reach {unreachable}: {str(exc).strip().splitlines()[0][:300]}")
        console.print("  fix: start the stack with `userstream up` (or check the endpoint settings)")
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
