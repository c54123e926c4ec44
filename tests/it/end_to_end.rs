//! The events fixture into a table, compared with a batch computation over the same files.

use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn events_table_equals_batch_computation() {
    let dir = tempdir();
    let table = dir.path().join("events");
    run_events(
        &fixture("events"),
        &table,
        &["--option", "maxFilesPerTrigger=7", "--query-name", "ingest"],
    );
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got.len(), 100_000);
    assert_eq!(got, want);
    // 50 files, 7 per trigger: batches 0..=7, one commit each, in order.
    let (version, epochs) = query_commits(&table, "sluice-ingest").await;
    assert_eq!(version, Some(7));
    assert_eq!(epochs, (0..=7).collect::<Vec<_>>());
    // Times are stored as deltas, strings with a dictionary.
    let file = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
            .unwrap();
    let group = parquet::file::reader::FileReader::metadata(&reader).row_group(0);
    let encodings = |i: usize| {
        group
            .column(i)
            .encodings()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
    };
    assert!(
        encodings(0).contains(&"DELTA_BINARY_PACKED".to_string()),
        "{:?}",
        encodings(0)
    );
    assert!(
        encodings(1).contains(&"RLE_DICTIONARY".to_string()),
        "{:?}",
        encodings(1)
    );
}

/// A batch of 200,000 rows (past the 128 Ki rows after which the writer spreads over cores) is
/// written as a file per core (up to one per core), in one commit, every row once.
#[tokio::test]
async fn a_large_batch_is_written_on_every_core_exactly_once() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    copy_files(&fixture("events"), &src, 0..50);
    for file in fixture_files("events", 0..50) {
        let name = format!("again-{}", file.file_name().unwrap().to_str().unwrap());
        std::fs::copy(&file, src.join(name)).unwrap();
    }
    run_events(&src, &table, &["--query-name", "big"]);
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got.len(), 200_000);
    assert_eq!(got, want);
    let (version, epochs) = query_commits(&table, "sluice-big").await;
    assert_eq!((version, epochs), (Some(0), vec![0]), "one batch");
    // Version 0 created the table; version 1 is the batch.
    let actions = log_actions(&table, 1);
    assert!(
        actions
            .iter()
            .any(|a| a["commitInfo"]["operation"] == "STREAMING UPDATE"),
        "{actions:?}"
    );
    let adds = actions.iter().filter(|a| a.get("add").is_some()).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        adds >= cores.min(2) && adds <= cores,
        "{adds} data files on {cores} cores"
    );
}

#[tokio::test]
async fn sql_projection_filter_and_functions() {
    let dir = tempdir();
    let table = dir.path().join("opens");
    let sql = "SELECT time, lower(action) AS act, CAST(time AS DATE) AS day, \
               CASE WHEN action = 'Open' THEN 1 ELSE 0 END AS is_open \
               FROM source WHERE action = 'Open' OR time < TIMESTAMP '2016-07-27 00:00:00'";
    run_events(
        &fixture("events"),
        &table,
        &["--sql", sql, "--option", "maxFilesPerTrigger=20"],
    );
    let got = table_rows(&table, "SELECT time, act, day, is_open FROM t").await;
    let want = expected_events(
        &fixture("events"),
        &sql.replace("FROM source", "FROM events"),
    )
    .await;
    assert!(!want.is_empty());
    assert_eq!(got, want);
}

#[tokio::test]
async fn partitioned_table() {
    let dir = tempdir();
    let table = dir.path().join("by_action");
    run_events(&fixture("events"), &table, &["--partition-by", "action"]);
    assert!(table.join("action=Open").is_dir());
    assert!(table.join("action=Close").is_dir());
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got, want);
}

#[tokio::test]
async fn csv_source_with_header() {
    let dir = tempdir();
    let table = dir.path().join("readings");
    run_ok(&[
        "run",
        "--source",
        fixture("csv").to_str().unwrap(),
        "--format",
        "csv",
        "--schema",
        "time TIMESTAMP, device STRING, temperature DOUBLE",
        "--option",
        "header=true",
        "--sink",
        table.to_str().unwrap(),
    ]);
    let got = table_rows(&table, "SELECT time, device, temperature FROM t").await;
    assert_eq!(
        got,
        vec![
            "2016-07-26T02:45:07Z|sensor-a|21.5",
            "2016-07-26T02:46:07Z|sensor-b|19.0",
            "2016-07-26T02:47:07Z|sensor-a|22.0",
            "2016-07-26T02:48:07Z|sensor-b|18.5",
            "2016-07-26T02:49:07Z|sensor-c|25.25",
        ]
    );
}

#[tokio::test]
async fn text_and_parquet_sources() {
    let dir = tempdir();
    let text_src = dir.path().join("logs");
    std::fs::create_dir_all(&text_src).unwrap();
    std::fs::write(text_src.join("a.log"), "GET /index\nPOST /login\n").unwrap();
    std::fs::write(text_src.join("b.log"), "GET /about").unwrap();
    let text_table = dir.path().join("text_table");
    run_ok(&[
        "run",
        "--source",
        text_src.to_str().unwrap(),
        "--format",
        "text",
        "--sink",
        text_table.to_str().unwrap(),
    ]);
    assert_eq!(
        table_rows(&text_table, "SELECT value FROM t").await,
        vec!["GET /about", "GET /index", "POST /login"]
    );

    // Parquet input written with arrow, read back through a projection.
    let pq_src = dir.path().join("pq");
    std::fs::create_dir_all(&pq_src).unwrap();
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("name", arrow::datatypes::DataType::Utf8, true),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3])),
            std::sync::Arc::new(arrow::array::StringArray::from(vec![
                Some("a"),
                None,
                Some("c"),
            ])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(pq_src.join("part-0.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let pq_table = dir.path().join("pq_table");
    run_ok(&[
        "run",
        "--source",
        pq_src.to_str().unwrap(),
        "--format",
        "parquet",
        "--sql",
        "SELECT id * 10 AS id10, coalesce(name, '?') AS name FROM source",
        "--sink",
        pq_table.to_str().unwrap(),
    ]);
    assert_eq!(
        table_rows(&pq_table, "SELECT id10, name FROM t").await,
        vec!["10|a", "20|?", "30|c"]
    );
}

#[tokio::test]
async fn inferred_schema_is_remembered_across_restarts() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.json"),
        "{\"id\": 1, \"name\": \"x\"}\n{\"id\": 2, \"name\": \"y\"}\n",
    )
    .unwrap();
    let args = [
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        table.to_str().unwrap(),
    ];
    run_ok(&args);
    // A later file would infer `id` as a string; the remembered BIGINT stays, and PERMISSIVE
    // turns the value that does not fit into a null.
    std::fs::write(src.join("b.json"), "{\"id\": \"three\", \"name\": \"z\"}\n").unwrap();
    run_ok(&args);
    let report = inspect_json(&table, 10);
    assert_eq!(report["schema"][0]["name"], "id");
    assert_eq!(report["schema"][0]["type"], "BIGINT");
    assert_eq!(
        table_rows(&table, "SELECT id, name FROM t").await,
        vec!["1|x", "2|y", "NULL|z"]
    );
}

#[tokio::test]
async fn iso_timestamps_and_idle_triggers_make_no_versions() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.json"),
        "{\"time\": \"2016-07-26T02:45:07.250Z\", \"action\": \"Open\"}\n",
    )
    .unwrap();
    let args = events_args(src.to_str().unwrap(), table.to_str().unwrap(), &[]);
    run_ok(&args);
    assert_eq!(
        table_rows(&table, "SELECT time, action FROM t").await,
        vec!["2016-07-26T02:45:07.250Z|Open"]
    );
    let versions = || std::fs::read_dir(table.join("_delta_log")).unwrap().count();
    let before = versions();
    run_ok(&args);
    run_ok(&events_args(
        src.to_str().unwrap(),
        table.to_str().unwrap(),
        &["--trigger", "once"],
    ));
    assert_eq!(
        versions(),
        before,
        "runs with no new files must not add table versions"
    );
}

/// A processing-time query that is idle lists its local source as soon as a file lands, not at
/// its next poll; micro-batches still start at most once per interval.
#[tokio::test]
async fn idle_query_takes_a_landed_file_at_once_and_batches_once_per_interval() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("in"), dir.path().join("t"));
    std::fs::create_dir_all(&src).unwrap();
    let log = std::fs::File::create(dir.path().join("progress.jsonl")).unwrap();
    let mut child = sluice();
    child.args(events_args(
        src.to_str().unwrap(),
        table.to_str().unwrap(),
        &["--trigger", "6s", "--progress", "json"],
    ));
    let _query = KillOnDrop(child.stderr(log).spawn().unwrap());
    // Let the first (empty) trigger pass; the next poll is 6 s away.
    std::thread::sleep(Duration::from_millis(1500));
    let rows = |n: usize| {
        let table = table.clone();
        async move {
            if !table.join("_delta_log").is_dir() {
                return false;
            }
            table_rows(&table, "SELECT count(*) FROM t").await == vec![n.to_string()]
        }
    };
    let wait_rows = |n: usize, within: Duration| async move {
        let end = Instant::now() + within;
        while Instant::now() < end {
            if rows(n).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    };
    copy_files(&fixture("events"), &src, 0..1);
    assert!(
        wait_rows(2_000, Duration::from_secs(3)).await,
        "the landed file was not taken before the next poll"
    );
    // The next file lands right after the first batch: it waits for the interval.
    copy_files(&fixture("events"), &src, 1..2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        rows(2_000).await,
        "a second batch started within the interval"
    );
    assert!(
        wait_rows(4_000, Duration::from_secs(8)).await,
        "the second file was never taken"
    );
    // The progress of a batch is printed just after its commit shows: wait for it (bounded)
    // before stopping the query.
    let read_progress = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.path().join("progress.jsonl"))
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(5);
    while read_progress().len() < 2 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(_query);
    let progress = read_progress();
    let starts: Vec<chrono::DateTime<chrono::Utc>> = progress
        .iter()
        .map(|p| p["timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 2, "{progress:?}");
    assert!(
        starts[1] - starts[0] >= chrono::Duration::milliseconds(5_990),
        "batches {} apart",
        starts[1] - starts[0]
    );
}
