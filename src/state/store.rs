//! Aggregation state persisted in the table, as a snapshot plus incremental deltas, each batch's
//! files named by the attempt that wrote them:
//!
//! ```text
//!   _sluice/queries/<q>/state/<N>.<A>.json             meta of batch N by attempt A (written last)
//!                            <N>.<A>.upserts.parquet  state rows changed by batch N
//!                            <N>.<A>.deletes.parquet  keys removed by batch N (watermark eviction)
//!                            <N>.<A>.snapshot.parquet the whole state after batch N (now and then)
//!                            <N>.json                 the committed attempt's meta (after commit N)
//! ```
//!
//! Every run of batch N writes its own files (a fresh attempt id) before commit N, and the
//! commit names its attempt in commitInfo (`stateAttempt`); so a second instance that re-runs a
//! batch another one committed, or a crashed attempt's restart, never rewrites state a commit
//! relies on — even when aggregates are not deterministic (float sums). After commit N the
//! attempt's meta is copied to `<N>.json` (put-if-absent); if a crash came first, the restart
//! finds the attempt in the log. A meta lists the attempts of its snapshot and deltas (`chain`),
//! so restoring after commit N reads N's meta, the snapshot it names, and the deltas after it.
//! A snapshot is taken when the deltas since the last one outweigh the state (or every 50
//! batches), so the cost of a batch follows the keys it changes and a restart reads a bounded
//! number of files. State written before attempts (format 2 and older) has no attempt in its
//! names and is read as it is.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::{DataType, Field, FieldRef, Schema};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::{AggState, StateError};

/// The meta format this build writes. Format 1 kept a query's `window` key as one struct column
/// `__window`; format 2 keeps its bounds as two timestamp key columns, `__window_start` and
/// `__window_end`. Format-1 state is read by splitting the struct (see [`upgrade_rows`]).
/// Format 3 names each batch's files by attempt (see the module docs).
pub const STATE_FORMAT: u32 = 3;
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
    /// The attempt that wrote this batch's files ("" before attempts were kept).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub attempt: String,
    /// The attempts of batches `snapshot_batch..=batch_id`, in order (empty before attempts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
}

impl StateMeta {
    /// The attempt that wrote batch `batch`'s files, for a batch of this meta's chain.
    pub fn attempt_of(&self, batch: i64) -> &str {
        usize::try_from(batch - self.snapshot_batch)
            .ok()
            .and_then(|i| self.chain.get(i))
            .map_or("", String::as_str)
    }

    /// The chain of the batch after this one: this chain and `attempt`, or just `attempt` when
    /// that batch writes a snapshot.
    pub fn chain_after(previous: Option<&StateMeta>, snapshot: bool, attempt: &str) -> Vec<String> {
        let mut chain = match previous {
            Some(p) if !snapshot => (p.snapshot_batch..=p.batch_id)
                .map(|b| p.attempt_of(b).to_string())
                .collect(),
            _ => Vec::new(),
        };
        chain.push(attempt.to_string());
        chain
    }
}

/// What the state folder says about a committed batch.
#[derive(Debug)]
pub enum Committed {
    /// The committed attempt's meta (its pointer, or state written before attempts).
    Meta(StateMeta),
    /// No pointer yet (a crash came between the commit and it): the attempts that wrote metas.
    Attempts(Vec<String>),
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

    fn path(&self, batch: i64, attempt: &str, kind: &str) -> Path {
        if attempt.is_empty() {
            Path::from(format!("{}/{batch:020}.{kind}", self.folder))
        } else {
            Path::from(format!("{}/{batch:020}.{attempt}.{kind}", self.folder))
        }
    }

    /// The batch id and the rest of a state file's name.
    fn parse_name(name: &str) -> Option<(i64, &str)> {
        let (id, rest) = name.split_once('.')?;
        Some((id.parse().ok()?, rest))
    }

    /// The names of the files in the state folder.
    async fn names(&self) -> Result<Vec<String>, StateError> {
        use futures::TryStreamExt;
        let folder = Path::from(self.folder.as_str());
        let listed: Vec<_> = self.store.list(Some(&folder)).try_collect().await?;
        Ok(listed
            .iter()
            .filter_map(|m| m.location.filename().map(str::to_string))
            .collect())
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
        let (n, a) = (meta.batch_id, meta.attempt.as_str());
        // Encoding is CPU work: off the async workers.
        // Changes only when there are some; a snapshot always (restore reads it).
        let parts: Vec<(&str, RecordBatch)> = [
            (
                "upserts.parquet",
                Some(upserts).filter(|r| r.num_rows() > 0),
            ),
            (
                "deletes.parquet",
                Some(deletes).filter(|r| r.num_rows() > 0),
            ),
            ("snapshot.parquet", snapshot),
        ]
        .into_iter()
        .filter_map(|(kind, rows)| rows.map(|r| (kind, r.clone())))
        .collect();
        let encoded = tokio::task::spawn_blocking(move || {
            parts
                .into_iter()
                .map(|(kind, rows)| encode(&rows).map(|bytes| (kind, bytes)))
                .collect::<Result<Vec<_>, StateError>>()
        })
        .await
        .map_err(|e| StateError::Persisted(format!("state encoding stopped: {e}")))??;
        for (kind, bytes) in encoded {
            self.put(self.path(n, a, kind), bytes).await?;
        }
        self.put(self.path(n, a, "json"), encode_meta(meta)?).await
    }

    /// Batch N was committed with `meta`'s attempt: copy its meta to `<N>.json`, so a restart
    /// reads it directly. Put-if-absent: a pointer, once written, never changes.
    pub async fn point_to(&self, meta: &StateMeta) -> Result<(), StateError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let path = self.path(meta.batch_id, "", "json");
        match self
            .store
            .put_opts(&path, PutPayload::from(encode_meta(meta)?), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn read_meta(&self, path: &Path) -> Result<Option<StateMeta>, StateError> {
        let Some(bytes) = self.get(path).await? else {
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

    /// The meta batch N's attempt wrote.
    pub async fn attempt_meta(
        &self,
        batch: i64,
        attempt: &str,
    ) -> Result<Option<StateMeta>, StateError> {
        self.read_meta(&self.path(batch, attempt, "json")).await
    }

    /// What the folder says about committed batch N: its pointer, else the attempts that wrote
    /// a meta for it.
    pub async fn committed(&self, batch: i64) -> Result<Committed, StateError> {
        if let Some(meta) = self.read_meta(&self.path(batch, "", "json")).await? {
            return Ok(Committed::Meta(meta));
        }
        let mut attempts = Vec::new();
        for name in self.names().await? {
            if let Some((id, rest)) = Self::parse_name(&name) {
                if let Some(attempt) = rest.strip_suffix(".json") {
                    if id == batch && !attempt.contains('.') {
                        attempts.push(attempt.to_string());
                    }
                }
            }
        }
        Ok(Committed::Attempts(attempts))
    }

    /// The meta of committed batch N when the folder alone tells it (its pointer, or the one
    /// attempt that wrote state for it).
    pub async fn meta(&self, batch: i64) -> Result<Option<StateMeta>, StateError> {
        match self.committed(batch).await? {
            Committed::Meta(meta) => Ok(Some(meta)),
            Committed::Attempts(attempts) => match attempts.as_slice() {
                [only] => self.attempt_meta(batch, only).await,
                _ => Ok(None),
            },
        }
    }

    async fn read(
        &self,
        batch: i64,
        attempt: &str,
        kind: &str,
    ) -> Result<Vec<RecordBatch>, StateError> {
        let path = self.path(batch, attempt, kind);
        match self.get(&path).await? {
            Some(bytes) => decode(&path, bytes)?
                .into_iter()
                .map(upgrade_rows)
                .collect(),
            None => Err(StateError::Persisted(format!(
                "state file {path} is missing; the table's state for this query is damaged: restore it from a backup, or write the query to a new table"
            ))),
        }
    }

    /// Restore the state committed by batch N, whose meta is `meta`, into `state`.
    pub async fn restore(&self, meta: &StateMeta, state: &mut AggState) -> Result<(), StateError> {
        let snapshot = self
            .read(
                meta.snapshot_batch,
                meta.attempt_of(meta.snapshot_batch),
                "snapshot.parquet",
            )
            .await?;
        state.apply(&snapshot, &[])?;
        for batch in meta.snapshot_batch + 1..=meta.batch_id {
            let attempt = meta.attempt_of(batch);
            let m = self.attempt_meta(batch, attempt).await?.ok_or_else(|| {
                StateError::Persisted(format!(
                    "the state meta of batch {batch} is missing under {}",
                    self.folder
                ))
            })?;
            let upserts = if m.upserts > 0 {
                self.read(batch, attempt, "upserts.parquet").await?
            } else {
                Vec::new()
            };
            let deletes = if m.deletes > 0 {
                self.read(batch, attempt, "deletes.parquet").await?
            } else {
                Vec::new()
            };
            state.apply(&upserts, &deletes)?;
        }
        state.clear_changes();
        Ok(())
    }

    /// After commit N: if N wrote a snapshot, delete the files no restore can need any more
    /// (every attempt's, of the batches from the previous snapshot up to N).
    pub async fn expire(&self, meta: &StateMeta) -> Result<(), StateError> {
        if meta.snapshot_batch != meta.batch_id {
            return Ok(());
        }
        let Some(previous) = meta.previous_snapshot else {
            return Ok(());
        };
        for name in self.names().await? {
            let Some((id, _)) = Self::parse_name(&name) else {
                continue;
            };
            if (previous..meta.batch_id).contains(&id) {
                let path = Path::from(format!("{}/{name}", self.folder));
                match self.store.delete(&path).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

fn encode_meta(meta: &StateMeta) -> Result<Bytes, StateError> {
    serde_json::to_vec(meta)
        .map(Bytes::from)
        .map_err(|e| StateError::Persisted(format!("cannot encode state meta: {e}")))
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
            attempt: String::new(),
            chain: Vec::new(),
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
