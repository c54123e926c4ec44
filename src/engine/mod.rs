//! The micro-batch engine: recovers the query's position from the table, then runs triggers.
//!
//! ```text
//!  start ─► open table ─► txn version v of the query ─► seen files after v (records)
//!    │                                                      │
//!    │     ┌────────────────────── trigger ─────────────────┘
//!    ▼     ▼
//!  record v+1 exists? ── yes ─► re-run exactly that batch
//!          │ no
//!          ▼
//!  list source ─► select new files ─► create record v+1 ─► read ─► SQL ─► write ─► commit
//!                        │ none
//!                        ▼
//!                 idle (no table version)          stop signal: abandon the batch in flight
//! ```

pub mod progress;
pub mod trigger;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use deltalake::protocol::OutputMode;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::commit::record::{BatchRecord, Created, RecordStore, SourceInfo, RECORD_FORMAT};
use crate::commit::{self, BatchCommit, CommitOutcome};
use crate::error::Error;
use crate::plan::QueryPlan;
use crate::sink::{schema as sink_schema, DeltaSink, SinkError};
use crate::source::discovery::{effective_max_age, select_batch, FileEntry, SeenFiles};
use crate::source::options::{Format, ReadLimit, SourceOptions};
use crate::source::{ddl, FileSource, SourceError};
pub use progress::{Progress, SinkProgress, SourceProgress};
pub use trigger::Trigger;

/// Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputModeKind {
    /// New rows only.
    Append,
    /// The whole result every batch.
    Complete,
    /// Changed rows only.
    Update,
}

impl std::str::FromStr for OutputModeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(OutputModeKind::Append),
            "complete" => Ok(OutputModeKind::Complete),
            "update" => Ok(OutputModeKind::Update),
            other => Err(format!(
                "invalid output mode `{other}`; use append, complete or update"
            )),
        }
    }
}

impl OutputModeKind {
    fn delta(self) -> OutputMode {
        match self {
            OutputModeKind::Append => OutputMode::Append,
            OutputModeKind::Complete => OutputMode::Complete,
            OutputModeKind::Update => OutputMode::Update,
        }
    }

    /// Spark's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputModeKind::Append => "Append",
            OutputModeKind::Complete => "Complete",
            OutputModeKind::Update => "Update",
        }
    }
}

/// Everything that defines a streaming query.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Source directory (local or `s3://`).
    pub source: String,
    /// Source format.
    pub format: Format,
    /// User-given source schema (else remembered or inferred).
    pub schema: Option<SchemaRef>,
    /// Source options.
    pub options: SourceOptions,
    /// The name the SQL reads the stream as.
    pub source_name: String,
    /// The query.
    pub sql: String,
    /// Event-time watermark (`"col, delay"`).
    pub watermark: Option<String>,
    /// Sink table (local or `s3://`).
    pub sink: String,
    /// Output mode.
    pub output_mode: OutputModeKind,
    /// The query's name (its identity in the table).
    pub query_name: String,
    /// Trigger.
    pub trigger: Trigger,
    /// Partition columns of a new table.
    pub partition_by: Vec<String>,
}

impl QueryConfig {
    /// A query with Spark's defaults reading `source` into `sink`.
    pub fn new(source: &str, sink: &str) -> Self {
        QueryConfig {
            source: source.to_string(),
            format: Format::Json,
            schema: None,
            options: SourceOptions::default(),
            source_name: "source".into(),
            sql: String::new(),
            watermark: None,
            sink: sink.to_string(),
            output_mode: OutputModeKind::Append,
            query_name: "default".into(),
            trigger: Trigger::AvailableNow,
            partition_by: Vec::new(),
        }
    }

    /// The txn app id of the query.
    pub fn app_id(&self) -> String {
        app_id(&self.query_name)
    }
}

/// The txn app id Sluice uses for a query name.
pub fn app_id(query_name: &str) -> String {
    format!("sluice-{query_name}")
}

fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "invalid {what} `{name}`: use letters, digits, `_`, `-` and `.` (at most 128)"
        )))
    }
}

/// Check what needs no IO: names, and the output mode against a stateless query.
fn validate_config(cfg: &QueryConfig) -> Result<(), Error> {
    check_name("query name", &cfg.query_name)?;
    check_name("source name", &cfg.source_name)?;
    if cfg.watermark.is_some() {
        return Err(Error::Config(
            "--watermark needs a streaming aggregation, which this version does not run yet; drop --watermark".into(),
        ));
    }
    if cfg.output_mode == OutputModeKind::Complete {
        return Err(Error::Config(
            "complete output mode requires an aggregation in the query; use --output-mode append"
                .into(),
        ));
    }
    Ok(())
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A finite trigger finished.
    Finished,
    /// Stopped by a signal or `stop()`.
    Stopped,
}

/// Callback receiving each batch's progress.
pub type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// Counters shared with the input stream of a batch.
#[derive(Debug, Default)]
struct InputStats {
    rows: AtomicU64,
    malformed: AtomicU64,
    error: Mutex<Option<SourceError>>,
}

/// A started query: position recovered, plan validated, ready to run triggers.
pub struct Engine {
    cfg: QueryConfig,
    source: FileSource,
    sink: DeltaSink,
    plan: QueryPlan,
    source_schema: SchemaRef,
    delta_schema: SchemaRef,
    records: RecordStore,
    seen: SeenFiles,
    next_batch: i64,
    query_id: String,
    run_id: String,
    last_offset: Value,
    last_trigger: Option<Instant>,
    own_commit: Option<commit::OwnCommit>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("query", &self.cfg.query_name)
            .field("next_batch", &self.next_batch)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Validate the query and recover its position from the sink table.
    pub async fn start(cfg: QueryConfig) -> Result<Engine, Error> {
        validate_config(&cfg)?;
        let source = FileSource::open(&cfg.source, cfg.format, cfg.options.clone())?;
        let sink = DeltaSink::open(&cfg.sink, cfg.partition_by.clone()).await?;
        let app_id = cfg.app_id();
        let records = RecordStore::new(sink.store(), &cfg.query_name);
        let committed = if sink.exists() {
            commit::committed_batch(sink.table(), &app_id).await?
        } else {
            None
        };
        let next_batch = committed.map_or(0, |v| v + 1);
        // The newest record tells the query id and the remembered schema.
        let newest = match records.read(next_batch).await? {
            Some(pending) => Some(pending),
            None => match committed {
                Some(v) => Some(records.read(v).await?.ok_or_else(|| {
                    SinkError::Record(format!(
                        "the table says batch {v} of query `{}` is committed, but its record under {} is missing; start the query under a new --query-name",
                        cfg.query_name,
                        RecordStore::folder(&cfg.query_name)
                    ))
                })?),
                None => None,
            },
        };
        let source_schema = match (&cfg.schema, &newest) {
            (Some(s), _) => s.clone(),
            (None, Some(r)) => ddl::parse_ddl(&r.source.schema)?,
            (None, None) => {
                let listed = source.list().await?;
                let mut ordered = listed;
                ordered.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
                source.infer_schema(&ordered).await?
            }
        };
        let sql = if cfg.sql.trim().is_empty() {
            format!("SELECT * FROM {}", cfg.source_name)
        } else {
            cfg.sql.clone()
        };
        let plan = QueryPlan::new(&sql, &cfg.source_name, source_schema.clone()).await?;
        let delta_schema = sink_schema::delta_schema(plan.output_schema())?;
        sink.check(&delta_schema)?;
        let mut seen = match committed {
            Some(v) => {
                records
                    .seen_after(v, SeenFiles::new(cfg.options.file_name_only))
                    .await?
            }
            None => SeenFiles::new(cfg.options.file_name_only),
        };
        if committed.is_some() {
            seen.purge(effective_max_age(&cfg.options));
        }
        let query_id = newest
            .as_ref()
            .map(|r| r.query_id.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let last_offset = committed.map_or(Value::Null, |v| json!({ "logOffset": v }));
        let mut cfg = cfg;
        cfg.sql = sql;
        Ok(Engine {
            cfg,
            source,
            sink,
            plan,
            source_schema,
            delta_schema,
            records,
            seen,
            next_batch,
            query_id,
            run_id: uuid::Uuid::new_v4().to_string(),
            last_offset,
            last_trigger: None,
            own_commit: None,
        })
    }

    /// The query's stable id.
    pub fn query_id(&self) -> &str {
        &self.query_id
    }

    /// The next batch id this run will commit.
    pub fn next_batch(&self) -> i64 {
        self.next_batch
    }

    /// The source schema in use.
    pub fn source_schema(&self) -> &SchemaRef {
        &self.source_schema
    }

    /// Run triggers until the trigger finishes or `stop` turns true.
    pub async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
        mut on_progress: ProgressCallback,
    ) -> Result<Ending, Error> {
        let trigger = self.cfg.trigger;
        // available-now: the files present at start are the whole input of this run.
        let available = match trigger {
            Trigger::AvailableNow => Some(self.source.list().await?),
            _ => None,
        };
        loop {
            if *stop.borrow() {
                return Ok(Ending::Stopped);
            }
            let started = Instant::now();
            let batch = {
                let step = self.trigger_once(trigger, available.as_deref());
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return Ok(Ending::Stopped),
                    result = step => result?,
                }
            };
            match batch {
                Some((progress, replayed)) => {
                    on_progress(&progress);
                    // `once` ends after its one new batch; a batch replayed from an earlier run
                    // does not count.
                    if trigger == Trigger::Once && !replayed {
                        return Ok(Ending::Finished);
                    }
                }
                None if trigger.is_finite() => return Ok(Ending::Finished),
                None => {}
            }
            if let Trigger::ProcessingTime(interval) = trigger {
                let wait = interval.saturating_sub(started.elapsed());
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return Ok(Ending::Stopped),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// One trigger: replay a planned batch or plan a new one; `None` when there was nothing to
    /// do, else the progress and whether the batch was a replay.
    async fn trigger_once(
        &mut self,
        trigger: Trigger,
        available: Option<&[FileEntry]>,
    ) -> Result<Option<(Progress, bool)>, Error> {
        let trigger_start = Instant::now();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut durations = BTreeMap::new();
        let (record, replayed) = match self.records.read(self.next_batch).await? {
            Some(planned) => (planned, true),
            None => {
                let listing = Instant::now();
                let listed = match available {
                    Some(files) => files.to_vec(),
                    None => self.source.list().await?,
                };
                let limit = if trigger == Trigger::Once {
                    ReadLimit::Unlimited
                } else {
                    self.cfg.options.limit
                };
                let files = select_batch(&listed, &self.seen, limit, self.cfg.options.latest_first);
                durations.insert("latestOffset".to_string(), ms(listing.elapsed()));
                if files.is_empty() {
                    return Ok(None);
                }
                let wal = Instant::now();
                let record = self.new_record(files);
                let record = match self.records.create(record).await? {
                    Created::Ours(r) => r,
                    Created::Theirs(r) => r,
                };
                durations.insert("walCommit".to_string(), ms(wal.elapsed()));
                (record, false)
            }
        };
        crash_window("planned", record.batch_id).await;
        let progress = self
            .run_batch(&record, trigger_start, timestamp, durations)
            .await?;
        Ok(Some((progress, replayed)))
    }

    fn new_record(&self, files: Vec<FileEntry>) -> BatchRecord {
        let batch_id = self.next_batch;
        let seen = BatchRecord::is_snapshot_batch(batch_id).then(|| {
            let mut after = self.seen.clone();
            after.add(&files);
            after.purge(effective_max_age(&self.cfg.options));
            after
        });
        BatchRecord {
            format: RECORD_FORMAT,
            query_name: self.cfg.query_name.clone(),
            query_id: self.query_id.clone(),
            batch_id,
            source: SourceInfo {
                uri: self.cfg.source.clone(),
                format: self.cfg.format.to_string(),
                schema: ddl::to_ddl(&self.source_schema),
            },
            sql: self.cfg.sql.clone(),
            files,
            seen,
            watermark_ms: None,
            planned_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// Read, transform, write and commit one planned batch.
    async fn run_batch(
        &mut self,
        record: &BatchRecord,
        trigger_start: Instant,
        timestamp: String,
        mut durations: BTreeMap<String, u64>,
    ) -> Result<Progress, Error> {
        let stats = Arc::new(InputStats::default());
        let planning = Instant::now();
        let input = {
            let stats = stats.clone();
            let decoded = self
                .source
                .read(record.files.clone(), self.source_schema.clone());
            let batches = decoded
                .map(move |item| match item {
                    Ok(d) => {
                        let rows: usize = d.batches.iter().map(|b| b.num_rows()).sum();
                        stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                        stats
                            .malformed
                            .fetch_add(d.malformed as u64, Ordering::Relaxed);
                        Ok(futures::stream::iter(d.batches.into_iter().map(Ok)))
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if let Ok(mut slot) = stats.error.lock() {
                            slot.get_or_insert(e);
                        }
                        Err(DataFusionError::Execution(msg))
                    }
                })
                .try_flatten();
            Box::pin(RecordBatchStreamAdapter::new(
                self.source_schema.clone(),
                batches,
            ))
        };
        let mut output = self.plan.execute(input).await?;
        durations.insert("queryPlanning".to_string(), ms(planning.elapsed()));

        let add_batch = Instant::now();
        self.sink.ensure_table(&self.delta_schema).await?;
        let mut writer = self.sink.writer()?;
        while let Some(next) = output.next().await {
            match next {
                Ok(batch) => writer.write(batch).await?,
                Err(e) => {
                    if let Some(source_error) = stats.error.lock().ok().and_then(|mut s| s.take()) {
                        return Err(source_error.into());
                    }
                    return Err(crate::plan::PlanError::Execution(e.to_string()).into());
                }
            }
        }
        let (adds, rows_out) = writer.finish().await?;
        durations.insert("addBatch".to_string(), ms(add_batch.elapsed()));
        crash_window("written", record.batch_id).await;

        let commit_start = Instant::now();
        let end_offset = record.offset();
        let info = json!({
            "queryName": self.cfg.query_name,
            "queryId": self.query_id,
            "runId": self.run_id,
            "batchId": record.batch_id,
            "source": self.cfg.source,
            "startOffset": self.last_offset,
            "endOffset": end_offset,
            "record": format!("{}/{:020}.json", RecordStore::folder(&self.cfg.query_name), record.batch_id),
        });
        let commit = BatchCommit {
            app_id: self.cfg.app_id(),
            query_id: self.query_id.clone(),
            batch_id: record.batch_id,
            output_mode: self.cfg.output_mode.delta(),
            adds,
            extra: Vec::new(),
            info,
        };
        let version =
            match commit::commit_batch(self.sink.table_mut(), &commit, &mut self.own_commit).await?
            {
                CommitOutcome::Committed { version, .. } => version,
                CommitOutcome::Superseded { .. } => {
                    return Err(SinkError::AnotherInstance {
                        query: self.cfg.query_name.clone(),
                        batch_id: record.batch_id,
                    }
                    .into())
                }
            };
        durations.insert("commitOffsets".to_string(), ms(commit_start.elapsed()));
        crash_window("committed", record.batch_id).await;

        // The batch is committed: advance.
        self.seen.add(&record.files);
        self.seen.purge(effective_max_age(&self.cfg.options));
        if let Err(e) = self.records.expire(record.batch_id).await {
            tracing::warn!("could not delete old batch records: {e}");
        }
        self.next_batch = record.batch_id + 1;

        let elapsed = trigger_start.elapsed();
        durations.insert("triggerExecution".to_string(), ms(elapsed));
        durations.insert("getBatch".to_string(), 0);
        let rows_in = stats.rows.load(Ordering::Relaxed);
        let since_last = self.last_trigger.map(|t| t.elapsed()).unwrap_or(elapsed);
        self.last_trigger = Some(trigger_start);
        let rate = |rows: u64, d: Duration| {
            let secs = d.as_secs_f64();
            if secs > 0.0 {
                rows as f64 / secs
            } else {
                0.0
            }
        };
        let start_offset = std::mem::replace(&mut self.last_offset, end_offset.clone());
        Ok(Progress {
            id: self.query_id.clone(),
            run_id: self.run_id.clone(),
            name: self.cfg.query_name.clone(),
            timestamp,
            batch_id: record.batch_id,
            batch_duration: ms(elapsed),
            num_input_rows: rows_in,
            input_rows_per_second: rate(rows_in, since_last),
            processed_rows_per_second: rate(rows_in, elapsed),
            duration_ms: durations,
            event_time: BTreeMap::new(),
            state_operators: Vec::new(),
            sources: vec![SourceProgress {
                description: format!("FileStreamSource[{}]", self.cfg.source),
                start_offset,
                end_offset: end_offset.clone(),
                latest_offset: end_offset,
                num_input_rows: rows_in,
                input_rows_per_second: rate(rows_in, since_last),
                processed_rows_per_second: rate(rows_in, elapsed),
                num_malformed_records: stats.malformed.load(Ordering::Relaxed),
            }],
            sink: SinkProgress {
                description: format!("DeltaSink[{}]", self.cfg.sink),
                num_output_rows: rows_out,
                table_version: version,
            },
        })
    }
}

/// Crash-test hook: with `SLUICE_TEST_PAUSE_MS` set, announce each protocol phase on stderr and
/// linger in it, so that tests killing the process at random moments land in every phase (planned,
/// data written but not committed, just committed) and can tell which one they hit.
async fn crash_window(phase: &str, batch_id: i64) {
    let Some(pause) = std::env::var("SLUICE_TEST_PAUSE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    eprintln!("sluice-phase {phase} {batch_id}");
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
