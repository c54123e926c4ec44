//! `sluice inspect` shows the table and the streaming queries recorded in it.

use crate::common::*;

#[tokio::test]
async fn inspect_shows_queries_offsets_and_rows() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_events(
        &fixture("events"),
        &table,
        &[
            "--option",
            "maxFilesPerTrigger=10",
            "--query-name",
            "ingest",
        ],
    );
    let text =
        String::from_utf8(run_ok(&["inspect", table.to_str().unwrap(), "--limit", "3"]).stdout)
            .unwrap();
    assert!(
        text.contains("query:      ingest (appId sluice-ingest)"),
        "{text}"
    );
    assert!(text.contains("last batch id: 4"), "{text}");
    assert!(text.contains("\"lastFile\":\"file-49.json\""), "{text}");
    assert!(
        text.contains("schema:     time TIMESTAMP, action STRING"),
        "{text}"
    );
    assert!(text.contains("rows:       100000"), "{text}");
    assert!(text.contains("first 3 rows:"), "{text}");

    let report = inspect_json(&table, 2);
    assert_eq!(report["numRows"], 100_000);
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);
    let q = &report["queries"][0];
    assert_eq!(q["name"], "ingest");
    assert_eq!(q["lastBatchId"], 4);
    assert_eq!(q["sourceOffsets"]["logOffset"], 4);
    assert_eq!(q["sourceOffsets"]["files"], 10);
}
