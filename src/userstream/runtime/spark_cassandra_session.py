"""The Spark Cassandra connector's sessions, with a schema refresh that cannot wedge a streaming query.

The connector refreshes the whole Cassandra schema before every write, through the Java driver's blocking
``Session.refreshSchema()``. The driver leaves its refresh slot taken when a refresh fails at its
schema-agreement step (the node holding its control connection lost): every later refresh of that session
queues behind it for ever, and so did every micro-batch. Our factory (``jvm/spark-cassandra-session``, named by
``spark.cassandra.connection.factory``) makes the connector's usual sessions with a refresh that waits at most
a bound and then uses the metadata the session has, and that makes a real refresh at most once per 30 s (the
driver keeps its metadata current from schema events meanwhile). It is compiled at install against the
connector's jars and shipped with them in every job's ``spark.jars`` (driver and executors)."""

from __future__ import annotations

from pathlib import Path

from userstream.config import Settings
from userstream.runtime.base import JVM_DIR, Reporter
from userstream.runtime.javac import build_jar

__all__ = ["FACTORY_CLASS", "build_session_jar"]

FACTORY_CLASS = "userstream.spark.BoundedRefreshConnectionFactory"
SOURCES = sorted((JVM_DIR / "spark-cassandra-session" / "src" / "userstream" / "spark").glob("*.java"))
JAR_NAME = "userstream-spark-cassandra-session.jar"


def build_session_jar(
    settings: Settings, spark_jars: Path, connector_jars: list[Path], reporter: Reporter | None = None
) -> Path:
    """Compile the factory against PySpark's jars (SPARK_JARS, a dir) and the connector's."""
    jar = settings.lib_dir / "spark-cassandra-session" / JAR_NAME
    return build_jar(SOURCES, [spark_jars / "*", *connector_jars], jar, what="the Cassandra session factory",
                     reporter=reporter)  # fmt: skip
