//! Exactly once under SIGKILL: kill `sluice run` at many random moments, restart each time, and
//! compare the final table with a batch computation over the input.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let dir = tempdir();
    let src = dir.path().join("src");
    let table = dir.path().join("table");
    copy_files(&fixture("events"), &src, 0..50);
    let args = [
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
        "crashy",
    ];
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test seed {seed} (set SLUICE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Each phase lingers 60 ms and a kill comes within 350 ms of start, so a run advances about
    // one batch before it dies: the 50 batches outlast the 24 kills.
    let mut phases_hit = BTreeSet::new();
    let mut kills = 0;
    let mut finished = false;
    let mut attempts = 0;
    while kills < 24 && attempts < 200 {
        attempts += 1;
        let mut child = sluice()
            .args(args)
            .env("SLUICE_TEST_PAUSE_MS", "60")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let last_phase = Arc::new(Mutex::new(None::<String>));
        let reader = {
            let stderr = child.stderr.take().unwrap();
            let last_phase = last_phase.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("sluice-phase ") {
                        let phase = rest.split(' ').next().unwrap_or_default().to_string();
                        *last_phase.lock().unwrap() = Some(phase);
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
                assert!(status.success(), "sluice failed on its own (not killed)");
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
    let got = table_rows(&table, "SELECT time, action FROM t").await;
    let want = expected_events(&src, "SELECT time, action FROM events").await;
    assert_eq!(got.len(), want.len(), "row count differs from the input");
    assert_eq!(got, want);
    let (version, epochs) = query_commits(&table, "sluice-crashy").await;
    assert_eq!(version, Some(49), "50 files, 1 per batch: batches 0..=49");
    assert_eq!(
        epochs,
        (0..=49).collect::<Vec<_>>(),
        "txn versions must run 0..N-1 with no gap or repeat"
    );
}
