//! The Spark-shaped library API: the same engine as the CLI, driven from Rust.

use std::time::Duration;

use sluice::engine::Ending;
use sluice::{Session, Trigger};

use crate::common::*;

#[tokio::test]
async fn available_now_query_through_the_api() {
    let dir = tempdir();
    let table = dir.path().join("opens");
    let query = Session::new()
        .read_stream()
        .format("json")
        .schema(EVENTS_DDL)
        .option("maxFilesPerTrigger", "25")
        .load(fixture("events").to_str().unwrap())
        .unwrap()
        .filter("action = 'Open'")
        .select_expr(&["time", "action"])
        .write_stream()
        .format("delta")
        .output_mode("append")
        .query_name("opens")
        .trigger(Trigger::AvailableNow)
        .start(table.to_str().unwrap())
        .await
        .unwrap();
    assert_eq!(query.await_termination().await.unwrap(), Ending::Finished);
    let progress = query.last_progress().unwrap();
    assert_eq!(progress.batch_id, 1);
    assert_eq!(progress.name, "opens");
    assert_eq!(progress.id, query.id());
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(
        &fixture("events"),
        "SELECT time, action FROM events WHERE action = 'Open'",
    )
    .await;
    assert_eq!(got, want);
}

#[tokio::test]
async fn processing_time_query_picks_up_new_files_and_stops() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..2);
    let query = Session::new()
        .read_stream()
        .schema(EVENTS_DDL)
        .load(src.to_str().unwrap())
        .unwrap()
        .write_stream()
        .trigger(Trigger::ProcessingTime(Duration::from_millis(50)))
        .start(table.to_str().unwrap())
        .await
        .unwrap();
    let wait_for = |batch: i64| {
        let query = &query;
        async move {
            for _ in 0..200 {
                if query.last_progress().is_some_and(|p| p.batch_id >= batch) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            panic!("batch {batch} never ran");
        }
    };
    wait_for(0).await;
    copy_files(&fixture("events"), &src, 2..3);
    wait_for(1).await;
    assert_eq!(query.stop().await.unwrap(), Ending::Stopped);
    assert_eq!(query.await_termination().await.unwrap(), Ending::Stopped);
    assert_eq!(
        table_rows(&table, "SELECT count(*) FROM t").await,
        vec!["6000"]
    );
}

#[tokio::test]
async fn api_rejects_bad_input_before_starting() {
    let session = Session::new();
    let err = session
        .read_stream()
        .format("avro")
        .load("fixtures/events")
        .unwrap_err();
    assert!(err.to_string().contains("use json, csv, parquet or text"));
    let err = session
        .read_stream()
        .schema("time TIMESTAMP")
        .option("maxFilesPerTrigger", "-1")
        .load("fixtures/events")
        .unwrap_err();
    assert!(err.to_string().contains("positive whole number"));
}
