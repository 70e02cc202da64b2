"""Our few Java classes (Spark's UI login filter, the Cassandra connector's session factory, the Avro
converter's schema resolver), compiled at install with a JDK's ``javac`` into a jar under ``lib/``, and again
only when their sources or classpath change:

    jar = build_jar([source], classpath, settings.lib_dir / "x" / "x.jar", what="the X")
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from userstream.errors import InstallError
from userstream.runtime.base import Reporter, SilentReporter

__all__ = ["JAVAC_FIX", "build_jar"]

MANIFEST = "Manifest-Version: 1.0\nCreated-By: userstream\n"
JAVAC_FIX = "install a Java 17 JDK (javac), e.g. `apt-get install openjdk-17-jdk-headless`"


def _digest(sources: Sequence[Path], classpath: Sequence[Path]) -> str:
    # jar names, not paths: an image copies lib/ built on its host, where the same jars lay elsewhere
    digest = hashlib.sha256(":".join(p.name for p in classpath).encode())
    for source in sources:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def build_jar(
    sources: Sequence[Path], classpath: Sequence[Path], jar: Path, *, what: str, reporter: Reporter | None = None
) -> Path:
    """Compile SOURCES against CLASSPATH (jars, or ``dir/*``) into JAR; skipped while its stamp matches them."""
    missing = [s for s in sources if not s.exists()]
    if missing:
        raise InstallError(f"missing {', '.join(map(str, missing))}", fix="run from a full checkout of userstream")
    cp = os.pathsep.join(str(p) for p in classpath)
    stamp = jar.with_name(".source-sha256")
    digest = _digest(sources, classpath)
    if jar.exists() and stamp.exists() and stamp.read_text() == digest:
        return jar
    javac = shutil.which("javac")
    if not javac:
        raise InstallError(f"`javac` was not found on PATH: {what} is compiled at install", fix=JAVAC_FIX)
    (reporter or SilentReporter()).step(f"compiling {what}")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="javac-") as tmp:
        classes = Path(tmp)
        command = [javac, "--release", "17", "-nowarn", "-cp", cp, "-d", str(classes), *map(str, sources)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise InstallError(f"javac could not compile {what}:\n{tail}", fix=JAVAC_FIX)
        # written beside, then renamed in: a JVM starting meanwhile sees the old jar or the new, never a part
        fd, partial = tempfile.mkstemp(prefix=f".{jar.name}.", dir=jar.parent)
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", MANIFEST)
            for cls in sorted(classes.rglob("*.class")):
                archive.write(cls, cls.relative_to(classes).as_posix())
        Path(partial).chmod(0o644)
        os.replace(partial, jar)
    stamp.write_text(digest)
    return jar
