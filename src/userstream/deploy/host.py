"""The container engine on this host: podman (with runc) and the settings these machines need.

Debian's podman uses crun, which cannot set the rlimits or the hybrid cgroups of these microVMs; runc with
ulimits below the hard limits works (../shared/reference/containers.md). Installed once, idempotent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from userstream.errors import InstallError
from userstream.runtime.base import Reporter

PACKAGES = ("podman", "runc", "debootstrap")
PODMAN_HELPERS = Path("/usr/lib/podman")
CONTAINERS_CONF = Path("/etc/containers/containers.conf")
ENGINE_SETTINGS = (
    "# written by userstream: these machines refuse crun's rlimits and its hybrid-cgroup mode\n"
    "[containers]\n"
    'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
    "\n"
    "[engine]\n"
    'runtime = "runc"\n'
)


def _missing_packages() -> list[str]:
    binaries = {"podman": "podman", "runc": "runc", "debootstrap": "debootstrap"}
    missing = [pkg for pkg in PACKAGES if shutil.which(binaries[pkg]) is None and not Path(f"/usr/sbin/{pkg}").exists()]
    if not (PODMAN_HELPERS / "aardvark-dns").exists():  # the cluster's container names resolve through it
        missing.append("aardvark-dns")
    return missing


def ensure_engine(reporter: Reporter, conf: Path = CONTAINERS_CONF) -> str:
    """podman on PATH, configured for runc; returns its path."""
    missing = _missing_packages()
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise InstallError(
                f"the container tools are missing: {', '.join(missing)}",
                fix=f"install them (`apt-get install {' '.join(PACKAGES)}`), or run as root on Debian",
            )
        reporter.step(f"containers: apt-get install {' '.join(missing)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=False)
        proc = subprocess.run(
            # with podman's recommends (as ../shared/reference/containers.md measured it), and the networking
            # the compose cluster needs named: a bridge (netavark, iptables) with DNS (aardvark-dns)
            ["apt-get", "install", "-y", "-qq", *PACKAGES, "netavark", "aardvark-dns", "iptables", "uidmap"],
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise InstallError(f"apt-get install {' '.join(PACKAGES)} failed:\n{proc.stderr[-2000:]}")
    # only a file we wrote (or none) is replaced: a user's own engine settings are theirs
    if os.geteuid() == 0 and (not conf.exists() or conf.read_text().startswith("# written by userstream")):
        conf.parent.mkdir(parents=True, exist_ok=True)
        if not conf.exists() or conf.read_text() != ENGINE_SETTINGS:
            conf.write_text(ENGINE_SETTINGS)
    podman = shutil.which("podman")
    if podman is None:
        raise InstallError("podman is not on PATH after its install", fix="install podman (`apt-get install podman`)")
    return podman


__all__ = ["ensure_engine"]
