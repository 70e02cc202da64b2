"""`userstream images ...`: the container image(s) of the pipeline."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from userstream.config import get_settings
from userstream.deploy.images import build_all

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
