//! Aggregation state: one row of accumulator state per group key, kept in memory, indexed by
//! key and (with a watermark) by event time, and persisted in the table (see [`store`]).
//!
//! Operator lifecycle per micro-batch, driven by the engine:
//! 1. `rows_for(keys)`: the current state rows of the keys the batch touches;
//! 2. `upsert(rows)`: replace them with the merged rows;
//! 3. `evict(watermark)`: remove (and return) rows whose event time is behind the watermark;
//! 4. `changes()` / `all()`: what to persist and what complete mode emits.

pub mod store;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimestampMicrosecondType};
use arrow::row::{OwnedRow, RowConverter, SortField};

/// Errors of the state layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// Arrow failed on state rows.
    #[error("state error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// Persisted state is missing or unreadable.
    #[error("{0}")]
    Persisted(String),
    /// Storage failed.
    #[error("state storage error: {0}; fix the table's storage (location, AWS_* settings) and run again: committed batches are kept")]
    Storage(#[from] object_store::Error),
}

/// Which key column carries event time, for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeKey {
    /// The window's end: a timestamp key, or the `end` field of a `window` struct key.
    WindowEnd(usize),
    /// A plain timestamp key.
    Timestamp(usize),
}

/// Keyed accumulator state.
pub struct AggState {
    schema: SchemaRef,
    key_count: usize,
    keys: RowConverter,
    rows: RowConverter,
    map: HashMap<OwnedRow, OwnedRow>,
    time_key: Option<TimeKey>,
    by_time: BTreeMap<i64, HashSet<OwnedRow>>,
    /// Keys upserted since the last `take_changes`.
    changed: HashSet<OwnedRow>,
    /// Keys removed since the last `take_changes`.
    removed: HashSet<OwnedRow>,
}

impl std::fmt::Debug for AggState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggState")
            .field("rows", &self.map.len())
            .finish_non_exhaustive()
    }
}

fn fields(schema: &SchemaRef, range: std::ops::Range<usize>) -> Vec<SortField> {
    schema.fields()[range]
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect()
}

/// The event time (µs) of each row of a key column, per the time key kind.
fn event_times(batch: &RecordBatch, time_key: TimeKey) -> Vec<Option<i64>> {
    let column: ArrayRef = match time_key {
        TimeKey::WindowEnd(i) => match batch.column(i).as_struct_opt() {
            Some(s) => s
                .column_by_name("end")
                .cloned()
                .unwrap_or_else(|| batch.column(i).clone()),
            None => batch.column(i).clone(),
        },
        TimeKey::Timestamp(i) => batch.column(i).clone(),
    };
    match column.data_type() {
        DataType::Timestamp(_, _) => {
            let Some(ts) = column.as_primitive_opt::<TimestampMicrosecondType>() else {
                return vec![None; batch.num_rows()];
            };
            ts.iter().collect()
        }
        _ => vec![None; batch.num_rows()],
    }
}

impl AggState {
    /// Empty state for rows of `schema` whose first `key_count` columns are the group keys.
    pub fn new(
        schema: SchemaRef,
        key_count: usize,
        time_key: Option<TimeKey>,
    ) -> Result<Self, StateError> {
        Ok(AggState {
            keys: RowConverter::new(fields(&schema, 0..key_count))?,
            rows: RowConverter::new(fields(&schema, 0..schema.fields().len()))?,
            schema,
            key_count,
            map: HashMap::new(),
            time_key,
            by_time: BTreeMap::new(),
            changed: HashSet::new(),
            removed: HashSet::new(),
        })
    }

    /// The schema of state rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Approximate memory held by the state rows.
    pub fn memory_bytes(&self) -> usize {
        self.map
            .iter()
            .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 64)
            .sum()
    }

    fn key_rows(&self, batch: &RecordBatch) -> Result<Vec<OwnedRow>, StateError> {
        let keys = self
            .keys
            .convert_columns(&batch.columns()[..self.key_count])?;
        Ok(keys.iter().map(|r| r.owned()).collect())
    }

    fn to_batch<'a>(
        &self,
        rows: impl Iterator<Item = &'a OwnedRow>,
    ) -> Result<RecordBatch, StateError> {
        let columns = self.rows.convert_rows(rows.map(|r| r.row()))?;
        if columns.is_empty() {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// The current state rows of the keys present in `batches`.
    pub fn rows_for(&self, batches: &[RecordBatch]) -> Result<RecordBatch, StateError> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for batch in batches {
            for key in self.key_rows(batch)? {
                if let Some(row) = self.map.get(&key) {
                    if seen.insert(key) {
                        found.push(row);
                    }
                }
            }
        }
        self.to_batch(found.into_iter())
    }

    /// Replace the rows of the keys in `batches` (one row per key).
    pub fn upsert(&mut self, batches: &[RecordBatch]) -> Result<(), StateError> {
        for batch in batches {
            let keys = self.key_rows(batch)?;
            let rows = self.rows.convert_columns(batch.columns())?;
            let times = match self.time_key {
                Some(tk) => event_times(batch, tk),
                None => Vec::new(),
            };
            for (i, key) in keys.into_iter().enumerate() {
                if let Some(Some(t)) = times.get(i) {
                    self.by_time.entry(*t).or_default().insert(key.clone());
                }
                self.removed.remove(&key);
                self.changed.insert(key.clone());
                self.map.insert(key, rows.row(i).owned());
            }
        }
        Ok(())
    }

    /// Remove the keys in `batches` (tombstones when restoring).
    fn remove_keys(&mut self, batch: &RecordBatch) -> Result<(), StateError> {
        for key in self.key_rows(batch)? {
            self.map.remove(&key);
            self.changed.remove(&key);
            self.removed.insert(key);
        }
        Ok(())
    }

    /// Remove and return the rows whose event time is at or behind `watermark_us`.
    pub fn evict(&mut self, watermark_us: i64) -> Result<RecordBatch, StateError> {
        let later = self.by_time.split_off(&(watermark_us.saturating_add(1)));
        let due = std::mem::replace(&mut self.by_time, later);
        let mut evicted = Vec::new();
        for (_, keys) in due {
            for key in keys {
                if let Some(row) = self.map.remove(&key) {
                    self.changed.remove(&key);
                    self.removed.insert(key);
                    evicted.push(row);
                }
            }
        }
        self.to_batch(evicted.iter())
    }

    /// Every state row.
    pub fn all(&self) -> Result<RecordBatch, StateError> {
        self.to_batch(self.map.values())
    }

    /// The rows upserted and the keys removed since the last call, and forget them.
    pub fn take_changes(&mut self) -> Result<(RecordBatch, RecordBatch), StateError> {
        let changed = std::mem::take(&mut self.changed);
        let removed = std::mem::take(&mut self.removed);
        let upserts = self.to_batch(changed.iter().filter_map(|k| self.map.get(k)))?;
        let key_columns = self.keys.convert_rows(removed.iter().map(|r| r.row()))?;
        let deletes = self.keys_batch(key_columns, removed.len())?;
        Ok((upserts, deletes))
    }

    /// A batch of state schema holding only key columns (others null): tombstones.
    fn keys_batch(
        &self,
        key_columns: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch, StateError> {
        let mut columns = key_columns;
        if columns.is_empty() && self.key_count > 0 {
            return Ok(RecordBatch::new_empty(self.schema.clone()));
        }
        for f in &self.schema.fields()[self.key_count..] {
            columns.push(arrow::array::new_null_array(f.data_type(), rows));
        }
        Ok(RecordBatch::try_new(
            Arc::new(arrow::datatypes::Schema::new(
                self.schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            columns,
        )?)
    }

    /// Apply persisted changes: upserted rows, then removed keys.
    pub fn apply(
        &mut self,
        upserts: &[RecordBatch],
        deletes: &[RecordBatch],
    ) -> Result<(), StateError> {
        self.upsert(upserts)?;
        for d in deletes {
            self.remove_keys(d)?;
        }
        Ok(())
    }

    /// Forget pending changes (after restoring).
    pub fn clear_changes(&mut self) {
        self.changed.clear();
        self.removed.clear();
    }
}

/// Rows in a set of batches.
pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}
