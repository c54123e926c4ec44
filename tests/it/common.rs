//! Helpers: run the `sluice` binary, copy fixtures, read tables back, compute expected results.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{JsonReadOptions, SessionContext};
use deltalake::DeltaTableBuilder;

pub const EVENTS_DDL: &str = "time TIMESTAMP, action STRING";

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    repo().join("fixtures").join(name)
}

/// The `sluice` binary.
pub fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.env_remove("SLUICE_TEST_PAUSE_MS");
    cmd.stdin(Stdio::null());
    cmd
}

/// Run `sluice` with args and capture everything.
pub fn run(args: &[&str]) -> Output {
    sluice().args(args).output().expect("sluice runs")
}

/// Run and require success.
pub fn run_ok(args: &[&str]) -> Output {
    let out = run(args);
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `sluice run` arguments streaming the events in `src` (with the events schema) into
/// `table`, then `extra`.
pub fn events_args<'a>(src: &'a str, table: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run", "--source", src, "--schema", EVENTS_DDL, "--sink", table,
    ];
    args.extend_from_slice(extra);
    args
}

/// Stream the events in `source` (with the events schema) into `table`, with extra flags.
pub fn run_events(source: &Path, table: &Path, extra: &[&str]) -> Output {
    run_ok(&events_args(
        source.to_str().unwrap(),
        table.to_str().unwrap(),
        extra,
    ))
}

/// `sluice inspect TABLE --json --limit LIMIT`, parsed.
pub fn inspect_json(table: &Path, limit: usize) -> serde_json::Value {
    let limit = limit.to_string();
    let out = run_ok(&[
        "inspect",
        table.to_str().unwrap(),
        "--json",
        "--limit",
        &limit,
    ]);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Copy `count` files (or all) of a fixture into `dest`, in name order, keeping names.
pub fn copy_files(from: &Path, dest: &Path, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    std::fs::create_dir_all(dest).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for p in names
        .into_iter()
        .skip(range.start)
        .take(range.end - range.start)
    {
        let target = dest.join(p.file_name().unwrap());
        // Write then rename, as producers must.
        let tmp = dest.join(format!(".{}.tmp", p.file_name().unwrap().to_string_lossy()));
        std::fs::copy(&p, &tmp).unwrap();
        std::fs::rename(&tmp, &target).unwrap();
        out.push(target);
    }
    out
}

/// Format batches as sorted rows of `|`-joined values.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                fmts.iter()
                    .map(|f| f.value(r).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    out.sort();
    out
}

/// Read a Delta table with a query over it (the table is `t`), sorted rows.
pub async fn table_rows(table: &Path, sql: &str) -> Vec<String> {
    let url = url::Url::from_directory_path(table).unwrap();
    table_rows_at(url, HashMap::new(), sql).await
}

/// Read a Delta table at any URL (e.g. `s3://`) with storage options.
pub async fn table_rows_at(
    url: url::Url,
    options: HashMap<String, String>,
    sql: &str,
) -> Vec<String> {
    let mut t = DeltaTableBuilder::from_url(url)
        .unwrap()
        .with_storage_options(options)
        .build()
        .unwrap();
    t.load().await.unwrap();
    let ctx = SessionContext::new();
    t.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("t", t.table_provider().await.unwrap())
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    rows(&batches)
}

/// The events in a directory as a batch computation would see them: DataFusion's own JSON
/// reader and SQL, over all files at once (the time column read as epoch seconds).
pub async fn expected_events(dir: &Path, sql_over_raw: &str) -> Vec<String> {
    let ctx = SessionContext::new();
    let schema = arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("time", arrow::datatypes::DataType::Int64, true),
        arrow::datatypes::Field::new("action", arrow::datatypes::DataType::Utf8, true),
    ]);
    let options = JsonReadOptions::default()
        .schema(&schema)
        .file_extension(".json");
    ctx.register_json("raw", dir.to_str().unwrap(), options)
        .await
        .unwrap();
    ctx.sql(
        "CREATE VIEW events AS SELECT arrow_cast(to_timestamp_seconds(time), 'Timestamp(Microsecond, Some(\"UTC\"))') AS time, action FROM raw",
    )
    .await
    .unwrap()
    .collect()
    .await
    .unwrap();
    let batches = ctx
        .sql(sql_over_raw)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    rows(&batches)
}

/// The txn version of a query, and the epoch ids of its STREAMING UPDATE commits in log order
/// (txn keep-alives left out).
pub async fn query_commits(table: &Path, app_id: &str) -> (Option<i64>, Vec<i64>) {
    let url = url::Url::from_directory_path(table).unwrap();
    query_commits_at(url, HashMap::new(), app_id).await
}

/// [`query_commits`] for a table at any URL.
pub async fn query_commits_at(
    url: url::Url,
    options: HashMap<String, String>,
    app_id: &str,
) -> (Option<i64>, Vec<i64>) {
    let mut t = DeltaTableBuilder::from_url(url)
        .unwrap()
        .with_storage_options(options)
        .build()
        .unwrap();
    t.load().await.unwrap();
    let version = t
        .snapshot()
        .unwrap()
        .transaction_version(t.log_store().as_ref(), app_id)
        .await
        .unwrap();
    let mut epochs = Vec::new();
    let history: Vec<_> = {
        use futures::TryStreamExt;
        t.history(None).try_collect().await.unwrap()
    };
    for info in history.iter().rev() {
        if info.operation.as_deref() != Some("STREAMING UPDATE") {
            continue;
        }
        // Only this query's commits (several queries may write one table).
        let name = info
            .info
            .get("sluice")
            .and_then(|s| s.get("queryName"))
            .and_then(|n| n.as_str());
        if name.map(|n| format!("sluice-{n}")).as_deref() != Some(app_id) {
            continue;
        }
        // Txn keep-alives re-commit an already committed epoch.
        if info.info.get("sluice").and_then(|s| s.get("keepAlive"))
            == Some(&serde_json::Value::Bool(true))
        {
            continue;
        }
        let params = info.operation_parameters.clone().unwrap_or_default();
        if let Some(serde_json::Value::Number(n)) = params.get("epochId") {
            epochs.push(n.as_i64().unwrap());
        } else if let Some(serde_json::Value::String(s)) = params.get("epochId") {
            epochs.push(s.parse().unwrap());
        }
    }
    (version, epochs)
}

/// The progress reports a run printed with `--progress json`.
pub fn progress_lines(out: &Output) -> Vec<serde_json::Value> {
    stderr(out)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|p| p.get("batchId").is_some())
        .collect()
}

/// Stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary directory that lives for the test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A moto S3 server on a free loopback port, stopped when dropped. The test command installs
/// moto and sets SLUICE_MOTO to its `moto_server`; CI always has it.
pub struct Moto {
    child: std::process::Child,
    port: u16,
}

impl Moto {
    /// Start a server, or `None` (outside CI) when moto is not installed.
    pub fn start() -> Option<Moto> {
        let Ok(binary) = std::env::var("SLUICE_MOTO") else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the S3 tests: set SLUICE_MOTO (scripts/test does)"
            );
            eprintln!("SLUICE_MOTO unset: S3 test not run (scripts/test sets it)");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, port };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 30, "moto did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Some(moto)
    }

    /// The AWS settings that point at this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "AWS_ENDPOINT_URL".into(),
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
        ]
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The same settings as deltalake storage options.
    pub fn options(&self) -> HashMap<String, String> {
        self.env().into_iter().collect()
    }

    /// Create a bucket (moto takes unsigned requests).
    pub fn create_bucket(&self, bucket: &str) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    /// An unsigned request to the server (moto takes them); the response must be a 200.
    fn request(&self, method: &str, path: &str, body: &str) -> String {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        response
    }

    /// A new SQS queue that receives `bucket`'s `s3:ObjectCreated:*` notifications; its URL.
    pub async fn event_queue(&self, bucket: &str, queue: &str) -> String {
        use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(format!("http://127.0.0.1:{}", self.port))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .build();
        let url = aws_sdk_sqs::Client::from_conf(config)
            .create_queue()
            .queue_name(queue)
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string();
        self.request(
            "PUT",
            &format!("/{bucket}?notification"),
            &format!(
                "<NotificationConfiguration><QueueConfiguration><Id>landing</Id>\
                 <Queue>arn:aws:sqs:us-east-1:123456789012:{queue}</Queue>\
                 <Event>s3:ObjectCreated:*</Event></QueueConfiguration></NotificationConfiguration>"
            ),
        );
        url
    }

    /// Upload files under `prefix` of `bucket`, one after the other.
    pub async fn upload(&self, bucket: &str, prefix: &str, files: &[PathBuf]) {
        for f in files {
            let name = f.file_name().unwrap().to_string_lossy();
            let key = object_store::path::Path::from(format!("{prefix}/{name}"));
            self.put(bucket, key.as_ref(), std::fs::read(f).unwrap())
                .await;
        }
    }

    /// A client of one bucket of this server.
    fn store(&self, bucket: &str) -> object_store::aws::AmazonS3 {
        object_store::aws::AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_bucket_name(bucket)
            .build()
            .unwrap()
    }

    /// Put one object, its key used as written.
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::parse(key).unwrap();
        self.store(bucket).put(&path, data.into()).await.unwrap();
    }

    /// The keys below `prefix` of `bucket`, sorted.
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        use object_store::ObjectStore;
        let prefix = object_store::path::Path::from(prefix);
        let mut keys: Vec<String> = self
            .store(bucket)
            .list(Some(&prefix))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Run sluice with this server's settings and require success.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.sluice().args(args).output().unwrap();
        assert!(out.status.success(), "sluice {args:?}: {}", stderr(&out));
        out
    }

    /// The sluice command with this server's settings.
    pub fn sluice(&self) -> Command {
        let mut cmd = sluice();
        cmd.envs(self.env());
        cmd
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The actions of the table's commit `version`, as written in its log file.
pub fn log_actions(table: &Path, version: u64) -> Vec<serde_json::Value> {
    std::fs::read_to_string(table.join(format!("_delta_log/{version:020}.json")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The first action of `kind` (`metaData`, `protocol`, ...) in a local table's commit `version`.
pub fn log_action(table: &Path, version: u64, kind: &str) -> serde_json::Value {
    log_actions(table, version)
        .into_iter()
        .find_map(|a| a.get(kind).cloned())
        .unwrap_or_else(|| panic!("no {kind} action in version {version}"))
}

/// Run a Python `script` (`-c`) with the external readers' `python` on `table`; what it
/// printed, one JSON value.
pub fn python_json(python: &str, script: &str, table: &Path) -> serde_json::Value {
    let out = Command::new(python)
        .args(["-c", script, table.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "python: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The files of a fixture, in name order.
pub fn fixture_files(name: &str, range: std::ops::Range<usize>) -> Vec<PathBuf> {
    let mut names: Vec<_> = std::fs::read_dir(fixture(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    names
        .into_iter()
        .skip(range.start)
        .take(range.end - range.start)
        .collect()
}

/// Hourly counts per action, as `sluice run --sql HOURLY` writes them.
pub const HOURLY: &str =
    "SELECT action, window(time, '1 hour') AS window, count(*) AS n FROM source \
                          GROUP BY action, window(time, '1 hour')";

/// A batch computation of 1-hour windows over the `events` view, independent of Sluice's
/// window(): window starts `ws` from DataFusion's date_bin (two per row for a 30-minute slide),
/// grouped by action and window, projecting `select`; with `closed`, only the windows a
/// 10-minute watermark has closed by the end of the input.
pub fn windowed_sql(sliding: bool, closed: bool, select: &str) -> String {
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
    format!("SELECT {select} FROM ({starts}) {filter} GROUP BY action, ws")
}

/// The batch computation of [`HOURLY`] over `src`, rows as `action|start_us|end_us|n`.
pub async fn expected_hourly(src: &Path, closed: bool) -> Vec<String> {
    let select = "action || '|' || CAST(CAST(date_part('epoch', ws) AS BIGINT) * 1000000 AS VARCHAR) || '|' || \
                  CAST(CAST(date_part('epoch', ws + INTERVAL '1 hour') AS BIGINT) * 1000000 AS VARCHAR) || '|' || \
                  CAST(count(*) AS VARCHAR)";
    expected_events(src, &windowed_sql(false, closed, select)).await
}

/// The events of `src` as `time_us|action` rows.
pub async fn expected_event_rows(src: &Path) -> Vec<String> {
    expected_events(
        src,
        "SELECT CAST(CAST(date_part('epoch', time) AS BIGINT) * 1000000 AS VARCHAR) || '|' || action FROM events",
    )
    .await
}

/// The Python with the external Delta readers (deltalake, Polars, DuckDB), or `None` outside CI
/// when it is not installed. The test command installs it and sets SLUICE_PYTHON.
pub fn external_python() -> Option<String> {
    match std::env::var("SLUICE_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the external-reader tests: set SLUICE_PYTHON (scripts/test does)"
            );
            eprintln!("SLUICE_PYTHON unset: external reader test not run (scripts/test sets it)");
            None
        }
    }
}

/// A spawned process that is killed when the test ends, even by a failed assertion (a
/// leftover child would hold the test's output pipe open).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a test reads from and writes to: local directories, or a bucket on the moto server.
/// Either way `local_src` holds the same input on local disk, for the batch computation of the
/// expected rows.
pub struct Target<'a> {
    pub src: String,
    pub table: String,
    pub url: url::Url,
    pub options: HashMap<String, String>,
    pub env: Vec<(String, String)>,
    pub local_src: PathBuf,
    /// On S3: the server and bucket, and the directory holding `local_src`.
    s3: Option<(&'a Moto, String, tempfile::TempDir)>,
}

impl<'a> Target<'a> {
    /// Local directories under `dir`, the source holding event files `files`.
    pub fn local(dir: &Path, files: std::ops::Range<usize>) -> Target<'a> {
        let src = dir.join("src");
        let table = dir.join("table");
        copy_files(&fixture("events"), &src, files);
        Target {
            src: src.to_str().unwrap().to_string(),
            table: table.to_str().unwrap().to_string(),
            url: url::Url::from_directory_path(&table).unwrap(),
            options: HashMap::new(),
            env: Vec::new(),
            local_src: src,
            s3: None,
        }
    }

    /// A new bucket on the moto server, the source prefix holding event files `files`.
    pub async fn s3(moto: &'a Moto, bucket: &str, files: std::ops::Range<usize>) -> Target<'a> {
        moto.create_bucket(bucket);
        let local = tempdir();
        let target = Target {
            src: format!("s3://{bucket}/src"),
            table: format!("s3://{bucket}/table"),
            url: url::Url::parse(&format!("s3://{bucket}/table")).unwrap(),
            options: moto.options(),
            env: moto.env(),
            local_src: local.path().join("src"),
            s3: Some((moto, bucket.to_string(), local)),
        };
        target.add_files(files).await;
        target
    }

    /// Event files `files` arrive in the source.
    pub async fn add_files(&self, files: std::ops::Range<usize>) {
        let copied = copy_files(&fixture("events"), &self.local_src, files);
        if let Some((moto, bucket, _)) = &self.s3 {
            moto.upload(bucket, "src", &copied).await;
        }
    }

    /// The sluice command with this target's settings.
    pub fn sluice(&self) -> Command {
        let mut cmd = sluice();
        cmd.envs(self.env.clone());
        cmd
    }

    /// Run sluice with this target's settings.
    pub fn run(&self, args: &[&str]) -> Output {
        self.sluice().args(args).output().unwrap()
    }

    /// Rows of the table (`t`) by SQL.
    pub async fn rows(&self, sql: &str) -> Vec<String> {
        table_rows_at(self.url.clone(), self.options.clone(), sql).await
    }

    /// The events of `local_src` by SQL over `events`, as a batch computation sees them.
    pub async fn expected(&self, sql: &str) -> Vec<String> {
        expected_events(&self.local_src, sql).await
    }

    /// The txn version of `query` and the epochs of its commits.
    pub async fn commits(&self, query: &str) -> (Option<i64>, Vec<i64>) {
        let app = format!("sluice-{query}");
        query_commits_at(self.url.clone(), self.options.clone(), &app).await
    }

    /// The query's commits are exactly batches 0..=last, each once.
    pub async fn assert_txns(&self, query: &str, last: i64) {
        let (version, epochs) = self.commits(query).await;
        assert_eq!(version, Some(last));
        assert_eq!(
            epochs,
            (0..=last).collect::<Vec<_>>(),
            "txn versions must run 0..N-1 with no gap or repeat"
        );
    }
}

/// Set table properties with delta-rs, as a table's owner would.
pub async fn set_properties(table: &Path, properties: &[(&str, &str)]) {
    let url = url::Url::from_directory_path(table).unwrap();
    let mut delta = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
    delta.load().await.unwrap();
    delta
        .set_tbl_properties()
        .with_properties(
            properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
        .await
        .unwrap();
}
