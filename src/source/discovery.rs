//! Which files go into the next micro-batch: pure decisions over listed files and the seen-file set.
//!
//! Mirrors Spark's `FileStreamSource`: every trigger lists the directory, keeps files not seen
//! before, orders them by modification time, and applies the read limit. The seen set forgets
//! files older than `maxFileAge` behind the newest file seen, because such files are ignored
//! anyway; that keeps it bounded however long the query runs.

use std::collections::HashMap;
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeenFiles {
    /// Identity (path or file name) to modification time.
    entries: HashMap<String, i64>,
    /// The newest modification time among seen files.
    latest_mtime_ms: i64,
    /// Files older than this are ignored (Spark's `lastPurgeTimestamp`); `None` before the first purge.
    ignore_before_ms: Option<i64>,
    /// Identify files by name only.
    #[serde(default)]
    file_name_only: bool,
}

impl SeenFiles {
    /// An empty set.
    pub fn new(file_name_only: bool) -> Self {
        SeenFiles {
            file_name_only,
            ..Default::default()
        }
    }

    fn key<'a>(&self, path: &'a str) -> &'a str {
        if self.file_name_only {
            path.rsplit('/').next().unwrap_or(path)
        } else {
            path
        }
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
            let key = self.key(&f.path).to_string();
            self.entries.insert(key, f.mtime_ms);
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
    pub fn purge(&mut self, max_age: Option<Duration>) {
        let Some(max_age) = max_age else { return };
        let age_ms = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        let threshold = self.latest_mtime_ms.saturating_sub(age_ms);
        self.entries.retain(|_, mtime| *mtime >= threshold);
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
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    for f in new {
        match limit {
            ReadLimit::Unlimited => {}
            ReadLimit::MaxFiles(n) if batch.len() >= n => break,
            ReadLimit::MaxBytes(max) if !batch.is_empty() && bytes + f.size > max => break,
            _ => {}
        }
        bytes += f.size;
        batch.push(f.clone());
    }
    batch
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
