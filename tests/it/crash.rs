//! Exactly once under SIGKILL: kill `sluice run` at many random moments, restart each time, and
//! compare the final table with a batch computation over the input.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use crate::common::*;

/// Kill `sluice run` with `extra` flags at random moments over a 50-file ingest (one file per
/// batch), restarting each time, then let it finish.
fn ingest_with_kills(target: &Target<'_>, query: &str, extra: &[&str]) {
    ingest_with_kills_checking(target, query, extra, &mut || {});
}

/// [`ingest_with_kills`], calling `after_kill` after each kill.
fn ingest_with_kills_checking(
    target: &Target<'_>,
    query: &str,
    extra: &[&str],
    after_kill: &mut dyn FnMut(),
) {
    let mut args = events_args(
        &target.src,
        &target.table,
        &["--option", "maxFilesPerTrigger=1", "--query-name", query],
    );
    args.extend_from_slice(extra);
    let seed: u64 = std::env::var("SLUICE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash test {query} seed {seed} (set SLUICE_CRASH_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    // Each phase lingers 60 ms and a random kill comes within 350 ms of start, so a run advances
    // about one batch before it dies: the 50 batches outlast the kills (at least 24, more until
    // both the before-commit and after-commit moments were hit).
    let mut phases_hit = BTreeSet::new();
    let mut max_deadline_ms: u64 = 350;
    let mut kills = 0;
    let mut finished = false;
    let mut attempts = 0;
    let covered = |p: &BTreeSet<String>| p.contains("written") && p.contains("committed");
    while (kills < 24 || !covered(&phases_hit)) && kills < 60 && attempts < 200 {
        attempts += 1;
        // Most kills come at a random moment; every fourth one, while a protocol moment is
        // still uncovered, comes as soon as the run announces it (the phase lingers 60 ms, so
        // the kill lands inside it), so that a slow machine cannot leave it untested.
        let aim: Option<&str> = match attempts % 4 {
            0 if !phases_hit.contains("written") => Some("written"),
            0 if !phases_hit.contains("committed") => Some("committed"),
            _ => None,
        };
        let reached = Arc::new(Mutex::new(false));
        let mut child = target
            .sluice()
            .args(&args)
            .env("SLUICE_TEST_PAUSE_MS", "60")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let last_phase = Arc::new(Mutex::new(None::<String>));
        let committed_any = Arc::new(Mutex::new(false));
        let errors = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let stderr = child.stderr.take().unwrap();
            let reached = reached.clone();
            let aim = aim.map(str::to_string);
            let last_phase = last_phase.clone();
            let committed_any = committed_any.clone();
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(rest) = line.strip_prefix("sluice-phase ") {
                        let phase = rest.split(' ').next().unwrap_or_default().to_string();
                        if phase == "committed" {
                            *committed_any.lock().unwrap() = true;
                        }
                        if aim.as_deref() == Some(phase.as_str()) {
                            *reached.lock().unwrap() = true;
                        }
                        *last_phase.lock().unwrap() = Some(phase);
                    } else {
                        errors.lock().unwrap().push(line);
                    }
                }
            })
        };
        let deadline = match aim {
            Some(_) => Duration::from_secs(30),
            None => Duration::from_millis(rng.gen_range(30..max_deadline_ms)),
        };
        let started = Instant::now();
        let mut exited = None;
        while started.elapsed() < deadline && !*reached.lock().unwrap() {
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
                // A run that committed nothing (slow storage, a big restore) earns the next one
                // more time, and one that did gives it back, so that kills keep landing all
                // through the protocol whatever a batch costs.
                if *committed_any.lock().unwrap() {
                    max_deadline_ms = (max_deadline_ms * 2 / 3).max(350);
                } else {
                    max_deadline_ms = (max_deadline_ms * 3 / 2).min(5_000);
                }
                if let Some(p) = last_phase.lock().unwrap().clone() {
                    phases_hit.insert(p);
                }
                after_kill();
            }
        }
    }
    if !finished {
        // Finish the ingest without kills.
        let out = target.sluice().args(&args).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert!(
        kills >= 20,
        "only {kills} kills happened; the ingest finished too fast to test"
    );
    assert!(
        phases_hit.contains("written") && phases_hit.contains("committed"),
        "kills must land between data upload and commit, and just after a commit; hit {phases_hit:?}"
    );
}

async fn append_only_exact(target: &Target<'_>) {
    ingest_with_kills(target, "crashy", &[]);
    let got = target.rows("SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got.len(), want.len(), "row count differs from the input");
    assert_eq!(got, want);
    // 50 files, 1 per batch: batches 0..=49.
    target.assert_txns("crashy", 49).await;
}

#[tokio::test]
async fn sigkill_at_random_moments_loses_and_repeats_nothing() {
    let dir = tempdir();
    append_only_exact(&Target::local(dir.path(), 0..50)).await;
}

#[tokio::test]
async fn sigkill_on_s3_loses_and_repeats_nothing() {
    let Some(moto) = Moto::start() else { return };
    append_only_exact(&Target::s3(&moto, "crash", 0..50).await).await;
}

const SLIDING: &str =
    "SELECT action, window(time, '1 hour', '30 minutes') AS window, count(*) AS n \
                       FROM source GROUP BY action, window(time, '1 hour', '30 minutes')";

const WINDOW_ROWS: &str = "SELECT action, \"window\"['start'], \"window\"['end'], n FROM t";

async fn windowed_exact(target: &Target<'_>, mode: &str) {
    windowed_exact_with(target, mode, &[]).await;
}

async fn windowed_exact_with(target: &Target<'_>, mode: &str, flags: &[&str]) {
    let (sql, sliding, closed, last) = match mode {
        "complete" => (HOURLY, false, false, 49),
        "update" => (SLIDING, true, false, 50),
        _ => (HOURLY, false, true, 50),
    };
    let mut extra = vec!["--sql", sql, "--output-mode", mode];
    if mode != "complete" {
        extra.extend(["--watermark", "time, 10 minutes"]);
    }
    extra.extend_from_slice(flags);
    ingest_with_kills(target, mode, &extra);
    assert_eq!(
        target.rows(WINDOW_ROWS).await,
        expected_events(
            &fixture("events"),
            &windowed_sql(
                sliding,
                closed,
                "action, ws, ws + INTERVAL '1 hour', count(*)"
            )
        )
        .await
    );
    // With a watermark, a last no-data batch moves it past the end of the input.
    target.assert_txns(mode, last).await;
}

#[tokio::test]
async fn sigkill_in_complete_mode() {
    let dir = tempdir();
    windowed_exact(&Target::local(dir.path(), 0..50), "complete").await;
}

#[tokio::test]
async fn sigkill_in_update_mode() {
    let dir = tempdir();
    windowed_exact(&Target::local(dir.path(), 0..50), "update").await;
}

#[tokio::test]
async fn sigkill_in_append_mode() {
    let dir = tempdir();
    windowed_exact(&Target::local(dir.path(), 0..50), "append").await;
}

#[tokio::test]
async fn sigkill_on_s3_in_update_mode() {
    let Some(moto) = Moto::start() else { return };
    windowed_exact(&Target::s3(&moto, "crash", 0..50).await, "update").await;
}

#[tokio::test]
async fn sigkill_on_s3_in_complete_mode() {
    let Some(moto) = Moto::start() else { return };
    windowed_exact(&Target::s3(&moto, "crash", 0..50).await, "complete").await;
}

#[tokio::test]
async fn sigkill_on_s3_in_append_mode() {
    let Some(moto) = Moto::start() else { return };
    windowed_exact(&Target::s3(&moto, "crash", 0..50).await, "append").await;
}

/// The txn version of `app` in a local table, from its commit files (-1: none).
fn committed_version(table: &std::path::Path, app: &str) -> i64 {
    let mut version = -1;
    for entry in std::fs::read_dir(table.join("_delta_log"))
        .into_iter()
        .flatten()
    {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        // A commit being written may be cut; its lines are read as far as they parse.
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if action["txn"]["appId"] == app {
                version = version.max(action["txn"]["version"].as_i64().unwrap_or(-1));
            }
        }
    }
    version
}

/// The files of every regular file below `dir`, relative to it.
fn files_below(dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(dir)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_string(),
                );
            }
        }
    }
    out
}

/// cleanSource=archive under SIGKILL (Spark's `FileStreamSource` cleaner): after every kill,
/// the files of the planned but uncommitted batch are all still in the source; at the end every
/// file was read once (table exact) and moved to the archive under its whole path, the source
/// is empty, and nothing was lost or copied twice.
#[tokio::test]
async fn sigkill_with_clean_source_moves_only_committed_files() {
    let dir = tempdir();
    let target = Target::local(dir.path(), 0..50);
    let src = target.local_src.clone();
    let table = std::path::PathBuf::from(&target.table);
    let archive = dir.path().join("archive");
    let archive_option = format!("sourceArchiveDir={}", archive.display());
    let all = files_below(&src);
    let mut checks = 0;
    let mut check = || {
        let committed = committed_version(&table, "sluice-cleaner");
        let planned = table.join(format!(
            "_sluice/queries/cleaner/batches/{:020}.json",
            committed + 1
        ));
        let archived = files_below(&archive);
        if let Ok(text) = std::fs::read_to_string(&planned) {
            let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
                return; // a record being written
            };
            for file in record["files"].as_array().unwrap() {
                let name = file["path"].as_str().unwrap();
                assert!(
                    src.join(name).exists(),
                    "{name} of uncommitted batch {} was cleaned",
                    committed + 1
                );
            }
            checks += 1;
        }
        // Nothing lost: every file is in the source or the archive.
        let in_source = files_below(&src);
        assert_eq!(
            all.iter()
                .filter(|f| in_source.contains(*f)
                    || archived.iter().any(|a| a.ends_with(&format!("/{f}"))))
                .count(),
            all.len()
        );
    };
    ingest_with_kills_checking(
        &target,
        "cleaner",
        &[
            "--option",
            "cleanSource=archive",
            "--option",
            &archive_option,
        ],
        &mut check,
    );
    assert!(checks > 0, "no kill landed while a batch was planned");
    let got = target.rows("SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got, want);
    target.assert_txns("cleaner", 49).await;
    assert!(files_below(&src).is_empty(), "{:?}", files_below(&src));
    let moved_to = archive.join(src.strip_prefix("/").unwrap());
    assert_eq!(files_below(&moved_to), all);
    for f in &all {
        assert_eq!(
            std::fs::read(moved_to.join(f)).unwrap(),
            std::fs::read(fixture("events").join(f)).unwrap()
        );
    }
}

/// cleanSource=delete on S3 under SIGKILL: the table is exact and the source prefix empty.
#[tokio::test]
async fn sigkill_on_s3_with_clean_source_delete() {
    let Some(moto) = Moto::start() else { return };
    let target = Target::s3(&moto, "cleaner", 0..50).await;
    ingest_with_kills(&target, "cleaner", &["--option", "cleanSource=delete"]);
    let got = target.rows("SELECT time, action FROM t").await;
    let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
    assert_eq!(got, want);
    target.assert_txns("cleaner", 49).await;
    assert_eq!(moto.keys("cleaner", "src").await, Vec::<String>::new());
}

/// Automatic compaction after every few batches, beside each output mode, under SIGKILL: the
/// table is exact, each batch committed once, the compactions are `dataChange=false` commits of
/// their own, and the live files stay few.
async fn compacted_exact(mode: &str) {
    let dir = tempdir();
    let target = Target::local(dir.path(), 0..50);
    let flags = ["--auto-compact-min-files", "4"];
    if mode == "append" {
        ingest_with_kills(&target, "crashy", &flags);
        let got = target.rows("SELECT time, action FROM t").await;
        let want = expected_events(&fixture("events"), "SELECT time, action FROM events").await;
        assert_eq!(got, want);
        target.assert_txns("crashy", 49).await;
    } else {
        windowed_exact_with(&target, mode, &flags).await;
    }
    let table = std::path::PathBuf::from(&target.table);
    let mut optimized = 0;
    for entry in std::fs::read_dir(table.join("_delta_log")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        if !text.contains("\"operation\":\"OPTIMIZE\"") {
            continue;
        }
        optimized += 1;
        for line in text.lines() {
            let action: serde_json::Value = serde_json::from_str(line).unwrap();
            for kind in ["add", "remove"] {
                if let Some(a) = action.get(kind) {
                    assert_eq!(a["dataChange"], false, "{line}");
                }
            }
            assert!(
                action.get("txn").is_none(),
                "a compaction carries no txn: {line}"
            );
        }
    }
    let live = inspect_json(&table, 0)["numFiles"].as_u64().unwrap();
    if mode == "complete" {
        // Each batch rewrites the whole result: one file, nothing to compact.
        assert!(live <= 2, "{live} live files");
    } else {
        assert!(optimized >= 5, "only {optimized} compactions in 50 batches");
        assert!(live <= 4, "{live} live files after automatic compaction");
    }
}

#[tokio::test]
async fn sigkill_with_automatic_compaction_in_append_mode() {
    compacted_exact("append").await;
}

#[tokio::test]
async fn sigkill_with_automatic_compaction_in_update_mode() {
    compacted_exact("update").await;
}

#[tokio::test]
async fn sigkill_with_automatic_compaction_in_complete_mode() {
    compacted_exact("complete").await;
}
