#!/usr/bin/env python3
"""Runs the throughput benchmark side by side: Sluice, Spark and the plain Python script on the
same input, each job at least three times (medians), checks that all three produced the same
table, and prints one table (also written as JSON). Called by scripts/bench."""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from common import FILES_PER_TRIGGER, JOBS, SCHEMA_DDL, measure, window_sql  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def input_stats(src):
    files = [os.path.join(src, f) for f in os.listdir(src) if f.endswith(".json")]
    size = sum(os.path.getsize(f) for f in files)
    rows = 0
    for f in files:
        with open(f, "rb") as fh:
            rows += sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 20), b""))
    return rows, size


def sluice_cmd(binary, job, src, table):
    _, duration, slide, mode = JOBS[job]
    cmd = [binary, "run", "--source", src, "--schema", SCHEMA_DDL, "--sink", table,
           "--option", f"maxFilesPerTrigger={FILES_PER_TRIGGER}", "--query-name", "bench",
           "--output-mode", mode, "--progress", "none"]
    if duration:
        cmd += ["--sql", window_sql(duration, slide)]
    return cmd


def run_engine(engine, job, src, work, binary, python):
    table = os.path.join(work, f"{engine}-{job}")
    checkpoint = os.path.join(work, f"{engine}-{job}-checkpoint")
    for d in (table, checkpoint):
        shutil.rmtree(d, ignore_errors=True)
    if engine == "sluice":
        cmd = sluice_cmd(binary, job, src, table)
    elif engine == "spark":
        cmd = [python, os.path.join(HERE, "spark_peer.py"), job, src, table, checkpoint]
    else:
        cmd = [python, os.path.join(HERE, "python_peer.py"), job, src, table]
    wall, rss, _ = measure(cmd)
    return wall, rss, table


def same_tables(python, job, tables):
    """Compare the engines' tables in a separate process, so this one stays small: a child's
    peak RSS counts the parent's pages it was forked with."""
    out = subprocess.run([python, os.path.join(HERE, "compare.py"), job, *tables],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--input-30m")
    p.add_argument("--work", required=True)
    p.add_argument("--sluice", required=True)
    p.add_argument("--ceiling", required=True)
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--jobs", default="append,hourly,sliding")
    p.add_argument("--peers", default="spark,python")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    os.makedirs(args.work, exist_ok=True)
    rows, size = input_stats(args.input)
    engines = ["sluice"] + [e for e in args.peers.split(",") if e]
    jobs = [j for j in args.jobs.split(",") if j]
    print(f"input: {rows:,} rows, {size / 1e6:.0f} MB in {args.input}; {args.runs} runs each", flush=True)

    # The ceiling: arrow-json decode + Parquet encode of the same files, nothing else.
    ceiling_walls = []
    for _ in range(args.runs):
        out_dir = os.path.join(args.work, "ceiling")
        shutil.rmtree(out_dir, ignore_errors=True)
        wall, _, _ = measure([args.ceiling, args.input, out_dir])
        ceiling_walls.append(wall)
    ceiling = statistics.median(ceiling_walls)
    print(f"ceiling (arrow-json decode + parquet encode): {ceiling:.2f} s, {rows / ceiling / 1e6:.1f} M rows/s",
          flush=True)

    results = {"input": {"rows": rows, "bytes": size, "files": len(os.listdir(args.input))},
               "ceiling": {"seconds": ceiling, "rowsPerSecond": rows / ceiling, "runs": ceiling_walls},
               "jobs": {}}
    for job in jobs:
        results["jobs"][job] = {"description": JOBS[job][0]}
        tables = {}
        for engine in engines:
            walls, rss = [], []
            for _ in range(args.runs):
                wall, peak, table = run_engine(engine, job, args.input, args.work, args.sluice, args.python)
                walls.append(wall)
                rss.append(peak)
                print(f"  {job:8} {engine:7} {wall:7.2f} s  {peak:7.0f} MB", flush=True)
            tables[engine] = table
            med = statistics.median(walls)
            results["jobs"][job][engine] = {
                "seconds": med, "runs": walls, "rowsPerSecond": rows / med,
                "mbPerSecond": size / 1e6 / med, "peakRssMb": max(rss),
            }
        compared = same_tables(args.python, job, [tables[e] for e in engines])
        for engine, same in zip(engines[1:], compared["same"]):
            results["jobs"][job][engine]["sameTable"] = same
            if not same:
                print(f"  !! {job}: {engine}'s table differs from Sluice's", flush=True)
        results["jobs"][job]["rows"] = compared["rows"]
        for d in tables.values():
            shutil.rmtree(d, ignore_errors=True)

    if args.input_30m:
        rows30, size30 = input_stats(args.input_30m)
        results["scale"] = {"rows": rows30, "bytes": size30}
        for job in ("append", "hourly"):
            if job not in jobs:
                continue
            wall, peak, table = run_engine("sluice", job, args.input_30m, args.work, args.sluice, args.python)
            shutil.rmtree(table, ignore_errors=True)
            results["scale"][job] = {"seconds": wall, "rowsPerSecond": rows30 / wall, "peakRssMb": peak}
            print(f"  {job:8} sluice  {wall:7.2f} s  {peak:7.0f} MB  ({rows30:,} rows)", flush=True)

    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print()
    print(report(results, engines, jobs))
    print(f"\nwrote {args.out}")


def report(results, engines, jobs):
    head = f"{'job':9}{'engine':8}{'median s':>9}{'M rows/s':>10}{'MB/s':>8}{'peak RSS MB':>13}{'same':>6}  Sluice is"
    lines = [head, "-" * len(head)]
    for job in jobs:
        r = results["jobs"][job]
        for engine in engines:
            e = r[engine]
            ratio = "" if engine == "sluice" else f"{e['seconds'] / r['sluice']['seconds']:.1f}x faster"
            same = "" if engine == "sluice" else ("yes" if e.get("sameTable") else "NO")
            lines.append(f"{job:9}{engine:8}{e['seconds']:9.2f}{e['rowsPerSecond'] / 1e6:10.2f}"
                         f"{e['mbPerSecond']:8.0f}{e['peakRssMb']:13.0f}{same:>6}  {ratio}")
    c = results["ceiling"]
    lines.append(f"ceiling  {'arrow':8}{c['seconds']:9.2f}{c['rowsPerSecond'] / 1e6:10.2f}"
                 f"   (arrow-json decode + Parquet encode only)")
    if "append" in results["jobs"]:
        share = c["seconds"] / results["jobs"]["append"]["sluice"]["seconds"]
        lines.append(f"Sluice append runs at {share:.0%} of the ceiling")
    for job, s in results.get("scale", {}).items():
        if isinstance(s, dict):
            lines.append(f"{job} at {results['scale']['rows']:,} rows: {s['rowsPerSecond'] / 1e6:.2f} M rows/s, "
                         f"peak RSS {s['peakRssMb']:.0f} MB")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
