#!/usr/bin/env python3
"""Runs the nested-JSON benchmark side by side: Sluice, Spark and the plain Python script on the
same gzipped GitHub-Archive-like events, checks that their tables hold the same rows, and
prints one table (also written as JSON). Throughput is in MB/s of uncompressed JSON. Called by
scripts/bench_nested.

Sluice runs --runs times (median); the peers, which take minutes a run, --peer-runs times.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import measure  # noqa: E402
from nested_common import FILES_PER_TRIGGER, HOURLY_SQL, JOBS, SCHEMA_DDL  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

COMPARE = r'''
import json, sys
import pyarrow as pa, pyarrow.compute as pc
from deltalake import DeltaTable
job, tables = sys.argv[1], sys.argv[2:]
def summary(path):
    dt = DeltaTable(path)
    if job == "append":
        t = dt.to_pyarrow_table(columns=["id", "type", "payload", "created_at"])
        ids = pc.sort_indices(t["id"])
        commits = pc.sum(pc.list_value_length(pc.struct_field(t["payload"], "commits"))).as_py() or 0
        return {"rows": t.num_rows, "ids": pc.take(t["id"], ids).to_pylist(),
                "commits": commits,
                "pushes": pc.sum(pc.equal(t["type"], "PushEvent")).as_py(),
                "times": pc.sum(pc.cast(pc.cast(t["created_at"], pa.timestamp("us")), pa.int64())).as_py()}
    t = dt.to_pyarrow_table()
    start = pc.cast(pc.cast(pc.struct_field(t["window"], "start"), pa.timestamp("us")), pa.int64())
    rows = sorted(zip(start.to_pylist(), t["type"].to_pylist(), t["count"].to_pylist()))
    return {"rows": len(rows), "values": rows}
ref = summary(tables[0])
print(json.dumps({"rows": ref["rows"], "same": [summary(t) == ref for t in tables[1:]]}), flush=True)
import os
os._exit(0)  # skip interpreter teardown: deltalake's native threads may abort it
'''


def input_stats(src):
    with open(os.path.join(src, "_stats.json")) as f:
        stats = json.load(f)
    return stats["rows"], stats["bytes"]


def run_engine(engine, job, src, work, binary, python):
    table = os.path.join(work, f"nested-{engine}-{job}")
    checkpoint = table + "-checkpoint"
    for d in (table, checkpoint):
        shutil.rmtree(d, ignore_errors=True)
    if engine == "sluice":
        cmd = [binary, "run", "--source", src, "--schema", SCHEMA_DDL, "--sink", table,
               "--option", f"maxFilesPerTrigger={FILES_PER_TRIGGER}", "--query-name", "bench",
               "--output-mode", JOBS[job][1], "--progress", "none"]
        if job == "hourly":
            cmd += ["--sql", HOURLY_SQL]
    elif engine == "spark":
        cmd = [python, os.path.join(HERE, "nested_spark.py"), job, src, table, checkpoint]
    else:
        cmd = [python, os.path.join(HERE, "nested_python.py"), job, src, table]
    wall, rss, _ = measure(cmd)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return wall, rss, table


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--sluice", required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--peer-runs", type=int, default=1)
    p.add_argument("--jobs", default="append,hourly")
    p.add_argument("--peers", default="spark,python")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows, size = input_stats(args.input)
    engines = ["sluice"] + [e for e in args.peers.split(",") if e]
    jobs = [j for j in args.jobs.split(",") if j]
    print(f"input: {rows:,} nested events, {size / 1e6:.0f} MB of JSON (gzipped) in {args.input}", flush=True)
    results = {"input": {"rows": rows, "bytes": size}, "jobs": {}}
    for job in jobs:
        results["jobs"][job] = {"description": JOBS[job][0]}
        tables = {}
        for engine in engines:
            walls, rss = [], []
            for _ in range(args.runs if engine == "sluice" else args.peer_runs):
                wall, peak, table = run_engine(engine, job, args.input, args.work, args.sluice, args.python)
                walls.append(wall)
                rss.append(peak)
                print(f"  {job:8} {engine:7} {wall:8.2f} s  {peak:7.0f} MB", flush=True)
            tables[engine] = table
            med = statistics.median(walls)
            results["jobs"][job][engine] = {"seconds": med, "runs": walls, "rowsPerSecond": rows / med,
                                            "mbPerSecond": size / 1e6 / med, "peakRssMb": max(rss)}
        out = subprocess.run([args.python, "-c", COMPARE, job] + [tables[e] for e in engines],
                             check=True, capture_output=True, text=True).stdout
        compared = json.loads(out)
        for engine, same in zip(engines[1:], compared["same"]):
            results["jobs"][job][engine]["sameTable"] = same
            if not same:
                print(f"  !! {job}: {engine}'s table differs from Sluice's", flush=True)
        results["jobs"][job]["rows"] = compared["rows"]
        for d in tables.values():
            shutil.rmtree(d, ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print()
    head = f"{'job':9}{'engine':8}{'median s':>10}{'M rows/s':>10}{'MB/s':>8}{'peak RSS MB':>13}{'same':>6}  Sluice is"
    print(head)
    print("-" * len(head))
    for job in jobs:
        r = results["jobs"][job]
        for engine in engines:
            e = r[engine]
            ratio = "" if engine == "sluice" else f"{e['seconds'] / r['sluice']['seconds']:.1f}x faster"
            same = "" if engine == "sluice" else ("yes" if e.get("sameTable") else "NO")
            print(f"{job:9}{engine:8}{e['seconds']:10.2f}{e['rowsPerSecond'] / 1e6:10.2f}"
                  f"{e['mbPerSecond']:8.0f}{e['peakRssMb']:13.0f}{same:>6}  {ratio}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
