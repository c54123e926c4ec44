//! Housekeeping beside streams: optimize (compaction) and vacuum never break a query or lose
//! its records and state.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;

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
    compaction_beside_a_stream(&Target::local(dir.path(), 0..4)).await;
}

#[tokio::test]
async fn compaction_beside_a_running_stream_on_s3_does_not_break_it() {
    let Some(moto) = Moto::start() else { return };
    compaction_beside_a_stream(&Target::s3(&moto, "compact", 0..4).await).await;
}

/// A stream with a 100 ms trigger while files keep arriving and `sluice optimize` runs beside
/// it after each arrival: the stream never fails, and the table ends exact.
async fn compaction_beside_a_stream(target: &Target<'_>) {
    let table = target.table.as_str();
    let stream = target
        .sluice()
        .args(events_args(
            &target.src,
            table,
            &[
                "--trigger",
                "100ms",
                "--option",
                "maxFilesPerTrigger=2",
                "--query-name",
                "live",
            ],
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stream = KillOnDrop(stream);
    let started = Instant::now();
    while !target.run(&["inspect", table, "--json"]).status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the table was never created"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for chunk in 0..6 {
        target.add_files(4 + chunk * 5..9 + chunk * 5).await;
        std::thread::sleep(Duration::from_millis(150));
        let out = target.run(&["optimize", table]);
        assert!(out.status.success(), "optimize: {}", stderr(&out));
    }
    let started = Instant::now();
    loop {
        let n = target.rows("SELECT count(*) FROM t").await;
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
        .args(["-TERM", &stream.0.id().to_string()])
        .status();
    let status = stream.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(stream.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.success(),
        "the stream kept running and stopped cleanly: {err}"
    );
    assert_eq!(
        target.rows("SELECT time, action FROM t").await,
        target.expected("SELECT time, action FROM events").await
    );
    let (version, _) = target.commits("live").await;
    target.assert_txns("live", version.unwrap()).await;
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
