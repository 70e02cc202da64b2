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

from importlib.util import find_spec
from pathlib import Path

from userstream.config import Settings
from userstream.errors import InstallError
from userstream.runtime.base import JVM_DIR, Reporter
from userstream.runtime.javac import build_jar
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
    """Compile the filter into its jar (again only when its source changes)."""
    return build_jar([SOURCE], [servlet_api_jar()], ui_auth_jar(settings), what="the Spark UI login filter",
                     reporter=reporter)  # fmt: skip


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
