//! Exactly once under SIGKILL: kill `sluice run` at many random moments, restart each time, and
//! compare the final table with a batch computation over the input.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

/// Kill `sluice run` with `extra` flags at 24 random moments over a 50-file ingest (one file
/// per batch), restarting each time, then let it finish. Returns the table directory (inside
/// `dir`) and the source directory.
fn ingest_with_kills(dir: &Path, query: &str, extra: &[&str]) -> (PathBuf, PathBuf) {
    let src = dir.join("src");
    let table = dir.join("table");
    copy_files(&fixture("events"), &src, 0..50);
    let mut args = vec![
        "run",
        "--source",
        src.to_str().unwrap(),
        "--schema",
        EVENTS_DDL,
        "--sink",
        table.to_str().unwrap(),
        "--option",
        "maxFilesPerTrigger=1",
        "--query-name",
        query,
    ];
    args.extend_from_slice(extra);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test {query} seed {seed} (set SLUICE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Each phase lingers 60 ms and a kill comes within 350 ms of start, so a run advances about
    // one batch before it dies: the 50 batches outlast the kills (at least 24, more until both
    // the before-commit and after-commit moments were hit).
    let mut phases_hit = BTreeSet::new();
    let mut kills = 0;
    let mut finished = false;
    let mut attempts = 0;
    let covered = |p: &BTreeSet<String>| p.contains("written") && p.contains("committed");
    while (kills < 24 || !covered(&phases_hit)) && kills < 60 && attempts < 200 {
        attempts += 1;
        let mut child = sluice()
            .args(&args)
            .env("SLUICE_TEST_PAUSE_MS", "60")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let last_phase = Arc::new(Mutex::new(None::<String>));
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let stderr = child.stderr.take().unwrap();
            let last_phase = last_phase.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("sluice-phase ") {
                        let phase = rest.split(' ').next().unwrap_or_default().to_string();
                        *last_phase.lock().unwrap() = Some(phase);
                    } else {
                        errors.lock().unwrap().push(line);
                    }
                }
            })
        };
        let deadline = Duration::from_millis(rng.gen_range(30..350));
        let started = Instant::now();
        let mut exited = None;
        while started.elapsed() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                exited = Some(status);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        match exited {
            Some(status) => {
                reader.join().unwrap();
                assert!(
                    status.success(),
                    "sluice failed on its own (not killed): {:?}",
                    errors.lock().unwrap()
                );
                finished = true;
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                reader.join().unwrap();
                kills += 1;
                if let Some(p) = last_phase.lock().unwrap().clone() {
                    phases_hit.insert(p);
                }
            }
        }
    }
    if !finished {
        // Finish the ingest without kills.
        run_ok(&args);
    }
    assert!(
        kills >= 20,
        "only {kills} kills happened; the ingest finished too fast to test"
    );
    assert!(
        phases_hit.contains("written") && phases_hit.contains("committed"),
        "kills must land between data upload and commit, and just after a commit; hit {phases_hit:?}"
    );
    (table, src)
}

async fn assert_txns(table: &Path, query: &str, last: i64) {
    let (version, epochs) = query_commits(table, &format!("sluice-{query}")).await;
    assert_eq!(version, Some(last));
    assert_eq!(
        epochs,
        (0..=last).collect::<Vec<_>>(),
        "txn versions must run 0..N-1 with no gap or repeat"
    );
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let dir = tempdir();
    let (table, src) = ingest_with_kills(dir.path(), "crashy", &[]);
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got.len(), want.len(), "row count differs from the input");
    assert_eq!(got, want);
    // 50 files, 1 per batch: batches 0..=49.
    assert_txns(&table, "crashy", 49).await;
}

const HOURLY: &str = "SELECT action, window(time, '1 hour') AS window, count(*) AS n FROM source \
                      GROUP BY action, window(time, '1 hour')";
const SLIDING: &str =
    "SELECT action, window(time, '1 hour', '30 minutes') AS window, count(*) AS n \
                       FROM source GROUP BY action, window(time, '1 hour', '30 minutes')";

fn expected_windows(sliding: bool, closed: bool) -> String {
    let starts = if sliding {
        "SELECT action, time, date_bin(INTERVAL '30 minutes', time, TIMESTAMP '1970-01-01T00:00:00Z') AS ws FROM events \
         UNION ALL SELECT action, time, date_bin(INTERVAL '30 minutes', time, TIMESTAMP '1970-01-01T00:00:00Z') - INTERVAL '30 minutes' AS ws FROM events"
    } else {
        "SELECT action, time, date_bin(INTERVAL '1 hour', time, TIMESTAMP '1970-01-01T00:00:00Z') AS ws FROM events"
    };
    let filter = if closed {
        "WHERE ws + INTERVAL '1 hour' <= (SELECT max(time) FROM events) - INTERVAL '10 minutes'"
    } else {
        ""
    };
    format!("SELECT action, ws, ws + INTERVAL '1 hour', count(*) FROM ({starts}) {filter} GROUP BY action, ws")
}

const WINDOW_ROWS: &str = "SELECT action, \"window\"['start'], \"window\"['end'], n FROM t";

#[tokio::test]
async fn sigkill_in_complete_mode() {
    let dir = tempdir();
    let (table, src) = ingest_with_kills(
        dir.path(),
        "complete",
        &["--sql", HOURLY, "--output-mode", "complete"],
    );
    assert_eq!(
        table_rows(&table, WINDOW_ROWS).await,
        expected_events(&src, &expected_windows(false, false)).await
    );
    assert_txns(&table, "complete", 49).await;
}

#[tokio::test]
async fn sigkill_in_update_mode() {
    let dir = tempdir();
    let (table, src) = ingest_with_kills(
        dir.path(),
        "update",
        &[
            "--sql",
            SLIDING,
            "--output-mode",
            "update",
            "--watermark",
            "time, 10 minutes",
        ],
    );
    assert_eq!(
        table_rows(&table, WINDOW_ROWS).await,
        expected_events(&src, &expected_windows(true, false)).await
    );
    // 50 batches of files, then the no-data batch that moves the watermark past the end.
    assert_txns(&table, "update", 50).await;
}

#[tokio::test]
async fn sigkill_in_append_mode() {
    let dir = tempdir();
    let (table, src) = ingest_with_kills(
        dir.path(),
        "append",
        &[
            "--sql",
            HOURLY,
            "--output-mode",
            "append",
            "--watermark",
            "time, 10 minutes",
        ],
    );
    assert_eq!(
        table_rows(&table, WINDOW_ROWS).await,
        expected_events(&src, &expected_windows(false, true)).await
    );
    // 50 batches of files, then the no-data batch that moves the watermark past the end.
    assert_txns(&table, "append", 50).await;
}
