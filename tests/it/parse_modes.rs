//! Spark's parse modes on the dirty fixture.

use crate::common::*;

const DIRTY_DDL: &str = "time TIMESTAMP, action STRING, value DOUBLE";

#[tokio::test]
async fn permissive_fills_the_corrupt_record_column() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_ok(&[
        "run",
        "--source",
        fixture("dirty").to_str().unwrap(),
        "--schema",
        &format!("{DIRTY_DDL}, _corrupt_record STRING"),
        "--sink",
        table.to_str().unwrap(),
    ]);
    let got = table_rows(&table, "SELECT time, action, value, _corrupt_record FROM t").await;
    assert_eq!(
        got,
        vec![
            "2016-07-26T02:45:07Z|Open|1.5|NULL",
            "2016-07-26T02:45:08Z|Close|2.5|NULL",
            "2016-07-26T02:45:09Z|Open|NULL|{\"time\":1469501109,\"action\":\"Open\",\"value\":\"not a number\"}",
            "2016-07-26T02:45:11Z|Open|4.0|NULL",
            "2016-07-26T02:45:12Z|Close|6.0|NULL",
            "2016-07-26T02:45:13Z|Open|7.0|NULL",
            "2016-07-26T02:45:14Z|Close|8.0|NULL",
            "NULL|NULL|NULL|this line is not json",
            "NULL|NULL|NULL|{\"time\":1469501110,\"action\":\"Close\"",
        ]
    );
}

#[tokio::test]
async fn permissive_with_a_custom_corrupt_column_name() {
    let dir = tempdir();
    let table = dir.path().join("t");
    run_ok(&[
        "run",
        "--source",
        fixture("dirty").to_str().unwrap(),
        "--schema",
        &format!("{DIRTY_DDL}, bad STRING"),
        "--option",
        "columnNameOfCorruptRecord=bad",
        "--sink",
        table.to_str().unwrap(),
    ]);
    let got = table_rows(&table, "SELECT count(*) FROM t WHERE bad IS NOT NULL").await;
    assert_eq!(got, vec!["3"]);
}

#[tokio::test]
async fn dropmalformed_drops_the_bad_records() {
    let dir = tempdir();
    let table = dir.path().join("t");
    let out = run_ok(&[
        "run",
        "--source",
        fixture("dirty").to_str().unwrap(),
        "--schema",
        DIRTY_DDL,
        "--option",
        "mode=DROPMALFORMED",
        "--sink",
        table.to_str().unwrap(),
        "--progress",
        "json",
    ]);
    let got = table_rows(&table, "SELECT time, action, value FROM t").await;
    assert_eq!(
        got,
        vec![
            "2016-07-26T02:45:07Z|Open|1.5",
            "2016-07-26T02:45:08Z|Close|2.5",
            "2016-07-26T02:45:11Z|Open|4.0",
            "2016-07-26T02:45:12Z|Close|6.0",
            "2016-07-26T02:45:13Z|Open|7.0",
            "2016-07-26T02:45:14Z|Close|8.0",
        ]
    );
    let progress: serde_json::Value =
        serde_json::from_str(stderr(&out).lines().next().unwrap()).unwrap();
    assert_eq!(progress["sources"][0]["numMalformedRecords"], 3);
}

#[tokio::test]
async fn failfast_names_file_and_line_and_commits_nothing_of_the_batch() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("t");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(
        fixture("dirty").join("part-1.json"),
        src.join("a-good.json"),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(
        fixture("dirty").join("part-0.json"),
        src.join("b-dirty.json"),
    )
    .unwrap();
    let out = run(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        DIRTY_DDL,
        "--option",
        "mode=FAILFAST",
        "--option",
        "maxFilesPerTrigger=1",
        "--sink",
        table.to_str().unwrap(),
        "--query-name",
        "strict",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: malformed record in "), "{err}");
    assert!(err.contains("b-dirty.json line 3"), "{err}");
    assert!(err.contains("mode=PERMISSIVE"), "says what to do: {err}");
    // Batch 0 (the good file) stays committed; nothing of batch 1 is visible.
    assert_eq!(
        table_rows(&table, "SELECT time, value FROM t").await,
        vec!["2016-07-26T02:45:13Z|7.0", "2016-07-26T02:45:14Z|8.0"]
    );
    let (version, _) = query_commits(&table, "sluice-strict").await;
    assert_eq!(version, Some(0));
}

/// Column pruning, as Spark's JSON reader does it: only the columns the query reads are
/// decoded, so a value of the wrong type in another column does not make the record malformed
/// (FAILFAST passes); a query reading the corrupt-record column decodes every column and sees
/// it; a JSON syntax error is malformed whatever the query reads.
#[tokio::test]
async fn only_the_columns_a_query_reads_decide_a_malformed_record() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.json"),
        "{\"a\": 1, \"b\": 10}\n{\"a\": 2, \"b\": \"not a number\"}\n",
    )
    .unwrap();
    let ddl = "a BIGINT, b BIGINT, _corrupt_record STRING";
    let run_sql = |name: &str, sql: &str, mode: &str| {
        let table = dir.path().join(name);
        let out = run(&[
            "run",
            "--source",
            src.to_str().unwrap(),
            "--schema",
            ddl,
            "--sink",
            table.to_str().unwrap(),
            "--sql",
            sql,
            "--option",
            mode,
        ]);
        (table, out)
    };
    let (only_a, out) = run_sql("only_a", "SELECT a FROM source", "mode=FAILFAST");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_rows(&only_a, "SELECT * FROM t").await, ["1", "2"]);
    let (_, out) = run_sql("with_b", "SELECT a, b FROM source", "mode=FAILFAST");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("a.json line 2"), "{}", stderr(&out));
    let (corrupt, out) = run_sql(
        "corrupt",
        "SELECT a, _corrupt_record IS NOT NULL AS bad FROM source",
        "mode=PERMISSIVE",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&corrupt, "SELECT * FROM t").await,
        ["1|false", "2|true"]
    );
    std::fs::write(src.join("b.json"), "{\"a\": 3, \"b\": \n").unwrap();
    let (_, out) = run_sql("syntax", "SELECT a FROM source", "mode=FAILFAST");
    assert!(stderr(&out).contains("b.json line 1"), "{}", stderr(&out));
}
