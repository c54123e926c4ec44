#!/usr/bin/env python3
"""The hand-written Python way: per batch of files, pyarrow.json.read_json each file and
write_deltalake the batch; aggregations kept in pyarrow between batches.

    python_peer.py JOB INPUT_DIR TABLE
"""
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

sys.path.insert(0, os.path.dirname(__file__))
from common import FILES_PER_TRIGGER, JOBS, write_batch  # noqa: E402

SCHEMA = pa.schema([("time", pa.int64()), ("action", pa.string())])  # time: epoch seconds
APP = "python-peer"
HOUR = 3600 * 1_000_000
HALF = HOUR // 2


def read(paths):
    opts = pj.ParseOptions(explicit_schema=SCHEMA)
    tables = [pj.read_json(p, parse_options=opts) for p in paths]
    t = pa.concat_tables(tables)
    micros = pc.multiply(t["time"], 1_000_000)
    return t.set_column(0, "time", pc.cast(micros, pa.timestamp("us", tz="UTC")))


def window_counts(batch, slide_us):
    """Per-window counts of one batch: each row in every window of 1 hour starting each slide."""
    us = pc.cast(batch["time"], pa.int64())
    parts = []
    aligned = pc.multiply(pc.divide(us, slide_us), slide_us)
    for back in range(HOUR // slide_us):
        start = pc.subtract(aligned, back * slide_us)
        parts.append(pa.table({"start": start, "action": batch["action"]}))
    keyed = pa.concat_tables(parts)
    return keyed.group_by(["start", "action"]).aggregate([("action", "count")]).rename_columns(
        ["start", "action", "count"]
    )


def as_output(counts):
    counts = counts.combine_chunks()
    start = pc.cast(counts["start"].chunk(0), pa.timestamp("us", tz="UTC"))
    end = pc.cast(pc.add(counts["start"].chunk(0), HOUR), pa.timestamp("us", tz="UTC"))
    window = pa.StructArray.from_arrays([start, end], names=["start", "end"])
    return pa.table({"window": window, "action": counts["action"], "count": counts["count"]})


def merge_counts(state, new):
    if state is None:
        return new
    both = pa.concat_tables([state, new])
    return both.group_by(["start", "action"]).aggregate([("count", "sum")]).rename_columns(
        ["start", "action", "count"]
    )


def main():
    job, src, table = sys.argv[1], sys.argv[2], sys.argv[3]
    _, duration, slide, mode = JOBS[job]
    files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".json"))
    state = None
    for batch_id, i in enumerate(range(0, len(files), FILES_PER_TRIGGER)):
        batch = read(files[i : i + FILES_PER_TRIGGER])
        if mode == "append":
            write_batch(table, batch, mode, APP, batch_id)
            continue
        slide_us = HALF if slide else HOUR
        counts = window_counts(batch, slide_us)
        state = merge_counts(state, counts)
        if mode == "complete":
            write_batch(table, as_output(state), mode, APP, batch_id)
        else:
            # Update: upsert the windows this batch changed, with their new totals.
            changed = state.join(counts.select(["start", "action"]), ["start", "action"], join_type="inner")
            write_batch(table, as_output(changed), mode, APP, batch_id)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: deltalake's native threads may abort it after the work is done
    # (delta-io/delta-rs#2184).
    os._exit(0)
