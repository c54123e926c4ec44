#!/usr/bin/env python3
"""The differential suite: the same query over the same files through Sluice (a stream into a
Delta table, read back with Python deltalake) and through Spark itself (a batch `spark.read`
with the same schema, options and SQL, `local[1]`, one JVM for the whole suite), compared as
multisets of rows, values exactly, column names and types by the Spark -> Delta mapping.

A difference fails the suite unless its case id is listed in the README's "Differences from
Spark" table. Seeded: SLUICE_ORACLE_SEED (or --seed) replays a run.

    run.py --sluice target/debug/sluice [--seed N] [--only SUBSTRING] [--keep DIR]
"""
import argparse
import collections
import datetime as dt
import decimal
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["TZ"] = "UTC"
time.tzset()

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases as case_lists  # noqa: E402
import data  # noqa: E402

README = os.path.join(HERE, "..", "..", "README.md")


def listed_differences():
    """Case ids (or id prefixes ending in `*`) listed in the README's Differences table."""
    text = open(README, encoding="utf-8").read()
    start = text.find("## Differences from Spark")
    if start < 0:
        return {}
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else len(text)]
    listed = {}
    for line in section.splitlines():
        m = re.match(r"\|\s*(`[^|]+`)\s*\|(.*)\|\s*$", line)
        if m:
            for cid in re.findall(r"`([^`]+)`", m.group(1)):
                listed[cid.strip()] = m.group(2).strip()
    return listed


def is_listed(cid, listed):
    return any(cid == k or (k.endswith("*") and cid.startswith(k[:-1])) for k in listed)


# ---------------------------------------------------------------- normalizing values

def norm(v, t):
    """A value of type `t` (Spark's / Delta's JSON type) in a form both sides share."""
    if v is None:
        return None
    if isinstance(t, dict):
        kind = t["type"]
        if kind == "struct":
            # A Spark Row by position, a pyarrow dict by name.
            if isinstance(v, dict):
                return tuple(norm(v.get(f["name"]), f["type"]) for f in t["fields"])
            return tuple(norm(v[i], f["type"]) for i, f in enumerate(t["fields"]))
        if kind == "array":
            return tuple(norm(e, t["elementType"]) for e in v)
        if kind == "map":
            items = v.items() if isinstance(v, dict) else v
            return tuple(sorted(((norm(k, t["keyType"]), norm(x, t["valueType"])) for k, x in items),
                                key=repr))
        return v
    if t in ("timestamp", "timestamp_ntz"):
        if isinstance(v, dt.datetime):
            if v.tzinfo is not None:
                v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
            return v.isoformat(timespec="microseconds")
        return str(v)
    if t == "date":
        return v.isoformat()
    if t.startswith("decimal"):
        d = decimal.Decimal(v).normalize()
        return format(d, "f")
    if t in ("double", "float"):
        return repr(float(v))
    if t == "binary":
        return bytes(v).hex()
    return v


def plain_type(t):
    """A type without nullability and metadata, for comparing schemas."""
    if isinstance(t, dict):
        kind = t["type"]
        if kind == "struct":
            return ("struct", tuple((f["name"], plain_type(f["type"])) for f in t["fields"]))
        if kind == "array":
            return ("array", plain_type(t["elementType"]))
        if kind == "map":
            return ("map", plain_type(t["keyType"]), plain_type(t["valueType"]))
    return t


def show_type(t):
    p = plain_type(t)
    return json.dumps(p) if not isinstance(p, str) else p


# ---------------------------------------------------------------- the two engines

class Result:
    def __init__(self, fields=None, rows=None, error=None):
        self.fields = fields or []  # [(name, type json)]
        self.rows = rows or []      # [tuple of normalized values]
        self.error = error


def run_spark(spark, case, folder):
    try:
        reader = spark.read.format(case.format)
        if case.schema:
            reader = reader.schema(case.schema)
        for k, v in case.options.items():
            reader = reader.option(k, v)
        if case.format == "csv" and "escape" not in case.options:
            # Sluice reads quotes as RFC 4180 does ("" inside quotes is one quote): Spark's
            # reading with escape '"'. Its default escape '\\' is listed in the README.
            reader = reader.option("escape", '"')
        reader.load(folder).createOrReplaceTempView("source")
        df = spark.sql(case.sql)
        schema = df.schema.jsonValue()
        fields = [(f["name"], f["type"]) for f in schema["fields"]]
        rows = [tuple(norm(r[i], t) for i, (_, t) in enumerate(fields)) for r in df.collect()]
        return Result(fields, rows)
    except Exception as e:  # noqa: BLE001 - any failure of Spark's is a result to compare
        text = str(e).strip().splitlines()
        return Result(error=(text[0] if text else type(e).__name__)[:300])


def run_sluice(binary, case, folder, work):
    table = os.path.join(work, "table")
    shutil.rmtree(table, ignore_errors=True)
    cmd = [binary, "run", "--source", folder, "--sink", table, "--format", case.format,
           "--sql", case.sql, "--trigger", "once", "--progress", "none",
           "--output-mode", case.output_mode]
    if case.schema:
        cmd += ["--schema", case.schema]
    for k, v in case.options.items():
        cmd += ["--option", f"{k}={v}"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        return Result(error=(p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1][:300])
    from deltalake import DeltaTable
    t = DeltaTable(table)
    schema = json.loads(t.schema().to_json())
    fields = [(f["name"], f["type"]) for f in schema["fields"]]
    pa_table = t.to_pyarrow_table()
    records = pa_table.to_pylist()
    rows = [tuple(norm(r[name], ty) for name, ty in fields) for r in records]
    return Result(fields, rows)


# ---------------------------------------------------------------- comparing

def compare(spark, sluice):
    """None when they agree, else a short description of the first difference."""
    if spark.error or sluice.error:
        if spark.error and sluice.error:
            return None
        if spark.error:
            return f"Spark fails ({spark.error}); Sluice gives {len(sluice.rows)} rows"
        return f"Sluice fails ({sluice.error}); Spark gives {len(spark.rows)} rows"
    names_s = [n for n, _ in spark.fields]
    names_l = [n for n, _ in sluice.fields]
    if names_s != names_l:
        return f"columns: Spark {names_s}, Sluice {names_l}"
    for (n, ts), (_, tl) in zip(spark.fields, sluice.fields):
        if plain_type(ts) != plain_type(tl):
            return f"type of `{n}`: Spark {show_type(ts)}, Sluice {show_type(tl)}"
    a = collections.Counter(map(repr, spark.rows))
    b = collections.Counter(map(repr, sluice.rows))
    if a != b:
        only_spark = list((a - b).elements())[:3]
        only_sluice = list((b - a).elements())[:3]
        return (f"rows: {sum(a.values())} from Spark, {sum(b.values())} from Sluice; "
                f"only Spark: {only_spark}; only Sluice: {only_sluice}")
    return None


def column(result, index):
    """The result restricted to its `id` column and column `index` (expression groups)."""
    if result.error:
        return result
    keep = [0, index]
    fields = [result.fields[i] for i in keep]
    fields[1] = ("v", fields[1][1])
    return Result(fields, [tuple(r[i] for i in keep) for r in result.rows])


# ---------------------------------------------------------------- the suite

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("SLUICE_ORACLE_SEED", "29")))
    ap.add_argument("--only", default="")
    ap.add_argument("--keep", default="")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    binary = os.path.abspath(args.sluice)
    started = time.time()
    root = args.keep or tempfile.mkdtemp(prefix="sluice-oracle-")
    os.makedirs(root, exist_ok=True)
    datasets = data.make_all(os.path.join(root, "data"), args.seed)
    infer_names = sorted(data.inference_shapes(__import__("random").Random(args.seed)))
    for name in infer_names:
        datasets[f"infer/{name}"] = os.path.join(root, "data", "infer", name)
    cases = [c for c in case_lists.all_cases(infer_names) if args.only in c.id]
    listed = listed_differences()

    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]").appName("sluice-oracle")
             .config("spark.sql.ansi.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.shuffle.partitions", "1")
             .config("spark.driver.memory", "1g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    work = os.path.join(root, "work")
    os.makedirs(work, exist_ok=True)

    outcomes = {}  # case id -> difference text or None

    # Expression groups: one query per group on each side, split when a side fails.
    groups = collections.OrderedDict()
    singles = []
    for c in cases:
        if c.group:
            groups.setdefault(c.group, []).append(c)
        else:
            singles.append(c)
    for group, members in groups.items():
        first = members[0]
        select = ", ".join(f"{m.expr} AS v{i:02d}" for i, m in enumerate(members))
        combined = case_lists.Case(f"group/{group}", first.dataset, first.format, first.schema,
                                   f"SELECT id, {select} FROM source")
        folder = datasets[first.dataset]
        s_all = run_spark(spark, combined, folder)
        l_all = run_sluice(binary, combined, folder, work)
        for i, m in enumerate(members):
            s = column(s_all, i + 1) if not s_all.error else run_spark(spark, m, folder)
            lr = column(l_all, i + 1) if not l_all.error else run_sluice(binary, m, folder, work)
            outcomes[m.id] = compare(s, lr)
    for c in singles:
        folder = datasets[c.dataset]
        outcomes[c.id] = compare(run_spark(spark, c, folder), run_sluice(binary, c, folder, work))

    spark.stop()
    by_id = {c.id: c for c in cases}
    unlisted = []
    listed_seen = 0
    for cid, diff in outcomes.items():
        c = by_id[cid]
        label = getattr(c, "expr", c.sql)
        if diff is None:
            if args.verbose:
                print(f"agree   {cid}: {label}")
            continue
        if is_listed(cid, listed):
            listed_seen += 1
            if args.verbose:
                print(f"listed  {cid}: {label}\n        {diff}")
        else:
            unlisted.append(cid)
            print(f"DIFFERS {cid}: {label}\n        {diff}")
    stale = [k for k in listed if not k.endswith("*") and k in outcomes and outcomes[k] is None]
    for k in stale:
        print(f"note: `{k}` is listed in Differences from Spark but now agrees")
    kinds = collections.Counter(cid.split("/")[0] for cid in outcomes)
    print(
        f"oracle (seed {args.seed}): {len(outcomes)} cases in {time.time() - started:.0f} s: "
        f"{kinds['format']} format x projection x mode, {kinds['malformed']} malformed-record, "
        f"{kinds['expr']} expressions, {kinds['clause']} clauses, {kinds['infer']} inference; "
        f"{sum(1 for d in outcomes.values() if d is None)} agree, {listed_seen} listed differences, "
        f"{len(unlisted)} unlisted")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if unlisted else 0


if __name__ == "__main__":
    sys.exit(main())
