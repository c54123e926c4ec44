//! The names in a local table's `_delta_log`, remembered between the listings a Delta reader
//! makes after every commit, so that a listing costs the new versions, not the whole log (a
//! streaming table's log holds a file per batch for 30 days by default: reading the folder each
//! commit made every commit cost every commit still kept).
//!
//! ```text
//!   list after offset ──► names read less than RELIST_EVERY ago?
//!                           no  ──► read the folder (every name) ─► remember
//!                           yes ──► look up <v>.checkpoint.parquet, <v>.crc for the newest
//!                                   version v, then <v+1>.json, ... until one is missing
//!                         ──► the remembered names after the offset
//! ```
//!
//! Versions are numbered without gaps, so new commits are found by name whoever wrote them.
//! What only a folder read finds — a multi-part or UUID-named checkpoint another writer made —
//! is found at the next read at most [`RELIST_EVERY`] later (until then a reader replays the
//! commits instead: slower, not wrong), and a name deleted since it was read is dropped when
//! its lookup finds nothing.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest a folder's remembered names are used without reading it again.
pub const RELIST_EVERY: Duration = Duration::from_secs(30);

/// What one folder held when it was read, plus the versions found by name since.
#[derive(Debug)]
struct Names {
    /// Locations (`prefix/name`), sorted.
    names: BTreeSet<String>,
    read_at: Instant,
}

/// The remembered names of `_delta_log` folders.
#[derive(Debug, Default)]
pub struct LogNames {
    folders: Mutex<HashMap<PathBuf, Names>>,
}

/// The version of a commit file's name (`00000000000000000042.json`).
fn commit_version(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".json")?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

impl LogNames {
    /// Is `dir` a folder whose names are remembered?
    pub fn applies(dir: &FsPath) -> bool {
        dir.file_name().is_some_and(|n| n == "_delta_log")
    }

    /// The locations in `dir` (named `prefix/name`) after `offset`, sorted; `read` reads the
    /// whole folder (`None`: it cannot be listed by name, and nothing is remembered).
    pub fn after(
        &self,
        dir: &FsPath,
        prefix: &str,
        offset: &str,
        read: impl FnOnce() -> Option<Vec<String>>,
        now: Instant,
    ) -> Option<Vec<String>> {
        let mut folders = self.folders.lock().ok()?;
        let fresh = folders
            .get(dir)
            .is_some_and(|f| now.saturating_duration_since(f.read_at) < RELIST_EVERY);
        if fresh {
            let folder = folders.get_mut(dir)?;
            find_new_versions(dir, prefix, &mut folder.names);
        } else {
            let Some(names) = read() else {
                folders.remove(dir);
                return None;
            };
            folders.insert(
                dir.to_path_buf(),
                Names {
                    names: names.into_iter().collect(),
                    read_at: now,
                },
            );
        }
        let folder = folders.get(dir)?;
        Some(
            folder
                .names
                .range::<str, _>((Bound::Excluded(offset), Bound::Unbounded))
                .cloned()
                .collect(),
        )
    }
}

/// Add to `names` what a commit since has added to `dir`: the newest version's checkpoint and
/// checksum, and every later commit (with its own).
fn find_new_versions(dir: &FsPath, prefix: &str, names: &mut BTreeSet<String>) {
    let location = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        }
    };
    let newest = names
        .iter()
        .rev()
        .filter_map(|l| commit_version(l.rsplit('/').next().unwrap_or(l)))
        .next();
    let Some(mut version) = newest else { return };
    loop {
        for extra in ["checkpoint.parquet", "crc"] {
            let name = format!("{version:020}.{extra}");
            if dir.join(&name).is_file() {
                names.insert(location(&name));
            }
        }
        let next = format!("{:020}.json", version + 1);
        if !dir.join(&next).is_file() {
            return;
        }
        names.insert(location(&next));
        version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &FsPath) -> Option<Vec<String>> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .ok()?
            .map(|e| format!("p/{}", e.ok().unwrap().file_name().to_string_lossy()))
            .collect();
        names.sort();
        Some(names)
    }

    #[test]
    fn new_versions_are_found_by_name_and_the_folder_is_read_again_later() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        let write = |name: &str| std::fs::write(log.join(name), "{}").unwrap();
        for v in 0..3 {
            write(&format!("{v:020}.json"));
        }
        let names = LogNames::default();
        let t0 = Instant::now();
        let reads = std::cell::Cell::new(0);
        let list = |offset: &str, now: Instant| {
            names
                .after(
                    &log,
                    "p",
                    offset,
                    || {
                        reads.set(reads.get() + 1);
                        read_all(&log)
                    },
                    now,
                )
                .unwrap()
        };
        assert_eq!(list("p/00000000000000000001", t0).len(), 2);
        assert_eq!(reads.get(), 1);
        // A commit, its checkpoint and checksum, and the next commit: found without a read.
        write("00000000000000000003.json");
        write("00000000000000000003.checkpoint.parquet");
        write("00000000000000000003.crc");
        write("00000000000000000004.json");
        // A UUID-named checkpoint only a folder read can find.
        write("00000000000000000004.checkpoint.0a1b.json");
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            list("p/00000000000000000003", t1),
            [
                "p/00000000000000000003.checkpoint.parquet",
                "p/00000000000000000003.crc",
                "p/00000000000000000003.json",
                "p/00000000000000000004.json",
            ]
        );
        assert_eq!(reads.get(), 1, "no folder read within RELIST_EVERY");
        let later = t0 + RELIST_EVERY;
        assert!(list("p/00000000000000000004", later)
            .contains(&"p/00000000000000000004.checkpoint.0a1b.json".to_string()));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn only_delta_log_folders_and_commit_names() {
        assert!(LogNames::applies(FsPath::new("/t/_delta_log")));
        assert!(!LogNames::applies(FsPath::new("/t/data")));
        assert_eq!(commit_version("00000000000000000042.json"), Some(42));
        assert_eq!(commit_version("00000000000000000042.crc"), None);
        assert_eq!(commit_version("42.json"), None);
    }
}
