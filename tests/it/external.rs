//! An independent reader: Python `deltalake` reads the table Sluice wrote. The test command
//! (scripts/test) makes a venv with it and sets SLUICE_PYTHON; CI always runs it.

use std::process::Command;

use crate::common::*;

#[tokio::test]
async fn python_deltalake_reads_the_table_and_the_txn_version() {
    let Some(python) = external_python() else {
        return;
    };
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &[
            "--option",
            "maxFilesPerTrigger=6",
            "--query-name",
            "ext",
            "--partition-by",
            "action",
        ],
    );
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
t = dt.to_pyarrow_table()
times = t.column("time").cast("int64").to_pylist()
actions = t.column("action").to_pylist()
rows = sorted("%d|%s" % (tm, a) for tm, a in zip(times, actions))
print(json.dumps({"rows": rows, "txn": dt.transaction_version("sluice-ext")}), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    let got = python_json(&python, script, &table);
    // 50 files, 6 per batch: batches 0..=8.
    assert_eq!(got["txn"], 8);
    let want = expected_events(
        &fixture("events"),
        "SELECT CAST(arrow_cast(time, 'Int64') AS VARCHAR) || '|' || action FROM events",
    )
    .await;
    let rows: Vec<String> = got["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(rows, want);
}

/// Python prints each row of `table` as `action|start_us|end_us|n`, sorted.
fn python_window_rows(python: &str, table: &std::path::Path) -> Vec<String> {
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1]).to_pyarrow_table()
rows = []
for r in t.to_pylist():
    w = r["window"]
    us = lambda d: int(d.timestamp() * 1_000_000)
    rows.append("%s|%d|%d|%d" % (r["action"], us(w["start"]), us(w["end"]), r["n"]))
print(json.dumps(sorted(rows)), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    serde_json::from_value(python_json(python, script, table)).unwrap()
}

#[tokio::test]
async fn python_deltalake_reads_complete_update_and_append_tables() {
    let Some(python) = external_python() else {
        return;
    };
    for (mode, closed) in [("complete", false), ("update", false), ("append", true)] {
        let dir = tempdir();
        let table = dir.path().join(mode);
        run_events(
            &fixture("events"),
            &table,
            &[
                "--sql",
                HOURLY,
                "--output-mode",
                mode,
                "--watermark",
                "time, 10 minutes",
                "--option",
                "maxFilesPerTrigger=7",
            ],
        );
        let got = python_window_rows(&python, &table);
        let want = expected_hourly(&fixture("events"), closed).await;
        assert!(!want.is_empty());
        assert_eq!(got, want, "{mode}");
    }
}

#[tokio::test]
async fn state_survives_vacuum_by_another_engine() {
    let Some(python) = external_python() else {
        return;
    };
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..20);
    let args = [
        "--sql",
        HOURLY,
        "--output-mode",
        "update",
        "--watermark",
        "time, 10 minutes",
        "--option",
        "maxFilesPerTrigger=3",
    ];
    run_events(&src, &table, &args);
    let vacuum = r#"
import os, sys
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
removed = dt.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
print(len(removed), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    let out = Command::new(&python)
        .args(["-c", vacuum, table.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "vacuum: {}", stderr(&out));
    let removed: usize = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(
        removed > 0,
        "update mode left rewritten files for vacuum to delete"
    );
    let state_dir = table.join("_sluice/queries/default/state");
    assert!(
        std::fs::read_dir(&state_dir).unwrap().count() > 0,
        "state files survive vacuum"
    );
    // The query resumes from its persisted state and ends exact.
    copy_files(&fixture("events"), &src, 20..50);
    run_events(&src, &table, &args);
    assert_eq!(
        python_window_rows(&python, &table),
        expected_hourly(&src, false).await
    );
}

/// A table Sluice compacted itself (automatic compaction, on by default for tables it creates)
/// reads the same in Python deltalake, Polars and DuckDB.
#[tokio::test]
async fn external_readers_read_an_automatically_compacted_table() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &[
            "--option",
            "maxFilesPerTrigger=1",
            "--auto-compact-min-files",
            "8",
        ],
    );
    let report = inspect_json(&table, 0);
    assert!(report["numFiles"].as_u64().unwrap() <= 8, "{report}");
    let meta = log_action(&table, 0, "metaData");
    assert_eq!(
        meta["configuration"]["delta.autoOptimize.autoCompact"],
        "true"
    );
    let Some(python) = external_python() else {
        return;
    };
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
import polars as pl
import duckdb
from duckdb_extensions import import_extension
path = sys.argv[1]
dt = DeltaTable(path)
d = dt.to_pyarrow_table()
p = pl.read_delta(path)
import_extension("delta")
c = duckdb.connect()
c.sql("LOAD delta")
k = c.sql(f"SELECT count(*), count(DISTINCT action) FROM delta_scan('{path}')").fetchone()
ops = [h["operation"] for h in dt.history()]
print(json.dumps({"deltalake": d.num_rows, "polars": p.height, "duckdb": int(k[0]),
                  "actions": int(k[1]), "optimize": ops.count("OPTIMIZE")}), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    let got = python_json(&python, script, &table);
    assert_eq!(got["deltalake"], 100_000, "{got}");
    assert_eq!(got["polars"], 100_000, "{got}");
    assert_eq!(got["duckdb"], 100_000, "{got}");
    assert!(got["optimize"].as_u64().unwrap() >= 5, "{got}");
}
