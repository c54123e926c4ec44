#!/usr/bin/env python3
"""Spark Structured Streaming doing the same job: the file source with the same schema and
maxFilesPerTrigger, local[2], writing Delta through foreachBatch + Python deltalake with a txn
per batch (Spark's own Delta sink needs jars from Maven, which this machine cannot reach).

    spark_peer.py JOB INPUT_DIR TABLE CHECKPOINT_DIR
"""
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

sys.path.insert(0, os.path.dirname(__file__))
from common import FILES_PER_TRIGGER, JOBS, SCHEMA_DDL, stream_into_delta  # noqa: E402

APP = "spark-peer"


def main():
    job, src, table, checkpoint = sys.argv[1:5]
    _, duration, slide, mode = JOBS[job]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(f"bench-{job}")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    events = (
        spark.readStream.schema(SCHEMA_DDL)
        .option("maxFilesPerTrigger", FILES_PER_TRIGGER)
        .json(src)
    )
    if duration is None:
        result = events
    else:
        w = F.window("time", duration, slide) if slide else F.window("time", duration)
        result = events.groupBy(w.alias("window"), "action").count()

    stream_into_delta(result, mode, table, checkpoint, APP)
    spark.stop()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: deltalake's native threads may abort it after the work is done
    # (delta-io/delta-rs#2184).
    os._exit(0)
