//! Which files go into the next micro-batch: pure decisions over listed files and the seen-file set.
//!
//! Mirrors Spark's `FileStreamSource`: every trigger lists the directory, keeps files not seen
//! before, orders them by modification time, and applies the read limit. The seen set forgets
//! files older than `maxFileAge` behind the newest file seen, because such files are ignored
//! anyway; that keeps it bounded however long the query runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::options::{ReadLimit, SourceOptions};

/// One file of the source, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the source root.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, milliseconds since the epoch.
    pub mtime_ms: i64,
}

/// Files already taken by committed (or planned) batches.
///
/// Kept twice, by identity and by modification time, so that taking a batch and forgetting old
/// files cost what they touch, not the size of the set. Serialized (in records' snapshots) as
/// the identity map alone.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "SeenFilesRepr", into = "SeenFilesRepr")]
pub struct SeenFiles {
    /// Identity (path or file name) to modification time.
    entries: HashMap<Arc<str>, i64>,
    /// The same entries ordered by modification time, oldest first.
    by_time: BTreeSet<(i64, Arc<str>)>,
    /// The newest modification time among seen files.
    latest_mtime_ms: i64,
    /// Files older than this are ignored (Spark's `lastPurgeTimestamp`); `None` before the first purge.
    ignore_before_ms: Option<i64>,
    /// Identify files by name only.
    file_name_only: bool,
}

/// How [`SeenFiles`] is written in records (the format records have always had).
#[derive(Serialize, Deserialize)]
struct SeenFilesRepr {
    entries: HashMap<String, i64>,
    latest_mtime_ms: i64,
    ignore_before_ms: Option<i64>,
    #[serde(default)]
    file_name_only: bool,
}

impl From<SeenFilesRepr> for SeenFiles {
    fn from(repr: SeenFilesRepr) -> Self {
        let mut seen = SeenFiles {
            latest_mtime_ms: repr.latest_mtime_ms,
            ignore_before_ms: repr.ignore_before_ms,
            file_name_only: repr.file_name_only,
            ..Default::default()
        };
        for (key, mtime) in repr.entries {
            seen.insert(Arc::from(key), mtime);
        }
        seen
    }
}

impl From<SeenFiles> for SeenFilesRepr {
    fn from(seen: SeenFiles) -> Self {
        SeenFilesRepr {
            entries: seen
                .entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            latest_mtime_ms: seen.latest_mtime_ms,
            ignore_before_ms: seen.ignore_before_ms,
            file_name_only: seen.file_name_only,
        }
    }
}

impl SeenFiles {
    /// An empty set.
    pub fn new(file_name_only: bool) -> Self {
        SeenFiles {
            file_name_only,
            ..Default::default()
        }
    }

    /// A set restored from its parts: identity → modification time, and its thresholds.
    /// Entries older than `ignore_before_ms` are left out (they are ignored anyway).
    pub fn restore(
        entries: impl IntoIterator<Item = (String, i64)>,
        latest_mtime_ms: i64,
        ignore_before_ms: Option<i64>,
        file_name_only: bool,
    ) -> Self {
        let mut seen = SeenFiles {
            latest_mtime_ms,
            ignore_before_ms,
            file_name_only,
            ..Default::default()
        };
        for (key, mtime) in entries {
            if ignore_before_ms.is_none_or(|t| mtime >= t) {
                seen.insert(Arc::from(key), mtime);
            }
        }
        seen
    }

    /// Every remembered file: identity and modification time.
    pub fn entries(&self) -> impl Iterator<Item = (&str, i64)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), *v))
    }

    /// The newest modification time among seen files.
    pub fn latest_mtime_ms(&self) -> i64 {
        self.latest_mtime_ms
    }

    /// Files older than this are ignored.
    pub fn ignore_before_ms(&self) -> Option<i64> {
        self.ignore_before_ms
    }

    /// Are files identified by name only?
    pub fn file_name_only(&self) -> bool {
        self.file_name_only
    }

    /// The identity of a file: its path, or its name alone with `fileNameOnly`.
    pub fn identity<'a>(&self, path: &'a str) -> &'a str {
        self.key(path)
    }

    fn key<'a>(&self, path: &'a str) -> &'a str {
        if self.file_name_only {
            path.rsplit('/').next().unwrap_or(path)
        } else {
            path
        }
    }

    fn insert(&mut self, key: Arc<str>, mtime: i64) {
        if let Some(old) = self.entries.insert(key.clone(), mtime) {
            self.by_time.remove(&(old, key.clone()));
        }
        self.by_time.insert((mtime, key));
    }

    /// Is this file new to the query?
    pub fn is_new(&self, file: &FileEntry) -> bool {
        let old = self.ignore_before_ms.is_some_and(|t| file.mtime_ms < t);
        !old && !self.entries.contains_key(self.key(&file.path))
    }

    /// Record files as taken.
    pub fn add<'a>(&mut self, files: impl IntoIterator<Item = &'a FileEntry>) {
        for f in files {
            self.latest_mtime_ms = self.latest_mtime_ms.max(f.mtime_ms);
            let key: Arc<str> = Arc::from(self.key(&f.path));
            self.insert(key, f.mtime_ms);
        }
    }

    /// A batch of `files` was committed: remember them, then forget what `max_age` lets go.
    pub fn advance<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a FileEntry>,
        max_age: Option<Duration>,
    ) {
        self.add(files);
        self.purge(max_age);
    }

    /// Forget files older than `max_age` behind the newest one (they are ignored from now on).
    /// Costs the files forgotten, not the size of the set.
    ///
    /// The threshold never moves back: files forgotten under a shorter `maxFileAge` are no longer
    /// known to be seen, so a longer one given later must not make them new again.
    pub fn purge(&mut self, max_age: Option<Duration>) {
        let Some(max_age) = max_age else { return };
        let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let threshold = self.latest_mtime_ms.saturating_sub(age_ms);
        let threshold = self
            .ignore_before_ms
            .map_or(threshold, |t| t.max(threshold));
        while let Some((mtime, key)) = self.by_time.first().cloned() {
            if mtime >= threshold {
                break;
            }
            self.by_time.pop_first();
            self.entries.remove(&key);
        }
        self.ignore_before_ms = Some(threshold);
    }

    /// Number of remembered files.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no file is remembered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The files an available-now run found at its start and has not taken yet, in the order batches
/// take them. Sorted once, so each batch costs its own files, however long the backlog (choosing
/// from the whole listing every batch made a backlog of N one-file batches cost N²).
#[derive(Debug, Clone, Default)]
pub struct Backlog {
    /// Remaining files, in taking order, reversed (the next file is last).
    pending: Vec<FileEntry>,
}

impl Backlog {
    /// The files of `listed` that are new to `seen`, in the order [`select_batch`] takes them.
    pub fn new(listed: &[FileEntry], seen: &SeenFiles, latest_first: bool) -> Self {
        let mut pending: Vec<FileEntry> =
            listed.iter().filter(|f| seen.is_new(f)).cloned().collect();
        pending.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
        if !latest_first {
            pending.reverse();
        }
        Backlog { pending }
    }

    /// The next batch's files within `limit` (skipping files `seen` no longer counts as new),
    /// without taking them.
    pub fn peek(&self, seen: &SeenFiles, limit: ReadLimit) -> Vec<FileEntry> {
        take_within(self.pending.iter().rev().filter(|f| seen.is_new(f)), limit)
    }

    /// Take the next batch's files: what [`Backlog::peek`] returns.
    pub fn take(&mut self, seen: &SeenFiles, limit: ReadLimit) -> Vec<FileEntry> {
        let mut batch = Vec::new();
        let mut bytes = 0u64;
        while let Some(f) = self.pending.last() {
            if !seen.is_new(f) {
                self.pending.pop();
                continue;
            }
            if !fits(&batch, bytes, f, limit) {
                break;
            }
            bytes += f.size;
            if let Some(f) = self.pending.pop() {
                batch.push(f);
            }
        }
        batch
    }

    /// Give back files taken for a batch that ended up reading others (another instance planned
    /// it first): they come next again.
    pub fn put_back(&mut self, files: Vec<FileEntry>) {
        self.pending.extend(files.into_iter().rev());
    }

    /// Files left.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when every file was taken.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

/// May `f` join a batch holding `batch` (of `bytes` bytes) under `limit`? A batch always takes
/// at least one file.
fn fits(batch: &[FileEntry], bytes: u64, f: &FileEntry, limit: ReadLimit) -> bool {
    match limit {
        ReadLimit::Unlimited => true,
        ReadLimit::MaxFiles(n) => batch.len() < n,
        ReadLimit::MaxBytes(max) => batch.is_empty() || bytes + f.size <= max,
    }
}

/// The first files of `ordered` within `limit`.
fn take_within<'a>(
    ordered: impl Iterator<Item = &'a FileEntry>,
    limit: ReadLimit,
) -> Vec<FileEntry> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for f in ordered {
        if !fits(&batch, bytes, f, limit) {
            break;
        }
        bytes += f.size;
        batch.push(f.clone());
    }
    batch
}

/// The age limit in force: Spark ignores `maxFileAge` when `latestFirst` is combined with a read limit.
pub fn effective_max_age(options: &SourceOptions) -> Option<Duration> {
    if options.latest_first && options.limit != ReadLimit::Unlimited {
        None
    } else {
        Some(options.max_file_age)
    }
}

/// Pick the files of the next batch from `listed`: new ones only, ordered by modification time
/// (newest first with `latest_first`), within `limit`.
pub fn select_batch(
    listed: &[FileEntry],
    seen: &SeenFiles,
    limit: ReadLimit,
    latest_first: bool,
) -> Vec<FileEntry> {
    let mut new: Vec<&FileEntry> = listed.iter().filter(|f| seen.is_new(f)).collect();
    new.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
    if latest_first {
        new.reverse();
    }
    take_within(new.into_iter(), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, size: u64, mtime_ms: i64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size,
            mtime_ms,
        }
    }

    #[test]
    fn orders_by_mtime_then_path_whatever_the_listing_order() {
        let listed = vec![f("c", 1, 30), f("a", 1, 10), f("b2", 1, 20), f("b1", 1, 20)];
        let picked = select_batch(
            &listed,
            &SeenFiles::new(false),
            ReadLimit::MaxFiles(3),
            false,
        );
        let names: Vec<_> = picked.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["a", "b1", "b2"]);
        let newest = select_batch(
            &listed,
            &SeenFiles::new(false),
            ReadLimit::MaxFiles(1),
            true,
        );
        assert_eq!(newest[0].path, "c");
    }

    #[test]
    fn seen_files_are_never_taken_again() {
        let listed = vec![f("a", 1, 10), f("b", 1, 20)];
        let mut seen = SeenFiles::new(false);
        let first = select_batch(&listed, &seen, ReadLimit::MaxFiles(1), false);
        seen.add(&first);
        let second = select_batch(&listed, &seen, ReadLimit::Unlimited, false);
        assert_eq!(second, vec![f("b", 1, 20)]);
        seen.add(&second);
        assert!(select_batch(&listed, &seen, ReadLimit::Unlimited, false).is_empty());
    }

    #[test]
    fn max_bytes_takes_at_least_one_file() {
        let listed = vec![f("a", 100, 1), f("b", 100, 2), f("c", 100, 3)];
        let seen = SeenFiles::new(false);
        assert_eq!(
            select_batch(&listed, &seen, ReadLimit::MaxBytes(10), false).len(),
            1
        );
        assert_eq!(
            select_batch(&listed, &seen, ReadLimit::MaxBytes(250), false).len(),
            2
        );
    }

    #[test]
    fn purge_forgets_and_ignores_old_files() {
        let mut seen = SeenFiles::new(false);
        seen.add(&[f("old", 1, 0), f("new", 1, 10_000)]);
        seen.purge(Some(Duration::from_secs(5)));
        assert_eq!(seen.len(), 1);
        // A never-seen file older than the threshold is ignored, as in Spark.
        assert!(!seen.is_new(&f("late", 1, 1_000)));
        assert!(seen.is_new(&f("fresh", 1, 9_000)));
        assert!(!seen.is_new(&f("new", 1, 10_000)));
    }

    #[test]
    fn max_file_age_threshold_never_moves_back() {
        let mut seen = SeenFiles::new(false);
        seen.add(&[f("old", 1, 0), f("new", 1, 10_000)]);
        seen.purge(Some(Duration::from_secs(1)));
        assert_eq!(seen.len(), 1);
        // A later run with a longer maxFileAge: `old` was forgotten, so it must stay ignored.
        seen.purge(Some(Duration::from_secs(3600)));
        assert!(!seen.is_new(&f("old", 1, 0)));
    }

    #[test]
    fn the_backlog_takes_what_select_batch_would_take() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for round in 0..50 {
            let listed: Vec<FileEntry> = (0..rng.gen_range(0..40))
                .map(|i| f(&format!("f{i}"), rng.gen_range(1..50), rng.gen_range(0..20)))
                .collect();
            let latest_first = round % 2 == 1;
            let limit = match round % 3 {
                0 => ReadLimit::MaxFiles(rng.gen_range(1..5)),
                1 => ReadLimit::MaxBytes(rng.gen_range(1..100)),
                _ => ReadLimit::Unlimited,
            };
            let mut seen_a = SeenFiles::new(false);
            seen_a.add(&listed[..listed.len() / 4]);
            let mut seen_b = seen_a.clone();
            let mut backlog = Backlog::new(&listed, &seen_b, latest_first);
            loop {
                let want = select_batch(&listed, &seen_a, limit, latest_first);
                assert_eq!(backlog.peek(&seen_b, limit), want);
                let got = backlog.take(&seen_b, limit);
                assert_eq!(got, want, "round {round}");
                if want.is_empty() {
                    break;
                }
                seen_a.advance(&want, Some(Duration::from_millis(8)));
                seen_b.advance(&got, Some(Duration::from_millis(8)));
            }
        }
    }

    #[test]
    fn seen_files_read_back_from_a_record_as_written() {
        let mut seen = SeenFiles::new(true);
        seen.add(&[f("x/a.json", 1, 5), f("b.json", 1, 9)]);
        seen.purge(Some(Duration::from_millis(6)));
        let text = serde_json::to_string(&seen).unwrap();
        assert!(text.contains("\"entries\""), "{text}");
        let back: SeenFiles = serde_json::from_str(&text).unwrap();
        assert_eq!(back, seen);
        assert!(!back.is_new(&f("y/a.json", 1, 7)));
    }

    #[test]
    fn file_name_only_matches_across_directories() {
        let mut seen = SeenFiles::new(true);
        seen.add(&[f("x/a.json", 1, 1)]);
        assert!(!seen.is_new(&f("y/a.json", 1, 2)));
    }

    #[test]
    fn latest_first_with_limit_disables_max_age() {
        let mut o = SourceOptions::default();
        assert!(effective_max_age(&o).is_some());
        o.latest_first = true;
        o.limit = ReadLimit::MaxFiles(1);
        assert!(effective_max_age(&o).is_none());
    }
}
