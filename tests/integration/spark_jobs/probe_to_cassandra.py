"""A probe job for the runtime tests: rows from Kafka (or generated) into a Cassandra table.

Usage: probe_to_cassandra.py kafka BOOTSTRAP TOPIC KEYSPACE TABLE
       probe_to_cassandra.py range N KEYSPACE TABLE
Both write (k text, v text, n int); the range mode also round-trips rows through spark-avro.
"""

from __future__ import annotations

import json
import os
import sys

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


def from_kafka(spark: SparkSession, bootstrap: str, topic: str) -> DataFrame:
    raw = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        # the Kafka login (security.protocol, sasl.*), from the environment like the Cassandra one
        .options(**json.loads(os.environ["PROBE_KAFKA_OPTIONS"]))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
    return raw.select(
        F.col("key").cast("string").alias("k"),
        F.col("value").cast("string").alias("v"),
        F.col("offset").cast("int").alias("n"),
    )


def from_range(spark: SparkSession, n: int) -> DataFrame:
    from pyspark.sql.avro.functions import from_avro, to_avro

    schema = (
        '{"type":"record","name":"Probe","fields":'
        '[{"name":"k","type":"string"},{"name":"v","type":"string"},{"name":"n","type":"int"}]}'
    )
    rows = spark.range(n).select(
        F.concat(F.lit("r-"), F.col("id").cast("string")).alias("k"),
        F.concat(F.lit("value-"), F.col("id").cast("string")).alias("v"),
        F.col("id").cast("int").alias("n"),
    )
    avro = rows.select(to_avro(F.struct("k", "v", "n"), schema).alias("bytes"))
    return avro.select(from_avro("bytes", schema).alias("r")).select("r.*")


def main(argv: list[str]) -> None:
    spark = SparkSession.builder.getOrCreate()
    # the login comes in the environment, never on the command line
    spark.conf.set("spark.cassandra.auth.username", os.environ["PROBE_CASSANDRA_USERNAME"])
    spark.conf.set("spark.cassandra.auth.password", os.environ["PROBE_CASSANDRA_PASSWORD"])
    mode = argv[0]
    if mode == "kafka":
        _, bootstrap, topic, keyspace, table = argv
        df = from_kafka(spark, bootstrap, topic)
    else:
        _, n, keyspace, table = argv
        df = from_range(spark, int(n))
    df.write.format("org.apache.spark.sql.cassandra").options(keyspace=keyspace, table=table).mode("append").save()
    print(f"wrote {df.count()} rows to {keyspace}.{table}")
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
