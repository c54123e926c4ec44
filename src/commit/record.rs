//! The query's record, kept in the table: one write-once file per planned micro-batch under
//! `_sluice/queries/<query>/batches/`, like Spark's offset log but inside the table.
//!
//! A batch's record is created (put-if-absent) *before* the batch reads anything, and the Delta
//! commit of the batch carries `txn(appId, batchId)`, which points at it. So after a crash:
//! - the txn version says which records are committed (txn actions survive checkpoints and log
//!   cleanup, and so does this folder: vacuum never touches `_`-prefixed folders);
//! - a record past the txn version is a batch that was planned but not committed: it is re-run
//!   with exactly the same files, by this process or by any competing instance.
//!
//! Every `SNAPSHOT_EVERY` batches the record also names the seen-file set's segments (see
//! [`super::seen`]), so a restart reads at most that many records, whatever the query's age.
//! (Records written before segments held the whole set instead; they are still read.)

use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::seen::{SeenIndex, SeenStore};
use crate::sink::SinkError;
use crate::source::discovery::{FileEntry, SeenFiles};
use crate::storage::Location;

/// A seen-file snapshot is written every this many batches.
pub const SNAPSHOT_EVERY: i64 = 10;
/// Records older than this many batches behind the newest snapshot are deleted.
pub const KEEP_BATCHES: i64 = 100;
/// The record format this build writes. Format 2 names seen-file segments (`seenIndex`)
/// instead of holding the whole set (`seen`); a build that reads only format 1 would take such
/// a snapshot for an empty set, so it must refuse these records.
pub const RECORD_FORMAT: u32 = 2;

/// Where the source was and how it is read, as first recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceInfo {
    /// The source location, as the user wrote it.
    pub uri: String,
    /// The source location itself (see [`Location::canonical`]); empty in records written
    /// before it was kept, whose `uri` is compared instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// The file format.
    pub format: String,
    /// The source schema, as Spark DDL.
    pub schema: String,
    /// The columns of the schema read from `key=value` folders (see
    /// [`crate::source::partitions`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_columns: Vec<String>,
}

impl SourceInfo {
    /// Why a run reading `now` cannot continue the query that recorded `self`, if it cannot:
    /// another source location or another format. The seen-file set of one source says nothing
    /// about another's files (a file of the new source named like a seen one would be skipped),
    /// so the query must not go on silently.
    pub fn change_to(&self, now: &SourceInfo, query_name: &str) -> Option<String> {
        let recorded = if self.location.is_empty() {
            Location::parse(&self.uri).map_or_else(|_| self.uri.clone(), |l| l.canonical())
        } else {
            self.location.clone()
        };
        if recorded != now.location {
            return Some(format!(
                "query `{query_name}` of this table reads the source {}, and this run names {}: run it with --source {}, or give the new source a query name of its own (--query-name), which reads that source from its first file",
                self.uri, now.uri, self.uri
            ));
        }
        if self.format != now.format {
            return Some(format!(
                "query `{query_name}` of this table reads its source as {}, and this run says {}: run it with --format {} (a query's source format cannot change)",
                self.format, now.format, self.format
            ));
        }
        None
    }
}

/// One planned micro-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchRecord {
    /// Record format version.
    pub format: u32,
    /// The query's name.
    pub query_name: String,
    /// The query's stable id.
    pub query_id: String,
    /// The batch id (= txn version once committed).
    pub batch_id: i64,
    /// The source.
    pub source: SourceInfo,
    /// The query text.
    pub sql: String,
    /// Files this batch reads.
    pub files: Vec<FileEntry>,
    /// The whole seen-file set after this batch, on snapshot batches of format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<SeenFiles>,
    /// The segments of the seen-file set after this batch, on snapshot batches of format 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_index: Option<SeenIndex>,
    /// Event-time watermark in force for this batch, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_ms: Option<i64>,
    /// When the batch was planned, milliseconds since the epoch.
    pub planned_at_ms: i64,
}

impl BatchRecord {
    /// Does this batch carry a seen-file snapshot?
    pub fn is_snapshot_batch(batch_id: i64) -> bool {
        batch_id % SNAPSHOT_EVERY == 0
    }

    /// The batch holding the newest snapshot at or before `batch_id`.
    pub fn snapshot_batch_for(batch_id: i64) -> i64 {
        batch_id - batch_id.rem_euclid(SNAPSHOT_EVERY)
    }

    /// Total bytes of the batch's files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The source offset this batch reached, as progress and `inspect` show it.
    pub fn offset(&self) -> serde_json::Value {
        let last = self
            .files
            .iter()
            .max_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
        serde_json::json!({
            "logOffset": self.batch_id,
            "files": self.files.len(),
            "bytes": self.bytes(),
            "lastFile": last.map(|f| f.path.clone()),
            "lastFileModifiedMs": last.map(|f| f.mtime_ms),
        })
    }
}

/// What creating a record found.
#[derive(Debug)]
#[must_use]
pub enum Created {
    /// Ours is now the record of the batch.
    Ours(BatchRecord),
    /// Someone planned this batch first: run theirs.
    Theirs(BatchRecord),
}

/// The records of one query inside a table.
#[derive(Debug, Clone)]
pub struct RecordStore {
    store: Arc<dyn ObjectStore>,
    query_name: String,
}

impl RecordStore {
    /// Records of `query_name` in the table whose root store is `store`.
    pub fn new(store: Arc<dyn ObjectStore>, query_name: &str) -> Self {
        RecordStore {
            store,
            query_name: query_name.to_string(),
        }
    }

    /// The folder of a query's records, relative to the table root.
    pub fn folder(query_name: &str) -> String {
        format!("_sluice/queries/{query_name}/batches")
    }

    fn path(&self, batch_id: i64) -> Path {
        Path::from(format!(
            "{}/{batch_id:020}.json",
            Self::folder(&self.query_name)
        ))
    }

    async fn bytes(&self, batch_id: i64) -> Result<Option<bytes::Bytes>, SinkError> {
        match self.store.get(&self.path(batch_id)).await {
            Ok(got) => Ok(Some(got.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A record's text, parsed: `Err(None)` when it is not a record at all (damaged).
    fn parse(batch_id: i64, bytes: &[u8]) -> Result<BatchRecord, Option<SinkError>> {
        let record: BatchRecord = serde_json::from_slice(bytes).map_err(|_| None)?;
        if record.format > RECORD_FORMAT {
            return Err(Some(SinkError::Record(format!(
                "record of batch {batch_id} was written by a newer sluice (format {}); upgrade sluice",
                record.format
            ))));
        }
        Ok(record)
    }

    /// Read the record of a batch, if it exists.
    pub async fn read(&self, batch_id: i64) -> Result<Option<BatchRecord>, SinkError> {
        let Some(bytes) = self.bytes(batch_id).await? else {
            return Ok(None);
        };
        Self::parse(batch_id, &bytes).map(Some).map_err(|e| {
            e.unwrap_or_else(|| {
                SinkError::Record(format!(
                    "record of batch {batch_id} under {} is damaged ({} bytes that are not a record)",
                    Self::folder(&self.query_name),
                    bytes.len()
                ))
            })
        })
    }

    /// Read the record of a batch that is not committed (its id is past the query's txn
    /// version). A record that cannot be parsed — left empty or cut short by a power loss before
    /// records were written durably — planned a batch nothing committed, so it is deleted and
    /// the batch is planned again.
    pub async fn read_planned(&self, batch_id: i64) -> Result<Option<BatchRecord>, SinkError> {
        let Some(bytes) = self.bytes(batch_id).await? else {
            return Ok(None);
        };
        match Self::parse(batch_id, &bytes) {
            Ok(record) => Ok(Some(record)),
            Err(Some(e)) => Err(e),
            Err(None) => {
                tracing::warn!(
                    "the record of uncommitted batch {batch_id} is damaged ({} bytes); planning the batch again",
                    bytes.len()
                );
                match self.store.delete(&self.path(batch_id)).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Create the record of a batch unless one exists (put-if-absent).
    pub async fn create(&self, record: BatchRecord) -> Result<Created, SinkError> {
        let body = serde_json::to_vec(&record)
            .map_err(|e| SinkError::Record(format!("cannot encode the batch record: {e}")))?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(record.batch_id), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(Created::Ours(record)),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let theirs = self.read(record.batch_id).await?.ok_or_else(|| {
                    SinkError::Record(format!("record of batch {} vanished", record.batch_id))
                })?;
                Ok(Created::Theirs(theirs))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The newest batch id that has a record (planned, maybe committed), by listing the query's
    /// record folder (at most [`KEEP_BATCHES`] + [`SNAPSHOT_EVERY`] files).
    pub async fn newest(&self) -> Result<Option<i64>, SinkError> {
        use futures::TryStreamExt;
        let folder = Path::from(Self::folder(&self.query_name));
        let listed: Vec<_> = self.store.list(Some(&folder)).try_collect().await?;
        Ok(listed
            .iter()
            .filter_map(|m| m.location.filename())
            .filter_map(|name| name.strip_suffix(".json"))
            .filter_map(|id| id.parse::<i64>().ok())
            .max())
    }

    /// Delete the records no restart can need any more, once `committed` is committed: those
    /// more than [`KEEP_BATCHES`] before the newest snapshot. Deletes a bounded range, no listing.
    pub async fn expire(&self, committed: i64) -> Result<(), SinkError> {
        if !BatchRecord::is_snapshot_batch(committed) {
            return Ok(());
        }
        let end = committed - KEEP_BATCHES;
        let start = (end - SNAPSHOT_EVERY).max(0);
        for id in start..end.max(0) {
            match self.store.delete(&self.path(id)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Rebuild the seen-file set after `committed`: the newest snapshot plus the batches since.
    pub async fn seen_after(&self, committed: i64, empty: SeenFiles) -> Result<Resumed, SinkError> {
        let from = BatchRecord::snapshot_batch_for(committed);
        let mut snapshot = None;
        let mut since = Vec::new();
        for id in from..=committed {
            let record = self.read(id).await?.ok_or_else(|| {
                SinkError::Record(format!(
                    "the table says batch {committed} of query `{}` is committed, but the record of batch {id} under {} is missing; the query cannot resume exactly: restore that folder from a backup, or stream the source into a new table",
                    self.query_name,
                    Self::folder(&self.query_name)
                ))
            })?;
            if id == from {
                snapshot = Some((record.seen, record.seen_index));
            } else {
                since.extend(record.files);
            }
        }
        let (mut seen, index) = match snapshot {
            Some((_, Some(index))) => (self.seen_store().restore(&index).await?, Some(index)),
            Some((Some(seen), None)) => (seen, None),
            _ => (empty, None),
        };
        seen.add(&since);
        Ok(Resumed { seen, index, since })
    }

    /// The query's seen-file segments.
    pub fn seen_store(&self) -> SeenStore {
        SeenStore::new(self.store.clone(), &self.query_name)
    }
}

/// The seen-file set a restart resumes with.
#[derive(Debug)]
pub struct Resumed {
    /// The set after the committed batch.
    pub seen: SeenFiles,
    /// The segments of the newest snapshot (`None`: none yet, or a format-1 snapshot).
    pub index: Option<SeenIndex>,
    /// The files of the committed batches after that snapshot.
    pub since: Vec<FileEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_batches() {
        assert!(BatchRecord::is_snapshot_batch(0));
        assert!(BatchRecord::is_snapshot_batch(20));
        assert!(!BatchRecord::is_snapshot_batch(21));
        assert_eq!(BatchRecord::snapshot_batch_for(29), 20);
        assert_eq!(BatchRecord::snapshot_batch_for(30), 30);
    }

    fn record(batch_id: i64, files: &[&str], seen: Option<SeenFiles>) -> BatchRecord {
        BatchRecord {
            format: RECORD_FORMAT,
            query_name: "q".into(),
            query_id: "id".into(),
            batch_id,
            source: SourceInfo {
                uri: "src".into(),
                location: String::new(),
                format: "json".into(),
                schema: "a STRING".into(),
                partition_columns: Vec::new(),
            },
            sql: "SELECT * FROM source".into(),
            files: files
                .iter()
                .map(|p| FileEntry {
                    path: p.to_string(),
                    size: 1,
                    mtime_ms: batch_id,
                })
                .collect(),
            seen,
            seen_index: None,
            watermark_ms: None,
            planned_at_ms: 0,
        }
    }

    /// Old records are deleted as a query goes: the newest is found by listing, whatever is left.
    #[tokio::test]
    async fn the_newest_record_is_found_after_old_ones_were_deleted() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let records = RecordStore::new(store, "q");
        assert_eq!(records.newest().await.unwrap(), None);
        for id in 105..=112 {
            let _ = records.create(record(id, &["a"], None)).await.unwrap();
        }
        assert_eq!(records.newest().await.unwrap(), Some(112));
    }

    /// A record left empty or cut short (by a power loss before records were durable) of a batch
    /// that was never committed is discarded, so the batch is planned again.
    #[tokio::test]
    async fn a_damaged_planned_record_is_discarded() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let records = RecordStore::new(store.clone(), "q");
        store
            .put(&records.path(3), PutPayload::from_static(b"{\"format\":1,"))
            .await
            .unwrap();
        assert!(records.read(3).await.is_err());
        assert!(records.read_planned(3).await.unwrap().is_none());
        assert!(matches!(
            records.create(record(3, &["a"], None)).await.unwrap(),
            Created::Ours(_)
        ));
    }

    #[tokio::test]
    async fn records_are_write_once_and_rebuild_the_seen_set() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let records = RecordStore::new(store, "q");
        let mut seen0 = SeenFiles::new(false);
        seen0.add(&record(0, &["a"], None).files);
        assert!(matches!(
            records
                .create(record(0, &["a"], Some(seen0)))
                .await
                .unwrap(),
            Created::Ours(_)
        ));
        match records.create(record(0, &["zzz"], None)).await.unwrap() {
            Created::Theirs(r) => assert_eq!(r.files[0].path, "a"),
            Created::Ours(_) => panic!("a second record for batch 0 must not replace the first"),
        }
        let _ = records.create(record(1, &["b"], None)).await.unwrap();
        let seen = records
            .seen_after(1, SeenFiles::new(false))
            .await
            .unwrap()
            .seen;
        assert_eq!(seen.len(), 2);
        assert_eq!(records.newest().await.unwrap(), Some(1));
        let err = records
            .seen_after(2, SeenFiles::new(false))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
