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

mod batch;
pub mod operator;
pub mod progress;
mod readahead;
pub mod trigger;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use deltalake::protocol::OutputMode;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::commit;
use crate::commit::keepalive;
use crate::commit::record::{BatchRecord, Created, RecordStore, SourceInfo, RECORD_FORMAT};
use crate::error::Error;
use crate::plan::{check_output_mode, QueryKind, QueryPlan, Watermark};
use crate::sink::{schema as sink_schema, DeltaSink, SinkError};
use crate::source::arrivals::Arrivals;
use crate::source::discovery::{effective_max_age, select_batch, FileEntry, SeenFiles};
use crate::source::options::{Format, ReadLimit, SourceOptions};
use crate::source::{ddl, FileSource};
use crate::state::store::StateStore;
use crate::storage::IoCounts;
use operator::AggOperator;
pub use progress::{Progress, SinkProgress, SourceProgress};
pub use trigger::Trigger;

pub use crate::plan::OutputModeKind;

fn delta_mode(mode: OutputModeKind) -> OutputMode {
    match mode {
        OutputModeKind::Append => OutputMode::Append,
        OutputModeKind::Complete => OutputMode::Complete,
        OutputModeKind::Update => OutputMode::Update,
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
    /// Compact the table's small files every this many batches (0: never).
    pub compact_every: u32,
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
            compact_every: 0,
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

/// Check what needs no IO: names.
fn validate_config(cfg: &QueryConfig) -> Result<(), Error> {
    check_name("query name", &cfg.query_name)?;
    check_name("source name", &cfg.source_name)
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
    /// Storage request counts (source, sink) at the previous progress.
    io_mark: (IoCounts, IoCounts),
    last_trigger: Option<Instant>,
    /// Decoded files of the next batch, read while the current one finishes.
    read_ahead: readahead::ReadAhead,
    /// The files the next batch will most likely read (from the last listing), for read-ahead.
    next_files: Vec<FileEntry>,
    /// When this run last wrote the query's txn (a batch or a keep-alive).
    txn_written: Option<Instant>,
    own_commit: Option<commit::OwnCommit>,
    operator: Option<AggOperator>,
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
        // Without a txn for the query, batch 1 can only have been planned after batch 0 was
        // committed: its record means the txn expired (delta.setTransactionRetentionDuration),
        // and starting over would read the source twice.
        if committed.is_none() && records.read(1).await?.is_some() {
            return Err(SinkError::Inconsistent(format!(
                "the table no longer holds the transaction record of query `{}` (expired by delta.setTransactionRetentionDuration?), though the query has committed batches; resuming would duplicate data: unset the retention, or start a new --query-name on a new table",
                cfg.query_name
            ))
            .into());
        }
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
        let watermark = cfg.watermark.as_deref().map(Watermark::parse).transpose()?;
        let plan = QueryPlan::new(&sql, &cfg.source_name, source_schema.clone(), watermark).await?;
        check_output_mode(plan.kind(), cfg.output_mode, plan.watermark())?;
        let delta_schema = sink_schema::delta_schema(plan.output_schema())?;
        sink.check(&delta_schema)?;
        let operator = operator_for(&plan, &cfg, &sink, committed).await?;
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
            io_mark: Default::default(),
            last_trigger: None,
            read_ahead: Default::default(),
            next_files: Vec::new(),
            txn_written: None,
            own_commit: None,
            operator,
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
        // The first batch's files are read while the table and the first record are prepared.
        if let Some(files) = &available {
            let first = select_batch(
                files,
                &self.seen,
                self.cfg.options.limit,
                self.cfg.options.latest_first,
            );
            self.read_ahead
                .start(&self.source, first, &self.source_schema);
        }
        // A processing-time query on a local directory lists again as soon as a file lands
        // while it is idle; micro-batches still start at most once per interval.
        let arrivals = match trigger {
            Trigger::ProcessingTime(_) => self.source.arrivals(),
            _ => None,
        };
        let mut last_batch: Option<Instant> = None;
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
            let ran = batch.is_some();
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
                None => self.keep_txn_alive().await,
            }
            if let Trigger::ProcessingTime(interval) = trigger {
                if ran {
                    last_batch = Some(started);
                }
                let watch = arrivals.as_ref().filter(|_| !ran);
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return Ok(Ending::Stopped),
                    _ = tokio::time::sleep_until((started + interval).into()) => {}
                    _ = arrival(watch, last_batch.map(|t| t + interval)) => {}
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
                // With nothing new, a batch runs only to let a moved watermark close windows.
                let no_data_due = self
                    .operator
                    .as_ref()
                    .is_some_and(AggOperator::no_data_batch_due);
                if files.is_empty() && !no_data_due {
                    return Ok(None);
                }
                // The seen files once this batch commits: what the next batch is chosen from
                // (for read-ahead), and the record's snapshot when it carries one.
                let mut after = self.seen.clone();
                after.advance(&files, effective_max_age(&self.cfg.options));
                self.next_files = match trigger {
                    Trigger::Once => Vec::new(),
                    _ => select_batch(&listed, &after, limit, self.cfg.options.latest_first),
                };
                durations.insert("latestOffset".to_string(), ms(listing.elapsed()));
                let wal = Instant::now();
                let record = self.new_record(files, after);
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

    /// While idle, refresh the query's txn before the table's txn retention can expire it (see
    /// [`commit::keepalive`]). Housekeeping: a failure is logged and tried again later.
    async fn keep_txn_alive(&mut self) {
        if self.next_batch == 0 {
            return;
        }
        let last = self.next_batch - 1;
        let retention = keepalive::txn_retention(self.sink.table());
        let since = self.txn_written.map(|t| t.elapsed());
        if !keepalive::keep_alive_due(retention, since) {
            return;
        }
        let app_id = self.cfg.app_id();
        let owner = keepalive::TxnOwner {
            app_id: &app_id,
            query_id: &self.query_id,
            query_name: &self.cfg.query_name,
            output_mode: delta_mode(self.cfg.output_mode),
        };
        match keepalive::refresh_txn(self.sink.table_mut(), owner, last).await {
            Ok(Some(version)) => {
                self.txn_written = Some(Instant::now());
                self.own_commit = None;
                tracing::info!(version, batch = last, "txn record refreshed while idle");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("could not refresh the query's txn record: {e}"),
        }
    }

    /// The record planning batch `next_batch` over `files`; `seen_after` is the seen set once
    /// it commits (kept in the record every few batches).
    fn new_record(&self, files: Vec<FileEntry>, seen_after: SeenFiles) -> BatchRecord {
        let batch_id = self.next_batch;
        let seen = BatchRecord::is_snapshot_batch(batch_id).then_some(seen_after);
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
            watermark_ms: self
                .operator
                .as_ref()
                .and_then(AggOperator::next_watermark_us)
                .map(|us| us.div_euclid(1000)),
            planned_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// The aggregation operator of a stateful query, its state restored from the table; `None` for
/// a stateless query (which must not take over a stateful query's name).
async fn operator_for(
    plan: &QueryPlan,
    cfg: &QueryConfig,
    sink: &DeltaSink,
    committed: Option<i64>,
) -> Result<Option<AggOperator>, Error> {
    Ok(match plan.signature(cfg.output_mode) {
        Some(signature) => {
            let template = plan
                .aggregate(batch::empty_input(plan.table_schema()))
                .await?;
            let time_key = match plan.kind() {
                QueryKind::Aggregate(info) => info.time_key,
                QueryKind::Stateless => None,
            };
            let mut op = AggOperator::new(
                &template,
                time_key,
                StateStore::new(sink.store(), &cfg.query_name),
                signature,
                cfg.output_mode,
                plan.watermark().cloned(),
            )?;
            if let Some(v) = committed {
                op.restore(v).await?;
            }
            Some(op)
        }
        None => {
            if let Some(v) = committed {
                if StateStore::new(sink.store(), &cfg.query_name)
                    .meta(v)
                    .await?
                    .is_some()
                {
                    return Err(Error::Config(format!(
                        "query `{}` was an aggregation when the table recorded it, and is not one now; restore the original query or use a new --query-name",
                        cfg.query_name
                    )));
                }
            }
            None
        }
    })
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

/// An idle query's early wake: a file landed in the watched source, and the interval since the
/// last micro-batch started (`not_before`) has passed. Never completes without a watch.
async fn arrival(watch: Option<&Arrivals>, not_before: Option<Instant>) {
    let Some(watch) = watch else {
        return std::future::pending().await;
    };
    watch.landed().await;
    if let Some(at) = not_before {
        tokio::time::sleep_until(at.into()).await;
    }
}
