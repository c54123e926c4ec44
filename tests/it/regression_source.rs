//! Regression tests of reading the source, one per defect found by running Sluice from
//! outside, each named after the defect it pins.

use crate::common::*;
use crate::regression::{ago, land, one_error_line, ODD_NAMES};

/// Defect: file names that need escaping (`x[1].json`, `y 50%.json`, ...) failed with "the file
/// was listed for this batch but is gone", and the write-once record pinned the file, so every
/// restart failed the same way.
#[tokio::test]
async fn file_names_that_need_escaping_are_read() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let line = format!("{{\"time\":{},\"action\":{name:?}}}\n", 1_700_000_000 + i);
        land(&src, name, &line, ago(100 - i as u64));
    }
    // A zero-byte file holds no rows and is not taken (a marker, or a file being written).
    land(&src, "empty.json", "", ago(50));
    run_events(&src, &table, &["--option", "maxFilesPerTrigger=3"]);
    run_events(&src, &table, &[]);
    let mut want: Vec<String> = ODD_NAMES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(table_rows(&table, "SELECT action FROM t").await, want);
}

/// The same names on S3, beside a zero-byte "folder marker" key (`src/sub/`), which once was
/// listed as a file that could not be read.
#[tokio::test]
async fn file_names_that_need_escaping_are_read_on_s3() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("odd");
    let local = tempdir();
    let mut files = Vec::new();
    for (i, name) in ODD_NAMES.iter().enumerate() {
        let line = format!("{{\"time\":{},\"action\":{name:?}}}\n", 1_700_000_000 + i);
        let path = local.path().join(format!("{i}.json"));
        std::fs::write(&path, line).unwrap();
        files.push((name.to_string(), std::fs::read(&path).unwrap()));
    }
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(format!("http://127.0.0.1:{}", moto.port()))
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_bucket_name("odd")
        .build()
        .unwrap();
    use object_store::ObjectStoreExt;
    for (name, body) in files {
        let key = object_store::path::Path::parse(format!("src/{name}")).unwrap();
        store.put(&key, body.into()).await.unwrap();
    }
    // A folder marker: the key `src/sub/` with no bytes, written raw (object_store drops the
    // trailing slash), as S3 consoles create them.
    let url = format!("http://127.0.0.1:{}/odd/src/sub/", moto.port());
    let status = std::process::Command::new(std::env::var("SLUICE_PYTHON").unwrap_or("python3".into()))
        .args([
            "-c",
            "import sys, urllib.request as u; u.urlopen(u.Request(sys.argv[1], data=b'', method='PUT'))",
            &url,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let args = [
        "run",
        "--source",
        "s3://odd/src",
        "--schema",
        EVENTS_DDL,
        "--sink",
        "s3://odd/table",
        "--option",
        "maxFilesPerTrigger=3",
    ];
    // Small parts: each object's body is read from S3 in several parts.
    for _ in 0..2 {
        let out = moto
            .sluice()
            .args(args)
            .env("SLUICE_TEST_CHUNK_BYTES", "20")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let url = url::Url::parse("s3://odd/table").unwrap();
    let mut want: Vec<String> = ODD_NAMES.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(
        table_rows_at(url, moto.options(), "SELECT action FROM t").await,
        want
    );
}

/// Defect: a file was read and decoded whole, so a multi-GB file took its size in memory (and
/// more). Line-based files are read in parts cut at line ends; small parts here
/// (`SLUICE_TEST_CHUNK_BYTES`) make a 5,000-line file dozens of parts. Rows, line numbers of
/// malformed records, CSV headers and quoted line breaks must come out as from a whole read.
#[tokio::test]
async fn a_large_file_is_read_in_parts() {
    let dir = tempdir();
    let json = dir.path().join("json");
    let mut body = String::new();
    for i in 0..5000 {
        if i == 3776 {
            body.push_str("{\"time\": oops}\n");
        } else {
            body.push_str(&format!(
                "{{\"time\":{},\"action\":\"a{i}\"}}\n",
                1_700_000_000 + i
            ));
        }
    }
    land(&json, "big.json", &body, ago(10));
    let parts = |args: &[&str]| {
        sluice()
            .args(args)
            .env("SLUICE_TEST_CHUNK_BYTES", "4000")
            .output()
            .unwrap()
    };
    let table = dir.path().join("t_json");
    let (s, t) = (json.to_str().unwrap(), table.to_str().unwrap());
    let strict = dir.path().join("t_strict");
    let failfast = parts(&events_args(
        s,
        strict.to_str().unwrap(),
        &["--option", "mode=FAILFAST"],
    ));
    let err = one_error_line(&failfast);
    assert!(err.contains("big.json line 3777"), "{err}");
    let out = parts(&[
        "run",
        "--source",
        s,
        "--sink",
        t,
        "--schema",
        "time TIMESTAMP, action STRING, _corrupt_record STRING",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(
            &table,
            "SELECT count(*), count(DISTINCT action), max(_corrupt_record) FROM t"
        )
        .await,
        ["5000|4999|{\"time\": oops}"]
    );

    // CSV with a header, and quoted fields holding line breaks, cut into parts.
    let csv = dir.path().join("csv");
    let mut body = String::from("id,note\n");
    for i in 0..2000 {
        body.push_str(&format!("{i},\"line one\nline {i}\"\n"));
    }
    land(&csv, "big.csv", &body, ago(10));
    let table = dir.path().join("t_csv");
    let out = parts(&[
        "run",
        "--source",
        csv.to_str().unwrap(),
        "--format",
        "csv",
        "--option",
        "header=true",
        "--schema",
        "id INT, note STRING",
        "--sink",
        table.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(
            &table,
            "SELECT count(*), count(DISTINCT id), sum(id), min(length(note)) FROM t"
        )
        .await,
        ["2000|2000|1999000|15"]
    );
}

/// Defect: the spelling of TIMESTAMP values was sniffed from a file's first records, so a file
/// that began with ISO text read later epoch-second numbers as microseconds (1704067201 landed
/// as 1970-01-01T00:28:24Z), and one that began with numbers cut ISO text to whole seconds,
/// silently. Every value is now read as what it is; a text that is no time is a malformed
/// record, for the parse mode to handle.
#[tokio::test]
async fn a_file_mixing_iso_and_epoch_times_reads_each_as_what_it_is() {
    let dir = tempdir();
    let src = dir.path().join("src");
    land(
        &src,
        "iso-first.json",
        "{\"time\":\"2024-01-01T00:00:00.123456Z\",\"action\":\"a\"}\n{\"time\":1704067201,\"action\":\"b\"}\n",
        ago(20),
    );
    land(
        &src,
        "epoch-first.json",
        "{\"time\":1704067202,\"action\":\"c\"}\n{\"time\":\"2024-01-01T00:00:03.654321Z\",\"action\":\"d\"}\n",
        ago(10),
    );
    let table = dir.path().join("t");
    run_events(&src, &table, &[]);
    assert_eq!(
        table_rows(
            &table,
            "SELECT action, CAST(arrow_cast(time, 'Int64') AS VARCHAR) FROM t"
        )
        .await,
        [
            "a|1704067200123456",
            "b|1704067201000000",
            "c|1704067202000000",
            "d|1704067203654321"
        ]
    );
    // A text that is no time: FAILFAST names its line; PERMISSIVE keeps the row, time null.
    land(
        &src,
        "bad.json",
        "{\"time\":1704067204,\"action\":\"e\"}\n{\"time\":\"yesterday\",\"action\":\"f\"}\n",
        ago(5),
    );
    let strict = dir.path().join("strict");
    let out = run(&events_args(
        src.to_str().unwrap(),
        strict.to_str().unwrap(),
        &["--option", "mode=FAILFAST"],
    ));
    assert!(one_error_line(&out).contains("bad.json line 2"));
    let lenient = dir.path().join("lenient");
    run_ok(&[
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        "time TIMESTAMP, action STRING, _corrupt_record STRING",
        "--sink",
        lenient.to_str().unwrap(),
    ]);
    assert_eq!(
        table_rows(
            &lenient,
            "SELECT action, time IS NULL, _corrupt_record IS NOT NULL FROM t WHERE action IN ('e', 'f')"
        )
        .await,
        ["e|false|false", "f|true|true"]
    );
}

/// Regression: a file starting with a UTF-8 byte-order mark (as Windows tools write them) made
/// its first record malformed — with an inferred schema, a column named after the BOM too.
/// Spark (Jackson) reads the BOM as no text; so does Sluice now, in small and large files.
#[tokio::test]
async fn utf8_bom_at_file_start_kept_the_first_record_whole() {
    let dir = tempdir();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mut body = vec![0xEF, 0xBB, 0xBF];
    body.extend_from_slice(b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": 2, \"name\": \"b\"}\n");
    std::fs::write(src.join("bom.json"), &body).unwrap();
    for (name, chunk) in [("whole", "100000000"), ("parts", "16")] {
        let table = dir.path().join(name);
        let out = sluice()
            .args([
                "run",
                "--source",
                src.to_str().unwrap(),
                "--sink",
                table.to_str().unwrap(),
            ])
            .env("SLUICE_TEST_CHUNK_BYTES", chunk)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            table_rows(&table, "SELECT * FROM t").await,
            ["1|a", "2|b"],
            "{name}"
        );
    }
}
