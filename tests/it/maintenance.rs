//! Housekeeping beside streams: optimize (compaction) and vacuum never break a query or lose
//! its records and state.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

fn log_actions(table: &std::path::Path, version: u64) -> Vec<serde_json::Value> {
    std::fs::read_to_string(table.join(format!("_delta_log/{version:020}.json")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn optimize_and_vacuum_keep_the_query_exact() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..30);
    let args = ["--option", "maxFilesPerTrigger=2", "--query-name", "q"];
    run_events(&src, &table, &args);
    let out = run_ok(&["optimize", table.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("15 small files compacted into 1"), "{said}");
    // The compaction commit changes no data: every add and remove says dataChange=false.
    let actions = log_actions(&table, 16);
    let flags: Vec<bool> = actions
        .iter()
        .filter_map(|a| a.get("add").or_else(|| a.get("remove")))
        .map(|f| f["dataChange"].as_bool().unwrap())
        .collect();
    assert_eq!(flags.len(), 16);
    assert!(flags.iter().all(|f| !f));
    let out = run_ok(&["vacuum", table.to_str().unwrap(), "--retention-hours", "0"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("deleted 15 files"));
    assert!(
        table.join("_sluice/queries/q/batches").is_dir(),
        "vacuum keeps the records"
    );
    // The query resumes where it was.
    copy_files(&fixture("events"), &src, 30..50);
    run_events(&src, &table, &args);
    assert_eq!(
        table_rows(&table, "SELECT time, action FROM t").await,
        expected_events(&src, "SELECT time, action FROM events").await
    );
    let (version, epochs) = query_commits(&table, "sluice-q").await;
    assert_eq!(version, Some(24));
    assert_eq!(epochs, (0..=24).collect::<Vec<_>>());
}

#[tokio::test]
async fn compaction_beside_a_running_stream_does_not_break_it() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..4);
    let mut stream = sluice()
        .args([
            "run",
            "--source",
            src.to_str().unwrap(),
            "--schema",
            EVENTS_DDL,
            "--sink",
            table.to_str().unwrap(),
            "--trigger",
            "100ms",
            "--option",
            "maxFilesPerTrigger=2",
            "--query-name",
            "live",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut optimized = 0;
    for chunk in 0..6 {
        copy_files(&fixture("events"), &src, 4 + chunk * 5..9 + chunk * 5);
        std::thread::sleep(Duration::from_millis(150));
        if table.join("_delta_log").is_dir() {
            let out = run(&["optimize", table.to_str().unwrap()]);
            assert!(out.status.success(), "optimize: {}", stderr(&out));
            optimized += 1;
        }
    }
    assert!(optimized >= 4, "optimize ran while the stream wrote");
    let started = Instant::now();
    loop {
        let n = table_rows(&table, "SELECT count(*) FROM t").await;
        if n == vec![(34 * 2000).to_string()] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the stream never caught up: {n:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &stream.id().to_string()])
        .status();
    let status = stream.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(stream.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.success(),
        "the stream kept running and stopped cleanly: {err}"
    );
    assert_eq!(
        table_rows(&table, "SELECT time, action FROM t").await,
        expected_events(&src, "SELECT time, action FROM events").await
    );
    let (version, epochs) = query_commits(&table, "sluice-live").await;
    let last = version.unwrap();
    assert_eq!(epochs, (0..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn automatic_compaction_inside_the_stream() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &[
            "--option",
            "maxFilesPerTrigger=2",
            "--compact-every",
            "10",
            "--query-name",
            "c",
        ],
    );
    let report = inspect_json(&table, 0);
    // 25 batches, compacted after batches 9 and 19 (and 24 is not a multiple): 1 + 1 + 5 files.
    assert!(
        report["numFiles"].as_u64().unwrap() <= 7,
        "{}",
        report["numFiles"]
    );
    assert_eq!(report["numRows"], 100_000);
    assert_eq!(
        table_rows(&table, "SELECT time, action FROM t").await,
        expected_events(&fixture("events"), "SELECT time, action FROM events").await
    );
    let (version, epochs) = query_commits(&table, "sluice-c").await;
    assert_eq!(version, Some(24));
    assert_eq!(epochs, (0..=24).collect::<Vec<_>>());
}
