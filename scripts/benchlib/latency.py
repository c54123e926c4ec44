#!/usr/bin/env python3
"""Latency benchmark: a running Sluice query (processing-time trigger 100 ms) gets one small file
at a time; each file's latency is from the moment it appears in the source directory (an atomic
rename) until the table version holding its rows exists. p50/p99 over 200 files.

    latency.py SLUICE_BINARY WORK_DIR OUT_JSON [FILES]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import SCHEMA_DDL  # noqa: E402

LINES = 100


def percentile(ordered, q):
    """The q-quantile of sorted values (nearest rank), None when there are none."""
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def event_file(i):
    t = 1469501107 + i * 60
    return "".join('{"time":%d,"action":"%s"}\n' % (t + k, "Open" if k % 2 else "Close") for k in range(LINES))


def main():
    binary, work, out = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    shutil.rmtree(work, ignore_errors=True)
    src, table = os.path.join(work, "src"), os.path.join(work, "table")
    os.makedirs(src)
    log = os.path.join(table, "_delta_log")
    progress = open(os.path.join(work, "progress.jsonl"), "w")
    proc = subprocess.Popen([binary, "run", "--source", src, "--schema", SCHEMA_DDL, "--sink", table,
                             "--trigger", "100ms", "--query-name", "latency", "--progress", "json"],
                            stderr=progress)
    try:
        def drop(i):
            tmp = os.path.join(src, f".f{i:05}.json.tmp")
            with open(tmp, "w") as f:
                f.write(event_file(i))
            os.rename(tmp, os.path.join(src, f"f{i:05}.json"))

        def wait_version(v, deadline=30.0):
            path = os.path.join(log, f"{v:020}.json")
            end = time.perf_counter() + deadline
            while not os.path.exists(path):
                if proc.poll() is not None:
                    raise RuntimeError("sluice stopped")
                if time.perf_counter() > end:
                    raise RuntimeError(f"version {v} never appeared")
                time.sleep(0.0005)

        # Warm-up: the first file creates the table.
        drop(0)
        wait_version(0)
        version = max(int(f[:20]) for f in os.listdir(log) if f.endswith(".json") and f[:20].isdigit())
        latencies = []
        for i in range(1, n + 1):
            # Start at a random phase of the trigger interval, as real arrivals do.
            time.sleep(0.02 + (i * 37 % 100) / 1000.0)
            start = time.perf_counter()
            drop(i)
            version += 1
            wait_version(version)
            latencies.append((time.perf_counter() - start) * 1000.0)
    finally:
        proc.terminate()
        proc.wait()
        progress.close()
    # The part Sluice controls: each batch's own time, from listing to commit (the rest of a
    # file's latency is waiting until a micro-batch may start: at most one per 100 ms interval).
    batch_ms = []
    with open(os.path.join(work, "progress.jsonl")) as f:
        for line in f:
            try:
                batch_ms.append(json.loads(line)["durationMs"]["triggerExecution"])
            except (ValueError, KeyError):
                continue
    batch_ms = sorted(batch_ms[1:])
    latencies.sort()
    result = {"files": n, "rowsPerFile": LINES, "triggerMs": 100, "p50Ms": percentile(latencies, 0.50),
              "p90Ms": percentile(latencies, 0.90), "p99Ms": percentile(latencies, 0.99), "maxMs": latencies[-1], "meanMs": statistics.mean(latencies),
              "batchP50Ms": percentile(batch_ms, 0.50), "batchP99Ms": percentile(batch_ms, 0.99)}
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"file-to-committed-version latency over {n} files (100 ms trigger): "
          f"p50 {result['p50Ms']:.0f} ms, p90 {result['p90Ms']:.0f} ms, p99 {result['p99Ms']:.0f} ms, "
          f"max {result['maxMs']:.0f} ms; the batch itself (list, read, write, commit): "
          f"p50 {result['batchP50Ms']} ms, p99 {result['batchP99Ms']} ms")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
