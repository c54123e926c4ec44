#!/usr/bin/env python3
"""Soak benchmark: does a query's cost per batch stay flat however long it runs?

A running Sluice query (processing-time trigger, 100 ms) gets 500-row JSON files steadily (about
45 a second, each an atomic rename) for --minutes. Jobs: a plain append, and a 1-minute windowed
count per action in update mode with a 1-minute watermark (event times follow the wall clock, so
state is evicted as it goes). It reports, for the first and the last five minutes (or fifths of a
shorter run), per-batch p50 / p99 of the whole batch and of each phase Sluice's progress names:
listing (`latestOffset`), planning the batch's record (`walCommit`), reading, the query and writing
the data files (`addBatch`), the commit (`commitOffsets`); and, sampled every few seconds, the
table's live files, listing time and the process's RSS.

    soak.py SLUICE_BINARY WORK_DIR OUT_JSON [--minutes N] [--rate FILES_PER_S] [--jobs append,windowed]
            [--clean-source off|delete] [--listing arrivals|incremental|full]

Per minute it also reports the batch, listing and commit p50, to show a slope where there is one.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import threading
import time

LINES = 500
PHASES = {"listing": "latestOffset", "plan": "walCommit", "read+query+write": "addBatch",
          "commit": "commitOffsets", "batch": "triggerExecution"}
WINDOWED = ("SELECT window(time, '1 minute') AS window, action, count(*) AS count FROM source "
            "GROUP BY window(time, '1 minute'), action")


def percentile(values, q):
    """The q-quantile of values (nearest rank), None when there are none."""
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def feeder(src, rate, stop, counter):
    """Drop 500-row files into `src` at `rate` a second until `stop` is set."""
    i = 0
    actions = ("Open", "Close", "Click", "View")
    start = time.perf_counter()
    while not stop.is_set():
        now = int(time.time())
        body = "".join('{"time":%d,"action":"%s"}\n' % (now - (k % 5), actions[(i + k) % 4])
                       for k in range(LINES))
        tmp = os.path.join(src, f".f{i:08}.json.tmp")
        with open(tmp, "w") as f:
            f.write(body)
        os.rename(tmp, os.path.join(src, f"f{i:08}.json"))
        i += 1
        counter[0] = i
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def live_files(binary, table):
    out = subprocess.run([binary, "inspect", table, "--json", "--limit", "0"], capture_output=True,
                         text=True)
    try:
        return json.loads(out.stdout)["numFiles"]
    except (ValueError, KeyError):
        return None


def run_job(job, args):
    work = os.path.join(args.work, job)
    shutil.rmtree(work, ignore_errors=True)
    src, table = os.path.join(work, "src"), os.path.join(work, "table")
    os.makedirs(src)
    cmd = [args.binary, "run", "--source", src, "--schema", "time TIMESTAMP, action STRING",
           "--sink", table, "--trigger", "100ms", "--query-name", "soak", "--progress", "json"]
    if job == "windowed":
        cmd += ["--sql", WINDOWED, "--output-mode", "update", "--watermark", "time, 1 minute"]
    if args.clean_source != "off":
        cmd += ["--option", f"cleanSource={args.clean_source}"]
    if args.listing == "incremental":
        cmd += ["--option", "useNotifications=false", "--option", "useIncrementalListing=true"]
    elif args.listing == "full":
        cmd += ["--option", "useNotifications=false"]
    progress_path = os.path.join(work, "progress.jsonl")
    progress = open(progress_path, "w")
    proc = subprocess.Popen(cmd, stderr=progress)
    stop, counter = threading.Event(), [0]
    feed = threading.Thread(target=feeder, args=(src, args.rate, stop, counter))
    began = time.time()
    feed.start()
    samples = []
    try:
        while time.time() - began < args.minutes * 60:
            time.sleep(min(10.0, args.minutes * 6))
            if proc.poll() is not None:
                raise RuntimeError(f"sluice stopped (exit {proc.returncode}); see {progress_path}")
            samples.append({"second": round(time.time() - began), "rssMb": rss_mb(proc.pid),
                            "liveFiles": live_files(args.binary, table), "filesDropped": counter[0]})
    finally:
        stop.set()
        feed.join()
        proc.terminate()
        proc.wait()
        progress.close()
    batches = []
    with open(progress_path) as f:
        for line in f:
            try:
                p = json.loads(line)
            except ValueError:
                continue
            if "durationMs" in p and p.get("numInputRows", 0) > 0:
                batches.append(p)
    t0 = min((time.mktime(time.strptime(b["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) for b in batches),
             default=0)
    span = min(300.0, args.minutes * 12)  # five minutes, or a fifth of a shorter run

    def seconds(b):
        return time.mktime(time.strptime(b["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")) - t0

    end = max((seconds(b) for b in batches), default=0)
    first = [b for b in batches if seconds(b) < span]
    last = [b for b in batches if seconds(b) >= end - span]

    def phases(part):
        return {name: {"p50": percentile([b["durationMs"].get(key, 0) for b in part], 0.5),
                       "p99": percentile([b["durationMs"].get(key, 0) for b in part], 0.99)}
                for name, key in PHASES.items()}

    per_minute = []
    for minute in range(int(end // 60) + 1):
        part = [b for b in batches if minute * 60 <= seconds(b) < (minute + 1) * 60]
        if part:
            per_minute.append({"minute": minute, "batches": len(part),
                               **{name: percentile([b["durationMs"].get(key, 0) for b in part], 0.5)
                                  for name, key in PHASES.items()}})
    result = {"job": job, "minutes": args.minutes, "rate": args.rate, "batches": len(batches),
              "filesDropped": counter[0], "windowSeconds": span, "listing": args.listing,
              "cleanSource": args.clean_source,
              "first": phases(first), "last": phases(last), "samples": samples,
              "perMinute": per_minute}
    p50_first, p50_last = result["first"]["batch"]["p50"], result["last"]["batch"]["p50"]
    result["lastOverFirstP50"] = (p50_last / p50_first) if p50_first else None
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("binary")
    p.add_argument("work")
    p.add_argument("out")
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=45.0)
    p.add_argument("--jobs", default="append,windowed")
    p.add_argument("--clean-source", default="off", choices=["off", "delete"])
    p.add_argument("--listing", default="arrivals", choices=["arrivals", "incremental", "full"])
    args = p.parse_args()
    results = []
    for job in [j for j in args.jobs.split(",") if j]:
        print(f"{job}: {args.minutes:g} minutes, {args.rate:g} files of {LINES} rows a second ...",
              flush=True)
        r = run_job(job, args)
        results.append(r)
        print(f"  {r['batches']} batches, {r['filesDropped']} files; per batch, first vs last "
              f"{r['windowSeconds'] / 60:g} minutes (p50 / p99 ms):", flush=True)
        for name in PHASES:
            f, l = r["first"][name], r["last"][name]
            print(f"    {name:18} {f['p50']!s:>6} / {f['p99']!s:<6} -> {l['p50']!s:>6} / {l['p99']!s:<6}")
        print("    per minute p50 ms (batch / listing / commit): " + ", ".join(
            f"{m['minute']}: {m['batch']}/{m['listing']}/{m['commit']}" for m in r["perMinute"]))
        ratio = r["lastOverFirstP50"]
        print(f"    last/first p50: {ratio:.2f} (target <= 1.2)" if ratio else "    no batches")
        s0, s1 = r["samples"][0] if r["samples"] else {}, r["samples"][-1] if r["samples"] else {}
        print(f"    live files {s0.get('liveFiles')} -> {s1.get('liveFiles')}, "
              f"RSS {s0.get('rssMb') or 0:.0f} -> {s1.get('rssMb') or 0:.0f} MB "
              f"(max {max((s['rssMb'] or 0) for s in r['samples']) if r['samples'] else 0:.0f})",
              flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
