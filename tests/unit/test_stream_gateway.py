"""The driver's Python-side py4j server refuses a caller without the gateway's token, and the JVM (which has
it) still calls foreachBatch there. One local SparkSession, a few seconds."""

from __future__ import annotations

import logging
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from py4j.java_gateway import is_instance_of
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userstream.stream.gateway import pin_jvm_names, require_gateway_token

pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="needs a JDK for a local SparkSession")


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    logging.getLogger("py4j").setLevel(logging.WARNING)
    session = (
        SparkSession.builder.master("local[1]")
        .appName("userstream-gateway")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    yield session
    session.stop()


def _call_without_token(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"c\nt\ngetFieldValue\ne\n")  # a py4j call, no auth command first
        try:
            return sock.recv(256)
        except (TimeoutError, ConnectionResetError):
            return b""


def test_the_python_server_takes_the_jvm_with_its_token_and_refuses_others(spark: SparkSession, tmp_path: Path) -> None:
    require_gateway_token(spark)
    batches: list[int] = []
    done = threading.Event()

    def on_batch(frame: Any, batch_id: int) -> None:  # run here, called by the JVM through the server
        batches.append(frame.count())
        done.set()

    query = (
        spark.readStream.format("rate").option("rowsPerSecond", 5).load()
        .writeStream.foreachBatch(on_batch).option("checkpointLocation", str(tmp_path / "cp")).start()
    )  # fmt: skip
    try:
        assert done.wait(90), f"the JVM never reached foreachBatch: {query.exception()}"
        server = spark.sparkContext._gateway._callback_server  # type: ignore[union-attr]
        reply = _call_without_token(server.port)
        # refused: py4j's bare error ("!xn") or a hang-up; a server with no token answers the call itself
        # ("!xsObject ID unknown": it looked the object up)
        assert reply in (b"", b"!xn\n"), f"an anonymous call got {reply!r}"
        assert query.isActive and query.exception() is None
    finally:
        query.stop()
    assert batches, "foreachBatch ran"


def _unknown_name_lookups(spark: SparkSession, build: Any) -> list[str]:
    """The gateway's by-name lookups (py4j's ``r u`` command, each one a class-path search on a miss)."""
    client = spark.sparkContext._gateway._gateway_client  # type: ignore[union-attr]
    sent: list[str] = []
    original = client.send_command

    def spy(command: str, *args: Any, **kwargs: Any) -> Any:
        if command.startswith("r\nu\n"):
            sent.append(command.split("\n")[2])
        return original(command, *args, **kwargs)

    client.send_command = spy
    try:
        build()
    finally:
        client.send_command = original
    return sent


def test_pinned_jvm_names_are_not_looked_up_again(spark: SparkSession) -> None:
    gateway = spark.sparkContext._gateway

    def build() -> None:
        F.when(F.col("a").endswith("Z"), F.lit(1)).otherwise(F.col("b"))
        spark.sparkContext._jvm.org.apache.spark.sql.types.Metadata  # type: ignore[union-attr]  # noqa: B018
        # what PySpark runs for each Java exception it converts: Observation.get ends its map's iteration
        # with one, several times per micro-batch
        assert is_instance_of(gateway, spark._jsparkSession, "org.apache.spark.sql.SparkSession")
        spark.sparkContext._jvm.org.apache.spark.util.Utils  # type: ignore[union-attr]  # noqa: B018

    assert "functions" in _unknown_name_lookups(spark, build)
    pin_jvm_names(spark.sparkContext._jvm)  # type: ignore[arg-type]
    assert _unknown_name_lookups(spark, build) == []
    assert F.col("a") is not None  # the pinned names still call the JVM
