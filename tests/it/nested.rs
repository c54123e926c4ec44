//! Nested JSON given a nested Spark DDL schema (`STRUCT<...>`, `ARRAY<...>`, `MAP<...>`):
//! GitHub-Archive-like events whose payload varies by type, written to Delta as structs, arrays
//! and maps, queried by field access, and read back by Python deltalake, Polars and DuckDB.

use std::fmt::Write as _;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::*;

const SCHEMA: &str = "id BIGINT, type STRING, \
    actor STRUCT<id: BIGINT, login: STRING>, \
    repo STRUCT<`name`: STRING>, \
    payload STRUCT<size: INT, commits: ARRAY<STRUCT<sha: STRING, message: STRING>>, action STRING>, \
    attrs MAP<STRING, STRING>, \
    created_at TIMESTAMP";

/// One generated event, as the expected rows need it.
pub(crate) struct Event {
    pub(crate) id: i64,
    pub(crate) kind: &'static str,
    pub(crate) login: Option<String>,
    pub(crate) size: Option<i32>,
    pub(crate) commits: Option<usize>,
    pub(crate) first_sha: Option<String>,
    pub(crate) env: Option<String>,
}

/// Seeded GitHub-Archive-like events: 64-bit ids, optional actor, a payload by type (commits
/// for pushes, an action for watches and issues), sometimes a map of attributes, microsecond
/// times, and fields the schema does not name.
pub(crate) fn generate(rng: &mut StdRng, n: usize, first_id: i64) -> (String, Vec<Event>) {
    let mut lines = String::new();
    let mut events = Vec::new();
    for i in 0..n {
        let id = first_id + i as i64 * 7_919 + 3_000_000_000;
        let kind = ["PushEvent", "WatchEvent", "IssuesEvent"][rng.gen_range(0..3)];
        let login = rng
            .gen_bool(0.9)
            .then(|| format!("user{}", rng.gen_range(0..50)));
        let actor = match &login {
            Some(l) => format!("{{\"id\":{},\"login\":\"{l}\",\"avatar\":\"x\"}}", id / 3),
            None => "null".into(),
        };
        let (payload, size, commits, first_sha) = match kind {
            "PushEvent" => {
                let k = rng.gen_range(0..4);
                let shas: Vec<String> = (0..k).map(|j| format!("{:x}", id * 10 + j)).collect();
                let list: Vec<String> = shas
                    .iter()
                    .map(|s| format!("{{\"sha\":\"{s}\",\"message\":\"fix \\\"{s}\\\"\"}}"))
                    .collect();
                (
                    format!(
                        "{{\"size\":{k},\"commits\":[{}],\"ref\":\"main\"}}",
                        list.join(",")
                    ),
                    Some(k as i32),
                    Some(k as usize),
                    shas.first().cloned(),
                )
            }
            _ => ("{\"action\":\"started\"}".to_string(), None, None, None),
        };
        let env = rng
            .gen_bool(0.5)
            .then(|| format!("e{}", rng.gen_range(0..3)));
        let attrs = match &env {
            Some(e) => format!(",\"attrs\":{{\"env\":\"{e}\",\"region\":\"eu\"}}"),
            None => String::new(),
        };
        let micros = rng.gen_range(0..1_000_000);
        writeln!(
            lines,
            "{{\"id\":{id},\"type\":\"{kind}\",\"actor\":{actor},\"repo\":{{\"name\":\"r/{i}\"}},\"payload\":{payload}{attrs},\"created_at\":\"2024-03-01T10:{:02}:{:02}.{micros:06}Z\",\"public\":true}}",
            i % 60,
            (i / 60) % 60
        )
        .unwrap();
        events.push(Event {
            id,
            kind,
            login,
            size,
            commits,
            first_sha,
            env,
        });
    }
    (lines, events)
}

pub(crate) fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or("NULL".into(), |x| x.to_string())
}

#[tokio::test]
async fn nested_json_with_a_nested_schema_lands_as_structs_arrays_and_maps() {
    let mut rng = StdRng::seed_from_u64(12);
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut all = Vec::new();
    for f in 0..4 {
        let (lines, events) = generate(&mut rng, 300, f * 1_000_000);
        std::fs::write(src.join(format!("events-{f}.json")), lines).unwrap();
        all.extend(events);
    }
    let table = dir.path().join("t");
    let sql = "SELECT id, type, actor.login AS login, payload['size'] AS size, \
               cardinality(payload.commits) AS commits, payload.commits[0]['sha'] AS first_sha, \
               attrs['env'] AS env FROM source";
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        SCHEMA,
        "--sql",
        sql,
        "--sink",
        table.to_str().unwrap(),
        "--option",
        "maxFilesPerTrigger=1",
    ]);
    let mut want: Vec<String> = all
        .iter()
        .map(|e| {
            format!(
                "{}|{}|{}|{}|{}|{}|{}",
                e.id,
                e.kind,
                opt(&e.login),
                opt(&e.size),
                opt(&e.commits),
                opt(&e.first_sha),
                opt(&e.env)
            )
        })
        .collect();
    want.sort();
    assert_eq!(table_rows(&table, "SELECT * FROM t").await, want);

    // The whole nested record lands too, and every external reader reads it.
    let whole = dir.path().join("whole");
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        SCHEMA,
        "--sink",
        whole.to_str().unwrap(),
    ]);
    let inspect = inspect_json(&whole, 1);
    let text = inspect.to_string();
    assert!(text.contains("MAP<STRING, STRING>"), "{text}");
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
rows = DeltaTable(path).to_pyarrow_table().to_pylist()
d_commits = sum(len(r["payload"]["commits"] or []) for r in rows)
d_env = sorted(dict(r["attrs"]).get("env") or "" for r in rows if r["attrs"])
p = pl.read_delta(path)
p_logins = p.select(pl.col("actor").struct.field("login")).drop_nulls().height
import_extension("delta")
c = duckdb.connect()
c.sql("LOAD delta")
k_commits = c.sql(f"SELECT coalesce(sum(len(payload.commits)), 0) FROM delta_scan('{path}')").fetchone()[0]
k_env = c.sql(f"SELECT count(*) FROM delta_scan('{path}') WHERE attrs['env'] IS NOT NULL").fetchone()[0]
print(json.dumps({"rows": len(rows), "commits": d_commits, "envs": len(d_env), "logins": p_logins,
                  "duck_commits": int(k_commits), "duck_envs": int(k_env)}), flush=True)
os._exit(0)  # skip interpreter teardown: the readers' native threads may abort it
"#;
    let got = python_json(&python, script, &whole);
    let commits: usize = all.iter().filter_map(|e| e.commits).sum();
    let envs = all.iter().filter(|e| e.env.is_some()).count();
    let logins = all.iter().filter(|e| e.login.is_some()).count();
    assert_eq!(got["rows"], all.len());
    assert_eq!(got["commits"], commits);
    assert_eq!(got["duck_commits"], commits);
    assert_eq!(got["envs"], envs);
    assert_eq!(got["duck_envs"], envs);
    assert_eq!(got["logins"], logins);
}
