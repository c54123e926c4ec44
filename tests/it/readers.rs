//! Every kind of table Sluice writes, read by three independent Delta readers (Python
//! `deltalake`, Polars, DuckDB with its delta extension): each must see the expected rows.
//! The test command installs them in its venv (SLUICE_PYTHON); CI always runs this.

use std::collections::HashMap;
use std::process::Command;

use crate::common::*;

/// Run tests/readers.py on a table; assert every reader returns `want`.
pub(crate) fn assert_readers(
    python: &str,
    uri: &str,
    options: &HashMap<String, String>,
    want: &[String],
    kind: &str,
) {
    let script = repo().join("tests/readers.py");
    let out = Command::new(python)
        .arg(script)
        .arg(uri)
        .arg(serde_json::to_string(options).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{kind}: {}", stderr(&out));
    let got: HashMap<String, Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got.len(), 3);
    for (reader, rows) in &got {
        assert_eq!(rows.len(), want.len(), "{kind}: {reader} row count");
        assert!(
            rows == want,
            "{kind}: {reader} rows differ from the expected rows"
        );
    }
}

#[tokio::test]
async fn three_readers_agree_on_every_local_table_kind() {
    let Some(python) = external_python() else {
        return;
    };
    let dir = tempdir();
    let events = fixture("events");
    let none = HashMap::new();
    let at = |name: &str| dir.path().join(name);
    let want_events = expected_event_rows(&events).await;

    run_events(
        &events,
        &at("append"),
        &["--option", "maxFilesPerTrigger=10"],
    );
    assert_readers(
        &python,
        at("append").to_str().unwrap(),
        &none,
        &want_events,
        "append",
    );

    run_events(&events, &at("partitioned"), &["--partition-by", "action"]);
    // Partition columns come last in the table's column order.
    let mut want_partitioned = want_events.clone();
    want_partitioned.sort();
    assert_readers(
        &python,
        at("partitioned").to_str().unwrap(),
        &none,
        &want_partitioned,
        "partitioned",
    );

    // 50 batches: checkpoints at versions 19 and 39; then every log file before 39 removed.
    run_events(
        &events,
        &at("checkpointed"),
        &["--option", "maxFilesPerTrigger=1"],
    );
    for entry in std::fs::read_dir(at("checkpointed").join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(v) = name
            .strip_suffix(".json")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if v < 39 {
                std::fs::remove_file(&path).unwrap();
            }
        }
    }
    assert_readers(
        &python,
        at("checkpointed").to_str().unwrap(),
        &none,
        &want_events,
        "checkpoint + cleanup",
    );

    run_events(
        &events,
        &at("optimized"),
        &["--option", "maxFilesPerTrigger=5"],
    );
    run_ok(&["optimize", at("optimized").to_str().unwrap()]);
    assert_readers(
        &python,
        at("optimized").to_str().unwrap(),
        &none,
        &want_events,
        "optimized",
    );

    for (mode, closed) in [("complete", false), ("update", false), ("append", true)] {
        let table = at(&format!("hourly-{mode}"));
        run_events(
            &events,
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
        let want = expected_hourly(&events, closed).await;
        assert_readers(&python, table.to_str().unwrap(), &none, &want, mode);
    }
}

#[tokio::test]
async fn three_readers_agree_on_s3_tables() {
    let Some(python) = external_python() else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake");
    moto.upload("lake", "in", &fixture_files("events", 0..50))
        .await;
    for (table, extra) in [
        (
            "s3://lake/events",
            vec!["--option", "maxFilesPerTrigger=25"],
        ),
        (
            "s3://lake/hourly",
            vec![
                "--sql",
                HOURLY,
                "--output-mode",
                "update",
                "--option",
                "maxFilesPerTrigger=25",
            ],
        ),
    ] {
        let mut args = vec![
            "run",
            "--source",
            "s3://lake/in",
            "--schema",
            EVENTS_DDL,
            "--sink",
            table,
        ];
        args.extend(extra);
        moto.run_ok(&args);
    }
    let options = moto.options();
    assert_readers(
        &python,
        "s3://lake/events",
        &options,
        &expected_event_rows(&fixture("events")).await,
        "s3 append",
    );
    assert_readers(
        &python,
        "s3://lake/hourly",
        &options,
        &expected_hourly(&fixture("events"), false).await,
        "s3 update",
    );
}
