//! Every kind of user error ends with one `error: ...` line that says what to do, and a
//! non-zero exit.

use crate::common::*;

/// Run with `args` appended to a valid base command; expect a one-line error containing `needle`.
fn expect_error(extra: &[&str], needle: &str) {
    let dir = tempdir();
    let table = dir.path().join("t");
    let events = fixture("events");
    let mut args = vec![
        "run",
        "--source",
        events.to_str().unwrap(),
        "--sink",
        table.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = run(&args);
    let err = stderr(&out);
    assert!(!out.status.success(), "{extra:?} should fail");
    assert_eq!(
        err.lines().count(),
        1,
        "{extra:?}: expected one line, got: {err}"
    );
    assert!(err.starts_with("error: "), "{extra:?}: {err}");
    assert!(
        err.contains(needle),
        "{extra:?}: expected `{needle}` in: {err}"
    );
    assert!(
        !table.join("_delta_log").exists(),
        "{extra:?}: a rejected query must not create the table"
    );
}

#[test]
fn unknown_flag() {
    expect_error(&["--max-files", "3"], "unexpected argument '--max-files'");
}

#[test]
fn missing_required_flag() {
    let out = run(&["run", "--source", "x"]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--sink"), "{err}");
}

#[test]
fn bad_format() {
    expect_error(&["--format", "xml"], "use json, csv, parquet or text");
}

#[test]
fn bad_schema_type() {
    expect_error(
        &["--schema", "time TIMESTMP, action STRING"],
        "unknown type `TIMESTMP`",
    );
}

#[test]
fn bad_schema_shape() {
    expect_error(&["--schema", "time TIMESTAMP, action"], "has no type");
}

#[test]
fn unknown_source_option() {
    expect_error(
        &["--option", "maxFilesPerTriger=3"],
        "unknown source option `maxFilesPerTriger`",
    );
}

#[test]
fn bad_option_value() {
    expect_error(
        &["--option", "maxFilesPerTrigger=zero"],
        "positive whole number",
    );
}

#[test]
fn option_without_value() {
    expect_error(&["--option", "maxFilesPerTrigger"], "must be KEY=VALUE");
}

#[test]
fn conflicting_read_limits() {
    expect_error(
        &[
            "--option",
            "maxFilesPerTrigger=3",
            "--option",
            "maxBytesPerTrigger=100",
        ],
        "cannot be set together",
    );
}

/// Spark's checks on cleanSource: archive needs a folder outside the source; the fixtures'
/// files are never touched by a rejected query.
#[test]
fn clean_source_needs_an_archive_folder_outside_the_source() {
    expect_error(
        &["--option", "cleanSource=archive"],
        "needs --option sourceArchiveDir=FOLDER",
    );
    let inside = format!(
        "sourceArchiveDir={}",
        fixture("events").join("old").display()
    );
    expect_error(
        &["--option", "cleanSource=archive", "--option", &inside],
        "inside the source",
    );
    expect_error(
        &["--option", "cleanSource=move"],
        "expected off, archive or delete",
    );
}

#[test]
fn bad_trigger() {
    expect_error(
        &["--trigger", "sometimes"],
        "use available-now, once, or an interval",
    );
}

#[test]
fn bad_output_mode() {
    expect_error(
        &["--output-mode", "upsert"],
        "use append, complete or update",
    );
}

#[test]
fn complete_mode_without_aggregation() {
    expect_error(
        &["--schema", EVENTS_DDL, "--output-mode", "complete"],
        "complete output mode requires an aggregation",
    );
}

#[test]
fn sql_syntax_error() {
    expect_error(
        &["--schema", EVENTS_DDL, "--sql", "SELEC time FROM source"],
        "invalid query",
    );
}

#[test]
fn sql_unknown_table() {
    expect_error(
        &["--schema", EVENTS_DDL, "--sql", "SELECT * FROM events"],
        "--source-name",
    );
}

#[test]
fn sql_unknown_column() {
    expect_error(
        &["--schema", EVENTS_DDL, "--sql", "SELECT nope FROM source"],
        "nope",
    );
}

#[test]
fn sql_not_a_query() {
    expect_error(
        &["--schema", EVENTS_DDL, "--sql", "DROP TABLE source"],
        "invalid query",
    );
}

#[test]
fn sql_stateful_operator_not_supported() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT DISTINCT action FROM source",
        ],
        "DISTINCT",
    );
}

#[test]
fn output_column_name_delta_cannot_store() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT upper(action) FROM source",
        ],
        "give it an alias with AS",
    );
}

#[test]
fn partition_column_not_in_output() {
    expect_error(
        &["--schema", EVENTS_DDL, "--partition-by", "country"],
        "partition column `country`",
    );
}

#[test]
fn missing_source_directory() {
    let dir = tempdir();
    let out = run(&[
        "run",
        "--source",
        dir.path().join("nowhere").to_str().unwrap(),
        "--sink",
        dir.path().join("t").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn inference_with_no_files() {
    let dir = tempdir();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = run(&[
        "run",
        "--source",
        empty.to_str().unwrap(),
        "--sink",
        dir.path().join("t").to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("pass --schema"), "{err}");
}

#[test]
fn bad_query_name() {
    expect_error(
        &["--schema", EVENTS_DDL, "--query-name", "a/b"],
        "invalid query name",
    );
}

#[test]
fn unsupported_storage_scheme() {
    let out = run(&[
        "run",
        "--source",
        "gs://bucket/events",
        "--sink",
        "/tmp/never",
    ]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("use a local path or s3://"), "{err}");
}

#[test]
fn inspect_of_a_non_table() {
    let dir = tempdir();
    let out = run(&["inspect", dir.path().to_str().unwrap()]);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not a Delta table"), "{err}");
}

#[tokio::test]
async fn output_schema_mismatch_with_existing_table() {
    let dir = tempdir();
    let table = dir.path().join("t");
    let events = fixture("events");
    run_events(&events, &table, &["--option", "maxFilesPerTrigger=50"]);
    let before = table_rows(&table, "SELECT count(*) FROM t").await;
    let out = run(&events_args(
        events.to_str().unwrap(),
        table.to_str().unwrap(),
        &[
            "--sql",
            "SELECT action FROM source",
            "--query-name",
            "other",
        ],
    ));
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("does not match the existing table"), "{err}");
    // What was committed stays committed.
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, before);
}

#[test]
fn append_aggregation_without_watermark() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            HOURLY,
            "--output-mode",
            "append",
        ],
        "append output mode needs a watermark for aggregations",
    );
}

#[test]
fn append_aggregation_with_watermark_off_the_keys() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT action, count(*) AS n FROM source GROUP BY action",
            "--watermark",
            "time, 10 minutes",
            "--output-mode",
            "append",
        ],
        "to be a grouping key or the window() time column",
    );
}

#[test]
fn order_by_outside_complete_mode() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT action, count(*) AS n FROM source GROUP BY action ORDER BY n",
            "--output-mode",
            "update",
        ],
        "ORDER BY is only supported after an aggregation in complete output mode",
    );
}

#[test]
fn limit_outside_complete_mode() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT action, count(*) AS n FROM source GROUP BY action LIMIT 1",
            "--output-mode",
            "update",
        ],
        "LIMIT is only supported",
    );
}

#[test]
fn update_mode_without_the_keys_in_the_output() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT count(*) AS n FROM source GROUP BY action",
            "--output-mode",
            "update",
        ],
        "add action to the SELECT",
    );
}

#[test]
fn nested_aggregation() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT n, count(*) AS c FROM (SELECT action, count(*) AS n FROM source GROUP BY action) GROUP BY n",
            "--output-mode",
            "complete",
        ],
        "aggregate once",
    );
}

#[test]
fn join_on_a_stream() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT a.time FROM source a JOIN source b ON a.time = b.time",
        ],
        "joins are not supported",
    );
}

#[test]
fn window_outside_group_by() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT window(time, '1 hour') AS w FROM source",
        ],
        "window() belongs in GROUP BY",
    );
}

#[test]
fn window_with_a_bad_duration() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT window(time, 'an hour') AS w, count(*) AS n FROM source GROUP BY window(time, 'an hour')",
            "--output-mode",
            "complete",
        ],
        "is not a duration",
    );
}

#[test]
fn watermark_on_a_non_timestamp_column() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            HOURLY,
            "--watermark",
            "action, 10 minutes",
        ],
        "must be a TIMESTAMP",
    );
}

#[test]
fn watermark_malformed() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            HOURLY,
            "--watermark",
            "time",
        ],
        "write \"COLUMN, DELAY\"",
    );
}

#[test]
fn session_windows() {
    expect_error(
        &[
            "--schema",
            EVENTS_DDL,
            "--sql",
            "SELECT session_window(time, '5 minutes') AS s, count(*) AS n FROM source GROUP BY session_window(time, '5 minutes')",
            "--output-mode",
            "complete",
        ],
        "session_window() is not supported yet",
    );
}

#[test]
fn optimize_and_vacuum_of_a_non_table() {
    let dir = tempdir();
    for cmd in ["optimize", "vacuum"] {
        let out = run(&[cmd, dir.path().to_str().unwrap()]);
        let err = stderr(&out);
        assert!(!out.status.success());
        assert_eq!(err.lines().count(), 1, "{cmd}: {err}");
        assert!(err.contains("is not a Delta table"), "{cmd}: {err}");
    }
}
