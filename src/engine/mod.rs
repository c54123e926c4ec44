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
mod source_schema;
pub mod trigger;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use deltalake::protocol::OutputMode;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::commit;
use crate::commit::keepalive;
use crate::commit::record::{BatchRecord, Created, RecordStore, SourceInfo, RECORD_FORMAT};
use crate::commit::seen::SeenIndex;
use crate::error::Error;
use crate::plan::{check_output_mode, QueryKind, QueryPlan, Watermark};
use crate::sink::{schema as sink_schema, DeltaSink, SinkError};
use crate::source::arrivals::Arrivals;
use crate::source::candidates::{Candidates, Discovery};
use crate::source::discovery::{effective_max_age, select_batch, Backlog, FileEntry, SeenFiles};
use crate::source::options::{Format, ReadLimit, SourceOptions};
use crate::source::{ddl, file_columns, FileSource};
use crate::state::store::{Committed, StateMeta, StateStore};
use crate::state::StateError;
use crate::storage::IoCounts;
use operator::AggOperator;
pub use progress::{DiscoveryProgress, Progress, SinkProgress, SourceProgress};
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
    /// Compact the table's small files every this many batches (0: never; automatic
    /// compaction decides).
    pub compact_every: u32,
    /// A table this query creates compacts itself (`delta.autoOptimize.autoCompact`).
    pub auto_compact: bool,
    /// Small live files that make an automatic compaction due.
    pub auto_compact_min_files: usize,
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
            auto_compact: true,
            auto_compact_min_files: crate::sink::compaction::MIN_FILES,
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
    /// The seen-file segments of the newest snapshot batch (see [`commit::seen`]).
    seen_index: Option<SeenIndex>,
    /// The files (identity → mtime) committed since that snapshot batch.
    seen_since: HashMap<String, i64>,
    /// How new files are found between triggers.
    candidates: Candidates,
    /// The local source's arrival events, when they find new files.
    arrivals: Option<Arrivals>,
    /// How the pending batch's files were found.
    discovered: DiscoveryProgress,
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
        let mut source = FileSource::open(&cfg.source, cfg.format, cfg.options.clone())?;
        let mut sink = DeltaSink::open(&cfg.sink, cfg.partition_by.clone()).await?;
        sink.set_auto_compact(cfg.auto_compact);
        let app_id = cfg.app_id();
        let records = RecordStore::new(sink.store(), &cfg.query_name);
        let committed = if sink.exists() {
            commit::committed_batch(sink.table(), &app_id).await?
        } else {
            None
        };
        let next_batch = committed.map_or(0, |v| v + 1);
        if committed.is_none() {
            check_no_lost_txn(&records, &sink, &cfg.query_name).await?;
        }
        // The newest record tells the query id and the remembered schema.
        let newest = match records.read_planned(next_batch).await? {
            Some(pending) => Some(pending),
            None => match committed {
                Some(v) => Some(records.read(v).await?.ok_or_else(|| {
                    SinkError::Record(format!(
                        "the table says batch {v} of query `{}` is committed, but its record under {} is missing; restore that folder from a backup, or stream the source into a new table (another query name on this table would write every row again)",
                        cfg.query_name,
                        RecordStore::folder(&cfg.query_name)
                    ))
                })?),
                None => None,
            },
        };
        if let Some(recorded) = &newest {
            // The schema is not compared here: a given --schema may differ from the remembered one.
            let now = source_info(&cfg, &source, String::new());
            if let Some(change) = recorded.source.change_to(&now, &cfg.query_name) {
                return Err(Error::Config(change));
            }
        }
        let sql = if cfg.sql.trim().is_empty() {
            format!("SELECT * FROM {}", cfg.source_name)
        } else {
            cfg.sql.clone()
        };
        let source_schema =
            source_schema::resolve(&cfg, &sql, &mut source, newest.as_ref()).await?;
        let watermark = cfg.watermark.as_deref().map(Watermark::parse).transpose()?;
        let plan = QueryPlan::new(&sql, &cfg.source_name, source_schema.clone(), watermark).await?;
        check_output_mode(plan.kind(), cfg.output_mode, plan.watermark())?;
        // A query reading the corrupt-record column has every column decoded, so that a value
        // that does not fit any column shows there.
        source.set_read_columns(
            plan.read_columns()
                .filter(|cols| !cols.contains(&cfg.options.corrupt_column))
                .map(<[String]>::to_vec),
        );
        let delta_schema = sink_schema::delta_schema(plan.output_schema())?;
        sink.drop_unstorable_columns().await?;
        sink.check(&delta_schema)?;
        let operator = operator_for(&plan, &cfg, &sink, committed).await?;
        let (mut seen, seen_index, since) = match committed {
            Some(v) => {
                let resumed = records
                    .seen_after(v, SeenFiles::new(cfg.options.file_name_only))
                    .await?;
                (resumed.seen, resumed.index, resumed.since)
            }
            None => (SeenFiles::new(cfg.options.file_name_only), None, Vec::new()),
        };
        if committed.is_some() {
            seen.purge(effective_max_age(&cfg.options));
        }
        let seen_since = since
            .iter()
            .map(|f| (seen.identity(&f.path).to_string(), f.mtime_ms))
            .collect();
        if let (Some(v), true) = (committed, source.cleans()) {
            // cleanSource: a kill may have cut short the cleaning of the last committed batch
            // (its record is the newest one unless a later batch was planned).
            let read;
            let last = match &newest {
                Some(record) if record.batch_id == v => Some(record),
                _ => {
                    read = records.read(v).await?;
                    read.as_ref()
                }
            };
            if let Some(last) = last {
                source.clean(&last.files).await;
            }
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
            seen_index,
            seen_since,
            candidates: Candidates::new(Discovery::FullListing, Duration::MAX),
            arrivals: None,
            discovered: DiscoveryProgress::default(),
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
        // available-now: the files present at start are the whole input of this run, ordered
        // once into a backlog that batches take from.
        let mut available = match trigger {
            Trigger::AvailableNow => Some(Backlog::new(
                &self.source.list().await?,
                &self.seen,
                self.cfg.options.latest_first,
            )),
            _ => None,
        };
        // The first batch's files are read while the table and the first record are prepared.
        if let Some(backlog) = &available {
            let first = backlog.peek(&self.seen, self.cfg.options.limit);
            self.read_ahead
                .start(&self.source, first, &self.source_schema);
        }
        // A processing-time query on a local directory lists again as soon as a file lands
        // while it is idle; micro-batches still start at most once per interval.
        let arrivals = match trigger {
            Trigger::ProcessingTime(_) => self.source.arrivals(),
            _ => None,
        };
        // Between safety-net listings, a processing-time query finds new files by the local
        // source's arrival events, or by listing only new names (see `candidates`).
        let discovery = &self.cfg.options.discovery;
        let by_events = arrivals.is_some() && discovery.notifications != Some(false);
        let mode = match trigger {
            Trigger::ProcessingTime(_) if self.source.has_queue() => Discovery::QueueEvents,
            Trigger::ProcessingTime(_) if by_events => Discovery::ArrivalEvents,
            Trigger::ProcessingTime(_) if discovery.incremental => Discovery::Incremental,
            _ => Discovery::FullListing,
        };
        self.candidates = Candidates::new(mode, discovery.backfill_interval);
        self.arrivals = arrivals.clone().filter(|_| by_events);
        let mut last_batch: Option<Instant> = None;
        loop {
            if *stop.borrow() {
                return Ok(Ending::Stopped);
            }
            let started = Instant::now();
            let batch = {
                let step = self.trigger_once(trigger, available.as_mut());
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

    /// The files the next batch may take from (see [`candidates`]); how they were found is
    /// kept for the batch's progress.
    async fn discover(&mut self) -> Result<Vec<FileEntry>, Error> {
        let now = Instant::now();
        let scan = self.candidates.next_scan(now);
        let (made, found) = self.source.scan(scan, self.arrivals.as_ref()).await?;
        let (files, report) = self.candidates.absorb(&made, found, &self.seen, now);
        self.discovered = DiscoveryProgress {
            mode: self.candidates.discovery().name().to_string(),
            full_listing: report.full,
            num_files_listed: report.listed as u64,
            num_files_outstanding: files.len() as u64,
            num_bytes_outstanding: files.iter().map(|f| f.size).sum(),
        };
        Ok(files)
    }

    /// One trigger: replay a planned batch or plan a new one; `None` when there was nothing to
    /// do, else the progress and whether the batch was a replay.
    async fn trigger_once(
        &mut self,
        trigger: Trigger,
        mut available: Option<&mut Backlog>,
    ) -> Result<Option<(Progress, bool)>, Error> {
        let trigger_start = Instant::now();
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut durations = BTreeMap::new();
        self.discovered = DiscoveryProgress::default();
        let (record, replayed) = match self.records.read_planned(self.next_batch).await? {
            Some(planned) => (planned, true),
            None => {
                let listing = Instant::now();
                let limit = if trigger == Trigger::Once {
                    ReadLimit::Unlimited
                } else {
                    self.cfg.options.limit
                };
                let latest_first = self.cfg.options.latest_first;
                let (files, listed) = match available.as_deref_mut() {
                    Some(backlog) => (backlog.take(&self.seen, limit), None),
                    None => {
                        let listed = self.discover().await?;
                        (
                            select_batch(&listed, &self.seen, limit, latest_first),
                            Some(listed),
                        )
                    }
                };
                let d = &mut self.discovered;
                d.num_files_outstanding =
                    d.num_files_outstanding.saturating_sub(files.len() as u64);
                let taken: u64 = files.iter().map(|f| f.size).sum();
                d.num_bytes_outstanding = d.num_bytes_outstanding.saturating_sub(taken);
                // With nothing new, a batch runs only to let a moved watermark close windows.
                let no_data_due = self
                    .operator
                    .as_ref()
                    .is_some_and(AggOperator::no_data_batch_due);
                if files.is_empty() && !no_data_due {
                    return Ok(None);
                }
                // What the next batch will most likely read, for read-ahead.
                self.next_files = match (trigger, available.as_deref(), &listed) {
                    (Trigger::Once, _, _) => Vec::new(),
                    (_, Some(backlog), _) => backlog.peek(&self.seen, limit),
                    (_, None, Some(listed)) => {
                        let taken: HashSet<&str> = files.iter().map(|f| f.path.as_str()).collect();
                        let rest: Vec<FileEntry> = listed
                            .iter()
                            .filter(|f| !taken.contains(f.path.as_str()))
                            .cloned()
                            .collect();
                        select_batch(&rest, &self.seen, limit, latest_first)
                    }
                    _ => Vec::new(),
                };
                durations.insert("latestOffset".to_string(), ms(listing.elapsed()));
                let wal = Instant::now();
                let chosen = available.is_some().then(|| files.clone());
                let seen_index = self.seen_snapshot(&files).await?;
                let record = self.new_record(files, seen_index);
                let record = match self.records.create(record).await? {
                    Created::Ours(r) => r,
                    Created::Theirs(theirs) => {
                        // Another instance planned this batch: run theirs, and take the files
                        // this run chose and theirs does not hold in a later batch.
                        if let (Some(backlog), Some(chosen)) = (available, chosen) {
                            let held: HashSet<&str> =
                                theirs.files.iter().map(|f| f.path.as_str()).collect();
                            backlog.put_back(
                                chosen
                                    .into_iter()
                                    .filter(|f| !held.contains(f.path.as_str()))
                                    .collect(),
                            );
                        }
                        theirs
                    }
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

    /// On snapshot batches, the seen-file segments as they will be once batch `next_batch`
    /// over `files` commits — written now, before the record that names them.
    async fn seen_snapshot(&self, files: &[FileEntry]) -> Result<Option<SeenIndex>, Error> {
        if !BatchRecord::is_snapshot_batch(self.next_batch) {
            return Ok(None);
        }
        let seen = &self.seen;
        let mut after = SeenFiles::restore(
            [],
            seen.latest_mtime_ms(),
            seen.ignore_before_ms(),
            seen.file_name_only(),
        );
        after.advance(files, effective_max_age(&self.cfg.options));
        let batch = files
            .iter()
            .map(|f| (seen.identity(&f.path).to_string(), f.mtime_ms));
        // Without segments yet (a new query, or one whose snapshots held the whole set), the
        // first segment holds the whole set.
        let added: HashMap<String, i64> = match &self.seen_index {
            Some(_) => self.seen_since.clone().into_iter().chain(batch).collect(),
            None => seen
                .entries()
                .map(|(k, m)| (k.to_string(), m))
                .chain(batch)
                .collect(),
        };
        let index = self
            .records
            .seen_store()
            .snapshot(self.seen_index.as_ref(), added, &after)
            .await?;
        Ok(Some(index))
    }

    /// The record planning batch `next_batch` over `files`.
    fn new_record(&self, files: Vec<FileEntry>, seen_index: Option<SeenIndex>) -> BatchRecord {
        let batch_id = self.next_batch;
        BatchRecord {
            format: RECORD_FORMAT,
            query_name: self.cfg.query_name.clone(),
            query_id: self.query_id.clone(),
            batch_id,
            source: source_info(
                &self.cfg,
                &self.source,
                ddl::to_ddl(&file_columns::without_metadata(&self.source_schema)),
            ),
            sql: self.cfg.sql.clone(),
            files,
            seen: None,
            seen_index,
            watermark_ms: self
                .operator
                .as_ref()
                .and_then(AggOperator::next_watermark_us)
                .map(|us| us.div_euclid(1000)),
            planned_at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }
}

/// A query without a txn in the table may start from batch 0 only if it never committed: its
/// records say otherwise when batch 1 or later was planned (that needs batch 0 committed), or
/// when the log shows batch 0's commit. Records past batch 0 are looked up by listing, since
/// old ones are deleted as the query goes. Starting over would read the source twice.
async fn check_no_lost_txn(
    records: &RecordStore,
    sink: &DeltaSink,
    query_name: &str,
) -> Result<(), Error> {
    let lost = match records.newest().await? {
        None => return Ok(()),
        Some(0) if !sink.exists() => return Ok(()),
        Some(0) => match commit::batch_in_log(sink.table(), query_name, 0).await? {
            commit::InLog::NotCommitted => return Ok(()),
            commit::InLog::Committed => "it committed batch 0".to_string(),
            commit::InLog::Unknown => {
                "its batch 0 was planned and the log that would show its commit was cleaned up"
                    .to_string()
            }
        },
        Some(n) => format!("it planned batch {n}, so it committed batches before it"),
    };
    Err(SinkError::Inconsistent(format!(
        "the table holds no transaction record (txn) of query `{query_name}`, though {lost}: it expired under delta.setTransactionRetentionDuration while the query was stopped, and resuming would read the source again; unset that table property and run again (the txn comes back while the log still holds it), or stream the source into a new table"
    ))
    .into())
}

/// How the query reads its source, as its records keep it.
fn source_info(cfg: &QueryConfig, source: &FileSource, schema: String) -> SourceInfo {
    SourceInfo {
        uri: cfg.source.clone(),
        location: source.canonical(),
        format: cfg.format.to_string(),
        schema,
        partition_columns: source.partition_columns().to_vec(),
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
                let meta = committed_state(sink, &cfg.query_name, v).await?;
                op.restore(meta).await?;
            }
            Some(op)
        }
        None => {
            if let Some(v) = committed {
                let state = StateStore::new(sink.store(), &cfg.query_name)
                    .committed(v)
                    .await?;
                if !matches!(&state, Committed::Attempts(a) if a.is_empty()) {
                    return Err(Error::Config(format!(
                        "query `{}` was an aggregation when the table recorded it, and is not one now; restore the original query, or write the new one to a new table",
                        cfg.query_name
                    )));
                }
            }
            None
        }
    })
}

/// The meta of the state committed by batch `v`: its pointer; else (after a crash between the
/// commit and the pointer) the attempt the commit names in the log, or the only attempt that
/// wrote state for `v`, whose pointer is written then.
async fn committed_state(sink: &DeltaSink, query_name: &str, v: i64) -> Result<StateMeta, Error> {
    let store = StateStore::new(sink.store(), query_name);
    let attempts = match store.committed(v).await? {
        Committed::Meta(meta) => return Ok(meta),
        Committed::Attempts(attempts) => attempts,
    };
    if attempts.is_empty() {
        return Err(Error::Config(format!(
            "the query now aggregates, but batch {v} of query `{query_name}` was written without aggregation state; restore the original query, or write the new one to a new table"
        )));
    }
    let named = commit::state_attempt_in_log(sink.table(), query_name, v).await?;
    let attempt = match (named, attempts.as_slice()) {
        (Some(a), _) if attempts.contains(&a) => a,
        (None, [only]) => only.clone(),
        _ => {
            return Err(StateError::Persisted(format!(
                "cannot tell which of {} attempts at batch {v} of query `{query_name}` was committed (the log that says it was cleaned up): restore the state folder from a backup, or write the query to a new table",
                attempts.len()
            ))
            .into())
        }
    };
    let meta = store.attempt_meta(v, &attempt).await?.ok_or_else(|| {
        StateError::Persisted(format!(
            "the state meta of batch {v} by attempt {attempt} vanished"
        ))
    })?;
    // The pointer the crash kept from being written, so the next start reads it directly.
    store.point_to(&meta).await?;
    Ok(meta)
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
