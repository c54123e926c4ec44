//! Storage faults: an HTTP proxy in front of the moto server fails chosen S3 operations
//! (list, get of source data, put of data files, put of the commit): transiently, slowly, past
//! the client's timeout, or permanently. Transient failures are retried and slow calls waited for, and the table ends
//! exact; permanent ones stop the query with a one-line error, and a rerun once storage is
//! healthy ends exact too.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::common::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    List,
    GetData,
    PutData,
    PutCommit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Fail the first N matching requests with 503 SlowDown.
    Transient(usize),
    /// Fail every matching request with 403 AccessDenied.
    Permanent,
    /// Answer the first N matching requests only after this many milliseconds.
    Slow(usize, u64),
}

fn classify(method: &str, target: &str) -> Option<Op> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match method {
        "GET" if query.contains("list-type=2") => Some(Op::List),
        "GET" if path.contains("/src/") => Some(Op::GetData),
        "PUT" if path.contains("/part-") && path.ends_with(".parquet") => Some(Op::PutData),
        "PUT" if path.contains("/_delta_log/0") && path.ends_with(".json") => Some(Op::PutCommit),
        _ => None,
    }
}

#[derive(Default)]
struct Rules {
    faults: HashMap<Op, Fault>,
    /// Matching requests to let through before the fault applies.
    skip: HashMap<Op, usize>,
    injected: usize,
}

/// A one-request-per-connection HTTP proxy to moto that injects faults.
struct FaultProxy {
    port: u16,
    rules: Arc<Mutex<Rules>>,
}

fn read_head(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn with_close(head: &str) -> String {
    let mut lines: Vec<&str> = head
        .trim_end()
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    lines.join("\r\n") + "\r\n\r\n"
}

fn error_response(status: &str, code: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

impl FaultProxy {
    fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rules = Arc::new(Mutex::new(Rules::default()));
        let shared = rules.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let rules = shared.clone();
                std::thread::spawn(move || {
                    let Some((head, body)) = read_head(&mut client) else {
                        return;
                    };
                    let mut words = head.split_whitespace();
                    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                    let mut delay = None;
                    let fault = classify(method, target).and_then(|op| {
                        let mut r = rules.lock().unwrap();
                        if let Some(skip) = r.skip.get_mut(&op).filter(|n| **n > 0) {
                            *skip -= 1;
                            return None;
                        }
                        let fault = match r.faults.get(&op).copied() {
                            Some(Fault::Transient(n)) if n > 0 => {
                                r.faults.insert(op, Fault::Transient(n - 1));
                                Some(error_response("503 Service Unavailable", "SlowDown"))
                            }
                            Some(Fault::Permanent) => {
                                Some(error_response("403 Forbidden", "AccessDenied"))
                            }
                            Some(Fault::Slow(n, ms)) if n > 0 => {
                                r.faults.insert(op, Fault::Slow(n - 1, ms));
                                r.injected += 1;
                                delay = Some(std::time::Duration::from_millis(ms));
                                None
                            }
                            _ => None,
                        };
                        if fault.is_some() {
                            r.injected += 1;
                        }
                        fault
                    });
                    if let Some(response) = fault {
                        let _ = client.write_all(response.as_bytes());
                        return;
                    }
                    if let Some(delay) = delay {
                        std::thread::sleep(delay);
                    }
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                        return;
                    };
                    let _ = server.write_all(with_close(&head).as_bytes());
                    let _ = server.write_all(&body);
                    let mut response = Vec::new();
                    let _ = server.read_to_end(&mut response);
                    let split = response
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(0, |i| i + 4);
                    let head = String::from_utf8_lossy(&response[..split]).to_string();
                    let _ = client.write_all(with_close(&head).as_bytes());
                    let _ = client.write_all(&response[split..]);
                });
            }
        });
        FaultProxy { port, rules }
    }

    fn set(&self, op: Op, fault: Fault) {
        self.rules.lock().unwrap().faults.insert(op, fault);
    }

    fn clear(&self) {
        let mut r = self.rules.lock().unwrap();
        r.faults.clear();
        r.skip.clear();
    }

    /// Let the first `n` matching requests through before the fault applies.
    fn skip(&self, op: Op, n: usize) {
        self.rules.lock().unwrap().skip.insert(op, n);
    }

    fn injected(&self) -> usize {
        self.rules.lock().unwrap().injected
    }
}

/// The table's events as `time_us|action`, like [`expected_event_rows`].
const EVENT_ROWS: &str =
    "SELECT CAST(CAST(date_part('epoch', time) AS BIGINT) * 1000000 AS VARCHAR) || '|' || action FROM t";

fn run_through(moto: &Moto, proxy: &FaultProxy, table: &str) -> std::process::Output {
    run_through_with(moto, proxy, table, &[], &[])
}

fn run_through_with(
    moto: &Moto,
    proxy: &FaultProxy,
    table: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> std::process::Output {
    moto.sluice()
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", proxy.port),
        )
        .envs(env.iter().copied())
        .args([
            "run",
            "--source",
            "s3://faults/src",
            "--schema",
            EVENTS_DDL,
            "--sink",
            table,
            "--option",
            "maxFilesPerTrigger=4",
        ])
        .args(extra)
        .output()
        .unwrap()
}

/// Run into `table` with `fault` on `op` (once its first `skip` requests went through), and
/// require success, both faults injected, each batch committed once and the exact rows.
#[allow(clippy::too_many_arguments)]
async fn recovers_exact(
    moto: &Moto,
    proxy: &FaultProxy,
    op: Op,
    fault: Fault,
    skip: usize,
    table: &str,
    env: &[(&str, &str)],
    extra: &[&str],
    want: &[String],
) -> std::process::Output {
    let before = proxy.injected();
    proxy.set(op, fault);
    proxy.skip(op, skip);
    let out = run_through_with(moto, proxy, table, env, extra);
    proxy.clear();
    assert!(out.status.success(), "{op:?} {fault:?}: {}", stderr(&out));
    assert_eq!(proxy.injected() - before, 2, "{op:?} {fault:?}: injected");
    let url = url::Url::parse(table).unwrap();
    let got = table_rows_at(url.clone(), moto.options(), EVENT_ROWS).await;
    assert_eq!(got, want, "{op:?} {fault:?}");
    let (version, epochs) = query_commits_at(url, moto.options(), "sluice-default").await;
    assert_eq!(
        (version, epochs),
        (Some(1), vec![0, 1]),
        "{op:?} {fault:?}: each batch once"
    );
    out
}

#[tokio::test]
async fn every_operation_fails_transiently_and_permanently() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("faults");
    moto.upload("faults", "src", &fixture_files("events", 0..8))
        .await;
    let src_dir = tempdir();
    copy_files(&fixture("events"), src_dir.path(), 0..8);
    let want = expected_event_rows(src_dir.path()).await;
    let proxy = FaultProxy::start(moto.port());
    for (i, op) in [Op::List, Op::GetData, Op::PutData, Op::PutCommit]
        .into_iter()
        .enumerate()
    {
        // Transient: retried, and the table ends exact; progress reports the retries on the
        // side (source or sink) that met them.
        let table = format!("s3://faults/transient-{i}");
        let out = recovers_exact(
            &moto,
            &proxy,
            op,
            Fault::Transient(2),
            0,
            &table,
            &[],
            &["--progress", "json"],
            &want,
        )
        .await;
        let progress = progress_lines(&out);
        let retries = |side: &str| -> u64 {
            progress
                .iter()
                .map(|p| {
                    let metrics = if side == "sink" {
                        &p["sink"]["metrics"]
                    } else {
                        &p["sources"][0]["metrics"]
                    };
                    metrics["storageRetries"].as_u64().unwrap_or(0)
                })
                .sum()
        };
        // Lists come from both sides (the source directory, the table's log and records).
        let met = match op {
            Op::List => retries("source") + retries("sink"),
            Op::GetData => retries("source"),
            Op::PutData | Op::PutCommit => retries("sink"),
        };
        assert_eq!(met, 2, "{op:?}: retries in progress: {}", stderr(&out));
        assert_eq!(
            retries("source") + retries("sink"),
            2,
            "{op:?}: only the injected failures count"
        );

        // Slow: answered late, and the table ends exact.
        let table = format!("s3://faults/slow-{i}");
        recovers_exact(
            &moto,
            &proxy,
            op,
            Fault::Slow(2, 700),
            0,
            &table,
            &[],
            &[],
            &want,
        )
        .await;

        // Timeout: two calls hang past the client's 1 s timeout (a hung commit put still lands
        // later: the retry must find it instead of committing the batch twice). For commits, the
        // table's creation goes through and batch 0's commit hangs.
        let table = format!("s3://faults/timeout-{i}");
        let skip = usize::from(op == Op::PutCommit);
        let out = recovers_exact(
            &moto,
            &proxy,
            op,
            Fault::Slow(2, 2_500),
            skip,
            &table,
            &[("AWS_TIMEOUT", "1s")],
            &["--progress", "json"],
            &want,
        )
        .await;
        if op == Op::PutCommit {
            // The retried commit shows in the batch's progress.
            let attempts: Vec<u64> = progress_lines(&out)
                .iter()
                .filter_map(|p| p["sink"]["commitAttempts"].as_u64())
                .collect();
            assert!(attempts.first().is_some_and(|a| *a >= 2), "{attempts:?}");
        }

        // Permanent: a one-line error, nothing half-committed; healthy again, a rerun ends exact.
        let table = format!("s3://faults/permanent-{i}");
        proxy.set(op, Fault::Permanent);
        let out = run_through(&moto, &proxy, &table);
        proxy.clear();
        let err = stderr(&out);
        assert!(!out.status.success(), "{op:?} permanent must fail");
        assert_eq!(err.lines().count(), 1, "{op:?}: {err}");
        assert!(err.starts_with("error: "), "{op:?}: {err}");
        assert!(err.contains("run again"), "{op:?}: says what to do: {err}");
        let out = run_through(&moto, &proxy, &table);
        assert!(out.status.success(), "{op:?} rerun: {}", stderr(&out));
        let url = url::Url::parse(&table).unwrap();
        let got = table_rows_at(url.clone(), moto.options(), EVENT_ROWS).await;
        assert_eq!(got, want, "{op:?} after a permanent fault");
        let (version, epochs) = query_commits_at(url, moto.options(), "sluice-default").await;
        assert_eq!(version, Some(1));
        assert_eq!(epochs, vec![0, 1], "{op:?}: no batch committed twice");
    }
}
