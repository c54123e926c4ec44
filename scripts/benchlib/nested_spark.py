#!/usr/bin/env python3
"""Spark Structured Streaming on the nested benchmark: the file source reading the gzipped
events with the same schema and maxFilesPerTrigger, local[2], writing Delta through
foreachBatch + Python deltalake with a txn per batch.

    nested_spark.py JOB INPUT_DIR TABLE CHECKPOINT_DIR
"""
import os
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

sys.path.insert(0, os.path.dirname(__file__))
from common import stream_into_delta  # noqa: E402
from nested_common import FILES_PER_TRIGGER, JOBS, SCHEMA_DDL  # noqa: E402

APP = "spark-peer"


def main():
    job, src, table, checkpoint = sys.argv[1:5]
    mode = JOBS[job][1]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(f"bench-nested-{job}")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    events = (
        spark.readStream.schema(SCHEMA_DDL)
        .option("maxFilesPerTrigger", FILES_PER_TRIGGER)
        .json(src)
    )
    if job == "append":
        result = events
    else:
        result = events.groupBy(F.window("created_at", "1 hour").alias("window"), "type").count()

    stream_into_delta(result, mode, table, checkpoint, APP)
    spark.stop()


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
