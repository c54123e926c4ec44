//! Arrivals in a local source directory: the OS (inotify) reports when a file lands — closed
//! after being written, or renamed into the directory — so an idle query can list the source
//! at once instead of at its next poll. Hidden paths (`.`/`_`), which listing skips, are
//! ignored; subdirectories are watched too, including ones created later.
//!
//! ```text
//!   writer: close(f) / rename(tmp → f) ──► inotify ──► watch thread ──► notify_one
//!                                                                          │
//!   engine, idle: sleep until the next poll ◄──── or wake early ───────────┘
//! ```
//!
//! The paths that landed are kept too (a file closed or renamed in, a file linked in, a new
//! folder), so discovery can look them up instead of listing the source (see
//! [`super::candidates`]). A lost event changes latency, never results: what is new is still
//! decided against the seen-file set, the kernel's queue overflowing (or too many paths
//! waiting) makes the next scan a full listing, and discovery lists everything now and then
//! anyway. S3 sources (and systems without inotify) have no such signal and are listed once per
//! trigger interval.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Paths kept between scans at most; past this the next scan lists the source instead.
const MAX_LANDED: usize = 1 << 20;

/// What landed since the previous [`Arrivals::take`].
#[derive(Debug, Default)]
struct Landed {
    paths: Vec<PathBuf>,
    /// Events were lost (the kernel's queue overflowed, or too many paths waited).
    lost: bool,
}

impl Landed {
    fn push(&mut self, path: PathBuf) {
        if self.lost {
            return;
        }
        if self.paths.len() >= MAX_LANDED {
            self.lost = true;
            self.paths = Vec::new();
        } else {
            self.paths.push(path);
        }
    }
}

/// A watch on a source directory; dropping every clone ends the watch.
#[derive(Debug, Clone)]
pub struct Arrivals {
    signal: Arc<Notify>,
    landed: Arc<Mutex<Landed>>,
}

impl Arrivals {
    /// Watch `dir` and the directories below it; `None` when the OS cannot (the query then
    /// simply polls at its interval).
    pub fn watch(dir: &Path) -> Option<Self> {
        let signal = Arc::new(Notify::new());
        let landed = Arc::new(Mutex::new(Landed::default()));
        match watcher::start(dir, signal.clone(), landed.clone()) {
            Ok(()) => Some(Self { signal, landed }),
            Err(e) => {
                tracing::debug!(error = %e, "cannot watch the source; polling only");
                None
            }
        }
    }

    /// Wait for a file to land. An arrival since the previous wait counts (it is not lost
    /// while a batch runs), so a spurious early return is possible and harmless.
    pub async fn landed(&self) {
        self.signal.notified().await;
    }

    /// The paths that landed since the previous call (files, and folders made or moved in),
    /// or `None` when events were lost since then and only a full listing can tell.
    pub fn take(&self) -> Option<Vec<PathBuf>> {
        let Ok(mut landed) = self.landed.lock() else {
            return None;
        };
        let taken = std::mem::take(&mut *landed);
        (!taken.lost).then_some(taken.paths)
    }
}

/// Would listing see an entry of this name (see [`super::listing::hidden`])?
fn visible(name: &std::ffi::OsStr) -> bool {
    !super::listing::hidden(&name.to_string_lossy())
}

#[cfg(target_os = "linux")]
mod watcher {
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
    use tokio::sync::Notify;

    use super::{visible, Landed};

    /// How often the watch thread looks for events (and whether it is still wanted).
    const POLL: Duration = Duration::from_millis(5);

    fn mask() -> WatchMask {
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::ONLYDIR
    }

    /// Watch `dir` (and its visible subdirectories) on a thread that ends when `signal` has no
    /// other owner.
    pub(super) fn start(
        dir: &Path,
        signal: Arc<Notify>,
        landed: Arc<Mutex<Landed>>,
    ) -> io::Result<()> {
        let mut inotify = Inotify::init()?;
        let mut dirs = HashMap::new();
        add_tree(&mut inotify, &mut dirs, dir.to_path_buf())?;
        std::thread::Builder::new()
            .name("sluice-arrivals".into())
            .spawn(move || run(inotify, dirs, signal, landed))?;
        Ok(())
    }

    fn add_tree(
        inotify: &mut Inotify,
        dirs: &mut HashMap<WatchDescriptor, PathBuf>,
        dir: PathBuf,
    ) -> io::Result<()> {
        let wd = inotify.watches().add(&dir, mask())?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) && visible(&entry.file_name()) {
                add_tree(inotify, dirs, entry.path())?;
            }
        }
        dirs.insert(wd, dir);
        Ok(())
    }

    fn run(
        mut inotify: Inotify,
        mut dirs: HashMap<WatchDescriptor, PathBuf>,
        signal: Arc<Notify>,
        landed: Arc<Mutex<Landed>>,
    ) {
        let mut buffer = [0u8; 8192];
        while Arc::strong_count(&signal) > 1 {
            let mut woke = false;
            let mut new_dirs = Vec::new();
            let mut paths = Vec::new();
            let mut lost = false;
            match inotify.read_events(&mut buffer) {
                Ok(events) => {
                    for event in events {
                        if event.mask.contains(EventMask::Q_OVERFLOW) {
                            lost = true;
                            woke = true;
                            continue;
                        }
                        let Some(name) = event.name.filter(|n| visible(n)) else {
                            continue;
                        };
                        let Some(parent) = dirs.get(&event.wd) else {
                            continue;
                        };
                        let path = parent.join(name);
                        let is_dir = event.mask.contains(EventMask::ISDIR);
                        if is_dir {
                            new_dirs.push(path.clone());
                        }
                        // A directory moved or made in may already hold files; a plain
                        // file's creation is not an arrival until it is closed (it is kept
                        // all the same: a file linked in is only ever created).
                        if is_dir || !event.mask.contains(EventMask::CREATE) {
                            woke = true;
                        }
                        paths.push(path);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, "source watch failed; polling only");
                    if let Ok(mut landed) = landed.lock() {
                        landed.lost = true;
                    }
                    return;
                }
            }
            for dir in new_dirs {
                // A directory gone again before it could be watched is simply not watched.
                let _ = add_tree(&mut inotify, &mut dirs, dir);
            }
            if !paths.is_empty() || lost {
                match landed.lock() {
                    Ok(mut landed) => {
                        landed.lost |= lost;
                        for path in paths {
                            landed.push(path);
                        }
                    }
                    Err(_) => return,
                }
            }
            if woke {
                signal.notify_one();
            } else {
                std::thread::sleep(POLL);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod watcher {
    use std::io;
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use tokio::sync::Notify;

    use super::Landed;

    pub(super) fn start(
        _dir: &Path,
        _signal: Arc<Notify>,
        _landed: Arc<Mutex<Landed>>,
    ) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "file arrival events need inotify",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::time::Duration;

    #[test]
    fn paths_are_kept_until_taken_and_lost_events_ask_for_a_listing() {
        let arrivals = Arrivals {
            signal: Arc::new(Notify::new()),
            landed: Arc::default(),
        };
        let push = |p: &str| arrivals.landed.lock().unwrap().push(PathBuf::from(p));
        push("/s/a.json");
        push("/s/b.json");
        assert_eq!(
            arrivals.take(),
            Some(vec![PathBuf::from("/s/a.json"), PathBuf::from("/s/b.json")])
        );
        assert_eq!(arrivals.take(), Some(vec![]));
        // Past the bound, what landed is no longer known: the next scan must list.
        {
            let mut landed = arrivals.landed.lock().unwrap();
            landed.paths = vec![PathBuf::new(); MAX_LANDED];
            landed.push(PathBuf::from("/s/c.json"));
            assert!(landed.lost && landed.paths.is_empty());
        }
        assert_eq!(arrivals.take(), None);
        assert_eq!(arrivals.take(), Some(vec![]), "lost once, listed once");
    }

    #[test]
    fn only_names_listing_would_see_count() {
        assert!(visible(OsStr::new("f1.json")));
        assert!(visible(OsStr::new("day=1")));
        assert!(visible(OsStr::new("_source=app")));
        assert!(!visible(OsStr::new(".f1.json.tmp")));
        assert!(!visible(OsStr::new("_spark_metadata")));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_renamed_or_closed_file_is_an_arrival_and_a_hidden_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let arrivals = Arrivals::watch(dir.path()).expect("inotify");
        let wait = || tokio::time::timeout(Duration::from_millis(700), arrivals.landed());
        std::fs::write(dir.path().join(".hidden.tmp"), b"x").expect("write");
        assert!(wait().await.is_err(), "a hidden file woke the query");
        std::fs::rename(dir.path().join(".hidden.tmp"), dir.path().join("a.json")).expect("mv");
        assert!(wait().await.is_ok(), "a file renamed in was missed");
        std::fs::create_dir(dir.path().join("day=2")).expect("mkdir");
        assert!(wait().await.is_ok(), "a new directory was missed");
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::write(dir.path().join("day=2").join("b.json"), b"x").expect("write");
        assert!(
            wait().await.is_ok(),
            "a file written in a new directory was missed"
        );
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_paths_that_landed_are_kept_for_discovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let arrivals = Arrivals::watch(dir.path()).expect("inotify");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("l.json"), b"x").expect("write");
        std::fs::write(dir.path().join(".a.tmp"), b"x").expect("write");
        std::fs::rename(dir.path().join(".a.tmp"), dir.path().join("a.json")).expect("mv");
        std::fs::hard_link(outside.path().join("l.json"), dir.path().join("l.json")).expect("link");
        std::fs::create_dir(dir.path().join("late")).expect("mkdir");
        let want = ["a.json", "l.json", "late"].map(|n| dir.path().join(n));
        let mut got = Vec::new();
        let started = std::time::Instant::now();
        while !want.iter().all(|w| got.contains(w)) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "missed: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
            got.extend(arrivals.take().expect("no event lost"));
        }
        assert!(
            !got.iter().any(|p| p.ends_with(".a.tmp")),
            "a hidden name is not kept: {got:?}"
        );
    }
}
