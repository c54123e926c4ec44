#!/usr/bin/env python3
"""Are Delta tables equal, rows and values, whatever order and file layout each engine chose?

    compare.py JOB REFERENCE_TABLE OTHER_TABLE...

Prints {"rows": <reference rows>, "same": [<bool per other table>]}.
"""
import json
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable

sys.path.insert(0, os.path.dirname(__file__))
from common import JOBS  # noqa: E402


def normalized(table, job):
    """The table's rows in one canonical order and types, for comparing engines."""
    t = DeltaTable(table).to_pyarrow_table()
    if JOBS[job][1] is None:
        t = pa.table({
            "time": pc.cast(pc.cast(t["time"], pa.timestamp("us")), pa.int64()),
            "action": t["action"],
        })
        return t.sort_by([("time", "ascending"), ("action", "ascending")])
    w = t["window"].combine_chunks()
    t = pa.table({
        "start": pc.cast(pc.cast(w.field("start"), pa.timestamp("us")), pa.int64()),
        "end": pc.cast(pc.cast(w.field("end"), pa.timestamp("us")), pa.int64()),
        "action": t["action"],
        "count": pc.cast(t["count"], pa.int64()),
    })
    return t.sort_by([("start", "ascending"), ("action", "ascending")])


def main():
    job, reference, *others = sys.argv[1:]
    ref = normalized(reference, job)
    same = [normalized(t, job).equals(ref) for t in others]
    print(json.dumps({"rows": ref.num_rows, "same": same}))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # Skip interpreter teardown: deltalake's native threads may abort it after the work is done
    # (delta-io/delta-rs#2184).
    os._exit(0)
