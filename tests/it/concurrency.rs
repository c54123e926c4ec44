//! Two instances of one query on one table never duplicate a row: one of them stops. Locally
//! and on the S3 server.

use std::process::Stdio;

use crate::common::*;

async fn two_instances_never_duplicate(target: &Target<'_>) {
    let args = events_args(
        &target.src,
        &target.table,
        &["--option", "maxFilesPerTrigger=1", "--query-name", "twice"],
    );
    let spawn = || {
        target
            .sluice()
            .args(&args)
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
    let out = target.run(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let got = target.rows("SELECT time, action FROM t").await;
    let want = target.expected("SELECT time, action FROM events").await;
    assert_eq!(got, want);
    target.assert_txns("twice", 29).await;
}

#[tokio::test]
async fn two_instances_of_one_query_never_duplicate() {
    let dir = tempdir();
    two_instances_never_duplicate(&Target::local(dir.path(), 0..30)).await;
}

#[tokio::test]
async fn two_instances_of_one_query_on_s3_never_duplicate() {
    let Some(moto) = Moto::start() else { return };
    two_instances_never_duplicate(&Target::s3(&moto, "twice", 0..30).await).await;
}
