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
//! This only ever moves a listing earlier; what a batch reads is still decided by listing, so
//! a missed or spurious event changes latency, never results. S3 sources (and systems without
//! inotify) have no such signal and are listed once per trigger interval.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Notify;

/// A watch on a source directory; dropping it ends the watch.
#[derive(Debug)]
pub struct Arrivals {
    signal: Arc<Notify>,
}

impl Arrivals {
    /// Watch `dir` and the directories below it; `None` when the OS cannot (the query then
    /// simply polls at its interval).
    pub fn watch(dir: &Path) -> Option<Self> {
        let signal = Arc::new(Notify::new());
        match watcher::start(dir, signal.clone()) {
            Ok(()) => Some(Self { signal }),
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
}

/// Would listing see an entry of this name (not starting with `.` or `_`)?
fn visible(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !name.starts_with('.') && !name.starts_with('_')
}

#[cfg(target_os = "linux")]
mod watcher {
    use std::collections::HashMap;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
    use tokio::sync::Notify;

    use super::visible;

    /// How often the watch thread looks for events (and whether it is still wanted).
    const POLL: Duration = Duration::from_millis(5);

    fn mask() -> WatchMask {
        WatchMask::CLOSE_WRITE | WatchMask::MOVED_TO | WatchMask::CREATE | WatchMask::ONLYDIR
    }

    /// Watch `dir` (and its visible subdirectories) on a thread that ends when `signal` has no
    /// other owner.
    pub(super) fn start(dir: &Path, signal: Arc<Notify>) -> io::Result<()> {
        let mut inotify = Inotify::init()?;
        let mut dirs = HashMap::new();
        add_tree(&mut inotify, &mut dirs, dir.to_path_buf())?;
        std::thread::Builder::new()
            .name("sluice-arrivals".into())
            .spawn(move || run(inotify, dirs, signal))?;
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

    fn run(mut inotify: Inotify, mut dirs: HashMap<WatchDescriptor, PathBuf>, signal: Arc<Notify>) {
        let mut buffer = [0u8; 8192];
        while Arc::strong_count(&signal) > 1 {
            let mut landed = false;
            let mut new_dirs = Vec::new();
            match inotify.read_events(&mut buffer) {
                Ok(events) => {
                    for event in events {
                        if event.mask.contains(EventMask::Q_OVERFLOW) {
                            landed = true;
                            continue;
                        }
                        let Some(name) = event.name.filter(|n| visible(n)) else {
                            continue;
                        };
                        let is_dir = event.mask.contains(EventMask::ISDIR);
                        if is_dir {
                            if let Some(parent) = dirs.get(&event.wd) {
                                new_dirs.push(parent.join(name));
                            }
                        }
                        // A directory moved or made in may already hold files; a plain
                        // file's creation is not an arrival until it is closed.
                        if is_dir || !event.mask.contains(EventMask::CREATE) {
                            landed = true;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, "source watch failed; polling only");
                    return;
                }
            }
            for dir in new_dirs {
                // A directory gone again before it could be watched is simply not watched.
                let _ = add_tree(&mut inotify, &mut dirs, dir);
            }
            if landed {
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
    use std::sync::Arc;

    use tokio::sync::Notify;

    pub(super) fn start(_dir: &Path, _signal: Arc<Notify>) -> io::Result<()> {
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
    fn only_names_listing_would_see_count() {
        assert!(visible(OsStr::new("f1.json")));
        assert!(visible(OsStr::new("day=1")));
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
}
