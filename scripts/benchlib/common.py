"""Shared by the benchmark's runners: the three jobs, how to time a process and its peak memory."""
import os
import subprocess
import threading
import time

SCHEMA_DDL = "time TIMESTAMP, action STRING"
FILES_PER_TRIGGER = 5

# The three jobs: name -> (description, window duration, slide, output mode); None = plain append.
JOBS = {
    "append": ("append ingest, maxFilesPerTrigger=5", None, None, "append"),
    "hourly": ("hourly window count per action, complete mode", "1 hour", None, "complete"),
    "sliding": ("1 h / 30 min sliding count per action, update mode", "1 hour", "30 minutes", "update"),
}


def window_sql(duration, slide):
    w = f"window(time, '{duration}'" + (f", '{slide}'" if slide else "") + ")"
    return f"SELECT {w} AS window, action, count(*) AS count FROM source GROUP BY {w}, action"


def write_batch(table, data, mode, app, batch_id):
    """One micro-batch of a peer into its Delta table, with txn (app, batch_id): appended,
    overwriting the whole result (complete), or upserting the windows it changed (update)."""
    # Imported here: the latency benchmark uses this module without deltalake installed.
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

    props = CommitProperties(app_transactions=[Transaction(app_id=app, version=batch_id)])
    if mode == "complete":
        write_deltalake(table, data, mode="overwrite", commit_properties=props)
    elif mode == "append" or not DeltaTable.is_deltatable(table):
        write_deltalake(table, data, mode="append", commit_properties=props)
    else:
        (
            DeltaTable(table)
            .merge(data, "t.window.start = s.window.start AND t.action = s.action", "s", "t",
                   commit_properties=props)
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )


def stream_into_delta(result, mode, table, checkpoint, app):
    """Spark's side of a job: run a streaming result to the end of its input (availableNow),
    each micro-batch written by foreachBatch with a txn (app, batch id), skipping a batch the
    table already holds (exactly once across restarts)."""
    from deltalake import DeltaTable

    def write(df, batch_id):
        if DeltaTable.is_deltatable(table):
            done = DeltaTable(table).transaction_version(app)
            if done is not None and done >= batch_id:
                return
        write_batch(table, df.toArrow(), mode, app, batch_id)

    query = (
        result.writeStream.outputMode(mode)
        .foreachBatch(write)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()


def _rss_kb(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, ValueError, IndexError):
        return 0


def _children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def _tree_rss_kb(root):
    """Resident memory of a process and all its descendants (a JVM under Python, say)."""
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += _rss_kb(p)
        todo.extend(_children(p))
    return total


def measure(cmd, env=None, cwd=None):
    """Run cmd; return (wall seconds, peak RSS in MB of the process tree, stdout+stderr)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{text[-3000:]}")
    peak_kb = max(peak[0], usage.ru_maxrss)
    return wall, peak_kb / 1024.0, text
