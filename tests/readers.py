"""Read a Delta table with three independent readers and print each one's rows, canonical.

    python tests/readers.py TABLE_URI [STORAGE_OPTIONS_JSON]

Prints {"deltalake": [...], "polars": [...], "duckdb": [...]}: each a sorted list of rows, a row
being its values joined by "|" in the table's column order (timestamps as epoch microseconds,
structs as their fields, nulls as NULL). Used by the integration tests (tests/it/readers.rs).
"""
import datetime
import json
import os
import sys

import duckdb
import polars as pl
from deltalake import DeltaTable
from duckdb_extensions import import_extension

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def canon(value):
    if value is None:
        return "NULL"
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return str((value - EPOCH) // datetime.timedelta(microseconds=1))
    if isinstance(value, dict):
        return "|".join(canon(v) for v in value.values())
    if isinstance(value, float):
        return repr(value)
    return str(value)


def rows(records, columns):
    return sorted("|".join(canon(r[c]) for c in columns) for r in records)


def main():
    uri = sys.argv[1]
    options = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    dt = DeltaTable(uri, storage_options=options or None)
    columns = [f.name for f in dt.schema().fields]
    out = {"deltalake": rows(dt.to_pyarrow_table().to_pylist(), columns)}
    out["polars"] = rows(
        pl.read_delta(uri, storage_options=options or None).to_arrow().to_pylist(), columns
    )
    import_extension("delta")
    con = duckdb.connect()
    con.execute("LOAD delta")
    if options:
        import_extension("httpfs")
        con.execute("LOAD httpfs")
        endpoint = options["AWS_ENDPOINT_URL"].split("://", 1)[1]
        con.execute(
            "CREATE SECRET s3 (TYPE S3, KEY_ID ?, SECRET ?, REGION ?, ENDPOINT ?, "
            "URL_STYLE 'path', USE_SSL false)",
            [options["AWS_ACCESS_KEY_ID"], options["AWS_SECRET_ACCESS_KEY"], options["AWS_REGION"], endpoint],
        )
    table = con.execute("SELECT * FROM delta_scan(?)", [uri]).to_arrow_table()
    out["duckdb"] = rows(table.to_pylist(), columns)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
    # Skip interpreter teardown: the readers' native threads may abort it after the answer.
    os._exit(0)
