//! How a running query finds new files between full listings (`src/source/candidates.rs`):
//! incremental listing (Auto Loader's `useIncrementalListing`) on local disk and on S3, with
//! its safety-net full listing every `backfillInterval`; and a local source's arrival events.
//! Each file holds a distinct number of rows, so a batch's `numInputRows` says which file it
//! read, and the table's count per tag says each was read exactly once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::*;

/// A running query whose progress reports are read as they come.
struct Running {
    child: Child,
    reports: Receiver<Value>,
    got: Vec<Value>,
}

impl Running {
    fn start(mut cmd: Command) -> Running {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, reports) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(p) if p.get("batchId").is_some() => {
                        if tx.send(p).is_err() {
                            return;
                        }
                    }
                    _ => eprintln!("sluice: {line}"),
                }
            }
        });
        Running {
            child,
            reports,
            got: Vec::new(),
        }
    }

    /// The first report (old or new) that `pred` holds for.
    fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(p) = self.got.iter().find(|p| pred(p)) {
                return p.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(p) => self.got.push(p),
                Err(_) => panic!("no batch {what}; reports: {:#?}", self.got),
            }
        }
    }

    fn stop(mut self) -> Vec<Value> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "a clean stop exits 0");
        self.got.extend(self.reports.try_iter());
        std::mem::take(&mut self.got)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `rows` events tagged `tag`.
fn events(tag: &str, rows: usize) -> Vec<u8> {
    (0..rows)
        .map(|i| format!("{{\"time\":{},\"action\":\"{tag}\"}}\n", 1_700_000_000 + i))
        .collect::<String>()
        .into_bytes()
}

fn discovery(p: &Value) -> &Value {
    &p["sources"][0]["discovery"]
}

fn rows_in(p: &Value) -> u64 {
    p["numInputRows"].as_u64().unwrap_or(0)
}

/// A file lands in a local directory as writers should: written aside, renamed in.
fn land_local(dir: &Path, name: &str, data: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = dir.join(format!(".{}.tmp", name.replace('/', "_")));
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

const COUNT_BY_TAG: &str = "SELECT action, count(*) FROM t GROUP BY action ORDER BY action";

/// The incremental-listing scenario on any store: `land(name, data)` puts a file in the
/// source. Files b (2 rows) and c (3) are there at start; d (11) lands after them in name
/// order and is found by an incremental listing of one name; a (7) lands out of order, so only
/// the safety-net full listing finds it — exactly once.
async fn incremental_scenario(
    mut cmd: Command,
    land: impl AsyncFn(&str, &[u8]),
    rows: impl AsyncFn(&str) -> Vec<String>,
) {
    land("b.json", &events("b", 2)).await;
    land("c.json", &events("c", 3)).await;
    cmd.args([
        "--trigger",
        "200ms",
        "--progress",
        "json",
        "--option",
        "useIncrementalListing=true",
        "--option",
        "useNotifications=false",
        "--option",
        "backfillInterval=10s",
    ]);
    let mut query = Running::start(cmd);
    let first = query.wait_for("reading b and c", |p| rows_in(p) == 5);
    assert_eq!(discovery(&first)["mode"], "incremental");
    assert_eq!(
        discovery(&first)["fullListing"],
        true,
        "a start lists everything"
    );
    land("d.json", &events("d", 11)).await;
    let d = query.wait_for("reading d", |p| rows_in(p) == 11);
    assert_eq!(discovery(&d)["fullListing"], false);
    assert_eq!(
        discovery(&d)["numFilesListed"],
        1,
        "an incremental listing lists only names after the last one: {d:#}"
    );
    land("a.json", &events("a", 7)).await;
    let a = query.wait_for("reading a", |p| rows_in(p) == 7);
    assert_eq!(
        discovery(&a)["fullListing"],
        true,
        "a file named before the last name listed is found by the safety net: {a:#}"
    );
    let reports = query.stop();
    assert_eq!(
        reports.iter().map(rows_in).sum::<u64>(),
        23,
        "every file read once: {reports:#?}"
    );
    assert_eq!(rows(COUNT_BY_TAG).await, ["a|7", "b|2", "c|3", "d|11"]);
}

#[tokio::test]
async fn incremental_listing_on_local_disk_finds_an_out_of_order_file_at_the_safety_net() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    std::fs::create_dir_all(&src).unwrap();
    let mut cmd = sluice();
    cmd.args(events_args(
        src.to_str().unwrap(),
        table.to_str().unwrap(),
        &[],
    ));
    incremental_scenario(
        cmd,
        async |name: &str, data: &[u8]| land_local(&src, name, data),
        async |sql| table_rows(&table, sql).await,
    )
    .await;
}

#[tokio::test]
async fn incremental_listing_on_s3_finds_an_out_of_order_file_at_the_safety_net() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("inc");
    let mut cmd = moto.sluice();
    cmd.args(events_args("s3://inc/src", "s3://inc/t", &[]));
    let land = async |name: &str, data: &[u8]| {
        moto.put("inc", &format!("src/{name}"), data.to_vec()).await
    };
    let url = url::Url::parse("s3://inc/t").unwrap();
    incremental_scenario(cmd, land, async |sql| {
        table_rows_at(url.clone(), moto.options(), sql).await
    })
    .await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn arrival_events_find_new_files_without_listing_the_source() {
    let dir = tempdir();
    let (src, table) = (dir.path().join("src"), dir.path().join("t"));
    for i in 0..200 {
        land_local(&src, &format!("old-{i:03}.json"), &events("old", 1));
    }
    let mut cmd = sluice();
    cmd.args(events_args(
        src.to_str().unwrap(),
        table.to_str().unwrap(),
        &["--trigger", "200ms", "--progress", "json"],
    ));
    let mut query = Running::start(cmd);
    let first = query.wait_for("reading the first 200 files", |p| rows_in(p) == 200);
    assert_eq!(discovery(&first)["mode"], "arrivals");
    assert_eq!(discovery(&first)["fullListing"], true);
    // Renamed in with an odd name; written in a folder made after the start; linked in (a
    // link is only ever "created": no close, no rename).
    land_local(&src, "x[1].json", &events("x", 13));
    land_local(&src, "late/n.json", &events("n", 17));
    let outside = dir.path().join("linked.json");
    std::fs::write(&outside, events("l", 19)).unwrap();
    std::fs::hard_link(&outside, src.join("linked.json")).unwrap();
    let total = 200 + 13 + 17 + 19;
    let deadline = Instant::now() + Duration::from_secs(60);
    while query.got.iter().map(rows_in).sum::<u64>() < total {
        assert!(Instant::now() < deadline, "files missed: {:#?}", query.got);
        if let Ok(p) = query.reports.recv_timeout(Duration::from_millis(500)) {
            query.got.push(p);
        }
    }
    let reports = query.stop();
    for p in &reports[1..] {
        let d = discovery(p);
        assert_eq!(d["mode"], "arrivals");
        assert_eq!(d["fullListing"], false, "{p:#}");
        assert!(
            d["numFilesListed"].as_u64().unwrap() <= 3,
            "only the files that landed are looked up, not the 200 old ones: {p:#}"
        );
    }
    assert_eq!(reports.iter().map(rows_in).sum::<u64>(), total);
    assert_eq!(
        table_rows(&table, COUNT_BY_TAG).await,
        ["l|19", "n|17", "old|200", "x|13"]
    );
}

#[tokio::test]
async fn s3_event_notifications_in_an_sqs_queue_find_new_files_without_listing() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("notify");
    let queue = moto.event_queue("notify", "landing").await;
    for i in 0..30 {
        moto.put("notify", &format!("src/old-{i:02}.json"), events("old", 1))
            .await;
    }
    let mut cmd = moto.sluice();
    let queue_option = format!("queueUrl={queue}");
    cmd.args(events_args(
        "s3://notify/src",
        "s3://notify/t",
        &[
            "--trigger",
            "200ms",
            "--progress",
            "json",
            "--option",
            &queue_option,
        ],
    ));
    let mut query = Running::start(cmd);
    let first = query.wait_for("reading the first 30 files", |p| rows_in(p) == 30);
    assert_eq!(discovery(&first)["mode"], "queue");
    assert_eq!(
        discovery(&first)["fullListing"],
        true,
        "a start lists everything"
    );
    // The 30 messages of the files read at start are drained (their files are not new).
    moto.put("notify", "src/late/x[1].json", events("x", 13))
        .await;
    let x = query.wait_for("reading the announced file", |p| rows_in(p) == 13);
    assert_eq!(discovery(&x)["fullListing"], false, "{x:#}");
    assert!(
        discovery(&x)["numFilesListed"].as_u64().unwrap() <= 31,
        "{x:#}"
    );
    moto.put("notify", "src/y.json", events("y", 17)).await;
    let y = query.wait_for("reading the second announced file", |p| rows_in(p) == 17);
    assert_eq!(discovery(&y)["fullListing"], false);
    assert_eq!(
        discovery(&y)["numFilesListed"],
        1,
        "only the announced key is a candidate, not the 32 objects of the source: {y:#}"
    );
    let reports = query.stop();
    assert_eq!(reports.iter().map(rows_in).sum::<u64>(), 30 + 13 + 17);
    let url = url::Url::parse("s3://notify/t").unwrap();
    assert_eq!(
        table_rows_at(url, moto.options(), COUNT_BY_TAG).await,
        ["old|30", "x|13", "y|17"]
    );
}

/// Exactly once whatever finds the files: seeded runs under arrival events, incremental
/// listing (with a short safety-net interval) or full listing, drawn per run, while files land
/// — in name order and out of it, in new folders — and each run is SIGKILLed at a random
/// moment; a last available-now run reads what is left. Every file's rows are in the table
/// once, and every txn epoch is there once. `SLUICE_SEED=N` replays one seed.
#[tokio::test]
async fn discovery_modes_under_kills_read_every_file_once() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let seeds: Vec<u64> = match std::env::var("SLUICE_SEED") {
        Ok(s) => vec![s.parse().unwrap()],
        Err(_) => vec![11, 12],
    };
    for seed in seeds {
        eprintln!("discovery seed {seed} (SLUICE_SEED={seed} replays it)");
        let mut rng = StdRng::seed_from_u64(seed);
        let dir = tempdir();
        let (src, table) = (dir.path().join("src"), dir.path().join("t"));
        std::fs::create_dir_all(&src).unwrap();
        let mut want: Vec<String> = Vec::new();
        let mut index = 0;
        let mut land = |rng: &mut StdRng| {
            let rows = rng.gen_range(1..9);
            let tag = format!("f{index:04}");
            // Mostly later names; now and then an earlier one, or a new folder.
            let name = match rng.gen_range(0..6) {
                0 => format!("a-{index:04}.json"),
                1 => format!("d{}/m-{index:04}.json", rng.gen_range(0..40)),
                _ => format!("z-{index:04}.json"),
            };
            land_local(&src, &name, &events(&tag, rows));
            want.push(format!("{tag}|{rows}"));
            index += 1;
        };
        for _ in 0..5 {
            land(&mut rng);
        }
        for _ in 0..6 {
            let mut cmd = sluice();
            let limit = format!("maxFilesPerTrigger={}", rng.gen_range(1..4));
            let backfill = format!("backfillInterval={}ms", rng.gen_range(300..3000));
            let mut args = vec!["--trigger", "100ms", "--option", limit.as_str()];
            match rng.gen_range(0..3) {
                0 => {}
                1 => args.extend([
                    "--option",
                    "useNotifications=false",
                    "--option",
                    "useIncrementalListing=true",
                    "--option",
                    backfill.as_str(),
                ]),
                _ => args.extend(["--option", "useNotifications=false"]),
            }
            cmd.args(events_args(
                src.to_str().unwrap(),
                table.to_str().unwrap(),
                &args,
            ))
            .env("SLUICE_TEST_PAUSE_MS", rng.gen_range(0..20).to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            let mut child = cmd.spawn().unwrap();
            let deadline = Instant::now() + Duration::from_millis(rng.gen_range(300..2500));
            while Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(rng.gen_range(20..200)));
                for _ in 0..rng.gen_range(0..3) {
                    land(&mut rng);
                }
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "a processing-time run stopped by itself (seed {seed}): {args:?}"
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        run_ok(&events_args(
            src.to_str().unwrap(),
            table.to_str().unwrap(),
            &[],
        ));
        want.sort();
        assert_eq!(
            table_rows(
                &table,
                "SELECT action, count(*) FROM t GROUP BY action ORDER BY action"
            )
            .await,
            want,
            "seed {seed}"
        );
        let (version, epochs) = query_commits(&table, "sluice-default").await;
        let last = version.unwrap();
        assert_eq!(epochs, (0..=last).collect::<Vec<_>>(), "seed {seed}");
    }
}
