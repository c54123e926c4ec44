//! Which files a trigger considers, found at a cost that follows what is new rather than
//! everything ever delivered. Three ways, chosen per query (see [`Discovery`]):
//!
//! ```text
//!   full listing      every file below the source, each trigger (Spark's FileStreamSource)
//!   incremental       names after the greatest name listed so far (S3 `start-after`; on local
//!                     disk, names at or before it are not even looked up) — Auto Loader's
//!                     `useIncrementalListing`, safe when names sort by arrival
//!   arrival events    the paths a local source's watcher saw land (inotify), looked up one by one
//!   queue events      the keys an S3 bucket's event notifications announce in an SQS queue
//!                     (Auto Loader's file notification mode, `queueUrl`; see `queue.rs`)
//!
//!   all but the first ── every backfillInterval, at start, and after a lost
//!   event ──► one full listing (the safety net: a file that landed out of order, or whose
//!   event was lost, is found there)
//! ```
//!
//! Discovery only proposes: whether a file is new is still decided by the seen-file set, so a
//! file found twice (by an event and by the safety net) is read once. Files found but not yet
//! taken (a read limit held them back) are kept as pending, since an incremental listing will
//! not list them again; a full listing replaces the pending set.
//!
//! This module is the decision part (what to scan, what the candidates are); the scans
//! themselves are [`super::FileSource::scan`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::discovery::{FileEntry, SeenFiles};

/// How files are found between safety-net full listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// List every file, each trigger.
    FullListing,
    /// List names after the greatest name listed so far.
    Incremental,
    /// Look up the paths the local watcher saw land.
    ArrivalEvents,
    /// Read the S3 event notifications of an SQS queue.
    QueueEvents,
}

impl Discovery {
    /// Its name in progress reports.
    pub fn name(self) -> &'static str {
        match self {
            Discovery::FullListing => "full",
            Discovery::Incremental => "incremental",
            Discovery::ArrivalEvents => "arrivals",
            Discovery::QueueEvents => "queue",
        }
    }
}

/// What one trigger scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scan {
    /// Every file.
    Full,
    /// Files named after this path (relative to the source root); `None`: every file.
    After(Option<String>),
    /// The paths that landed since the previous scan.
    Arrivals,
    /// The files announced in the queue since the previous scan.
    Queue,
}

/// What a trigger's discovery found, for progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Found {
    /// Files the scan returned.
    pub listed: usize,
    /// Whether it was a full listing.
    pub full: bool,
}

/// Discovery's memory between triggers (in memory only: a restart begins with a full listing).
#[derive(Debug, Clone)]
pub struct Candidates {
    discovery: Discovery,
    backfill: Duration,
    last_full: Option<Instant>,
    /// Force a full listing at the next scan (an event was lost).
    full_due: bool,
    /// The greatest path listed so far.
    offset: Option<String>,
    /// Files found and not yet taken, by path.
    pending: BTreeMap<String, FileEntry>,
}

impl Candidates {
    /// Discovery by `discovery`, with a full listing at least every `backfill`.
    pub fn new(discovery: Discovery, backfill: Duration) -> Self {
        Candidates {
            discovery,
            backfill,
            last_full: None,
            full_due: false,
            offset: None,
            pending: BTreeMap::new(),
        }
    }

    /// How files are found.
    pub fn discovery(&self) -> Discovery {
        self.discovery
    }

    /// The next scan is a full listing (a watcher lost events).
    pub fn require_full(&mut self) {
        self.full_due = true;
    }

    /// What to scan at `now`.
    pub fn next_scan(&self, now: Instant) -> Scan {
        let backfill_due = self
            .last_full
            .is_none_or(|t| now.saturating_duration_since(t) >= self.backfill);
        match self.discovery {
            Discovery::FullListing => Scan::Full,
            _ if backfill_due || self.full_due => Scan::Full,
            Discovery::Incremental => Scan::After(self.offset.clone()),
            Discovery::ArrivalEvents => Scan::Arrivals,
            Discovery::QueueEvents => Scan::Queue,
        }
    }

    /// Take what `scan` found at `now`; the candidates are then every pending file still new
    /// to `seen`, in path order.
    pub fn absorb(
        &mut self,
        scan: &Scan,
        found: Vec<FileEntry>,
        seen: &SeenFiles,
        now: Instant,
    ) -> (Vec<FileEntry>, Found) {
        let report = Found {
            listed: found.len(),
            full: *scan == Scan::Full,
        };
        if report.full {
            self.pending.clear();
            self.last_full = Some(now);
            self.full_due = false;
        }
        for file in found {
            if self.offset.as_ref().is_none_or(|o| file.path > *o) {
                self.offset = Some(file.path.clone());
            }
            self.pending.insert(file.path.clone(), file);
        }
        self.pending.retain(|_, f| seen.is_new(f));
        (self.pending.values().cloned().collect(), report)
    }
}

/// Under incremental listing, may a folder at `folder` (relative path) hold a file named after
/// `offset`? Paths compare as UTF-8 bytes, as S3 orders keys.
pub fn folder_may_hold_later(folder: &str, offset: &str) -> bool {
    let prefix = format!("{folder}/");
    // Every path below the folder starts with `prefix`: all of them sort at or before `offset`
    // exactly when `prefix` sorts before it and `offset` is not itself below the folder.
    prefix.as_str() >= offset || offset.starts_with(&prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(path: &str, mtime_ms: i64) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 1,
            mtime_ms,
        }
    }

    fn paths(files: &[FileEntry]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[test]
    fn incremental_lists_after_the_greatest_name_and_keeps_what_was_not_taken() {
        let t0 = Instant::now();
        let mut c = Candidates::new(Discovery::Incremental, Duration::from_secs(60));
        let mut seen = SeenFiles::new(false);
        assert_eq!(c.next_scan(t0), Scan::Full, "a start lists everything");
        let (cands, found) = c.absorb(&Scan::Full, vec![f("b", 2), f("a", 1)], &seen, t0);
        assert_eq!(paths(&cands), ["a", "b"]);
        assert!(found.full);
        // Only `a` was taken (a read limit): `b` stays a candidate though it is not listed again.
        seen.add([&cands[0]]);
        let t1 = t0 + Duration::from_secs(1);
        let scan = c.next_scan(t1);
        assert_eq!(scan, Scan::After(Some("b".into())));
        let (cands, found) = c.absorb(&scan, vec![f("c", 3)], &seen, t1);
        assert_eq!(paths(&cands), ["b", "c"]);
        assert_eq!(
            found,
            Found {
                listed: 1,
                full: false
            }
        );
    }

    #[test]
    fn the_safety_net_lists_everything_every_backfill_interval_and_after_lost_events() {
        let t0 = Instant::now();
        let seen = SeenFiles::new(false);
        let mut c = Candidates::new(Discovery::ArrivalEvents, Duration::from_secs(10));
        c.absorb(&Scan::Full, vec![], &seen, t0);
        assert_eq!(c.next_scan(t0 + Duration::from_secs(9)), Scan::Arrivals);
        assert_eq!(c.next_scan(t0 + Duration::from_secs(10)), Scan::Full);
        c.require_full();
        assert_eq!(c.next_scan(t0 + Duration::from_secs(1)), Scan::Full);
        c.absorb(&Scan::Full, vec![], &seen, t0 + Duration::from_secs(1));
        assert_eq!(c.next_scan(t0 + Duration::from_secs(2)), Scan::Arrivals);
        let full = Candidates::new(Discovery::FullListing, Duration::from_secs(10));
        assert_eq!(full.next_scan(t0), Scan::Full);
    }

    #[test]
    fn a_file_found_twice_or_already_seen_is_one_candidate_or_none() {
        let t0 = Instant::now();
        let mut seen = SeenFiles::new(false);
        seen.add([&f("old", 1)]);
        let mut c = Candidates::new(Discovery::ArrivalEvents, Duration::from_secs(10));
        let (cands, _) = c.absorb(
            &Scan::Arrivals,
            vec![f("x", 2), f("x", 2), f("old", 1)],
            &seen,
            t0,
        );
        assert_eq!(paths(&cands), ["x"]);
    }

    #[test]
    fn a_full_listing_replaces_pending_files_that_are_gone() {
        let t0 = Instant::now();
        let seen = SeenFiles::new(false);
        let mut c = Candidates::new(Discovery::Incremental, Duration::from_secs(10));
        c.absorb(&Scan::Full, vec![f("a", 1), f("b", 1)], &seen, t0);
        let (cands, _) = c.absorb(&Scan::Full, vec![f("b", 1)], &seen, t0);
        assert_eq!(paths(&cands), ["b"]);
    }

    #[test]
    fn folders_whose_every_path_sorts_before_the_offset_are_skipped() {
        assert!(!folder_may_hold_later("2024/01", "2024/02/x.json"));
        assert!(folder_may_hold_later("2024/02", "2024/02/x.json"));
        assert!(folder_may_hold_later("2024/03", "2024/02/x.json"));
        // `a/...` sorts after `a-b` ('/' is after '-'): the folder may hold later names.
        assert!(folder_may_hold_later("a", "a-b.json"));
        // ... and before `a0` ('/' is before '0').
        assert!(!folder_may_hold_later("a", "a0.json"));
    }
}
