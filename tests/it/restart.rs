//! Restarts: after a Delta checkpoint with all older log files removed, and with files arriving
//! while the query runs and between runs.

use std::process::Stdio;
use std::time::{Duration, Instant};

use deltalake::DeltaTableBuilder;

use crate::common::*;

#[tokio::test]
async fn resumes_exactly_after_checkpoint_and_log_cleanup() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    copy_files(&fixture("events"), &src, 0..20);
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    run_ok(&events_args(
        s,
        t,
        &["--option", "maxFilesPerTrigger=3", "--query-name", "q"],
    ));
    // Checkpoint the table, then delete every log file older than the checkpoint.
    let url = url::Url::from_directory_path(&table).unwrap();
    let mut delta = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
    delta.load().await.unwrap();
    let checkpoint_version = delta.version().unwrap();
    deltalake::checkpoints::create_checkpoint(&delta, None)
        .await
        .unwrap();
    let mut removed = 0;
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(v) = name
            .strip_suffix(".json")
            .and_then(|n| n.parse::<u64>().ok())
        {
            if v < checkpoint_version {
                std::fs::remove_file(&path).unwrap();
                removed += 1;
            }
        }
    }
    assert!(removed >= 7, "the old log files must be gone");
    copy_files(&fixture("events"), &src, 20..35);
    run_ok(&events_args(
        s,
        t,
        &["--option", "maxFilesPerTrigger=3", "--query-name", "q"],
    ));
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got, want);
    let (version, _) = query_commits(&table, "sluice-q").await;
    // 20 files → batches 0..=6; 15 more → 7..=11.
    assert_eq!(version, Some(11));
}

#[tokio::test]
async fn files_arriving_during_and_between_runs_are_read_once() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    copy_files(&fixture("events"), &src, 0..5);
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    // A long-running query, polling every 100 ms, while files land.
    let mut child = sluice()
        .args(events_args(
            s,
            t,
            &["--trigger", "100ms", "--option", "maxFilesPerTrigger=4"],
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for chunk in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        copy_files(&fixture("events"), &src, 5 + chunk * 5..10 + chunk * 5);
    }
    // Wait until everything so far (30 files) is in the table.
    let want_rows = 30 * 2000;
    let started = Instant::now();
    loop {
        let n = table_rows(&table, "SELECT count(*) FROM t").await;
        if n == vec![want_rows.to_string()] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the running query never caught up: {n:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM stops it cleanly.
    terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0");
    // Files that land between runs are picked up by the next run.
    copy_files(&fixture("events"), &src, 30..50);
    run_ok(&events_args(s, t, &[]));
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got.len(), 100_000);
    assert_eq!(got, want);
}

fn terminate(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn streaming_tables_checkpoint_every_20_commits() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &["--option", "maxFilesPerTrigger=1"],
    );
    let log = table.join("_delta_log");
    assert!(log
        .join("00000000000000000019.checkpoint.parquet")
        .is_file());
    assert!(log
        .join("00000000000000000039.checkpoint.parquet")
        .is_file());
    assert!(!log.join("00000000000000000009.checkpoint.parquet").exists());
}

#[tokio::test]
async fn a_lost_txn_record_stops_the_query_instead_of_duplicating() {
    let dir = tempdir();
    let first = dir.path().join("first");
    let second = dir.path().join("second");
    let (src, q) = (
        fixture("events"),
        ["--option", "maxFilesPerTrigger=20", "--query-name", "q"],
    );
    run_events(&src, &first, &q);
    // A table that holds query q's records but not its txn (as after txn retention expired it).
    run_events(
        &src,
        &second,
        &["--option", "maxFilesPerTrigger=20", "--query-name", "other"],
    );
    let from = first.join("_sluice/queries/q");
    let to = second.join("_sluice/queries/q");
    std::fs::create_dir_all(to.join("batches")).unwrap();
    for entry in std::fs::read_dir(from.join("batches")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join("batches").join(path.file_name().unwrap())).unwrap();
    }
    let before = table_rows(&second, "SELECT count(*) FROM t").await;
    let mut args = vec![
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        EVENTS_DDL,
    ];
    args.extend(["--sink", second.to_str().unwrap()]);
    args.extend(q);
    let out = crate::common::run(&args);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("holds no transaction record (txn) of query `q`"),
        "{err}"
    );
    assert_eq!(table_rows(&second, "SELECT count(*) FROM t").await, before);
}

/// The query's txn version as a fresh reader sees it now.
async fn txn_version(table: &std::path::Path, app_id: &str) -> Option<i64> {
    query_commits(table, app_id).await.0
}

#[tokio::test]
async fn an_idle_running_query_keeps_its_txn_past_the_tables_txn_retention() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("table"));
    copy_files(&fixture("events"), &src, 0..2);
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    run_ok(&events_args(s, t, &[]));
    // Txn records expire 4 s after their last update.
    set_properties(
        &table,
        &[(
            "delta.setTransactionRetentionDuration",
            "interval 4 seconds",
        )],
    )
    .await;
    assert_eq!(txn_version(&table, "sluice-default").await, Some(0));

    // Idle for 10 s (2.5 retentions) under a 200 ms trigger: the txn must survive.
    let child = KillOnDrop(
        sluice()
            .args(events_args(s, t, &["--trigger", "200ms"]))
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(
        txn_version(&table, "sluice-default").await,
        Some(0),
        "the running query's txn expired"
    );
    // New files are still picked up exactly once by the running query.
    copy_files(&fixture("events"), &src, 2..4);
    let deadline = Instant::now() + Duration::from_secs(20);
    while txn_version(&table, "sluice-default").await != Some(1) {
        assert!(Instant::now() < deadline, "batch 1 never committed");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(child);
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(table_rows(&table, "SELECT time, action FROM t").await, want);

    // Control: with no query running, the same retention does expire the txn, and a restart
    // refuses to re-read the source instead of duplicating it.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(txn_version(&table, "sluice-default").await, None);
    let out = crate::common::run(&events_args(s, t, &[]));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("holds no transaction record"),
        "{}",
        stderr(&out)
    );
    assert_eq!(table_rows(&table, "SELECT time, action FROM t").await, want);
}

/// Regression: every tenth record held the whole seen-file set, so keeping it cost every file
/// ever read. Now a snapshot record names segments (`seenIndex`) that together hold the set,
/// the folder keeps only the segments the newest snapshot names, and restarts still read each
/// file once.
#[tokio::test]
async fn a_snapshot_record_names_seen_segments_instead_of_holding_every_file() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..41);
    let one = ["--option", "maxFilesPerTrigger=1", "--query-name", "q"];
    run_events(&src, &table, &one);
    let query = table.join("_sluice/queries/q");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(query.join("batches/00000000000000000040.json")).unwrap(),
    )
    .unwrap();
    assert!(record.get("seen").is_none(), "{record:#}");
    let segments = record["seenIndex"]["segments"].as_array().unwrap().clone();
    let entries: u64 = segments
        .iter()
        .map(|s| s["entries"].as_u64().unwrap())
        .sum();
    assert_eq!(entries, 41, "the segments hold every file read: {record:#}");
    assert!(segments.len() <= 3, "{record:#}");
    let mut named: Vec<String> = segments
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(query.join("seen"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    named.sort();
    on_disk.sort();
    assert_eq!(on_disk, named, "superseded segments are deleted");
    // Restarts resume from the segments (and from the records after them).
    copy_files(&fixture("events"), &src, 41..46);
    run_events(&src, &table, &one);
    copy_files(&fixture("events"), &src, 46..50);
    run_events(&src, &table, &["--query-name", "q"]);
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got.len(), 50 * 2000);
    assert_eq!(got, want);
    let (version, epochs) = query_commits(&table, "sluice-q").await;
    assert_eq!(version, Some(46));
    assert_eq!(epochs, (0..=46).collect::<Vec<_>>());
}
