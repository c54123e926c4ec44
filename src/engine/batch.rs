//! One micro-batch: read its files, run the query (stateless, or through the aggregation
//! operator), write the output as the mode says, and commit it with its txn.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::Int64Array;
use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::cmp::gt;
use arrow::compute::prep_null_mask_filter;
use arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use serde_json::{json, Value};

use super::operator::StateStats;
use super::{crash_window, delta_mode, ms, Engine, Progress, SinkProgress, SourceProgress};
use crate::commit::record::{BatchRecord, RecordStore};
use crate::commit::{self, BatchCommit, CommitOutcome};
use crate::error::Error;
use crate::plan::{OutputModeKind, PlanError, QueryKind, TimeKey};
use crate::sink::{upsert, SinkError};
use crate::source::discovery::effective_max_age;
use crate::source::SourceError;

/// An input stream with no rows.
/// The data files a batch's commit added (their sizes) and removed (their paths).
struct FileChange {
    added: Vec<u64>,
    removed: std::collections::HashSet<String>,
}

pub(super) fn empty_input(schema: &SchemaRef) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema.clone(),
        futures::stream::empty(),
    ))
}

/// Event-time statistics of a batch's input (µs).
#[derive(Debug, Default, Clone, Copy)]
struct EventStats {
    min: Option<i64>,
    max: Option<i64>,
    sum: i128,
    count: u64,
}

impl EventStats {
    /// Add one column of event times, with Arrow's aggregate kernels: min, max, and the sum
    /// taken relative to the column's minimum (so that it fits an i64 for any realistic span).
    fn observe(&mut self, ts: &TimestampMicrosecondArray) {
        let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) else {
            return;
        };
        let n = (ts.len() - ts.null_count()) as u64;
        let ints = ts.reinterpret_cast::<Int64Type>();
        let relative = arrow::compute::kernels::numeric::sub(&ints, &Int64Array::new_scalar(lo))
            .ok()
            .and_then(|r| arrow::compute::sum_checked(r.as_primitive::<Int64Type>()).ok())
            .flatten();
        let sum = match relative {
            Some(r) => i128::from(lo) * i128::from(n) + i128::from(r),
            // Spans too wide for an i64 sum: add them one by one.
            None => ts.iter().flatten().map(i128::from).sum(),
        };
        self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
        self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
        self.sum += sum;
        self.count += n;
    }
}

/// Counters shared with the input stream of a batch.
#[derive(Debug, Default)]
struct InputStats {
    rows: AtomicU64,
    malformed: AtomicU64,
    dropped_late: AtomicU64,
    events: Mutex<EventStats>,
    error: Mutex<Option<SourceError>>,
}

/// How the input of a batch is prepared before the query sees it.
#[derive(Debug, Clone)]
struct Prepare {
    window: Option<crate::plan::window::WindowSpec>,
    table_schema: SchemaRef,
    event_column: Option<String>,
    /// Drop rows at or behind this watermark (µs), by window end or by the time key.
    late: Option<(i64, TimeKey)>,
}

impl Prepare {
    fn apply(&self, batch: RecordBatch, stats: &InputStats) -> Result<RecordBatch, PlanError> {
        if let Some(col) = &self.event_column {
            if let Some(ts) = batch
                .column_by_name(col)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            {
                let mut e = stats
                    .events
                    .lock()
                    .map_err(|_| PlanError::Execution("stats".into()))?;
                e.observe(ts);
            }
        }
        let expanded = match &self.window {
            Some(w) => w.expand(&batch, &self.table_schema)?,
            None => batch,
        };
        let Some((watermark, key)) = self.late else {
            return Ok(expanded);
        };
        let times = match key {
            TimeKey::WindowEnd(_) => expanded
                .column_by_name(crate::plan::window::WINDOW_END)
                .cloned(),
            TimeKey::Timestamp(_) => self
                .event_column
                .as_ref()
                .and_then(|c| expanded.column_by_name(c).cloned()),
        };
        let Some(times) = times else {
            return Ok(expanded);
        };
        let Some(times) = times.as_primitive_opt::<TimestampMicrosecondType>() else {
            return Ok(expanded);
        };
        let bound = arrow::array::Scalar::new(
            TimestampMicrosecondArray::from(vec![watermark])
                .with_data_type(times.data_type().clone()),
        );
        let keep = gt(times, &bound).map_err(|e| PlanError::Execution(e.to_string()))?;
        // A null time compares to null: such a row can join no window, so it is dropped.
        let keep = if keep.null_count() > 0 {
            prep_null_mask_filter(&keep)
        } else {
            keep
        };
        let dropped = keep.len() - keep.true_count();
        stats
            .dropped_late
            .fetch_add(dropped as u64, Ordering::Relaxed);
        filter_record_batch(&expanded, &keep).map_err(|e| PlanError::Execution(e.to_string()))
    }
}

/// What a batch's query produced, by output mode.
enum Output {
    /// Files already written, to add (stateless queries, append mode).
    Add(Vec<deltalake::kernel::Add>),
    /// Files already written holding the whole result, replacing every live file (complete).
    Replace(Vec<deltalake::kernel::Add>),
    /// Changed result rows, upserted on the grouping keys at commit time (update), and, when a
    /// HAVING may drop keys, every key the batch touched (whose old rows all go).
    Upsert {
        changed: Vec<RecordBatch>,
        touched: Option<Vec<RecordBatch>>,
    },
}

/// A batch's output with its row count and state statistics.
struct Produced {
    output: Output,
    rows_out: u64,
    state: Option<StateStats>,
}

impl Engine {
    /// Batch `record` committed: the seen-file segments of a snapshot batch become the ones a
    /// restart resumes from (those it no longer names are deleted); other batches' files are
    /// kept for the next snapshot.
    async fn seen_committed(&mut self, record: &BatchRecord) {
        if !BatchRecord::is_snapshot_batch(record.batch_id) {
            for f in &record.files {
                let key = self.seen.identity(&f.path).to_string();
                self.seen_since.insert(key, f.mtime_ms);
            }
            return;
        }
        if let (Some(before), Some(now)) = (&self.seen_index, &record.seen_index) {
            if let Err(e) = self.records.seen_store().expire(before, now).await {
                tracing::warn!("could not delete old seen-file segments: {e}");
            }
        }
        // A snapshot that held the whole set (format 1) leaves no segments: the next snapshot
        // writes the whole set as its first segment.
        self.seen_index = record.seen_index.clone();
        self.seen_since.clear();
    }

    fn input(
        &mut self,
        record: &BatchRecord,
        stats: Arc<InputStats>,
        prepare: Prepare,
    ) -> SendableRecordBatchStream {
        let next = std::mem::take(&mut self.next_files);
        let decoded = self
            .read_ahead
            .read(&self.source, &record.files, &self.source_schema);
        let decoded =
            self.read_ahead
                .then_read_ahead(decoded, &self.source, next, &self.source_schema);
        let table_schema = prepare.table_schema.clone();
        let batches = decoded
            .map(move |item| match item {
                Ok(d) => {
                    let rows: usize = d.batches.iter().map(|b| b.num_rows()).sum();
                    stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                    stats
                        .malformed
                        .fetch_add(d.malformed as u64, Ordering::Relaxed);
                    let prepared: Vec<Result<RecordBatch, DataFusionError>> = d
                        .batches
                        .into_iter()
                        .map(|b| {
                            prepare
                                .apply(b, &stats)
                                .map_err(|e| DataFusionError::Execution(e.to_string()))
                        })
                        .collect();
                    Ok(futures::stream::iter(prepared))
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
        Box::pin(RecordBatchStreamAdapter::new(table_schema, batches))
    }

    /// The rows of an output stream, in the table's schema (update mode upserts them at commit
    /// time); source errors surface as themselves.
    async fn collect_rows(
        &self,
        output: SendableRecordBatchStream,
        stats: &InputStats,
    ) -> Result<Vec<RecordBatch>, Error> {
        let rows: Vec<RecordBatch> = output
            .try_collect()
            .await
            .map_err(|e| input_error(stats, e))?;
        Ok(rows
            .iter()
            .map(|b| crate::sink::schema::conform(b, &self.delta_schema))
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Write an output stream with the batch writer; source errors surface as themselves.
    async fn write_stream(
        &mut self,
        mut output: SendableRecordBatchStream,
        stats: &InputStats,
    ) -> Result<(Vec<deltalake::kernel::Add>, u64), Error> {
        let mut writer = self.sink.writer()?;
        while let Some(next) = output.next().await {
            match next {
                Ok(batch) => writer.write(batch).await?,
                Err(e) => return Err(input_error(stats, e)),
            }
        }
        Ok(writer.finish().await?)
    }

    async fn run_query(
        &mut self,
        record: &BatchRecord,
        stats: &Arc<InputStats>,
        durations: &mut BTreeMap<String, u64>,
    ) -> Result<Produced, Error> {
        let watermark_us = record.watermark_ms.map(|ms| ms * 1000);
        let time_key = match self.plan.kind() {
            QueryKind::Aggregate(info) => info.time_key,
            QueryKind::Stateless => None,
        };
        let prepare = Prepare {
            window: self.plan.window().cloned(),
            table_schema: self.plan.table_schema().clone(),
            event_column: self.plan.watermark().map(|w| w.column.clone()),
            // Complete mode keeps every row whatever the watermark (Spark's EventTimeWatermarkSuite,
            // "complete mode"): the watermark drops and evicts only in append and update modes.
            late: match (watermark_us, time_key, self.cfg.output_mode) {
                (_, _, OutputModeKind::Complete) => None,
                (Some(w), Some(k), _) => Some((w, k)),
                _ => None,
            },
        };
        let input = self.input(record, stats.clone(), prepare);
        let planning = Instant::now();
        self.sink.ensure_table(&self.delta_schema).await?;
        if self.operator.is_none() {
            let output = self.plan.execute(input).await?;
            durations.insert("queryPlanning".to_string(), ms(planning.elapsed()));
            let add_batch = Instant::now();
            let (adds, rows_out) = self.write_stream(output, stats).await?;
            durations.insert("addBatch".to_string(), ms(add_batch.elapsed()));
            return Ok(Produced {
                output: Output::Add(adds),
                rows_out,
                state: None,
            });
        }
        let agg = self.plan.aggregate(input).await?;
        durations.insert("queryPlanning".to_string(), ms(planning.elapsed()));
        let add_batch = Instant::now();
        let operator = self
            .operator
            .as_mut()
            .ok_or_else(|| Error::Config("no operator".into()))?;
        let processed = operator.process(&agg, watermark_us).await;
        let (emit, state_stats) = match processed {
            Ok(done) => done,
            Err(e) => return Err(stats.source_error_or(e)),
        };
        // The batch's newest event time moves the watermark for the next batch.
        let batch_max = stats.events.lock().ok().and_then(|e| e.max);
        operator.observe_event_time(batch_max);
        operator.persist(record.batch_id).await?;
        // Update mode with HAVING: a key the batch changed that HAVING now drops must leave the
        // table, so every touched key is known too (the result without HAVING, one row per key).
        let touched = match self.cfg.output_mode {
            OutputModeKind::Update if agg.has_having() => Some(emit.clone()),
            _ => None,
        };
        let output = agg.finalize(emit)?;
        let (output, rows_out) = match self.cfg.output_mode {
            OutputModeKind::Append => {
                let (adds, rows) = self.write_stream(output, stats).await?;
                (Output::Add(adds), rows)
            }
            OutputModeKind::Complete => {
                let (adds, rows) = self.write_stream(output, stats).await?;
                (Output::Replace(adds), rows)
            }
            OutputModeKind::Update => {
                let changed = self.collect_rows(output, stats).await?;
                let rows = changed.iter().map(|b| b.num_rows() as u64).sum();
                let touched = match touched {
                    Some(rows) => Some(
                        self.collect_rows(agg.finalize_unfiltered(rows)?, stats)
                            .await?,
                    ),
                    None => None,
                };
                (Output::Upsert { changed, touched }, rows)
            }
        };
        durations.insert("addBatch".to_string(), ms(add_batch.elapsed()));
        Ok(Produced {
            output,
            rows_out,
            state: Some(state_stats),
        })
    }

    /// The actions of a commit attempt, from the table as it is now; with the version they
    /// were computed from when they depend on it.
    async fn actions(
        &mut self,
        output: &Output,
    ) -> Result<
        (
            Vec<deltalake::kernel::Add>,
            Vec<deltalake::kernel::Action>,
            Option<i64>,
        ),
        Error,
    > {
        match output {
            Output::Add(adds) => Ok((adds.clone(), Vec::new(), None)),
            Output::Replace(adds) => {
                self.sink.table_mut().update_incremental(None).await?;
                let read = self.sink.version();
                let removes = self
                    .sink
                    .table()
                    .snapshot()?
                    .log_data()
                    .iter()
                    .map(|f| deltalake::kernel::Action::Remove(f.remove_action(true)))
                    .collect();
                Ok((adds.clone(), removes, read))
            }
            Output::Upsert { changed, touched } => {
                self.sink.table_mut().update_incremental(None).await?;
                let read = self.sink.version();
                let keys = match self.plan.kind() {
                    QueryKind::Aggregate(info) => info.output_keys.clone(),
                    QueryKind::Stateless => Vec::new(),
                };
                let replaced = touched.as_ref().unwrap_or(changed);
                let (removes, kept) =
                    upsert::upsert(self.sink.table(), &self.delta_schema, replaced, &keys).await?;
                let mut adds = Vec::new();
                for rows in [kept, changed.clone()] {
                    let mut writer = self.sink.writer()?;
                    for b in rows {
                        writer.write(b).await?;
                    }
                    adds.extend(writer.finish().await?.0);
                }
                Ok((adds, removes, read))
            }
        }
    }

    /// Read, transform, write and commit one planned batch.
    pub(super) async fn run_batch(
        &mut self,
        record: &BatchRecord,
        trigger_start: Instant,
        timestamp: String,
        mut durations: BTreeMap<String, u64>,
    ) -> Result<Progress, Error> {
        let stats = Arc::new(InputStats::default());
        let produced = self.run_query(record, &stats, &mut durations).await?;

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
            "watermarkMs": record.watermark_ms,
            "stateAttempt": self.operator.as_ref().and_then(|op| op.pending_attempt()),
            "record": format!("{}/{:020}.json", RecordStore::folder(&self.cfg.query_name), record.batch_id),
        });
        let mut attempts = 0;
        let mut commit_attempts = 0;
        let (version, added) = loop {
            attempts += 1;
            let (adds, extra, read_version) = self.actions(&produced.output).await?;
            let added = FileChange {
                added: adds
                    .iter()
                    .map(|a| u64::try_from(a.size).unwrap_or(0))
                    .collect(),
                removed: extra
                    .iter()
                    .filter_map(|a| match a {
                        deltalake::kernel::Action::Remove(r) => Some(r.path.clone()),
                        _ => None,
                    })
                    .collect(),
            };
            crash_window("written", record.batch_id).await;
            let commit = BatchCommit {
                app_id: self.cfg.app_id(),
                query_id: self.query_id.clone(),
                batch_id: record.batch_id,
                output_mode: delta_mode(self.cfg.output_mode),
                adds,
                extra,
                info: info.clone(),
                read_version,
            };
            match commit::commit_batch(self.sink.table_mut(), &commit, &mut self.own_commit).await? {
                CommitOutcome::Committed { version, attempts: tries } => {
                    commit_attempts += tries;
                    break (version, added);
                }
                CommitOutcome::Superseded { .. } => {
                    return Err(SinkError::AnotherInstance {
                        query: self.cfg.query_name.clone(),
                        batch_id: record.batch_id,
                    }
                    .into())
                }
                CommitOutcome::Stale if attempts < 25 => {
                    commit_attempts += 1;
                    continue;
                }
                CommitOutcome::Stale => {
                    return Err(SinkError::Inconsistent(format!(
                        "batch {} could not commit: other writers kept changing the table; run one writer per complete- or update-mode table",
                        record.batch_id
                    ))
                    .into())
                }
            }
        };
        durations.insert("commitOffsets".to_string(), ms(commit_start.elapsed()));
        crash_window("committed", record.batch_id).await;

        // The batch is committed: advance.
        if let Some(op) = self.operator.as_mut() {
            op.committed().await;
        }
        self.seen
            .advance(&record.files, effective_max_age(&self.cfg.options));
        self.seen_committed(record).await;
        if self.source.cleans() {
            // cleanSource: the batch's files are archived or deleted now that it is committed.
            let cleaned = self.source.clean(&record.files).await;
            tracing::debug!(cleaned, batch = record.batch_id, "committed files cleaned");
        }
        if let Err(e) = self.records.expire(record.batch_id).await {
            tracing::warn!("could not delete old batch records: {e}");
        }
        if self.compaction_due(record.batch_id, &added) {
            // Housekeeping: a failure here leaves the table as it was, and the stream goes on.
            match self.sink.compact().await {
                Ok(n) => tracing::info!(files = n, "small files compacted"),
                Err(e) => tracing::warn!("could not compact small files: {e}"),
            }
        }
        if record.batch_id > 0 && record.batch_id % crate::sink::LOG_CLEANUP_EVERY == 0 {
            match self.sink.cleanup_logs().await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "expired log files cleaned up"),
                Ok(_) => {}
                Err(e) => tracing::warn!("could not clean up expired log files: {e}"),
            }
        }
        self.next_batch = record.batch_id + 1;
        self.txn_written = Some(Instant::now());
        Ok(self.progress(
            record,
            &stats,
            produced.rows_out,
            produced.state,
            (version, commit_attempts),
            trigger_start,
            timestamp,
            durations,
            end_offset,
        ))
    }

    /// Compact after this batch (its change to the table's files)? Every `--compact-every`
    /// batches when given, else when the table compacts itself and small files piled up (see
    /// [`crate::sink::compaction`]).
    fn compaction_due(&self, batch_id: i64, change: &FileChange) -> bool {
        let every = i64::from(self.cfg.compact_every);
        if every > 0 {
            return (batch_id + 1) % every == 0;
        }
        if !self.cfg.auto_compact {
            return false;
        }
        self.sink
            .auto_compaction_due(
                self.cfg.auto_compact_min_files,
                &change.added,
                &change.removed,
            )
            .unwrap_or_else(|e| {
                tracing::warn!("could not count the table's small files: {e}");
                false
            })
    }

    #[allow(clippy::too_many_arguments)]
    fn progress(
        &mut self,
        record: &BatchRecord,
        stats: &InputStats,
        rows_out: u64,
        state: Option<StateStats>,
        (version, commit_attempts): (i64, usize),
        trigger_start: Instant,
        timestamp: String,
        mut durations: BTreeMap<String, u64>,
        end_offset: Value,
    ) -> Progress {
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
        let iso = |us: i64| {
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        let mut event_time = BTreeMap::new();
        if let Ok(e) = stats.events.lock() {
            if let (Some(min), Some(max)) = (e.min, e.max) {
                event_time.insert("min".to_string(), iso(min));
                event_time.insert("max".to_string(), iso(max));
                if e.count > 0 {
                    event_time.insert("avg".to_string(), iso((e.sum / i128::from(e.count)) as i64));
                }
            }
        }
        // Like Spark, a query with a watermark reports it from its first batch on (the epoch
        // before any event time was seen).
        if self.plan.watermark().is_some() {
            let w = record.watermark_ms.unwrap_or(0);
            event_time.insert("watermark".to_string(), iso(w.saturating_mul(1000)));
        }
        let state_operators = state
            .map(|s| {
                vec![json!({
                    "operatorName": "stateStoreSave",
                    "numRowsTotal": s.rows_total,
                    "numRowsUpdated": s.rows_updated,
                    "numRowsRemoved": s.rows_removed,
                    "numRowsDroppedByWatermark": stats.dropped_late.load(Ordering::Relaxed),
                    "memoryUsedBytes": s.memory_bytes,
                })]
            })
            .unwrap_or_default();
        let start_offset = std::mem::replace(&mut self.last_offset, end_offset.clone());
        let io_now = (self.source.io_counts(), self.sink.io_counts());
        let (source_io, sink_io) = std::mem::replace(&mut self.io_mark, io_now);
        Progress {
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
            event_time,
            state_operators,
            sources: vec![SourceProgress {
                description: format!("FileStreamSource[{}]", self.cfg.source),
                start_offset,
                end_offset: end_offset.clone(),
                latest_offset: end_offset,
                num_input_rows: rows_in,
                input_rows_per_second: rate(rows_in, since_last),
                processed_rows_per_second: rate(rows_in, elapsed),
                num_malformed_records: stats.malformed.load(Ordering::Relaxed),
                discovery: std::mem::take(&mut self.discovered),
                metrics: (io_now.0 - source_io).into(),
            }],
            sink: SinkProgress {
                description: format!("DeltaSink[{}]", self.cfg.sink),
                num_output_rows: rows_out,
                table_version: version,
                commit_attempts,
                metrics: (io_now.1 - sink_io).into(),
            },
        }
    }
}

/// The error an output stream failed with: the source's own error when the input failed.
fn input_error(stats: &InputStats, e: DataFusionError) -> Error {
    stats.source_error_or(PlanError::Execution(e.to_string()).into())
}

impl InputStats {
    /// The source's own error when the input failed (the query only saw its text), else `e`.
    fn source_error_or(&self, e: Error) -> Error {
        match self.error.lock().ok().and_then(|mut s| s.take()) {
            Some(source_error) => source_error.into(),
            None => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_stats_match_a_row_by_row_computation() {
        let year = 365 * 24 * 3600 * 1_000_000_i64;
        let narrow: Vec<Option<i64>> = (0..10_000)
            .map(|i| (i % 7 != 3).then_some(1_469_501_107_000_000 + i * 997))
            .collect();
        let wide = vec![
            Some(-500 * year),
            None,
            Some(i64::MAX / 2),
            Some(i64::MAX / 2 + 9),
        ];
        for values in [narrow, wide] {
            let mut by_kernels = EventStats::default();
            by_kernels.observe(&TimestampMicrosecondArray::from(values.clone()));
            let present: Vec<i64> = values.iter().flatten().copied().collect();
            assert_eq!(by_kernels.min, present.iter().min().copied());
            assert_eq!(by_kernels.max, present.iter().max().copied());
            assert_eq!(
                by_kernels.sum,
                present.iter().map(|v| i128::from(*v)).sum::<i128>()
            );
            assert_eq!(by_kernels.count, present.len() as u64);
        }
        let mut empty = EventStats::default();
        empty.observe(&TimestampMicrosecondArray::from(vec![None, None]));
        assert_eq!((empty.min, empty.count), (None, 0));
    }
}
