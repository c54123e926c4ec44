//! Regression tests, one per defect found by running Sluice from outside, each named after the
//! defect it pins.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use deltalake::DeltaTableBuilder;

use crate::common::*;

/// Write a source file atomically (write, then rename) with a given modification time.
pub(crate) fn land(dir: &Path, name: &str, body: &str, mtime: SystemTime) {
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

pub(crate) fn ago(secs: u64) -> SystemTime {
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
pub(crate) fn one_error_line(out: &Output) -> String {
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
pub(crate) const ODD_NAMES: [&str; 8] = [
    "x[1].json",
    "y 50%.json",
    "z#2.json",
    "w~.json",
    "ts=12%3A00.json",
    "é 日本.json",
    "a{b}^`|.json",
    "sub dir/q[1] %41.json",
];

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
