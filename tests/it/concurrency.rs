//! Two instances of one query on one table never duplicate a row: one of them stops.

use std::process::Stdio;

use crate::common::*;

#[tokio::test]
async fn two_instances_of_one_query_never_duplicate() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    copy_files(&fixture("events"), &src, 0..30);
    let args = [
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        EVENTS_DDL,
        "--sink",
        table.to_str().unwrap(),
        "--option",
        "maxFilesPerTrigger=1",
        "--query-name",
        "twice",
    ];
    let spawn = || {
        sluice()
            .args(args)
            .env("SLUICE_TEST_PAUSE_MS", "15")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut stopped = 0;
    for out in [&a, &b] {
        if !out.status.success() {
            let err: Vec<String> = stderr(out)
                .lines()
                .filter(|l| !l.starts_with("sluice-phase"))
                .map(str::to_string)
                .collect();
            assert_eq!(err.len(), 1, "{err:?}");
            assert!(
                err[0].contains("another instance of query `twice`"),
                "{err:?}"
            );
            stopped += 1;
        }
    }
    assert!(
        stopped >= 1,
        "two instances racing on every batch: one of them must stop"
    );
    // Finish whatever is left with a single instance.
    run_ok(&args);
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got, want);
    let (version, epochs) = query_commits(&table, "sluice-twice").await;
    assert_eq!(version, Some(29));
    assert_eq!(epochs, (0..=29).collect::<Vec<_>>());
}
