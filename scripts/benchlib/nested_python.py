#!/usr/bin/env python3
"""The hand-written Python way on the nested benchmark: per batch of 5 gzipped files,
pyarrow.json reads each with the explicit nested schema and write_deltalake writes the batch;
the hourly counts are kept in pyarrow between batches and the whole result written each batch.

    nested_python.py JOB INPUT_DIR TABLE
"""
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

sys.path.insert(0, os.path.dirname(__file__))
from common import write_batch  # noqa: E402
from nested_common import FILES_PER_TRIGGER, JOBS, arrow_schema, input_files  # noqa: E402

APP = "python-peer"
HOUR = 3600 * 1_000_000


def read(paths, schema):
    opts = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    tables = []
    for p in paths:
        with pa.input_stream(p, compression="gzip") as stream:
            tables.append(pj.read_json(stream, parse_options=opts))
    t = pa.concat_tables(tables)
    at = t.schema.get_field_index("created_at")
    return t.set_column(at, "created_at", pc.cast(t["created_at"], pa.timestamp("us", tz="UTC")))


def hourly(batch):
    us = pc.cast(pc.cast(batch["created_at"], pa.timestamp("us")), pa.int64())
    start = pc.multiply(pc.divide(us, HOUR), HOUR)
    keyed = pa.table({"start": start, "type": batch["type"]})
    return keyed.group_by(["start", "type"]).aggregate([("type", "count")]).rename_columns(
        ["start", "type", "count"])


def as_output(counts):
    counts = counts.combine_chunks()
    start = counts["start"].chunk(0)
    window = pa.StructArray.from_arrays(
        [pc.cast(start, pa.timestamp("us", tz="UTC")), pc.cast(pc.add(start, HOUR), pa.timestamp("us", tz="UTC"))],
        names=["start", "end"])
    return pa.table({"window": window, "type": counts["type"], "count": counts["count"]})


def main():
    job, src, table = sys.argv[1], sys.argv[2], sys.argv[3]
    mode = JOBS[job][1]
    schema = arrow_schema()
    files = input_files(src)
    state = None
    for batch_id, i in enumerate(range(0, len(files), FILES_PER_TRIGGER)):
        batch = read(files[i : i + FILES_PER_TRIGGER], schema)
        if mode == "append":
            write_batch(table, batch, mode, APP, batch_id)
            continue
        counts = hourly(batch)
        if state is not None:
            counts = pa.concat_tables([state, counts]).group_by(["start", "type"]).aggregate(
                [("count", "sum")]).rename_columns(["start", "type", "count"])
        state = counts
        write_batch(table, as_output(state), mode, APP, batch_id)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
