"""Shared by the nested-JSON benchmark's runners: the jobs over GitHub-Archive-like events and
the Arrow schema the plain Python script reads them with (the same as SCHEMA_DDL)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from gen_github import SCHEMA_DDL  # noqa: E402,F401

FILES_PER_TRIGGER = 5

# name -> (description, output mode)
JOBS = {
    "append": ("append ingest of whole nested events, maxFilesPerTrigger=5", "append"),
    "hourly": ("hourly window count per event type, complete mode", "complete"),
}

HOURLY_SQL = ("SELECT window(created_at, '1 hour') AS window, type, count(*) AS count "
              "FROM source GROUP BY window(created_at, '1 hour'), type")


def arrow_schema():
    import pyarrow as pa

    author = pa.struct([("name", pa.string()), ("email", pa.string())])
    commit = pa.struct([("sha", pa.string()), ("message", pa.string()), ("distinct", pa.bool_()),
                        ("author", author)])
    return pa.schema([
        ("id", pa.string()),
        ("type", pa.string()),
        ("actor", pa.struct([("id", pa.int64()), ("login", pa.string()), ("display_login", pa.string()),
                             ("url", pa.string()), ("avatar_url", pa.string())])),
        ("repo", pa.struct([("id", pa.int64()), ("name", pa.string()), ("url", pa.string())])),
        ("payload", pa.struct([("action", pa.string()), ("ref", pa.string()), ("ref_type", pa.string()),
                               ("size", pa.int64()), ("number", pa.int64()),
                               ("commits", pa.list_(commit))])),
        ("public", pa.bool_()),
        ("created_at", pa.timestamp("s", tz="UTC")),
        ("org", pa.struct([("id", pa.int64()), ("login", pa.string())])),
    ])


def input_files(src):
    return sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".json.gz"))
