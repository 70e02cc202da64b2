"""A login for Spark's web UIs (master, worker, driver): our HTTP Basic servlet filter, built and configured here.

Spark has no UI login of its own, but it installs the servlet filters named by ``spark.ui.filters`` on every
page of every UI. Ours (``jvm/spark-ui-auth``) reads ``user:password`` from a 0600 file beside the other
secrets and answers 401 to anything else. It is compiled at install (a JDK's ``javac`` against the servlet
API PySpark ships) into ``lib/spark-ui-auth``, and only again when its source changes:

    jar = build_ui_auth_jar(settings)
    lines = ui_auth_defaults(settings, jar)     # for spark-defaults.conf
    httpx.get(url, auth=ui_login(settings))     # every client of the UIs
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from importlib.util import find_spec
from pathlib import Path

from userstream.config import Settings
from userstream.errors import InstallError
from userstream.runtime.base import JVM_DIR, Reporter, SilentReporter
from userstream.secret_store import write_private

__all__ = [
    "FILTER_CLASS",
    "UI_USER",
    "build_ui_auth_jar",
    "credentials_file",
    "ui_auth_defaults",
    "ui_auth_jar",
    "ui_login",
]

FILTER_CLASS = "userstream.spark.BasicAuthFilter"
UI_USER = "userstream"

SOURCE = JVM_DIR / "spark-ui-auth" / "src" / "userstream" / "spark" / "BasicAuthFilter.java"
JAR_NAME = "userstream-spark-ui-auth.jar"
MANIFEST = "Manifest-Version: 1.0\nCreated-By: userstream\n"
JAVAC_FIX = "install a Java 17 JDK (javac), e.g. `apt-get install openjdk-17-jdk-headless`"


def ui_auth_jar(settings: Settings) -> Path:
    """Where the filter's jar is (built or not)."""
    return settings.lib_dir / "spark-ui-auth" / JAR_NAME


def servlet_api_jar() -> Path:
    """The servlet API jar PySpark ships (Spark 3.5: jakarta.servlet-api 4, still the javax package)."""
    spec = find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise InstallError("PySpark is not installed", fix="reinstall pyspark (`make setup`)")
    jars = sorted((Path(spec.origin).resolve().parent / "jars").glob("*servlet-api*.jar"))
    if not jars:
        raise InstallError(f"PySpark at {Path(spec.origin).parent} ships no servlet API jar", fix="reinstall pyspark")
    return jars[0]


def build_ui_auth_jar(settings: Settings, reporter: Reporter | None = None) -> Path:
    """Compile the filter into its jar; skipped while the jar's stamp holds the source's sha256."""
    if not SOURCE.exists():
        raise InstallError(f"missing {SOURCE}", fix="run from a full checkout of userstream")
    jar = ui_auth_jar(settings)
    stamp = jar.with_name(".source-sha256")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    if jar.exists() and stamp.exists() and stamp.read_text() == digest:
        return jar
    javac = shutil.which("javac")
    if not javac:
        raise InstallError("`javac` was not found on PATH: the Spark UIs' login filter is compiled", fix=JAVAC_FIX)
    (reporter or SilentReporter()).step("spark: compiling the UI login filter")
    jar.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="spark-ui-auth-") as tmp:
        classes = Path(tmp)
        command = [javac, "--release", "17", "-cp", str(servlet_api_jar()), "-d", str(classes), str(SOURCE)]
        proc = subprocess.run(command, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
            raise InstallError(f"javac could not compile {SOURCE.name}:\n{tail}", fix=JAVAC_FIX)
        # written beside, then renamed in: a JVM starting meanwhile sees the old jar or the new, never a part
        fd, partial = tempfile.mkstemp(prefix=f".{JAR_NAME}.", dir=jar.parent)
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", MANIFEST)
            for cls in sorted(classes.rglob("*.class")):
                archive.write(cls, cls.relative_to(classes).as_posix())
        Path(partial).chmod(0o644)
        os.replace(partial, jar)
    stamp.write_text(digest)
    return jar


def ui_login(settings: Settings) -> tuple[str, str]:
    """(user, password) of the Spark UIs, as httpx's ``auth=`` takes it."""
    return UI_USER, settings.secret("spark_ui_password")


def credentials_file(settings: Settings) -> Path:
    """The filter's ``user:password`` file: secret, 0600, beside the other secrets (as Connect's users file)."""
    path = settings.secret_store.directory / "spark-ui-credentials"
    user, password = ui_login(settings)
    write_private(path, f"{user}:{password}\n")
    return path


def ui_auth_defaults(settings: Settings, jar: Path) -> list[str]:
    """spark-defaults.conf lines: the filter on every UI, its credentials file, and the driver's classpath
    (the master and worker get the jar from SPARK_DAEMON_CLASSPATH)."""
    return [
        f"spark.ui.filters {FILTER_CLASS}",
        f"spark.{FILTER_CLASS}.param.credentialsFile {credentials_file(settings)}",
        f"spark.driver.extraClassPath {jar}",
    ]
