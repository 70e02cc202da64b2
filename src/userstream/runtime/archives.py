"""Unpacking the tar.gz distributions that Maven copies from Central (registry app, Debezium plugin)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

from userstream.errors import InstallError
from userstream.runtime.base import Reporter


def unpack_once(tarball: Path, dest: Path, reporter: Reporter, label: str) -> None:
    """Extract ``tarball`` into ``dest`` once, then delete the tarball (Maven's local repo keeps a copy).

    Python's tarfile rather than maven-dependency-plugin's unpack: the old plugin version that Central's
    partial POMs force on us truncates long (PAX) file names, silently dropping jars.
    A marker file makes it idempotent; ``maven_install`` wipes the marker along with the dir when the
    pom changes, so a new version is unpacked afresh.
    """
    marker = dest / ".unpacked"
    if marker.exists():
        return
    if not tarball.exists():
        raise InstallError(
            f"{label}: {tarball} is missing",
            fix=f"remove {tarball.parent} and run `userstream install` again",
        )
    reporter.step(f"{label}: unpacking {tarball.name}")
    staging = tarball.parent / ".unpacking"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with tarfile.open(tarball) as tar:
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise InstallError(
            f"{label}: unpacking {tarball} failed: {exc}",
            fix=f"remove {tarball.parent} and run `userstream install` again",
        ) from exc
    dest.mkdir(parents=True, exist_ok=True)
    for entry in staging.iterdir():
        target = dest / entry.name
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        entry.rename(target)
    staging.rmdir()
    tarball.unlink()
    marker.touch()
