//! An independent reader: Python `deltalake` reads the table Sluice wrote. The test command
//! (scripts/test) makes a venv with it and sets SLUICE_PYTHON; CI always runs it.

use std::process::Command;

use crate::common::*;

fn python() -> Option<String> {
    match std::env::var("SLUICE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the external-reader tests: set SLUICE_PYTHON (scripts/test does)"
            );
            eprintln!("SLUICE_PYTHON unset: external reader test not run (scripts/test sets it)");
            None
        }
    }
}

#[tokio::test]
async fn python_deltalake_reads_the_table_and_the_txn_version() {
    let Some(python) = python() else { return };
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
import json, sys
from deltalake import DeltaTable
dt = DeltaTable(sys.argv[1])
t = dt.to_pyarrow_table()
times = t.column("time").cast("int64").to_pylist()
actions = t.column("action").to_pylist()
rows = sorted("%d|%s" % (tm, a) for tm, a in zip(times, actions))
print(json.dumps({"rows": rows, "txn": dt.transaction_version("sluice-ext")}))
"#;
    let out = Command::new(&python)
        .args(["-c", script, table.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", stderr(&out));
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
