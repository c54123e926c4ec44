//! Regression tests, one per defect found by running Sluice from outside, each named after the
//! defect it pins.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use deltalake::DeltaTableBuilder;

use crate::common::*;

/// Write a source file atomically (write, then rename) with a given modification time.
fn land(dir: &Path, name: &str, body: &str, mtime: SystemTime) {
    std::fs::create_dir_all(dir).unwrap();
    let tmp = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    std::fs::write(&tmp, body).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&tmp)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let target = dir.join(name);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::rename(&tmp, target).unwrap();
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// Run sluice, killing it (and failing) if it has not ended within `limit`.
fn run_within(args: &[&str], limit: Duration) -> Output {
    let mut child = sluice()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sluice {args:?} did not end within {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .take(5)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The table's newest version.
async fn table_version(table: &Path) -> u64 {
    let url = url::Url::from_directory_path(table).unwrap();
    let mut t = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
    t.load().await.unwrap();
    t.version().unwrap()
}

/// The one `error:` line of a failed run.
fn one_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "expected a failure: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

const HOURLY_COUNT: &str = "SELECT action, window(time, '1 hour') AS window, count(*) AS n \
                            FROM source GROUP BY action, window(time, '1 hour')";

/// Defect: JSON times with microseconds made an available-now append query loop forever,
/// committing an empty version per loop: the watermark was kept in milliseconds in the record
/// and compared with microseconds. Spark's watermark has millisecond precision
/// (`EventTimeWatermarkExec` adds `micros / 1000` to its statistics).
#[tokio::test]
async fn sub_millisecond_event_times_end_an_available_now_query() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "a.json",
        concat!(
            "{\"time\":\"2024-01-01T00:00:00.123456Z\",\"action\":\"a\"}\n",
            "{\"time\":\"2024-01-01T00:30:00.654321Z\",\"action\":\"a\"}\n",
            "{\"time\":\"2024-01-01T02:00:00.000001Z\",\"action\":\"b\"}\n",
        ),
        ago(10),
    );
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    let args = events_args(
        s,
        t,
        &[
            "--sql",
            HOURLY_COUNT,
            "--watermark",
            "time, 10 minutes",
            "--output-mode",
            "append",
        ],
    );
    let out = run_within(&args, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
    // Batch 0 and the no-data batch that moves the watermark: two commits after the creation.
    assert!(table_version(&table).await <= 2, "no empty commit loop");
    assert_eq!(
        table_rows(&table, "SELECT action, n FROM t").await,
        ["a|2"],
        "the window the watermark closed is written once"
    );
    // A second run has nothing to do and ends at once.
    let before = table_version(&table).await;
    let out = run_within(&args, Duration::from_secs(60));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(table_version(&table).await, before);
}

/// Defect: `--source a`, then `--source b` under the same (default) query name into one table
/// ended with exit 0 and never read `b/f.json`, because `a/f.json` had been seen.
#[tokio::test]
async fn another_source_under_a_query_name_is_refused() {
    let dir = tempdir();
    let (a, b, table) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("t"),
    );
    let line = "{\"time\":1700000000,\"action\":\"x\"}\n";
    land(&a, "f.json", line, ago(10));
    land(&b, "f.json", line, ago(10));
    let t = table.to_str().unwrap();
    run_ok(&events_args(a.to_str().unwrap(), t, &[]));
    // The same directory spelled another way is the same source.
    let spelled = format!("{}/../a/.", a.display());
    run_ok(&events_args(&spelled, t, &[]));
    let out = run(&events_args(b.to_str().unwrap(), t, &[]));
    let err = one_error_line(&out);
    assert!(err.contains("--query-name"), "{err}");
    assert!(err.contains(&format!("--source {}", a.display())), "{err}");
    // A changed format is refused as well.
    let out = run(&events_args(
        a.to_str().unwrap(),
        t,
        &["--format", "csv", "--option", "header=false"],
    ));
    assert!(one_error_line(&out).contains("--format json"));
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, ["1"]);
    // What the message advises works: the new source under its own name is read whole.
    run_ok(&events_args(
        b.to_str().unwrap(),
        t,
        &["--query-name", "from-b"],
    ));
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, ["2"]);
}

/// Defect: after `delta.setTransactionRetentionDuration` expired the txn of a query that had
/// committed a single batch, a restart read the whole source again (it only looked for the
/// record of batch 1).
#[tokio::test]
async fn an_expired_txn_after_one_batch_is_refused() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "1.json",
        "{\"time\":1700000000,\"action\":\"x\"}\n",
        ago(20),
    );
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    run_ok(&events_args(s, t, &[]));
    set_properties(
        &table,
        &[(
            "delta.setTransactionRetentionDuration",
            "interval 1 seconds",
        )],
    )
    .await;
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(query_commits(&table, "sluice-default").await.0, None);
    land(
        &src,
        "2.json",
        "{\"time\":1700000001,\"action\":\"y\"}\n",
        ago(10),
    );
    let out = run(&events_args(s, t, &[]));
    let err = one_error_line(&out);
    assert!(err.contains("holds no transaction record"), "{err}");
    assert!(
        !err.contains("new --query-name"),
        "advice must not duplicate: {err}"
    );
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, ["1"]);
}

/// Defect: a run with `maxFileAge=1h` forgot old files; the next run, with the default 7 days,
/// took them as new and wrote their rows a second time.
#[tokio::test]
async fn a_longer_max_file_age_later_does_not_reread_forgotten_files() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "old.json",
        "{\"time\":1700000000,\"action\":\"old\"}\n",
        ago(3 * 3600),
    );
    land(
        &src,
        "new.json",
        "{\"time\":1700000001,\"action\":\"new\"}\n",
        ago(60),
    );
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    run_ok(&events_args(s, t, &["--option", "maxFileAge=1h"]));
    land(
        &src,
        "newer.json",
        "{\"time\":1700000002,\"action\":\"newer\"}\n",
        ago(10),
    );
    run_ok(&events_args(s, t, &[]));
    assert_eq!(
        table_rows(&table, "SELECT action FROM t").await,
        ["new", "newer", "old"],
        "every file once"
    );
}

/// Defect: complete mode dropped rows behind the watermark. Spark's EventTimeWatermarkSuite
/// ("complete mode") counts a row older than the watermark, and reports the watermark from the
/// first batch on (the epoch before any data).
#[tokio::test]
async fn complete_mode_keeps_rows_behind_the_watermark() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    land(
        &src,
        "1.json",
        concat!(
            "{\"time\":\"2024-01-01T12:00:00Z\",\"action\":\"a\"}\n",
            "{\"time\":\"2024-01-01T13:00:00Z\",\"action\":\"a\"}\n",
        ),
        ago(20),
    );
    land(
        &src,
        "2.json",
        "{\"time\":\"2024-01-01T11:00:00Z\",\"action\":\"a\"}\n",
        ago(10),
    );
    let out = run_events(
        &src,
        &table,
        &[
            "--sql",
            HOURLY_COUNT,
            "--watermark",
            "time, 10 minutes",
            "--output-mode",
            "complete",
            "--option",
            "maxFilesPerTrigger=1",
            "--progress",
            "json",
        ],
    );
    let progress = progress_lines(&out);
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(
        progress[0]["eventTime"]["watermark"], "1970-01-01T00:00:00.000Z",
        "the watermark is reported from the first batch on"
    );
    assert_eq!(
        progress[1]["eventTime"]["watermark"],
        "2024-01-01T12:50:00.000Z"
    );
    for p in &progress {
        assert_eq!(p["stateOperators"][0]["numRowsDroppedByWatermark"], 0);
    }
    assert_eq!(
        table_rows(
            &table,
            "SELECT date_part('hour', \"window\"['start']), n FROM t"
        )
        .await,
        ["11|1", "12|1", "13|1"]
    );
}

/// Defect: `window(time, '365 days', '1 second')` asked for a 126 GB allocation and aborted the
/// process with a stack trace. The windows per row are bounded, with a one-line error.
#[test]
fn a_tiny_slide_is_refused_with_one_line() {
    let dir = tempdir();
    let table = dir.path().join("t");
    let sql = "SELECT window(time, '365 days', '1 second') AS w, count(*) AS n FROM source \
               GROUP BY window(time, '365 days', '1 second')";
    let events = fixture("events");
    let out = run(&events_args(
        events.to_str().unwrap(),
        table.to_str().unwrap(),
        &["--sql", sql, "--output-mode", "complete"],
    ));
    let err = one_error_line(&out);
    assert!(err.contains("31536000 windows"), "{err}");
    assert!(err.contains("at least '7700 seconds'"), "{err}");
    assert!(!table.join("_delta_log").exists());
}

/// Defect: `sluice vacuum` ran delta-rs's lite mode, which never deletes data files that no
/// commit added (the orphans of crashed or superseded attempts), though the README said it did.
/// Orphans young enough to belong to a batch in flight stay.
#[tokio::test]
async fn vacuum_removes_orphaned_data_files() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    copy_files(&fixture("events"), &src, 0..2);
    run_events(&src, &table, &[]);
    let data = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "parquet"))
        .unwrap();
    let old = table.join("part-00000-orphan-of-a-crash.snappy.parquet");
    let fresh = table.join("part-00000-batch-in-flight.snappy.parquet");
    std::fs::copy(&data, &old).unwrap();
    std::fs::copy(&data, &fresh).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(ago(3 * 24 * 3600))
        .unwrap();
    let before = table_rows(&table, "SELECT count(*) FROM t").await;
    let out = run_ok(&["vacuum", table.to_str().unwrap(), "--retention-hours", "0"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("deleted 1 files"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!old.exists(), "the old orphan is deleted");
    assert!(
        fresh.exists(),
        "a file younger than a day may be a batch in flight"
    );
    assert!(data.exists() && table.join("_sluice").is_dir());
    assert_eq!(table_rows(&table, "SELECT count(*) FROM t").await, before);
}

/// Defect: Sluice's periodic log cleanup deleted expired log files of a table whose owner set
/// `delta.enableExpiredLogCleanup=false` to keep its history. The control table, without the
/// property, does lose them (so the test can tell).
#[tokio::test]
async fn log_cleanup_respects_enable_expired_log_cleanup() {
    for keep in [true, false] {
        let dir = tempdir();
        let (src, table) = (dir.path().join("src"), dir.path().join("t"));
        let line = "{\"time\":1700000000,\"action\":\"x\"}\n";
        land(&src, "0000.json", line, ago(500));
        run_events(&src, &table, &[]);
        let mut properties = vec![("delta.logRetentionDuration", "interval 0 seconds")];
        if keep {
            properties.push(("delta.enableExpiredLogCleanup", "false"));
        }
        set_properties(&table, &properties).await;
        for i in 1..=100u64 {
            land(&src, &format!("{i:04}.json"), line, ago(400 - i));
        }
        run_events(&src, &table, &["--option", "maxFilesPerTrigger=1"]);
        assert_eq!(query_commits(&table, "sluice-default").await.0, Some(100));
        let first = table.join("_delta_log/00000000000000000000.json");
        assert_eq!(first.exists(), keep, "enableExpiredLogCleanup={}", !keep);
    }
}

/// Defect: several errors advised "start under a new --query-name", which reads the whole source
/// again into the same table: every row twice in an append table. The advice now names what
/// keeps the table exact (the original query, or a new table), and following it works.
#[tokio::test]
async fn advice_after_a_changed_query_cannot_duplicate() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    copy_files(&fixture("events"), &src, 0..2);
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    let windowed = |window: &str| {
        format!(
            "SELECT action, window(time, '{window}') AS window, count(*) AS n FROM source \
             GROUP BY action, window(time, '{window}')"
        )
    };
    let hourly = windowed("1 hour");
    let wm = ["--watermark", "time, 10 minutes", "--output-mode", "append"];
    let mut args = events_args(s, t, &["--sql", &hourly]);
    args.extend(wm);
    run_ok(&args);
    let daily = windowed("1 day");
    let mut changed = events_args(s, t, &["--sql", &daily]);
    changed.extend(wm);
    let stateless = events_args(s, t, &[]);
    for attempt in [changed, stateless] {
        let out = run(&attempt);
        let err = one_error_line(&out);
        assert!(!err.contains("query-name"), "{err}");
        assert!(err.contains("new table"), "{err}");
    }
    // The advice: the changed query into a new table.
    let other = dir.path().join("other");
    let mut moved = events_args(s, other.to_str().unwrap(), &["--sql", &daily]);
    moved.extend(wm);
    run_ok(&moved);
}

/// File names as landing zones hold them: brackets, percent signs (Spark writes `%3A`), `#`,
/// `~`, spaces, unicode, and a subfolder.
const ODD_NAMES: [&str; 8] = [
    "x[1].json",
    "y 50%.json",
    "z#2.json",
    "w~.json",
    "ts=12%3A00.json",
    "é 日本.json",
    "a{b}^`|.json",
    "sub dir/q[1] %41.json",
];

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

/// Defect: in update mode, a key that stopped satisfying HAVING kept its old row, so the table
/// no longer equalled the whole result. Checked for a plain key and for a window key.
#[tokio::test]
async fn update_mode_with_having_removes_keys_that_stop_matching() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let at = |minute: u32, action: &str| {
        format!("{{\"time\":\"2024-01-01T10:{minute:02}:00Z\",\"action\":\"{action}\"}}\n")
    };
    land(
        &src,
        "1.json",
        &(at(1, "a") + &at(2, "a") + &at(3, "b")),
        ago(30),
    );
    land(&src, "2.json", &(at(4, "a") + &at(5, "a")), ago(20));
    land(&src, "3.json", &at(6, "c"), ago(10));
    let queries = [
        (
            "SELECT action, count(*) AS n FROM source GROUP BY action HAVING count(*) < 3",
            "SELECT action, n FROM t",
        ),
        (
            "SELECT action, window(time, '1 hour') AS window, count(*) AS n FROM source \
             GROUP BY action, window(time, '1 hour') HAVING count(*) < 3",
            "SELECT action, n FROM t",
        ),
    ];
    for (i, (sql, read)) in queries.iter().enumerate() {
        let table = dir.path().join(format!("t{i}"));
        run_events(
            &src,
            &table,
            &[
                "--sql",
                sql,
                "--output-mode",
                "update",
                "--option",
                "maxFilesPerTrigger=1",
            ],
        );
        assert_eq!(
            table_rows(&table, read).await,
            ["b|1", "c|1"],
            "`a` reached 4 rows and no longer satisfies HAVING: {sql}"
        );
    }
}

/// Defect: records were not written durably on local disk, so a power loss could leave an
/// empty record for a batch that was never committed, and every start then failed on it as
/// "unreadable". Such a record is now discarded and its batch planned again (and records,
/// like every file of a local table, are fsynced before they count: `storage::durable`).
#[tokio::test]
async fn a_damaged_record_of_an_uncommitted_batch_is_planned_again() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    copy_files(&fixture("events"), &src, 0..1);
    run_events(&src, &table, &[]);
    let batches = table.join("_sluice/queries/default/batches");
    for damage in ["", "{\"format\":1,\"queryN"] {
        let next = query_commits(&table, "sluice-default").await.0.unwrap() + 1;
        std::fs::write(batches.join(format!("{next:020}.json")), damage).unwrap();
        copy_files(&fixture("events"), &src, 0..(next as usize + 1));
        run_events(&src, &table, &[]);
        assert_eq!(
            query_commits(&table, "sluice-default").await.0,
            Some(next),
            "the batch was planned again and committed"
        );
    }
    assert_eq!(
        table_rows(&table, "SELECT time, action FROM t").await,
        expected_events(&src, "SELECT time, action FROM events").await
    );
}

/// The rows of an [`HOURLY`] table as `action|start_us|end_us|n`, like [`expected_hourly`].
const HOURLY_ROWS: &str = "SELECT action || '|' || \
    CAST(CAST(date_part('epoch', \"window\"['start']) AS BIGINT) * 1000000 AS VARCHAR) || '|' || \
    CAST(CAST(date_part('epoch', \"window\"['end']) AS BIGINT) * 1000000 AS VARCHAR) || '|' || \
    CAST(n AS VARCHAR) FROM t";

/// Every file in a folder with its bytes and modification time.
fn files_of(dir: &Path) -> std::collections::BTreeMap<String, (Vec<u8>, SystemTime)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                (std::fs::read(&p).unwrap(), mtime),
            )
        })
        .collect()
}

/// Defect: state files were written with overwrite under names fixed by the batch id, so an
/// instance that re-ran batch N after another committed it rewrote N's committed state
/// (differently, for float sums). Instance A plans batch 1 and lingers; instance B re-runs it
/// from A's record and commits; A then goes on and loses the commit. No file of the committed
/// state may change, and the query resumes exact.
#[tokio::test]
async fn a_losing_instance_never_rewrites_committed_state() {
    use std::io::BufRead;
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    copy_files(&fixture("events"), &src, 0..1);
    let (s, t) = (src.to_str().unwrap(), table.to_str().unwrap());
    let args = events_args(s, t, &["--sql", HOURLY, "--output-mode", "complete"]);
    run_ok(&args);
    copy_files(&fixture("events"), &src, 0..2);
    let mut a = KillOnDrop(
        sluice()
            .args(&args)
            .env("SLUICE_TEST_PAUSE_MS", "3000")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(a.0.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("A announces its phases").unwrap();
        if line == "sluice-phase planned 1" {
            break;
        }
    }
    run_ok(&args);
    assert_eq!(query_commits(&table, "sluice-default").await.0, Some(1));
    let state = table.join("_sluice/queries/default/state");
    let committed = files_of(&state);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = a.0.wait().unwrap();
    assert!(!status.success());
    assert!(
        rest.iter()
            .any(|l| l.contains("another instance of query `default`")),
        "{rest:?}"
    );
    let after = files_of(&state);
    for (name, before) in &committed {
        assert_eq!(
            after.get(name),
            Some(before),
            "committed state file {name} was rewritten"
        );
    }
    copy_files(&fixture("events"), &src, 0..3);
    run_ok(&args);
    assert_eq!(
        table_rows(&table, HOURLY_ROWS).await,
        expected_hourly(&src, false).await
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
