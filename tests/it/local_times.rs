//! TIMESTAMP_NTZ: local date-times read as Spark reads them (JacksonParser:
//! `timestampNTZFormatter.parseWithoutTimeZone(text, allowTimeZone = false)`; a zone or a
//! number is a malformed record), written as Delta `timestamp_ntz` beside zoned TIMESTAMP
//! columns, and read back as the same wall-clock values by Python deltalake, Polars and DuckDB.

use crate::common::*;

const SCHEMA: &str = "id INT, at TIMESTAMP_NTZ, ts TIMESTAMP, \
    ev STRUCT<local: TIMESTAMP_NTZ, name: STRING>, _corrupt_record STRING";

/// The table's Delta schema, from its first metaData action: column name -> Delta type.
fn delta_types(table: &std::path::Path) -> serde_json::Map<String, serde_json::Value> {
    let meta = log_action(table, 0, "metaData");
    let schema: serde_json::Value =
        serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
    schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
        .collect()
}

#[tokio::test]
async fn timestamp_ntz_columns_land_as_delta_timestamp_ntz_and_readers_see_local_times() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.json"),
        concat!(
            "{\"id\":1,\"at\":\"2024-03-01T10:20:30\",\"ts\":\"2024-03-01T10:20:30Z\",\"ev\":{\"local\":\"2024-03-01T23:59:59.5\",\"name\":\"x\"}}\n",
            "{\"id\":2,\"at\":\"2024-03-01 10:20:30.123456\",\"ts\":1709288430}\n",
            "{\"id\":3,\"at\":\"2024-03-02\"}\n",
            "{\"id\":4,\"at\":\"1969-12-31T23:59:59.999999\",\"ev\":null}\n",
        ),
    )
    .unwrap();
    // A zone, or a number, is not a TIMESTAMP_NTZ: the record is malformed and kept whole.
    std::fs::write(
        src.join("b.json"),
        concat!(
            "{\"id\":5,\"at\":\"2024-03-01T10:20:30+02:00\"}\n",
            "{\"id\":6,\"at\":\"2024-03-01T10:20:30Z\"}\n",
            "{\"id\":7,\"at\":null}\n",
            "{\"id\":8,\"at\":1709288430}\n",
        ),
    )
    .unwrap();
    let table = dir.path().join("t");
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        SCHEMA,
        "--sink",
        table.to_str().unwrap(),
    ]);
    let types = delta_types(&table);
    assert_eq!(types["at"], "timestamp_ntz");
    assert_eq!(types["ts"], "timestamp");
    assert_eq!(types["ev"]["fields"][0]["type"], "timestamp_ntz");
    let protocol = log_action(&table, 0, "protocol");
    assert!(protocol.to_string().contains("timestampNtz"), "{protocol}");
    let rows = table_rows(
        &table,
        "SELECT id, CAST(at AS VARCHAR), CAST(ev.local AS VARCHAR), \
         _corrupt_record IS NOT NULL FROM t",
    )
    .await;
    assert_eq!(
        rows,
        vec![
            "1|2024-03-01T10:20:30|2024-03-01T23:59:59.500|false",
            "2|2024-03-01T10:20:30.123456|NULL|false",
            "3|2024-03-02T00:00:00|NULL|false",
            "4|1969-12-31T23:59:59.999999|NULL|false",
            "5|NULL|NULL|true",
            "6|NULL|NULL|true",
            "7|NULL|NULL|false",
            "8|NULL|NULL|true",
        ]
    );
    let inspect = inspect_json(&table, 1).to_string();
    assert!(inspect.contains("at TIMESTAMP_NTZ"), "{inspect}");

    // Through a query: the column stays TIMESTAMP_NTZ; a zone-less time a function makes is a
    // TIMESTAMP, as in Spark.
    let projected = dir.path().join("p");
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        SCHEMA,
        "--sql",
        "SELECT id, at AS local_at, to_timestamp('2024-01-01T00:00:00') AS made FROM source WHERE at IS NOT NULL",
        "--sink",
        projected.to_str().unwrap(),
    ]);
    let types = delta_types(&projected);
    assert_eq!(types["local_at"], "timestamp_ntz");
    assert_eq!(types["made"], "timestamp");

    let Some(python) = external_python() else {
        return;
    };
    let script = r#"
import json, os, sys
from deltalake import DeltaTable
import polars as pl
import duckdb
from duckdb_extensions import import_extension
path = sys.argv[1]
d = sorted((r["id"], r["at"].isoformat() if r["at"] else None)
           for r in DeltaTable(path).to_pyarrow_table(columns=["id", "at"]).to_pylist())
p = sorted((r["id"], r["at"].isoformat() if r["at"] else None)
           for r in pl.read_delta(path).select("id", "at").to_dicts())
import_extension("delta")
c = duckdb.connect()
c.sql("LOAD delta")
k = sorted((int(i), str(a) if a else None)
           for i, a in c.sql(f"""SELECT id, "at" FROM delta_scan('{path}')""").fetchall())
kind = c.sql(f"""SELECT typeof("at") FROM delta_scan('{path}') LIMIT 1""").fetchone()[0]
print(json.dumps({"deltalake": d, "polars": p, "duckdb": k, "duck_type": kind}), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    let got = python_json(&python, script, &table);
    let iso = serde_json::json!([
        [1, "2024-03-01T10:20:30"],
        [2, "2024-03-01T10:20:30.123456"],
        [3, "2024-03-02T00:00:00"],
        [4, "1969-12-31T23:59:59.999999"],
        [5, null],
        [6, null],
        [7, null],
        [8, null]
    ]);
    assert_eq!(got["deltalake"], iso, "{got}");
    assert_eq!(got["polars"], iso, "{got}");
    assert_eq!(
        got["duckdb"],
        serde_json::json!([
            [1, "2024-03-01 10:20:30"],
            [2, "2024-03-01 10:20:30.123456"],
            [3, "2024-03-02 00:00:00"],
            [4, "1969-12-31 23:59:59.999999"],
            [5, null],
            [6, null],
            [7, null],
            [8, null]
        ]),
        "{got}"
    );
    assert_eq!(got["duck_type"], "TIMESTAMP", "{got}");
}

/// `timestampNTZFormat` (Spark's pattern letters) reads local times in another spelling; the
/// query's remembered schema keeps TIMESTAMP_NTZ across a restart.
#[tokio::test]
async fn timestamp_ntz_format_and_a_restart_keep_local_times() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("a.csv"),
        "id,at\n1,01/03/2024 10:20\n2,31/12/1999 23:59\n",
    )
    .unwrap();
    let table = dir.path().join("t");
    let args = [
        "run",
        "--source",
        src.to_str().unwrap(),
        "--format",
        "csv",
        "--option",
        "header=true",
        "--option",
        "timestampNTZFormat=dd/MM/yyyy HH:mm",
        "--schema",
        "id INT, at TIMESTAMP_NTZ",
        "--sink",
        table.to_str().unwrap(),
    ];
    run_ok(&args);
    std::fs::write(src.join("b.csv"), "id,at\n3,29/02/2024 00:00\n").unwrap();
    run_ok(&args);
    assert_eq!(
        table_rows(&table, "SELECT id, CAST(at AS VARCHAR) FROM t").await,
        vec![
            "1|2024-03-01T10:20:00",
            "2|1999-12-31T23:59:00",
            "3|2024-02-29T00:00:00"
        ]
    );
    assert_eq!(delta_types(&table)["at"], "timestamp_ntz");
}

/// A Parquet file's local (not UTC-adjusted) timestamps are inferred as TIMESTAMP_NTZ, as Spark
/// 3.4+ infers them, and land as Delta `timestamp_ntz` with their wall-clock values.
#[tokio::test]
async fn local_parquet_timestamps_land_as_timestamp_ntz() {
    use arrow::array::{Int64Array, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("at", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(Int64Array::from(vec![1, 2])),
            std::sync::Arc::new(TimestampNanosecondArray::from(vec![
                Some(1_709_288_430_123_456_000),
                None,
            ])),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(src.join("part-0.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let table = dir.path().join("t");
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--format",
        "parquet",
        "--sink",
        table.to_str().unwrap(),
    ]);
    assert_eq!(delta_types(&table)["at"], "timestamp_ntz");
    assert_eq!(
        table_rows(&table, "SELECT id, CAST(at AS VARCHAR) FROM t").await,
        vec!["1|2024-03-01T10:20:30.123456", "2|NULL"]
    );
}
