//! The seen-file set kept in the table as write-once segments, so that keeping it costs what
//! the batches add, not the size of the set (a record holding the whole set every few batches
//! made each of those batches cost every file ever read).
//!
//! ```text
//!   _sluice/queries/<q>/seen/<uuid>.json         a segment: {"entries": {identity: mtime_ms}}
//!
//!   record of snapshot batch N ── seenIndex ──► [ segment (big) , segment , segment (small) ]
//!                                               + thresholds (newest mtime, maxFileAge purge)
//!   restart after committed batch c:  the segments of snapshot record S = snapshot_for(c),
//!                                     then the files of records S+1 ..= c
//! ```
//!
//! At snapshot batch N the files of the batches since the previous snapshot become one new
//! segment, merged with the newest segments while each older one is at most twice the size of
//! what is being merged (and the result stays under [`MAX_MERGED`] entries): the segments keep
//! sizes that roughly double, there are O(log n) of them below the cap, and each entry is
//! rewritten O(log n) times. Segments whose newest file is older than the `maxFileAge`
//! threshold are dropped whole; older entries inside a segment are dropped when it is merged
//! or read. Segments are written before the record that names them, and those a committed
//! snapshot no longer names are deleted after its commit (a restart resumes from that snapshot
//! or a later one). Segments of a record that was never created — a crash in between, or
//! another instance planning the batch first — are left behind unreferenced.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::sink::SinkError;
use crate::source::discovery::SeenFiles;

/// A merge never writes a segment of more entries than this; bigger segments stay as they are
/// until their files age out.
pub const MAX_MERGED: u64 = 1 << 18;

/// One segment, as a record names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// Its file name under the query's `seen/` folder.
    pub name: String,
    /// Files it holds.
    pub entries: u64,
    /// The newest modification time among them.
    pub max_mtime_ms: i64,
}

/// The seen-file set after a snapshot batch: its segments and thresholds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeenIndex {
    /// Oldest and biggest first.
    pub segments: Vec<Segment>,
    /// The newest modification time among seen files.
    pub latest_mtime_ms: i64,
    /// Files older than this are ignored (`maxFileAge`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_before_ms: Option<i64>,
    /// Files are identified by name only.
    #[serde(default)]
    pub file_name_only: bool,
}

#[derive(Serialize, Deserialize)]
struct SegmentBody {
    entries: HashMap<String, i64>,
}

/// How many of the newest segments to merge with `new` entries (0: write them alone).
pub fn merge_count(segments: &[Segment], new: u64) -> usize {
    let mut total = new;
    let mut k = 0;
    for older in segments.iter().rev() {
        if older.entries > 2 * total || older.entries + total > MAX_MERGED {
            break;
        }
        total += older.entries;
        k += 1;
    }
    k
}

/// The segments of one query.
#[derive(Debug, Clone)]
pub struct SeenStore {
    store: Arc<dyn ObjectStore>,
    folder: String,
}

fn encode_failed(e: serde_json::Error) -> SinkError {
    SinkError::Record(format!("cannot encode a seen-file segment: {e}"))
}

impl SeenStore {
    /// The segments of `query_name` in the table whose root store is `store`.
    pub fn new(store: Arc<dyn ObjectStore>, query_name: &str) -> Self {
        SeenStore {
            store,
            folder: format!("_sluice/queries/{query_name}/seen"),
        }
    }

    fn path(&self, name: &str) -> Path {
        Path::from(format!("{}/{name}", self.folder))
    }

    async fn write(&self, entries: HashMap<String, i64>) -> Result<Segment, SinkError> {
        let name = format!("{}.json", uuid::Uuid::new_v4());
        let segment = Segment {
            name: name.clone(),
            entries: entries.len() as u64,
            max_mtime_ms: entries.values().copied().max().unwrap_or(i64::MIN),
        };
        let body = tokio::task::spawn_blocking(move || {
            serde_json::to_vec(&SegmentBody { entries }).map_err(encode_failed)
        })
        .await
        .map_err(|e| SinkError::Record(format!("segment encoding stopped: {e}")))??;
        self.store
            .put(&self.path(&name), PutPayload::from(body))
            .await?;
        Ok(segment)
    }

    async fn read(&self, segment: &Segment) -> Result<HashMap<String, i64>, SinkError> {
        let path = self.path(&segment.name);
        let bytes = match self.store.get(&path).await {
            Ok(got) => got.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(SinkError::Record(format!(
                    "the seen-file segment {path} is missing; the query cannot resume exactly: restore that folder from a backup, or stream the source into a new table"
                )))
            }
            Err(e) => return Err(e.into()),
        };
        let body: SegmentBody = tokio::task::spawn_blocking(move || serde_json::from_slice(&bytes))
            .await
            .map_err(|e| SinkError::Record(format!("segment decoding stopped: {e}")))?
            .map_err(|e| SinkError::Record(format!("seen-file segment {path} is damaged: {e}")))?;
        Ok(body.entries)
    }

    /// The index of the set after a snapshot batch: `previous` (the last snapshot's; `None`
    /// when there is none, and `added` must then be the whole set), plus `added` (identity →
    /// mtime of the files taken since, this batch's included), with the thresholds of `after`
    /// (the set as it is once this batch commits; only its thresholds are read).
    pub async fn snapshot(
        &self,
        previous: Option<&SeenIndex>,
        added: HashMap<String, i64>,
        after: &SeenFiles,
    ) -> Result<SeenIndex, SinkError> {
        let threshold = after.ignore_before_ms();
        let live = |mtime: i64| threshold.is_none_or(|t| mtime >= t);
        let mut segments: Vec<Segment> = previous
            .map(|p| p.segments.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|s| live(s.max_mtime_ms))
            .collect();
        let mut entries: HashMap<String, i64> =
            added.into_iter().filter(|(_, m)| live(*m)).collect();
        if !entries.is_empty() {
            let merged = merge_count(&segments, entries.len() as u64);
            for old in segments.split_off(segments.len() - merged) {
                for (key, mtime) in self.read(&old).await? {
                    if live(mtime) {
                        // The newer sighting of a file wins.
                        entries.entry(key).or_insert(mtime);
                    }
                }
            }
            segments.push(self.write(entries).await?);
        }
        Ok(SeenIndex {
            segments,
            latest_mtime_ms: after.latest_mtime_ms(),
            ignore_before_ms: threshold,
            file_name_only: after.file_name_only(),
        })
    }

    /// The set an index holds.
    pub async fn restore(&self, index: &SeenIndex) -> Result<SeenFiles, SinkError> {
        let mut entries = Vec::new();
        for segment in &index.segments {
            entries.extend(self.read(segment).await?);
        }
        Ok(SeenFiles::restore(
            entries,
            index.latest_mtime_ms,
            index.ignore_before_ms,
            index.file_name_only,
        ))
    }

    /// After the snapshot holding `now` committed: delete the segments of `before` it no
    /// longer names.
    pub async fn expire(&self, before: &SeenIndex, now: &SeenIndex) -> Result<(), SinkError> {
        for old in &before.segments {
            if now.segments.iter().any(|s| s.name == old.name) {
                continue;
            }
            match self.store.delete(&self.path(&old.name)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::discovery::FileEntry;
    use std::time::Duration;

    fn seg(entries: u64) -> Segment {
        Segment {
            name: String::new(),
            entries,
            max_mtime_ms: 0,
        }
    }

    #[test]
    fn merges_keep_sizes_roughly_doubling() {
        assert_eq!(merge_count(&[], 10), 0);
        assert_eq!(merge_count(&[seg(10)], 10), 1);
        assert_eq!(merge_count(&[seg(41), seg(10)], 10), 1);
        assert_eq!(merge_count(&[seg(40), seg(20)], 20), 2);
        assert_eq!(merge_count(&[seg(100), seg(20)], 20), 1);
        // Never past the cap.
        assert_eq!(merge_count(&[seg(MAX_MERGED), seg(10)], 10), 1);
        assert_eq!(merge_count(&[seg(MAX_MERGED - 5)], 10), 0);
    }

    /// Runs `batches` batches of `per_batch` files through snapshots every 10 batches, with
    /// `max_age` purging, restoring from the index at every snapshot: the restored set is the
    /// set kept in memory, and what snapshots write stays a bounded multiple of what they add.
    async fn run(batches: i64, per_batch: i64, max_age: Option<Duration>) {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let seen_store = SeenStore::new(store.clone(), "q");
        let mut seen = SeenFiles::new(false);
        let mut index: Option<SeenIndex> = None;
        let mut added = HashMap::new();
        let mut written = 0u64;
        for batch in 0..batches {
            let files: Vec<FileEntry> = (0..per_batch)
                .map(|i| FileEntry {
                    path: format!("f-{batch}-{i}.json"),
                    size: 1,
                    mtime_ms: batch * 1000 + i,
                })
                .collect();
            seen.advance(&files, max_age);
            for f in &files {
                added.insert(f.path.clone(), f.mtime_ms);
            }
            if batch % 10 == 0 {
                let new = seen_store
                    .snapshot(index.as_ref(), std::mem::take(&mut added), &seen)
                    .await
                    .unwrap();
                written += new.segments.last().map_or(0, |s| s.entries);
                if let Some(before) = &index {
                    seen_store.expire(before, &new).await.unwrap();
                }
                let restored = seen_store.restore(&new).await.unwrap();
                assert_eq!(restored, seen, "batch {batch}");
                index = Some(new);
            }
        }
        let total = (batches * per_batch) as u64;
        let levels = u64::from(total.ilog2() + 1);
        eprintln!("{written} entries written for {total} files");
        // A whole-set snapshot every 10 batches would write about total²/(20 × per_batch).
        assert!(
            written <= 2 * total * levels,
            "{written} entries written for {total} files"
        );
        // Only what the last index names is left in the folder.
        let left = store.list(None).count().await;
        assert_eq!(left, index.unwrap().segments.len());
    }

    use futures::StreamExt;

    #[tokio::test]
    async fn segments_restore_the_set_and_cost_what_is_added() {
        run(2000, 3, None).await;
    }

    #[tokio::test]
    async fn aged_out_files_leave_the_segments() {
        run(2000, 3, Some(Duration::from_secs(30))).await;
    }
}
