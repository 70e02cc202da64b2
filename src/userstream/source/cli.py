"""``userstream source serve|fetch`` and ``userstream bench source`` (registered in userstream.cli)."""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from userstream.config import get_settings
from userstream.source.bench import TARGET_USERS_PER_S, run_bench
from userstream.source.client import SourceClient
from userstream.source.faults import FaultConfig
from userstream.source.quota import ServerLimits
from userstream.source.server import serve

__all__ = ["app", "bench_source"]

app = typer.Typer(
    help="The random-user source: a randomuser.me-compatible server and a resilient client.",
    no_args_is_help=True,
)
_err = Console(stderr=True)


@app.command("serve")
def serve_cmd(
    host: Annotated[str | None, typer.Option(help="bind address [default: USERSTREAM_BIND_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port [default: USERSTREAM_SOURCE_PORT]")] = None,
    error_rate: Annotated[float, typer.Option(help="share of requests answered 500/502/503")] = 0.0,
    rate_limit_rate: Annotated[float, typer.Option(help="share of requests answered 429")] = 0.0,
    retry_after: Annotated[float, typer.Option(help="Retry-After seconds sent with a 429")] = 1.0,
    empty_rate: Annotated[float, typer.Option(help="share answered 200 with empty results")] = 0.0,
    malformed_rate: Annotated[float, typer.Option(help="share answered 200 with a broken body")] = 0.0,
    bad_record_rate: Annotated[float, typer.Option(help="share of records missing/mistyping a field")] = 0.0,
    latency: Annotated[float, typer.Option(help="seconds added before answering")] = 0.0,
    latency_rate: Annotated[float, typer.Option(help="share of requests that get the latency")] = 1.0,
    fault_seed: Annotated[int | None, typer.Option(help="fix the fault sequence")] = None,
    quota_users: Annotated[
        int, typer.Option(help="users per client IP per quota window, then 429 without Retry-After (0: off)")
    ] = 0,
    quota_window: Annotated[float, typer.Option(help="seconds of the fixed quota window")] = 300.0,
    max_page: Annotated[int, typer.Option(help="pages above this are served as page 1 (info.page 1)")] = 10_000,
    anchor: Annotated[
        str, typer.Option(help="the 'today' that dates and ages are computed from (YYYY-MM-DD)")
    ] = "2026-01-01",
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "warning",
) -> None:
    """Serve GET /api/ and /api/1.4/ in the randomuser.me 1.4 shape (faults off unless asked for)."""
    settings = get_settings()
    try:
        faults = FaultConfig(
            error_rate=error_rate,
            rate_limit_rate=rate_limit_rate,
            retry_after_s=retry_after,
            empty_rate=empty_rate,
            malformed_rate=malformed_rate,
            bad_record_rate=bad_record_rate,
            latency_s=latency,
            latency_rate=latency_rate,
            seed=fault_seed,
        )
        limits = ServerLimits(quota_users=quota_users, quota_window_s=quota_window, max_page=max_page)
        anchor_day = date.fromisoformat(anchor)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc

    def ready(url: str) -> None:
        _err.print(f"source listening on [bold]{url}[/bold] ({faults.describe()}; {limits.describe()}); Ctrl-C stops")

    serve(
        host or settings.bind_host,
        settings.source_port if port is None else port,
        faults=faults,
        limits=limits,
        anchor=anchor_day,
        log_level=log_level,
        on_ready=ready,
    )


@app.command("fetch")
def fetch_cmd(
    url: Annotated[str | None, typer.Option(help="API base URL [default: USERSTREAM_SOURCE_URL]")] = None,
    results: Annotated[int, typer.Option(help="users per page (1-5000)")] = 5,
    seed: Annotated[str | None, typer.Option(help="seed [default: USERSTREAM_SOURCE_SEED]")] = None,
    page: Annotated[int, typer.Option(help="first page")] = 1,
    pages: Annotated[int, typer.Option(help="how many pages")] = 1,
    nat: Annotated[str | None, typer.Option(help="nationalities, comma-separated (e.g. GB,FR)")] = None,
    output: Annotated[str, typer.Option(help="table | rows (JSON lines) | raw (API JSON lines)")] = "table",
) -> None:
    """Fetch users through the resilient client and print them; rejected records go to stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    nats = [n.strip() for n in nat.split(",") if n.strip()] if nat else []
    with SourceClient(url, seed=seed, page_size=results, nats=nats) as client:
        table = Table("id", "name", "gender", "nat", "email", "address", "dob")
        for result in client.iter_pages(page, pages):
            for acc in result.accepted:
                row = acc.row
                if output == "rows":
                    typer.echo(json.dumps(row.as_json_dict(), ensure_ascii=False))
                elif output == "raw":
                    typer.echo(acc.raw_json())
                else:
                    table.add_row(
                        str(row.id)[:8],
                        f"{row.first_name} {row.last_name}",
                        row.gender,
                        row.nat,
                        row.email,
                        row.address,
                        row.dob.date().isoformat(),
                    )
            for rej in result.rejected:
                _err.print(f"[yellow]rejected[/yellow] page {rej.page} #{rej.index}: {rej.reason}")
        if output == "table":
            Console().print(table)


def bench_source(
    pages: Annotated[int, typer.Option(help="pages per figure")] = 10,
    results: Annotated[int, typer.Option(help="users per page")] = 5000,
    url: Annotated[str | None, typer.Option(help="benchmark this server instead of a local one")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Users/s generated on one core, served over loopback, and fetched+validated by the client."""
    figures = run_bench(pages=pages, results=results, url=url)
    if as_json:
        payload = [
            {
                "name": f.name,
                "users": f.users,
                "wall_s": round(f.wall_s, 3),
                "users_per_s": round(f.rate),
                "users_per_cpu_s": round(f.cpu_rate) if f.cpu_rate else None,
                "target": TARGET_USERS_PER_S,
                "ratio": round(f.ratio, 2),
                "note": f.note,
            }
            for f in figures
        ]
        typer.echo(json.dumps(payload, indent=2))
        return
    table = Table("figure", "users", "users/s", "users/cpu-s", "target", "ratio", "note")
    for f in figures:
        table.add_row(
            f.name,
            f"{f.users:,}",
            f"{f.rate:,.0f}",
            f"{f.cpu_rate:,.0f}" if f.cpu_rate else "-",
            f"{TARGET_USERS_PER_S:,.0f}",
            f"{'[green]' if f.ratio >= 1 else '[red]'}{f.ratio:.2f}x",
            f.note,
        )
    Console().print(table)
