//! Aggregation state persisted in the table, as a snapshot plus incremental deltas:
//!
//! ```text
//!   _sluice/queries/<q>/state/<N>.json            meta of batch N (written last)
//!                            <N>.upserts.parquet  state rows changed by batch N
//!                            <N>.deletes.parquet  keys removed by batch N (watermark eviction)
//!                            <N>.snapshot.parquet the whole state after batch N (now and then)
//! ```
//!
//! The files of batch N are written before commit N, under names that depend only on N, and
//! their content is a function of the committed history (the batch's recorded files and the
//! state after N-1), so a re-run of an uncommitted batch rewrites the same content. Restoring
//! after commit N reads meta N, the snapshot it names, and the deltas after it. A snapshot is
//! taken when the deltas since the last one outweigh the state (or every 50 batches), so the
//! cost of a batch follows the keys it changes and a restart reads a bounded number of files.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::{AggState, StateError};

/// The meta format this build writes. Format 1 kept a query's `window` key as one struct column
/// `__window`; format 2 keeps its bounds as two timestamp key columns, `__window_start` and
/// `__window_end`. Format-1 state is read by splitting the struct (see [`upgrade_rows`]).
pub const STATE_FORMAT: u32 = 2;
/// At most this many delta batches between snapshots.
pub const MAX_DELTAS: i64 = 50;

/// What batch N left in the state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateMeta {
    /// Meta format.
    pub format: u32,
    /// The batch.
    pub batch_id: i64,
    /// The batch whose snapshot this state builds on (= batch_id when it wrote one).
    pub snapshot_batch: i64,
    /// The snapshot before that one, deleted once this snapshot is committed.
    pub previous_snapshot: Option<i64>,
    /// Delta batches since the snapshot.
    pub deltas_since_snapshot: i64,
    /// Delta rows since the snapshot.
    pub delta_rows_since_snapshot: u64,
    /// Keys held after the batch.
    pub rows: u64,
    /// Rows changed by the batch.
    pub upserts: u64,
    /// Keys removed by the batch.
    pub deletes: u64,
    /// Newest event time seen so far (µs).
    pub max_event_time_us: Option<i64>,
    /// Watermark in force during the batch (µs).
    pub watermark_us: Option<i64>,
    /// What the state was built by (grouping keys, aggregates, window, output mode).
    pub signature: String,
}

/// Should batch N write a snapshot, given the previous meta and its own changes?
pub fn snapshot_due(previous: Option<&StateMeta>, changes: u64, rows: u64) -> bool {
    match previous {
        None => true,
        Some(p) => {
            p.deltas_since_snapshot + 1 >= MAX_DELTAS
                || p.delta_rows_since_snapshot + changes >= rows.max(1_000)
        }
    }
}

/// The state files of one query.
#[derive(Debug, Clone)]
pub struct StateStore {
    store: Arc<dyn ObjectStore>,
    folder: String,
}

fn encode(batch: &RecordBatch) -> Result<Bytes, StateError> {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), None)
        .map_err(|e| StateError::Persisted(format!("cannot encode state: {e}")))?;
    writer
        .write(batch)
        .map_err(|e| StateError::Persisted(format!("cannot encode state: {e}")))?;
    let bytes = writer
        .into_inner()
        .map_err(|e| StateError::Persisted(format!("cannot encode state: {e}")))?;
    Ok(Bytes::from(bytes))
}

fn decode(path: &Path, data: Bytes) -> Result<Vec<RecordBatch>, StateError> {
    let bad = |e: &dyn std::fmt::Display| {
        StateError::Persisted(format!("state file {path} is unreadable: {e}"))
    };
    ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| bad(&e))?
        .build()
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))
}

/// Format-1 state rows as format 2: a `__window` struct key column becomes its `start` and `end`
/// fields, as the columns `__window_start` and `__window_end`, in its place.
pub fn upgrade_rows(batch: RecordBatch) -> Result<RecordBatch, StateError> {
    let schema = batch.schema();
    let Some(index) = schema
        .fields()
        .iter()
        .position(|f| f.name() == "__window" && matches!(f.data_type(), DataType::Struct(_)))
    else {
        return Ok(batch);
    };
    let bounds = batch
        .column(index)
        .as_struct_opt()
        .ok_or_else(|| StateError::Persisted("format-1 state has an unreadable window".into()))?;
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    let mut split_fields = Vec::new();
    let mut split_columns = Vec::new();
    for (name, part) in [("__window_start", "start"), ("__window_end", "end")] {
        let column = bounds.column_by_name(part).ok_or_else(|| {
            StateError::Persisted(format!("format-1 state has a window without `{part}`"))
        })?;
        split_fields.push(Arc::new(Field::new(name, column.data_type().clone(), true)));
        split_columns.push(column.clone());
    }
    fields.splice(index..=index, split_fields);
    columns.splice(index..=index, split_columns);
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

impl StateStore {
    /// The state of `query_name` in the table whose root store is `store`.
    pub fn new(store: Arc<dyn ObjectStore>, query_name: &str) -> Self {
        StateStore {
            store,
            folder: format!("_sluice/queries/{query_name}/state"),
        }
    }

    fn path(&self, batch: i64, kind: &str) -> Path {
        Path::from(format!("{}/{batch:020}.{kind}", self.folder))
    }

    async fn put(&self, path: Path, bytes: Bytes) -> Result<(), StateError> {
        self.store.put(&path, PutPayload::from(bytes)).await?;
        Ok(())
    }

    async fn get(&self, path: &Path) -> Result<Option<Bytes>, StateError> {
        match self.store.get(path).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Persist batch N's state (before commit N). The meta goes last.
    pub async fn save(
        &self,
        meta: &StateMeta,
        upserts: &RecordBatch,
        deletes: &RecordBatch,
        snapshot: Option<&RecordBatch>,
    ) -> Result<(), StateError> {
        let n = meta.batch_id;
        if upserts.num_rows() > 0 {
            self.put(self.path(n, "upserts.parquet"), encode(upserts)?)
                .await?;
        }
        if deletes.num_rows() > 0 {
            self.put(self.path(n, "deletes.parquet"), encode(deletes)?)
                .await?;
        }
        if let Some(snapshot) = snapshot {
            self.put(self.path(n, "snapshot.parquet"), encode(snapshot)?)
                .await?;
        }
        let json = serde_json::to_vec(meta)
            .map_err(|e| StateError::Persisted(format!("cannot encode state meta: {e}")))?;
        self.put(self.path(n, "json"), Bytes::from(json)).await
    }

    /// The meta of batch N, if written.
    pub async fn meta(&self, batch: i64) -> Result<Option<StateMeta>, StateError> {
        let path = self.path(batch, "json");
        let Some(bytes) = self.get(&path).await? else {
            return Ok(None);
        };
        let meta: StateMeta = serde_json::from_slice(&bytes)
            .map_err(|e| StateError::Persisted(format!("state meta {path} is unreadable: {e}")))?;
        if meta.format > STATE_FORMAT {
            return Err(StateError::Persisted(format!(
                "state meta {path} was written by a newer sluice; upgrade sluice"
            )));
        }
        Ok(Some(meta))
    }

    async fn read(&self, batch: i64, kind: &str) -> Result<Vec<RecordBatch>, StateError> {
        let path = self.path(batch, kind);
        match self.get(&path).await? {
            Some(bytes) => decode(&path, bytes)?
                .into_iter()
                .map(upgrade_rows)
                .collect(),
            None => Err(StateError::Persisted(format!(
                "state file {path} is missing; the table's state for this query is damaged (start under a new --query-name to rebuild it)"
            ))),
        }
    }

    /// Restore the state committed by batch N into `state`; returns N's meta.
    pub async fn restore(
        &self,
        committed: i64,
        state: &mut AggState,
    ) -> Result<StateMeta, StateError> {
        let meta = self.meta(committed).await?.ok_or_else(|| {
            StateError::Persisted(format!(
                "the state of committed batch {committed} is missing under {}; start under a new --query-name to rebuild it",
                self.folder
            ))
        })?;
        let snapshot = self.read(meta.snapshot_batch, "snapshot.parquet").await?;
        state.apply(&snapshot, &[])?;
        for batch in meta.snapshot_batch + 1..=committed {
            let m = self.meta(batch).await?.ok_or_else(|| {
                StateError::Persisted(format!(
                    "the state meta of batch {batch} is missing under {}",
                    self.folder
                ))
            })?;
            let upserts = if m.upserts > 0 {
                self.read(batch, "upserts.parquet").await?
            } else {
                Vec::new()
            };
            let deletes = if m.deletes > 0 {
                self.read(batch, "deletes.parquet").await?
            } else {
                Vec::new()
            };
            state.apply(&upserts, &deletes)?;
        }
        state.clear_changes();
        Ok(meta)
    }

    /// After commit N: if N wrote a snapshot, delete the files no restore can need any more
    /// (the batches from the previous snapshot up to N).
    pub async fn expire(&self, meta: &StateMeta) -> Result<(), StateError> {
        if meta.snapshot_batch != meta.batch_id {
            return Ok(());
        }
        let Some(previous) = meta.previous_snapshot else {
            return Ok(());
        };
        for batch in previous..meta.batch_id {
            for kind in [
                "json",
                "upserts.parquet",
                "deletes.parquet",
                "snapshot.parquet",
            ] {
                match self.store.delete(&self.path(batch, kind)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(deltas: i64, delta_rows: u64) -> StateMeta {
        StateMeta {
            format: STATE_FORMAT,
            batch_id: 5,
            snapshot_batch: 0,
            previous_snapshot: None,
            deltas_since_snapshot: deltas,
            delta_rows_since_snapshot: delta_rows,
            rows: 100,
            upserts: 0,
            deletes: 0,
            max_event_time_us: None,
            watermark_us: None,
            signature: String::new(),
        }
    }

    #[test]
    fn snapshots_when_deltas_outweigh_the_state() {
        assert!(snapshot_due(None, 10, 10));
        assert!(!snapshot_due(Some(&meta(3, 100)), 10, 5_000));
        assert!(snapshot_due(Some(&meta(3, 4_995)), 10, 5_000));
        assert!(snapshot_due(Some(&meta(MAX_DELTAS - 1, 0)), 0, 5_000));
    }
}
