"""`userstream images ...`, `userstream cluster ...` and `userstream bench cluster`: the pipeline in containers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from userstream.config import get_settings
from userstream.deploy.bench import bench_cluster, render_cpu, render_runs
from userstream.deploy.cluster import ComposeCluster, compose_nodes
from userstream.deploy.host import ensure_engine
from userstream.deploy.images import build_all, image_exists

DEFAULT_IMAGE = "localhost/userstream:latest"

console = Console(stderr=True)


class _Steps:
    """Progress lines of long steps, with seconds since the command started."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def step(self, message: str) -> None:
        console.print(f"[dim]{time.monotonic() - self.t0:6.1f}s[/dim] {message}")


images_app = typer.Typer(help="Container images built here (podman), for `userstream cluster`.", no_args_is_help=True)


@images_app.command("build")
def build(
    image: Annotated[str, typer.Option(help="name:tag of the pipeline's image")] = DEFAULT_IMAGE,
    base_image: Annotated[
        str | None,
        typer.Option(help="FROM image (e.g. docker.io/library/debian:bookworm-slim); default: made by debootstrap"),
    ] = None,
) -> None:
    """Install podman if missing, then build the base and the pipeline's image; a second build reuses layers."""
    table = Table("image", "built in", "size", title="images")
    for built in build_all(get_settings(), _Steps(), image=image, base_image=base_image):
        table.add_row(built.image, f"{built.seconds:.0f} s", f"{built.size_bytes / 1e6:,.0f} MB")
    console.print(table)


cluster_app = typer.Typer(
    help="The pipeline as a cluster of containers (deploy/compose.yaml, podman + podman-compose).",
    no_args_is_help=True,
)
ImageOpt = Annotated[str, typer.Option(help="the pipeline's image (built by `userstream images build`)")]


@cluster_app.command("up")
def cluster_up(
    image: ImageOpt = DEFAULT_IMAGE,
    watch: Annotated[bool, typer.Option(help="then show the live view (from inside the cluster)")] = True,
    timeout: Annotated[float, typer.Option(help="seconds for every node to become healthy")] = 1200,
) -> None:
    """Build the image if missing, start every node (harmless when up), wait until each is healthy; the
    bootstrap step then unpauses ingest. The dashboard is on 127.0.0.1:8000 (token: `secrets show` in it)."""
    steps = _Steps()
    podman = ensure_engine(steps)
    if not image_exists(podman, image):
        build_all(get_settings(), steps, image=image)
    cluster = ComposeCluster(image=image)
    steps.step("cluster: starting the nodes")
    cluster.up()
    healthy = cluster.wait_healthy(list(compose_nodes()), timeout_s=timeout)
    table = Table("node", "healthy after", title="cluster")
    for node, seconds in healthy.items():
        table.add_row(node, f"{seconds:.0f} s")
    console.print(table)
    if watch:
        cluster.attach("dashboard", "userstream", "watch")


@cluster_app.command("down")
def cluster_down(
    volumes: Annotated[bool, typer.Option("--volumes", help="also delete the data (named volumes)")] = False,
) -> None:
    """Stop every node gracefully (data kept in the named volumes unless --volumes)."""
    ComposeCluster().down(volumes=volumes)
    console.print("cluster stopped" + (", volumes deleted" if volumes else ""))


@cluster_app.command("status")
def cluster_status() -> None:
    """Each node's own health probe; exits 1 when any node is down or unhealthy."""
    cluster = ComposeCluster()
    table = Table("node", "service", "health", title="cluster")
    ok_all = True
    for node, service in compose_nodes().items():
        ok, detail = cluster.health(node) if cluster.running(node) else (False, "not running")
        ok_all &= ok
        table.add_row(node, service, ("[green]ok[/green] " if ok else "[red]down[/red] ") + detail[:80])
    console.print(table)
    raise typer.Exit(0 if ok_all else 1)


def bench_cluster_cmd(
    max_duration: Annotated[float, typer.Option(help="seconds of the flat-out run")] = 30.0,
    rates: Annotated[str, typer.Option(help="fixed rates (records/s), comma-separated")] = "1000",
    rate_duration: Annotated[float, typer.Option(help="seconds of each fixed-rate run")] = 20.0,
    image: ImageOpt = DEFAULT_IMAGE,
    out: Annotated[str, typer.Option(help="where to write the figures")] = "artifacts/cluster-bench.json",
) -> None:
    """`bench pipeline`'s runs on the compose cluster: flat out, then at fixed rates, from a client container
    (throughput, latency p50/p99, CPU per record by node from podman). Starts the cluster if needed; leaves
    its own ingest paused (`userstream cluster up` again does not unpause: run `bootstrap --start-ingest` in
    a node, or `cluster down` + `up`)."""
    steps = _Steps()
    cluster = ComposeCluster(image=image)
    cluster.up()
    cluster.wait_healthy(list(compose_nodes()), timeout_s=1200)
    result = bench_cluster(
        cluster, steps, flat_out_s=max_duration, rate_duration_s=rate_duration,
        rates=tuple(float(r) for r in rates.split(",") if r.strip()), json_path=Path(out),
    )  # fmt: skip
    console.print(render_runs(result))
    if result.runs:
        console.print(render_cpu(result.runs[0]))
    if result.calibration is not None:
        console.print(f"this machine: {result.calibration.as_dict()}")
    console.print(f"figures in {out}")
