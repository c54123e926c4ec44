//! Source and sink on a real S3-compatible server (moto): the same code path as local disk.

use crate::common::*;

#[tokio::test]
async fn events_from_s3_into_an_s3_table() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake");
    moto.upload("lake", "landing/events", &fixture_files("events", 0..50))
        .await;
    moto.run_ok(&[
        "run",
        "--source",
        "s3://lake/landing/events",
        "--schema",
        EVENTS_DDL,
        "--sink",
        "s3://lake/tables/events",
        "--option",
        "maxFilesPerTrigger=20",
        "--query-name",
        "s3",
    ]);
    let url = url::Url::parse("s3://lake/tables/events").unwrap();
    let got = table_rows_at(url, moto.options(), "SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got.len(), 100_000);
    assert_eq!(got, want);
    let inspect = moto.run_ok(&[
        "inspect",
        "s3://lake/tables/events",
        "--json",
        "--limit",
        "0",
    ]);
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(report["queries"][0]["lastBatchId"], 2);
}

#[tokio::test]
async fn windowed_update_mode_on_s3_with_state_in_the_bucket() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake");
    moto.upload("lake", "in", &fixture_files("events", 0..25))
        .await;
    let args = [
        "run",
        "--source",
        "s3://lake/in",
        "--schema",
        EVENTS_DDL,
        "--sink",
        "s3://lake/hourly",
        "--sql",
        HOURLY,
        "--output-mode",
        "update",
        "--watermark",
        "time, 10 minutes",
        "--option",
        "maxFilesPerTrigger=10",
    ];
    moto.run_ok(&args);
    // A restart restores the state from the bucket and carries on.
    moto.upload("lake", "in", &fixture_files("events", 25..50))
        .await;
    moto.run_ok(&args);
    let url = url::Url::parse("s3://lake/hourly").unwrap();
    let got = table_rows_at(
        url,
        moto.options(),
        "SELECT action, \"window\"['start'], n FROM t",
    )
    .await;
    let want = expected_events(
        &fixture("events"),
        &windowed_sql(false, false, "action, ws, count(*)"),
    )
    .await;
    assert_eq!(got, want);
}

#[tokio::test]
async fn two_queries_appending_to_one_s3_table_lose_no_commit() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("lake");
    moto.upload("lake", "a", &fixture_files("events", 0..20))
        .await;
    moto.upload("lake", "b", &fixture_files("events", 20..40))
        .await;
    let spawn = |src: &str, name: &str| {
        moto.sluice()
            .args([
                "run",
                "--source",
                src,
                "--schema",
                EVENTS_DDL,
                "--sink",
                "s3://lake/shared",
                "--option",
                "maxFilesPerTrigger=1",
                "--query-name",
                name,
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The table exists first, so that both writers race on appends, not on creation.
    moto.run_ok(&[
        "run",
        "--source",
        "s3://lake/a",
        "--schema",
        EVENTS_DDL,
        "--sink",
        "s3://lake/shared",
        "--option",
        "maxFilesPerTrigger=1",
        "--query-name",
        "a",
        "--trigger",
        "once",
    ]);
    let (a, b) = (spawn("s3://lake/a", "a"), spawn("s3://lake/b", "b"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));

    let url = url::Url::parse("s3://lake/shared").unwrap();
    let count = table_rows_at(url.clone(), moto.options(), "SELECT count(*) FROM t").await;
    assert_eq!(count, vec![(40 * 2000).to_string()]);
    // Query a: one `once` batch of all 20 files, nothing left after; query b: 20 batches.
    let (va, ea) = query_commits_at(url.clone(), moto.options(), "sluice-a").await;
    let (vb, eb) = query_commits_at(url, moto.options(), "sluice-b").await;
    assert_eq!((va, ea), (Some(0), vec![0]));
    assert_eq!((vb, eb), (Some(19), (0..=19).collect::<Vec<_>>()));
}
