//! Compressed source files, read by their extension as Spark's file sources do (Hadoop's codec
//! factory picks the codec from the name): JSON lines, CSV and text, locally and on S3, given a
//! schema or inferring one, read in parts when their content is large.

use std::io::Write;
use std::path::Path;

use crate::common::*;

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 1).unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Hadoop's block framing (BlockCompressorStream) around raw Snappy or LZ4 blocks.
fn hadoop(data: &[u8], lz4: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for block in data.chunks(256 * 1024) {
        out.extend((block.len() as u32).to_be_bytes());
        let packed = if lz4 {
            lz4_flex::block::compress(block)
        } else {
            snap::raw::Encoder::new().compress_vec(block).unwrap()
        };
        out.extend((packed.len() as u32).to_be_bytes());
        out.extend(packed);
    }
    out
}

/// Events `from..to` as JSON lines (epoch-second times).
fn events(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| format!("{{\"time\":{},\"action\":\"a{i}\"}}\n", 1_700_000_000 + i))
        .collect()
}

/// Land a file atomically.
fn land(dir: &Path, name: &str, body: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// The JSON-lines landing zone of these tests: 7 files, 6 codecs and a plain one.
fn json_zone(dir: &Path) {
    land(dir, "a.json.gz", &gzip(events(0, 1000).as_bytes()));
    land(dir, "b.json.zst", &zstd(events(1000, 2000).as_bytes()));
    land(dir, "c.json.bz2", &bzip2(events(2000, 3000).as_bytes()));
    land(dir, "d.json.xz", &xz(events(3000, 4000).as_bytes()));
    land(dir, "e.json", events(4000, 5000).as_bytes());
    land(
        dir,
        "f.json.snappy",
        &hadoop(events(5000, 6000).as_bytes(), false),
    );
    land(
        dir,
        "g.json.lz4",
        &hadoop(events(6000, 7000).as_bytes(), true),
    );
}

const COUNTS: &str = "SELECT count(*), count(DISTINCT action), min(time), max(time) FROM t";
const WANT: &str = "7000|7000|2023-11-14T22:13:20Z|2023-11-15T00:09:59Z";

#[tokio::test]
async fn compressed_json_lines_are_read_by_extension() {
    let dir = tempdir();
    let src = dir.path().join("src");
    json_zone(&src);
    // Given a schema, in small parts (each file's content is several parts), and inferred.
    for (name, extra, parts) in [
        ("given", vec!["--schema", EVENTS_DDL], "200"),
        ("given-whole", vec!["--schema", EVENTS_DDL], "100000000"),
        ("inferred", vec![], "100000000"),
    ] {
        let table = dir.path().join(name);
        let mut args = vec![
            "run",
            "--source",
            src.to_str().unwrap(),
            "--sink",
            table.to_str().unwrap(),
        ];
        args.extend(extra);
        let out = sluice()
            .args(&args)
            .env("SLUICE_TEST_CHUNK_BYTES", parts)
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let read = if name == "inferred" {
            // Inferred: `time` is a number (epoch seconds), as Spark infers it.
            "SELECT count(*), count(DISTINCT action), min(time), max(time) FROM t"
        } else {
            COUNTS
        };
        let got = table_rows(&table, read).await;
        if name == "inferred" {
            assert_eq!(got, ["7000|7000|1700000000|1700006999"], "{name}");
        } else {
            assert_eq!(got, [WANT], "{name}");
        }
    }
}

#[tokio::test]
async fn compressed_csv_and_text_are_read_by_extension() {
    let dir = tempdir();
    let csv = dir.path().join("csv");
    let mut body = String::from("id,note\n");
    for i in 0..3000 {
        body.push_str(&format!("{i},\"two\nlines {i}\"\n"));
    }
    land(&csv, "a.csv.gz", &gzip(body.as_bytes()));
    land(&csv, "b.csv.zst", &zstd(body.as_bytes()));
    let table = dir.path().join("t_csv");
    let out = sluice()
        .args([
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
        ])
        .env("SLUICE_TEST_CHUNK_BYTES", "500")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        table_rows(
            &table,
            "SELECT count(*), count(DISTINCT id), sum(id) FROM t"
        )
        .await,
        ["6000|3000|8997000"]
    );

    let text = dir.path().join("text");
    land(&text, "log.txt.bz2", &bzip2(b"first line\nsecond line\n"));
    let table = dir.path().join("t_text");
    run_ok(&[
        "run",
        "--source",
        text.to_str().unwrap(),
        "--format",
        "text",
        "--sink",
        table.to_str().unwrap(),
    ]);
    assert_eq!(
        table_rows(&table, "SELECT value FROM t").await,
        ["first line", "second line"]
    );
}

#[tokio::test]
async fn compressed_files_on_s3_are_read_by_extension() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("packed");
    let local = tempdir();
    json_zone(local.path());
    let files: Vec<_> = std::fs::read_dir(local.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    moto.upload("packed", "src", &files).await;
    for parts in ["300", "100000000"] {
        let table = format!("s3://packed/t{parts}");
        let out = moto
            .sluice()
            .args([
                "run",
                "--source",
                "s3://packed/src",
                "--schema",
                EVENTS_DDL,
                "--sink",
                &table,
            ])
            .env("SLUICE_TEST_CHUNK_BYTES", parts)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let url = url::Url::parse(&table).unwrap();
        assert_eq!(table_rows_at(url, moto.options(), COUNTS).await, [WANT]);
    }
}

/// A file that is not what its extension says stops the query with one line; nothing of the
/// batch is committed, and replacing the file as the message says lets the query go on.
#[tokio::test]
async fn a_file_that_is_not_its_codec_is_one_error_line() {
    let dir = tempdir();
    let src = dir.path().join("src");
    land(&src, "a.json.gz", b"not really gzip");
    let table = dir.path().join("t");
    let args = events_args(src.to_str().unwrap(), table.to_str().unwrap(), &[]);
    let out = run(&args);
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("a.json.gz"),
        "{err}"
    );
    assert!(
        err.contains("replace it with a readable file of the same name"),
        "{err}"
    );
    land(&src, "a.json.gz", &gzip(events(0, 10).as_bytes()));
    run_ok(&args);
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, ["10"]);
}
