"""The driver's py4j gateway: its Python-side server asks callers for the gateway's token.

PySpark's pinned-thread gateway (``ClientServer``, the default) starts the Python-side server, which the JVM
calls for ``foreachBatch`` and query listeners, with no token, so any local process could run code in the
driver's Python. Giving the server the token is not enough: PySpark moves the JVM's client to the server's
real port with ``resetCallbackClient``, and py4j 0.10.9's ``PythonClient.copyWith`` drops the token there.
So the server is started here, then the JVM's new client gets the token back (set by reflection on py4j's
``CallbackClient.authToken``, the field the first client was built with).

PySpark also looks JVM names up through the gateway on every call (``functions`` for each ``F.*``,
``PythonUtils`` for each column list, ``org.apache.spark.sql.Observation`` ...). py4j tries each name in
every package PySpark imported, and each miss is a ``Class.forName`` that searches every jar of the
driver's class path: a quarter of the driver JVM's CPU (JFR). :func:`pin_jvm_names` resolves those names
once.
"""

from __future__ import annotations

from py4j.java_gateway import JavaObject, JVMView
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import SparkSession


def require_gateway_token(spark: SparkSession) -> None:
    """Call before the first query starts (before any JVM-to-Python call)."""
    gateway = spark.sparkContext._gateway
    token = gateway.gateway_parameters.auth_token if gateway is not None else None
    if gateway is None or not token:
        raise RuntimeError("the py4j gateway has no auth token: PySpark did not launch its JVM itself")
    # ClientServer's python_parameters are its callback_server_parameters: what the server checks
    gateway.callback_server_parameters.auth_token = token
    ensure_callback_server_started(gateway)  # type: ignore[no-untyped-call]  # later ones find it started
    client = JavaObject("GATEWAY_SERVER", gateway._gateway_client).getCallbackClient()
    declaring = client.getClass()
    while declaring.getName() != "py4j.CallbackClient":  # PythonClient extends it; the field is its
        declaring = declaring.getSuperclass()
    field = declaring.getDeclaredField("authToken")
    field.setAccessible(True)
    field.set(client, token)


# the names PySpark looks up per call on the paths the job runs (functions, Column, DataFrame, Observation,
# the streaming listener, literals of datetimes; py4j's is_instance_of, ~70 times per micro-batch; the
# SparkSession foreachBatch wraps each batch in; Utils)
HOT_JVM_NAMES = (
    "functions",
    "PythonUtils",
    "PythonSQLUtils",
    "org.apache.spark.sql.Observation",
    "org.apache.spark.sql.types.Metadata",
    "py4j.reflection.TypeUtil",
    "org.apache.spark.util.Utils",
    "SparkSession$",
)


def pin_jvm_names(jvm: JVMView, names: tuple[str, ...] = HOT_JVM_NAMES) -> None:
    """Resolve each name once and keep it as an attribute of its parent (the JVM view, or a package), so
    that later lookups are Python attribute reads, not gateway round trips that search the class path."""
    for name in names:
        parent: object = jvm
        for part in name.split("."):
            child = parent.__dict__.get(part)
            if child is None:
                child = getattr(parent, part)  # one gateway round trip; raises when the JVM has no such name
                setattr(parent, part, child)
            parent = child


__all__ = ["pin_jvm_names", "require_gateway_token"]
