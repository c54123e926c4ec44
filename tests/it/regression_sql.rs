//! Regression tests for wrong answers found by running Spark's queries over third-party data
//! (retail CSVs, Kubernetes audit events, OTLP documents): one per defect, each named after it.
//! The values expected are Spark's (`spark.sql.ansi.enabled=false`).

use std::path::Path;

use crate::common::*;
use crate::regression::{ago, land};

/// Stream `src` into `table` with `args` after `run --source src --sink table`.
fn stream(src: &Path, table: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        table.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run(&all)
}

/// Defect: column pruning decoded a CSV record against the pruned schema, so a query reading
/// some of the columns found every record malformed: `SELECT v` gave NULL on every row in
/// PERMISSIVE mode and FAILFAST stopped with "incorrect number of fields"; a windowed sum
/// over CSV ended with an empty table. Values are found by their position in the file.
#[tokio::test]
async fn csv_query_reading_some_columns_keeps_their_values() {
    let dir = tempdir();
    let src = dir.path().join("src");
    land(
        &src,
        "retail.csv",
        "time,customer,amount\n\
         2024-01-01T10:00:00Z,c1,2.5\n\
         2024-01-01T11:00:00Z,c2,4\n\
         2024-01-02T09:00:00Z,c1,1.5\n",
        ago(10),
    );
    let schema = "time TIMESTAMP, customer STRING, amount DOUBLE";
    for mode in ["PERMISSIVE", "FAILFAST"] {
        let table = dir.path().join(format!("amounts-{mode}"));
        let mode_option = format!("mode={mode}");
        let out = stream(
            &src,
            &table,
            &[
                "--format",
                "csv",
                "--schema",
                schema,
                "--option",
                "header=true",
                "--option",
                &mode_option,
                "--sql",
                "SELECT amount FROM source",
            ],
        );
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(
            table_rows(&table, "SELECT amount FROM t").await,
            ["1.5", "2.5", "4.0"],
            "{mode}"
        );
    }
    let table = dir.path().join("daily");
    let out = stream(
        &src,
        &table,
        &[
            "--format",
            "csv",
            "--schema",
            schema,
            "--option",
            "header=true",
            "--output-mode",
            "complete",
            "--sql",
            "SELECT customer, window(time, '1 day') AS window, sum(amount) AS total \
             FROM source GROUP BY customer, window(time, '1 day')",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&table, "SELECT customer, window.start, total FROM t").await,
        [
            "c1|2024-01-01T00:00:00Z|2.5",
            "c1|2024-01-02T00:00:00Z|1.5",
            "c2|2024-01-01T00:00:00Z|4.0"
        ]
    );
}

/// Defect: `a[0]` was NULL and `a[1]` the first element (DataFusion's 1-based rule) where Spark
/// counts from 0, so every query copied from Spark that indexes an array returned wrong values
/// silently; `element_at(a, 1)` failed with a map coercion error and `size(a)` was unknown.
#[tokio::test]
async fn array_subscripts_count_from_zero_as_in_spark() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "a.json",
        "{\"ips\":[\"10.0.0.1\",\"10.0.0.2\",\"10.0.0.3\"],\"labels\":{\"app\":\"api\"},\"commits\":[{\"sha\":\"abc\"}]}\n",
        ago(10),
    );
    let out = stream(
        &src,
        &table,
        &[
            "--schema",
            "ips ARRAY<STRING>, labels MAP<STRING, STRING>, commits ARRAY<STRUCT<sha: STRING>>",
            "--sql",
            "SELECT ips[0] AS first, ips[2] AS third, ips[3] AS past, ips[-1] AS negative, \
             element_at(ips, 1) AS e1, element_at(ips, -1) AS last, size(ips) AS n, \
             labels['app'] AS app, element_at(labels, 'app') AS app2, \
             commits[0].sha AS sha FROM source",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(
            &table,
            "SELECT first, third, past, negative, e1, last, n, app, app2, sha FROM t"
        )
        .await,
        ["10.0.0.1|10.0.0.3|NULL|NULL|10.0.0.1|10.0.0.3|3|api|api|abc"]
    );
}

/// Defect: a JSON object that is always `{}` (Kubernetes audit events'
/// `responseStatus.metadata`) was inferred as a struct with no fields; the first run created
/// the table and failed with "Parquet does not support writing empty structs", and so did
/// every later run. Spark drops such fields in inference (SPARK-8093, `canonicalizeType`).
#[tokio::test]
async fn an_object_that_is_always_empty_does_not_wedge_the_table() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "audit.json",
        "{\"verb\":\"get\",\"responseStatus\":{\"metadata\":{},\"code\":200},\"extra\":{}}\n\
         {\"verb\":\"list\",\"responseStatus\":{\"metadata\":{},\"code\":200},\"extra\":{}}\n",
        ago(10),
    );
    let out = stream(&src, &table, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&table, "SELECT verb, \"responseStatus\"['code'] FROM t").await,
        ["get|200", "list|200"]
    );
    let schema = inspect_json(&table, 0)["schema"].to_string();
    assert!(
        !schema.contains("metadata") && !schema.contains("extra"),
        "{schema}"
    );
    // A schema given with a struct of no fields is refused before anything is written.
    let given = dir.path().join("given");
    let out = stream(&src, &given, &["--schema", "verb STRING, extra STRUCT<>"]);
    let err = crate::regression::one_error_line(&out);
    assert!(
        err.contains("`extra`") && err.contains("no fields"),
        "{err}"
    );
    assert!(!given.join("_delta_log").exists(), "no table was created");
}

/// Defect: `user.name` (a struct column named `user`, in every Kubernetes audit event) failed
/// with a parser's internals: "Dot access not supported for non-string expr: Identifier(...)".
/// Spark reads `user` unquoted as a column.
#[tokio::test]
async fn a_struct_column_named_user_reads_its_fields() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "audit.json",
        "{\"user\":{\"username\":\"alice\",\"groups\":[\"dev\",\"ops\"]},\"verb\":\"get\"}\n",
        ago(10),
    );
    let out = stream(
        &src,
        &table,
        &[
            "--sql",
            "SELECT user.username, user.groups[1] AS second, verb FROM source WHERE user.username = 'alice'",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&table, "SELECT username, second, verb FROM t").await,
        ["alice|ops|get"]
    );
}

/// Defect: `window()` over a field of a struct column (`window(metadata.creationTimestamp,
/// '1 hour')`) was refused: "needs a TIMESTAMP column of the stream". Spark's `window` takes
/// any timestamp expression.
#[tokio::test]
async fn window_over_a_nested_time_field() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "pods.json",
        "{\"kind\":\"Pod\",\"metadata\":{\"creationTimestamp\":\"2024-05-01T10:15:00Z\"}}\n\
         {\"kind\":\"Pod\",\"metadata\":{\"creationTimestamp\":\"2024-05-01T10:45:00Z\"}}\n\
         {\"kind\":\"Pod\",\"metadata\":{\"creationTimestamp\":\"2024-05-01T11:05:00Z\"}}\n\
         {\"kind\":\"Pod\",\"metadata\":null}\n",
        ago(10),
    );
    let out = stream(
        &src,
        &table,
        &[
            "--schema",
            "kind STRING, metadata STRUCT<creationTimestamp: TIMESTAMP>",
            "--output-mode",
            "complete",
            "--sql",
            "SELECT kind, window(metadata.creationTimestamp, '1 hour') AS window, count(*) AS n \
             FROM source GROUP BY kind, window(metadata.creationTimestamp, '1 hour')",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&table, "SELECT kind, window.start, n FROM t").await,
        ["Pod|2024-05-01T10:00:00Z|2", "Pod|2024-05-01T11:00:00Z|1"]
    );
}

/// Defect: `_metadata` beside `LATERAL VIEW explode(...)` failed with "No field named
/// _metadata.file_name", though it worked with `explode()` in the SELECT list.
#[tokio::test]
async fn metadata_beside_a_lateral_view() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "logs.json",
        "{\"id\":1,\"spans\":[\"a\",\"b\"]}\n",
        ago(10),
    );
    let out = stream(
        &src,
        &table,
        &[
            "--schema",
            "id BIGINT, spans ARRAY<STRING>",
            "--sql",
            "SELECT id, span, _metadata.file_name AS file FROM source LATERAL VIEW explode(spans) s AS span",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(&table, "SELECT id, span, file FROM t").await,
        ["1|a|logs.json", "1|b|logs.json"]
    );
}

/// A table an earlier Sluice wedged with a struct of no fields (tests/data/wedged-empty-struct:
/// version 0 holds the column, batch 0 was planned with it and never committed) recovers on the
/// next start: the column, which holds no value, leaves the table's schema and the recorded
/// schema, and batch 0 commits with every value.
#[tokio::test]
async fn a_table_wedged_by_an_empty_struct_recovers() {
    let dir = tempdir();
    let fixture = repo().join("tests/data/wedged-empty-struct");
    crate::stateful::copy_dir(&fixture.join("table"), &dir.path().join("t"));
    crate::stateful::copy_dir(&fixture.join("src"), &dir.path().join("src"));
    let out = sluice()
        .current_dir(dir.path())
        .args([
            "run",
            "--source",
            "src",
            "--sink",
            "t",
            "--query-name",
            "audit",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let table = dir.path().join("t");
    assert_eq!(
        table_rows(&table, "SELECT verb, \"responseStatus\"['code'] FROM t").await,
        ["get|200", "list|200"]
    );
    assert_eq!(query_commits(&table, "sluice-audit").await.0, Some(0));
}

/// Defects the differential suite (scripts/oracle) found against Spark 4 with its non-ANSI
/// defaults: `n / 4` was an integer division, `n DIV 4` did not parse, `n % 0` and `n / 0`
/// stopped the query ("Divide by zero"), `CAST('abc' AS INT)` stopped it, `'%\\_%'` kept both
/// backslashes, `RLIKE`, `year`, `split`, `regexp_extract` were unknown, `date_format` printed
/// its Spark pattern as text, `regexp_replace` replaced the first match only, and `n + 1` of an
/// INT was a BIGINT. Values and types are what Spark gives.
#[tokio::test]
async fn spark_arithmetic_casts_and_functions_found_by_the_oracle() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "a.json",
        "{\"n\":10,\"s\":\"a_b c\",\"ts\":\"2024-03-02T14:07:29.807749Z\"}\n",
        ago(10),
    );
    let out = stream(
        &src,
        &table,
        &[
            "--schema",
            "n INT, s STRING, ts TIMESTAMP",
            "--sql",
            "SELECT n / 4 AS q, n DIV 4 AS d, n % 0 AS m0, n / 0 AS q0, n + 1 AS n1, \
             CAST(s AS INT) AS bad, s LIKE '%\\\\_%' AS underscore, s RLIKE '^a_' AS rl, \
             year(ts) AS y, split(s, ' ')[1] AS second, regexp_extract(s, '([a-z]+)_', 1) AS ex, \
             date_format(ts, 'yyyy-MM-dd HH:mm') AS day, regexp_replace(s, '[ab]', '#') AS rr, \
             CAST(ts AS STRING) AS text FROM source",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(
            &table,
            "SELECT q, d, m0, q0, n1, bad, underscore, rl, y, second, ex, day, rr, text FROM t"
        )
        .await,
        ["2.5|2|NULL|NULL|11|NULL|true|true|2024|c|a|2024-03-02 14:07|#_# c|2024-03-02 14:07:29.807749"]
    );
    let meta = log_action(&table, 0, "metaData");
    let schema: serde_json::Value =
        serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
    let type_of = |column: &str| {
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == column)
            .map(|f| f["type"].clone())
    };
    for (column, spark_type) in [
        ("q", "double"),
        ("d", "long"),
        ("n1", "integer"),
        ("y", "integer"),
    ] {
        assert_eq!(type_of(column), Some(spark_type.into()), "{column}");
    }
}
