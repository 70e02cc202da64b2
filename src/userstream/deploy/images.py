"""The pipeline's image: a base (pulled, or made by debootstrap where no registry is reachable), then
deploy/Containerfile over a context staged from this checkout and the jars of `userstream install`."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from userstream.config import Settings
from userstream.deploy.host import ensure_engine
from userstream.errors import InstallError
from userstream.runtime.base import PROJECT_ROOT, Reporter
from userstream.runtime.stack import Stack

CONTAINERFILE = PROJECT_ROOT / "deploy" / "Containerfile"
# the base made here when no registry is reachable (the reference's recipe); elsewhere debian:bookworm-slim
DEBOOTSTRAP_BASE = "localhost/debian:bookworm-minbase"
APP_PATHS = ("pyproject.toml", "README.md", "src", "jvm", "dags")
HOST_CAS = Path("/usr/local/share/ca-certificates")
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")


@dataclass(frozen=True)
class ImageBuild:
    image: str
    seconds: float
    size_bytes: int


def image_exists(podman: str, image: str) -> bool:
    return subprocess.run([podman, "image", "exists", image], capture_output=True).returncode == 0


def image_size(podman: str, image: str) -> int:
    out = subprocess.run(
        [podman, "image", "inspect", "--format", "{{.Size}}", image], capture_output=True, text=True, check=True
    )
    return int(out.stdout.strip())


def _run(argv: list[str], what: str, **kwargs: object) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise InstallError(f"{what} failed:\n{tail}", fix="fix the cause above, then run `make images` again")


def build_debootstrap_base(podman: str, reporter: Reporter, image: str = DEBOOTSTRAP_BASE) -> ImageBuild | None:
    """Debian bookworm minbase as an image, when it is not there yet (None: it was)."""
    if image_exists(podman, image):
        return None
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    reporter.step(f"images: {image} by debootstrap (first time only, ~2 min)")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="userstream-rootfs-") as root:
        _run([debootstrap, "--variant=minbase", "bookworm", root], "debootstrap")
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        _run([podman, "import", "--change", 'CMD ["/bin/bash"]', "-", image], "podman import", stdin=tar.stdout)
        tar.wait()
    return ImageBuild(image, time.monotonic() - t0, image_size(podman, image))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage_context(settings: Settings, context: Path) -> Path:
    """app/ (the code), lib/ (the installed jars) and ca/ (the host's own CAs, which pip may need to reach
    its index through this network) in one directory: the build sees nothing else."""
    if context.exists():
        shutil.rmtree(context)
    (context / "app").mkdir(parents=True)
    for name in APP_PATHS:
        src = PROJECT_ROOT / name
        if src.is_dir():
            shutil.copytree(src, context / "app" / name, ignore=_SKIP)
        elif src.exists():
            shutil.copy2(src, context / "app" / name)
    (context / "ca").mkdir()
    for cert in sorted(HOST_CAS.glob("*.crt")) if HOST_CAS.is_dir() else []:
        shutil.copy2(cert, context / "ca" / cert.name)
    lib = settings.lib_dir
    if not (lib / "kafka" / ".installed").exists():
        raise InstallError(f"no installed jars in {lib}", fix="run `userstream install` first (`make images` does)")
    shutil.copytree(lib, context / "lib", copy_function=_link_or_copy, ignore=_SKIP)
    return context


def build_image(
    settings: Settings, podman: str, reporter: Reporter, *, image: str, base_image: str, context: Path
) -> ImageBuild:
    stage_context(settings, context)
    reporter.step(f"images: building {image} from {base_image}")
    t0 = time.monotonic()
    _run(
        [
            podman,
            "build",
            "--pull=never" if base_image.startswith("localhost/") else "--pull=missing",
            "--layers",
            "--build-arg",
            f"BASE_IMAGE={base_image}",
            "-f",
            str(CONTAINERFILE),
            "-t",
            image,
            str(context),
        ],
        f"podman build of {image}",
    )
    return ImageBuild(image, time.monotonic() - t0, image_size(podman, image))


def build_all(settings: Settings, reporter: Reporter, *, image: str, base_image: str | None = None) -> list[ImageBuild]:
    """Engine, jars, base, image: each step skipped or cached when already done; returns what was built."""
    podman = ensure_engine(reporter)
    Stack(settings).install(reporter)  # the jars the image carries
    builds = []
    if base_image is None:
        base = build_debootstrap_base(podman, reporter)
        if base is not None:
            builds.append(base)
        base_image = DEBOOTSTRAP_BASE
    context = PROJECT_ROOT / "build" / "image-context"
    builds.append(build_image(settings, podman, reporter, image=image, base_image=base_image, context=context))
    return builds


__all__ = [
    "DEBOOTSTRAP_BASE",
    "ImageBuild",
    "build_all",
    "build_debootstrap_base",
    "build_image",
    "image_exists",
    "stage_context",
]
