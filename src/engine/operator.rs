//! The aggregation operator of a stateful query: its state across micro-batches, its
//! watermark, and the state's persistence in the table.
//!
//! One batch, after its input is read (late rows already dropped by the watermark):
//!
//! ```text
//!  partial = Partial(batch)            old = state rows of the keys in `partial`
//!  merged  = PartialReduce(old ++ partial)  ─► state.upsert(merged)
//!  evicted = state.evict(watermark)          (append and update modes)
//!  emit    = complete: all rows │ update: merged │ append: evicted   ─► Final ─► the table
//!  persist = upserts + deletes (+ a snapshot now and then), before the commit
//! ```

use arrow::record_batch::RecordBatch;

use crate::plan::aggregate::AggregatePlan;
use crate::plan::{OutputModeKind, StateSignature, TimeKey, Watermark};
use crate::state::store::{snapshot_due, StateMeta, StateStore, STATE_FORMAT};
use crate::state::{row_count, AggState, StateError};

/// What one batch did to the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateStats {
    /// Keys held after the batch.
    pub rows_total: u64,
    /// Keys changed by the batch.
    pub rows_updated: u64,
    /// Keys evicted by the watermark.
    pub rows_removed: u64,
    /// Approximate memory of the state.
    pub memory_bytes: u64,
}

/// The aggregation state of one query.
pub struct AggOperator {
    state: AggState,
    store: StateStore,
    signature: StateSignature,
    mode: OutputModeKind,
    watermark: Option<Watermark>,
    /// Meta of the last committed batch.
    committed: Option<StateMeta>,
    /// Meta of the batch in flight, persisted but not committed.
    pending: Option<StateMeta>,
    max_event_us: Option<i64>,
    watermark_us: Option<i64>,
}

impl std::fmt::Debug for AggOperator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggOperator")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl AggOperator {
    /// An operator over state rows of `template`'s schema.
    pub fn new(
        template: &AggregatePlan,
        time_key: Option<TimeKey>,
        store: StateStore,
        signature: StateSignature,
        mode: OutputModeKind,
        watermark: Option<Watermark>,
    ) -> Result<Self, StateError> {
        let time_key = if watermark.is_some() { time_key } else { None };
        Ok(AggOperator {
            state: AggState::new(template.state_schema(), template.key_count(), time_key)?,
            store,
            signature,
            mode,
            watermark,
            committed: None,
            pending: None,
            max_event_us: None,
            watermark_us: None,
        })
    }

    /// Restore the state committed by batch `committed`, checking that the query still fits it.
    /// `meta` is the committed attempt's meta (see [`crate::state::store::Committed`]).
    pub async fn restore(&mut self, meta: StateMeta) -> Result<(), StateError> {
        let earlier = StateSignature::read(&meta.signature, meta.format).map_err(|e| {
            StateError::Persisted(format!("the state's signature is unreadable: {e}"))
        })?;
        if let Some(changes) = self.signature.changes_from(&earlier) {
            return Err(StateError::Persisted(format!(
                "the query changed since the table's state was built ({changes}); restore the original query, or write the new one to a new table"
            )));
        }
        self.store.restore(&meta, &mut self.state).await?;
        self.max_event_us = meta.max_event_time_us;
        // State written before the watermark had millisecond precision may hold microseconds.
        self.watermark_us = meta.watermark_us.map(|w| w.div_euclid(1000) * 1000);
        self.committed = Some(meta);
        Ok(())
    }

    /// The watermark the next batch runs with: the newest event time seen minus the delay,
    /// never moving back (Spark's rule: computed at the end of batch N, applied from N+1).
    ///
    /// Like Spark, the watermark has millisecond precision: the newest event time and the delay
    /// are each truncated to milliseconds first (`EventTimeWatermarkExec` adds `micros / 1000`),
    /// so a watermark read back from the millisecond record equals the one computed here.
    pub fn next_watermark_us(&self) -> Option<i64> {
        let delay_ms = self.watermark.as_ref()?.delay_us / 1000;
        let candidate = self
            .max_event_us
            .map(|m| (m / 1000).saturating_sub(delay_ms).saturating_mul(1000));
        match (self.watermark_us, candidate) {
            (Some(w), Some(c)) => Some(w.max(c)),
            (w, c) => w.or(c),
        }
    }

    /// Would a batch with no new data change anything (the watermark moved and state waits on it)?
    pub fn no_data_batch_due(&self) -> bool {
        self.mode != OutputModeKind::Complete
            && self.watermark.is_some()
            && !self.state.is_empty()
            && self.next_watermark_us() > self.watermark_us
    }

    /// Run the aggregation of one batch whose input `plan` reads; returns the state rows to
    /// finalize into output and the state statistics.
    pub async fn process(
        &mut self,
        plan: &AggregatePlan,
        watermark_us: Option<i64>,
    ) -> Result<(Vec<RecordBatch>, StateStats), crate::error::Error> {
        let partial = plan.partial().await?;
        let mut merged = Vec::new();
        if row_count(&partial) > 0 {
            let old = self.state.rows_for(&partial)?;
            let mut input = vec![old];
            input.extend(partial);
            merged = plan.reduce(input).await?;
            self.state.upsert(&merged)?;
        }
        let evicted = match (watermark_us, self.mode) {
            (Some(w), OutputModeKind::Append | OutputModeKind::Update) => self.state.evict(w)?,
            _ => RecordBatch::new_empty(self.state.schema().clone()),
        };
        let stats = StateStats {
            rows_total: self.state.len() as u64,
            rows_updated: row_count(&merged) as u64,
            rows_removed: evicted.num_rows() as u64,
            memory_bytes: self.state.memory_bytes() as u64,
        };
        let emit = match self.mode {
            OutputModeKind::Complete => vec![self.state.all()?],
            OutputModeKind::Update => merged,
            OutputModeKind::Append => vec![evicted],
        };
        self.watermark_us = watermark_us.or(self.watermark_us);
        Ok((emit, stats))
    }

    /// Take the batch's newest event time into account for the next watermark.
    pub fn observe_event_time(&mut self, batch_max_event_us: Option<i64>) {
        if let Some(m) = batch_max_event_us {
            self.max_event_us = Some(self.max_event_us.map_or(m, |cur| cur.max(m)));
        }
    }

    /// Persist batch `batch_id`'s state changes (before its commit), under a new attempt id
    /// (the commit names it: see [`crate::state::store`]).
    pub async fn persist(&mut self, batch_id: i64) -> Result<StateMeta, StateError> {
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let (upserts, deletes) = self.state.take_changes()?;
        let changes = (upserts.num_rows() + deletes.num_rows()) as u64;
        let rows = self.state.len() as u64;
        let previous = self.committed.as_ref();
        let snapshot = snapshot_due(previous, changes, rows);
        let meta = StateMeta {
            format: STATE_FORMAT,
            batch_id,
            snapshot_batch: if snapshot {
                batch_id
            } else {
                previous.map_or(batch_id, |p| p.snapshot_batch)
            },
            previous_snapshot: if snapshot {
                previous.map(|p| p.snapshot_batch)
            } else {
                previous.and_then(|p| p.previous_snapshot)
            },
            deltas_since_snapshot: if snapshot {
                0
            } else {
                previous.map_or(0, |p| p.deltas_since_snapshot) + 1
            },
            delta_rows_since_snapshot: if snapshot {
                0
            } else {
                previous.map_or(0, |p| p.delta_rows_since_snapshot) + changes
            },
            rows,
            upserts: upserts.num_rows() as u64,
            deletes: deletes.num_rows() as u64,
            max_event_time_us: self.max_event_us,
            watermark_us: self.watermark_us,
            signature: serde_json::to_string(&self.signature)
                .map_err(|e| StateError::Persisted(e.to_string()))?,
            chain: StateMeta::chain_after(previous, snapshot, &attempt),
            attempt,
        };
        let snapshot_rows = if snapshot {
            Some(self.state.all()?)
        } else {
            None
        };
        self.store
            .save(&meta, &upserts, &deletes, snapshot_rows.as_ref())
            .await?;
        self.pending = Some(meta.clone());
        Ok(meta)
    }

    /// The batch in flight was committed: its state is now the committed one.
    pub async fn committed(&mut self) {
        if let Some(meta) = self.pending.take() {
            // Housekeeping: without the pointer, a restart finds the attempt in the log.
            if let Err(e) = self.store.point_to(&meta).await {
                tracing::warn!("could not record the committed state attempt: {e}");
            }
            if let Err(e) = self.store.expire(&meta).await {
                tracing::warn!("could not delete old state files: {e}");
            }
            self.committed = Some(meta);
        }
    }

    /// The attempt id of the batch in flight's state, once persisted.
    pub fn pending_attempt(&self) -> Option<&str> {
        self.pending.as_ref().map(|m| m.attempt.as_str())
    }

    /// The watermark of the last batch (µs).
    pub fn watermark_us(&self) -> Option<i64> {
        self.watermark_us
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.state.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }
}
