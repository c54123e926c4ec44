//! Real landing zones: nested JSON inferred with Spark's rules, gzipped files in partitioned
//! folders, multi-line documents, arrays flattened with explode, dotted keys, lenient producers
//! and `_metadata` — each compared with a batch computation over the generated values and read
//! back by Python deltalake, Polars and DuckDB.

use std::collections::HashMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::common::*;
use crate::compressed::gzip;
use crate::nested::{generate, opt, Event};
use crate::readers::assert_readers;
use crate::shapes;

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, data).unwrap();
}

fn sorted(mut rows: Vec<String>) -> Vec<String> {
    rows.sort();
    rows
}

/// `sluice run --source SRC --sink TABLE` with `extra` flags, which must succeed.
fn stream(src: &Path, table: &Path, extra: &[&str]) {
    let mut args = vec![
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        table.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
}

/// The table holds exactly `want` (in any order), and so do the three external readers.
async fn assert_lands(table: &Path, want: Vec<String>, kind: &str) {
    let want = sorted(want);
    assert_eq!(table_rows(table, "SELECT * FROM t").await, want, "{kind}");
    readers_see(table, &want, kind);
}

/// Readers compare rows as `|`-joined values; assert all three see `want`.
fn readers_see(table: &Path, want: &[String], kind: &str) {
    if let Some(python) = external_python() {
        assert_readers(
            &python,
            table.to_str().unwrap(),
            &HashMap::new(),
            want,
            kind,
        );
    }
}

/// GitHub-Archive-like events, gzipped, in `date=.../hour=...` folders, with hidden files
/// beside them; one `(event, date, hour, file)` per event.
fn land_github(src: &Path, seed: u64, files: usize) -> Vec<(Event, String, u32, String)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut landed = Vec::new();
    for f in 0..files {
        let (date, hour) = (format!("2024-03-0{}", 1 + f % 2), (f % 3) as u32 * 7);
        let name = format!("events [{f}].json.gz");
        let (lines, events) = generate(&mut rng, 150, f as i64 * 1_000_000);
        let dir = src.join(format!("date={date}/hour={hour:02}"));
        write(&dir.join(&name), &gzip(lines.as_bytes()));
        landed.extend(
            events
                .into_iter()
                .map(|e| (e, date.clone(), hour, name.clone())),
        );
    }
    // Spark skips these: a writer's temporary folder and a checksum file.
    write(&src.join("_temporary/0/part.json"), b"{\"id\": -1}\n");
    write(&src.join("date=2024-03-01/.part.json.crc"), b"junk");
    landed
}

/// Nested GitHub-like events with no schema given: inference follows Spark (structs unioned
/// across event types, `payload.size` a BIGINT, `attrs` a struct), partition folders become
/// typed columns at the end, and `_metadata.file_name` tells each row's file.
#[tokio::test]
async fn github_like_events_inferred_from_gzipped_partitioned_folders() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let landed = land_github(&src, 41, 6);
    let table = dir.path().join("t");
    let sql =
        "SELECT id, type, actor.login, payload.size, cardinality(payload.commits) AS commits, \
               attrs.env, date, hour, _metadata.file_name AS file FROM source";
    stream(
        &src,
        &table,
        &["--sql", sql, "--option", "maxFilesPerTrigger=2"],
    );
    let schema = inspect_json(&table, 0)["queries"][0]["sourceSchema"]
        .as_str()
        .unwrap()
        .to_string();
    for part in [
        "actor STRUCT<avatar: STRING, id: BIGINT, login: STRING>",
        "payload STRUCT<action: STRING, commits: ARRAY<STRUCT<message: STRING, sha: STRING>>, ref: STRING, size: BIGINT>",
        "attrs STRUCT<env: STRING, region: STRING>",
        "date DATE, hour INT (from folders: date, hour)",
    ] {
        assert!(schema.contains(part), "{part} not in {schema}");
    }
    let want = sorted(
        landed
            .iter()
            .map(|(e, date, hour, file)| {
                format!(
                    "{}|{}|{}|{}|{}|{}|{date}|{hour}|{file}",
                    e.id,
                    e.kind,
                    opt(&e.login),
                    opt(&e.size),
                    opt(&e.commits),
                    opt(&e.env)
                )
            })
            .collect(),
    );
    assert_eq!(table_rows(&table, "SELECT * FROM t").await, want);
    readers_see(&table, &want, "github-like");

    // Arrays flattened into rows, as Spark users write it, then aggregated.
    let commits = dir.path().join("commits");
    stream(&src, &commits, &[
        "--output-mode", "complete",
        "--sql", "SELECT date, count(*) AS commits FROM source \
                  LATERAL VIEW explode(payload.commits) t AS c WHERE c.sha IS NOT NULL GROUP BY date",
    ]);
    let mut per_date: HashMap<String, usize> = HashMap::new();
    for (e, date, _, _) in &landed {
        *per_date.entry(date.clone()).or_default() += e.commits.unwrap_or(0);
    }
    let want: Vec<String> = sorted(
        per_date
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(d, n)| format!("{d}|{n}"))
            .collect(),
    );
    assert_eq!(table_rows(&commits, "SELECT * FROM t").await, want);
}

/// CloudTrail-like files: one pretty-printed, gzipped `{"Records": [...]}` per file, read with
/// `multiLine=true` and flattened with explode, one row per record.
#[tokio::test]
async fn cloudtrail_like_multi_line_documents_become_one_row_per_record() {
    let mut rng = StdRng::seed_from_u64(7);
    let dir = tempdir();
    let src = dir.path().join("src");
    let mut want = Vec::new();
    for f in 0..5 {
        let (doc, rows) = shapes::cloudtrail_file(&mut rng, 20 + f * 3, f);
        let path = src.join(format!(
            "AWSLogs/123/CloudTrail/eu-west-1/2024/03/01/trail_{f}.json.gz"
        ));
        write(&path, &gzip(doc.as_bytes()));
        want.extend(rows);
    }
    let table = dir.path().join("t");
    stream(&src, &table, &[
        "--option", "multiLine=true", "--option", "maxFilesPerTrigger=2",
        "--sql", "SELECT r.eventName, r.userIdentity.arn, r.awsRegion, cardinality(r.resources) AS resources \
                  FROM (SELECT explode(Records) AS r FROM source)",
    ]);
    assert_lands(&table, want, "cloudtrail-like").await;
}

/// OTLP-like log records: arrays of key/value structs whose value is one of several typed
/// fields, flattened per attribute.
#[tokio::test]
async fn otlp_like_attribute_arrays_flatten_per_attribute() {
    let mut rng = StdRng::seed_from_u64(8);
    let dir = tempdir();
    let src = dir.path().join("src");
    let mut want = Vec::new();
    for f in 0..3 {
        let (text, rows) = shapes::otlp_lines(&mut rng, 80);
        write(&src.join(format!("logs-{f}.json")), text.as_bytes());
        want.extend(rows);
    }
    let table = dir.path().join("t");
    stream(&src, &table, &[
        "--sql", "SELECT severityText, a.key, coalesce(a.value.stringValue, a.value.intValue, \
                  CAST(a.value.boolValue AS STRING)) AS v FROM source LATERAL VIEW explode(attributes) t AS a",
    ]);
    assert_lands(&table, want, "otlp-like").await;
}

/// ECS-like logs: the dotted key `log.level` is a column of its own beside the nested `log`.
#[tokio::test]
async fn ecs_like_dotted_keys_beside_nested_objects() {
    let mut rng = StdRng::seed_from_u64(9);
    let dir = tempdir();
    let src = dir.path().join("src");
    let (text, want) = shapes::ecs_lines(&mut rng, 200);
    write(&src.join("ecs.json.gz"), &gzip(text.as_bytes()));
    let table = dir.path().join("t");
    stream(
        &src,
        &table,
        &[
            "--sql",
            "SELECT `log.level` AS level, log.logger, log.origin.file.line AS line, \
                  http.response.status_code AS status, message FROM source",
        ],
    );
    assert_lands(&table, want, "ecs-like").await;
    // The whole record lands with its dotted names.
    let whole = dir.path().join("whole");
    stream(&src, &whole, &[]);
    let text = inspect_json(&whole, 0).to_string();
    assert!(
        text.contains("`log.level` STRING") && text.contains("`@timestamp` STRING"),
        "{text}"
    );
}

/// Producers' lenient JSON, read with the Spark options that allow each spelling (single
/// quotes and NaN need none: Spark reads them by default).
#[tokio::test]
async fn lenient_producers_are_read_with_sparks_options() {
    let mut rng = StdRng::seed_from_u64(10);
    let dir = tempdir();
    let src = dir.path().join("src");
    let (text, want) = shapes::lenient_lines(&mut rng, 120);
    write(&src.join("tool.json"), text.as_bytes());
    let table = dir.path().join("t");
    let options = [
        "allowComments=true",
        "allowUnquotedFieldNames=true",
        "allowNumericLeadingZeros=true",
        "allowBackslashEscapingAnyCharacter=true",
        "mode=FAILFAST",
    ];
    let mut args = vec![
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        table.to_str().unwrap(),
        "--schema",
        "id BIGINT, name STRING, score DOUBLE",
    ];
    for o in &options {
        args.extend(["--option", o]);
    }
    run_ok(&args);
    assert_eq!(table_rows(&table, "SELECT * FROM t").await, sorted(want));
    // Without them, FAILFAST names the first record Spark's defaults refuse.
    let strict = dir.path().join("strict");
    let out = run(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        strict.to_str().unwrap(),
        "--schema",
        "id BIGINT, name STRING, score DOUBLE",
        "--option",
        "mode=FAILFAST",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("tool.json line 2"), "{err}");
}

/// Globs in the source path and `pathGlobFilter` pick files, each read once; with a glob, the
/// folders it matched are not partition columns (Spark's partition discovery starts below
/// them).
#[tokio::test]
async fn globs_and_path_glob_filter_choose_the_files() {
    let dir = tempdir();
    let src = dir.path().join("src");
    for (path, id) in [
        ("2024/01/a.json", 1),
        ("2024/02/b.json", 2),
        ("2024/02/b.csv", 3),
        ("2023/12/c.json", 4),
        ("2024/03/region=eu/d.json", 5),
    ] {
        write(&src.join(path), format!("{{\"id\": {id}}}\n").as_bytes());
    }
    let table = dir.path().join("t");
    let source = format!("{}/2024/*", src.display());
    run_ok(&[
        "run",
        "--source",
        &source,
        "--sink",
        table.to_str().unwrap(),
        "--option",
        "pathGlobFilter=*.json",
        "--sql",
        "SELECT id, region, _metadata.file_path LIKE 'file:///%' AS uri FROM source",
    ]);
    assert_eq!(
        table_rows(&table, "SELECT * FROM t").await,
        ["1|NULL|true", "2|NULL|true", "5|eu|true"]
    );
    // basePath: partition discovery starts above the source (Spark's `basePath`), so the
    // source's own `region=eu` folder is a column; recursiveFileLookup turns discovery off.
    let based = dir.path().join("based");
    run_ok(&[
        "run",
        "--source",
        src.join("2024/03/region=eu").to_str().unwrap(),
        "--sink",
        based.to_str().unwrap(),
        "--option",
        &format!("basePath={}", src.join("2024").display()),
    ]);
    assert_eq!(table_rows(&based, "SELECT * FROM t").await, ["5|eu"]);
    let flat = dir.path().join("flat");
    stream(
        &src,
        &flat,
        &[
            "--option",
            "recursiveFileLookup=true",
            "--option",
            "pathGlobFilter=*.json",
        ],
    );
    assert_eq!(
        table_rows(&flat, "SELECT * FROM t").await,
        ["1", "2", "4", "5"]
    );
    let out = run(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--sink",
        dir.path().join("x").to_str().unwrap(),
        "--option",
        &format!("basePath={}", dir.path().join("elsewhere").display()),
    ]);
    assert!(stderr(&out).contains("basePath"), "{}", stderr(&out));
    // A query of a source path is bound to it: the glob is part of the source's identity.
    let out = run(&[
        "run",
        "--source",
        &format!("{}/2023/*", src.display()),
        "--sink",
        table.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
}

/// `--schema-file` with what Spark printed (`df.schema.json()`).
#[tokio::test]
async fn schema_file_takes_sparks_json_schema() {
    let dir = tempdir();
    let src = dir.path().join("src");
    write(
        &src.join("a.json"),
        b"{\"actor\": {\"login\": \"ann\", \"id\": 1}, \"tags\": [\"x\", \"y\"], \"n\": 5}\n",
    );
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"type":"struct","fields":[{"name":"actor","type":{"type":"struct","fields":[{"name":"login","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},{"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":true,"metadata":{}},{"name":"n","type":"integer","nullable":true,"metadata":{}}]}"#,
    )
    .unwrap();
    let table = dir.path().join("t");
    stream(
        &src,
        &table,
        &[
            "--schema-file",
            schema.to_str().unwrap(),
            "--sql",
            "SELECT actor.login, tags[1] AS second, n FROM source",
        ],
    );
    assert_eq!(table_rows(&table, "SELECT * FROM t").await, ["ann|y|5"]);
    let text = inspect_json(&table, 0).to_string();
    assert!(
        text.contains("actor STRUCT<login: STRING>, tags ARRAY<STRING>, n INT"),
        "{text}"
    );
}

/// Exactly once over nested, gzipped, partitioned input that keeps landing: SIGKILLs at
/// seeded random moments (SLUICE_SEED replays one), restarts, and both an append table (with
/// partition and `_metadata` columns) and a complete-mode aggregation end exact.
#[tokio::test]
async fn sigkills_over_nested_gzipped_partitioned_input_end_exact() {
    use rand::Rng;
    let seed: u64 = std::env::var("SLUICE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    eprintln!("landing crash seed {seed} (SLUICE_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempdir();
    let src = dir.path().join("src");
    let mut landed = land_github(&src, seed, 8);
    let (rows, counts) = (dir.path().join("rows"), dir.path().join("counts"));
    let rows_sql =
        "SELECT id, type, payload.size, date, hour, _metadata.file_name AS file FROM source";
    let counts_sql = "SELECT type, date, count(*) AS n FROM source GROUP BY type, date";
    let args = |table: &Path, sql: &str, mode: &str, rng: &mut StdRng| -> Vec<String> {
        let files = rng.gen_range(1..4).to_string();
        [
            "run",
            "--source",
            src.to_str().unwrap(),
            "--sink",
            table.to_str().unwrap(),
            "--sql",
            sql,
            "--output-mode",
            mode,
            "--option",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("maxFilesPerTrigger={files}")])
        .collect()
    };
    let mut kills = 0;
    // At least 30 runs, and more until 10 were killed while running (on an idle machine more
    // runs finish before their kill).
    for round in 0..90 {
        if round >= 30 && kills >= 10 {
            break;
        }
        if round % 6 == 5 {
            // More files land, in new and existing partitions (names never reused).
            let more = land_github(&dir.path().join(format!("more{round}")), seed + round, 3);
            for (event, date, hour, name) in more {
                landed.push((event, date, hour, format!("r{round} {name}")));
            }
            for entry in walk(&dir.path().join(format!("more{round}"))) {
                let rel = entry
                    .strip_prefix(dir.path().join(format!("more{round}")))
                    .unwrap();
                if rel.starts_with("_temporary") || rel.to_string_lossy().contains(".crc") {
                    continue;
                }
                let name = rel.file_name().unwrap().to_string_lossy().to_string();
                let target = src
                    .join(rel.parent().unwrap())
                    .join(format!("r{round} {name}"));
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::rename(&entry, target).unwrap();
            }
        }
        let (table, sql, mode) = match round % 2 {
            0 => (&rows, rows_sql, "append"),
            _ => (&counts, counts_sql, "complete"),
        };
        let a = args(table, sql, mode, &mut rng);
        if crate::randomized::run_and_kill(&a, &mut rng) {
            kills += 1;
        }
    }
    assert!(kills >= 10, "only {kills} runs were killed while running");
    for (table, sql, mode) in [
        (&rows, rows_sql, "append"),
        (&counts, counts_sql, "complete"),
    ] {
        let a = args(table, sql, mode, &mut rng);
        let refs: Vec<&str> = a.iter().map(String::as_str).collect();
        run_ok(&refs);
    }
    let want_rows = sorted(
        landed
            .iter()
            .map(|(e, date, hour, file)| {
                format!("{}|{}|{}|{date}|{hour}|{file}", e.id, e.kind, opt(&e.size))
            })
            .collect(),
    );
    assert_eq!(table_rows(&rows, "SELECT * FROM t").await, want_rows);
    let mut per: HashMap<(String, String), usize> = HashMap::new();
    for (e, date, _, _) in &landed {
        *per.entry((e.kind.to_string(), date.clone())).or_default() += 1;
    }
    let want_counts = sorted(
        per.iter()
            .map(|((k, d), n)| format!("{k}|{d}|{n}"))
            .collect(),
    );
    assert_eq!(table_rows(&counts, "SELECT * FROM t").await, want_counts);
}

/// Every file below `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Files in other charsets (a BOM, or Spark's `encoding`), records ended by `lineSep`, and
/// dates in `dateFormat`.
#[tokio::test]
async fn charsets_line_separators_and_date_formats() {
    let dir = tempdir();
    let text = "{\"id\": 1, \"city\": \"Zürich\", \"day\": \"01/03/2024\"}\n{\"id\": 2, \"city\": \"東京\", \"day\": \"29/02/2024\"}\n";
    let utf16le: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    let utf16be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let want = ["1|Zürich|2024-03-01", "2|東京|2024-02-29"];
    let schema = "id BIGINT, city STRING, day DATE";
    for (name, data, options) in [
        ("bom", utf16le, vec!["dateFormat=dd/MM/yyyy"]),
        (
            "be",
            utf16be,
            vec!["encoding=UTF-16BE", "dateFormat=dd/MM/yyyy"],
        ),
        (
            "rs",
            text.replace('\n', "\u{1e}")
                .replace(", \"city\"", ",\n \"city\"")
                .into_bytes(),
            vec!["lineSep=\\u001e", "dateFormat=dd/MM/yyyy"],
        ),
    ] {
        let src = dir.path().join(format!("src-{name}"));
        write(&src.join("f.json"), &data);
        for (kind, chunk) in [("whole", "100000000"), ("parts", "20")] {
            let table = dir.path().join(format!("{name}-{kind}"));
            let mut args = vec![
                "run",
                "--source",
                src.to_str().unwrap(),
                "--sink",
                table.to_str().unwrap(),
                "--schema",
                schema,
                "--option",
                "mode=FAILFAST",
            ];
            for o in &options {
                args.extend(["--option", o]);
            }
            let out = sluice()
                .args(&args)
                .env("SLUICE_TEST_CHUNK_BYTES", chunk)
                .output()
                .unwrap();
            assert!(out.status.success(), "{name} {kind}: {}", stderr(&out));
            assert_eq!(
                table_rows(&table, "SELECT * FROM t").await,
                want,
                "{name} {kind}"
            );
        }
    }
}

/// The same folders on S3: partition columns from `key=value` prefixes, hidden prefixes
/// skipped, `_metadata.file_path` an `s3://` URI, a glob in the source, multi-line documents.
#[tokio::test]
async fn partitions_globs_and_multi_line_documents_on_s3() {
    let Some(moto) = Moto::start() else {
        return;
    };
    moto.create_bucket("land");
    for (key, data) in [
        (
            "logs/date=2024-03-01/hour=03/a b.json.gz",
            gzip(b"{\"id\": 1}\n{\"id\": 2}\n"),
        ),
        (
            "logs/date=2024-03-02/hour=11/b.json",
            b"[{\"id\": 3},\n {\"id\": 4}]\n".to_vec(),
        ),
        ("logs/_temporary/0/x.json", b"{\"id\": -1}\n".to_vec()),
        (
            "other/date=2024-03-03/hour=00/c.json",
            b"{\"id\": 5}\n".to_vec(),
        ),
    ] {
        moto.put("land", key, data).await;
    }
    let dir = tempdir();
    let table = dir.path().join("t");
    moto.run_ok(&[
        "run",
        "--source",
        "s3://land/logs",
        "--sink",
        table.to_str().unwrap(),
        "--option",
        "multiLine=true",
        "--sql",
        "SELECT id, date, hour, _metadata.file_path AS path FROM source",
    ]);
    assert_eq!(
        table_rows(&table, "SELECT * FROM t").await,
        [
            "1|2024-03-01|3|s3://land/logs/date=2024-03-01/hour=03/a%20b.json.gz",
            "2|2024-03-01|3|s3://land/logs/date=2024-03-01/hour=03/a%20b.json.gz",
            "3|2024-03-02|11|s3://land/logs/date=2024-03-02/hour=11/b.json",
            "4|2024-03-02|11|s3://land/logs/date=2024-03-02/hour=11/b.json",
        ]
    );
    // A glob over the bucket's top folders: partition discovery starts below what it matched.
    let globbed = dir.path().join("globbed");
    moto.run_ok(&[
        "run",
        "--source",
        "s3://land/*/date=2024-03-0[13]",
        "--sink",
        globbed.to_str().unwrap(),
        "--option",
        "multiLine=true",
        "--sql",
        "SELECT id, hour FROM source",
    ]);
    assert_eq!(
        table_rows(&globbed, "SELECT * FROM t").await,
        ["1|3", "2|3", "5|0"]
    );
}
