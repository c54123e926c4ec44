//! Listing and reading the source's files by their real names.
//!
//! A file's identity (`FileEntry::path`) is its name relative to the source root, exactly as the
//! file system or the S3 key spells it — `x[1].json`, `y 50%.json`, `ts=12%3A00.json` — and
//! reading a file uses that same name. Object store paths percent-encode some characters when
//! built from parts, so neither the local directory nor an S3 key is ever rebuilt that way:
//! local files are listed and read with the file system itself, S3 keys are used as listed.
//!
//! Skipped while listing, so they never wedge a batch: hidden files and folders (`_` or `.`
//! first), zero-byte objects (S3 "folder markers" such as `prefix/sub/`, files still being
//! created in place), and local names that are not UTF-8 (warned about once: rename to read).

use std::collections::HashSet;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::discovery::FileEntry;
use super::SourceError;

/// Is this name part hidden? As Spark's `InMemoryFileIndex.shouldFilterOutPathName`: names
/// starting with `.`, names starting with `_` unless they hold `=` (a partition folder such as
/// `_source=app`), and files still being copied in (`._COPYING_`).
pub(super) fn hidden(part: &str) -> bool {
    (part.starts_with('_') && !part.contains('='))
        || part.starts_with('.')
        || part.ends_with("._COPYING_")
}

/// The files below the folder `rel` of a local source (`""`: the whole source), recursively,
/// named relative to `root`. Names that are not UTF-8 are skipped with a warning (once per name,
/// remembered in `warned`). With `after`, only files named after it are looked up (see
/// [`super::candidates`]: names at or before it are not even stat'ed, folders that cannot hold
/// a later name are not read).
pub(super) fn list_local_below(
    root: &FsPath,
    rel: &str,
    after: Option<&str>,
    warned: &Mutex<HashSet<PathBuf>>,
) -> Result<Vec<FileEntry>, SourceError> {
    let mut files = Vec::new();
    let mut dirs = vec![(root.join(rel), rel.to_string())];
    while let Some((dir, rel)) = dirs.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            // A folder removed while listing holds nothing to read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir != root => continue,
            Err(e) => {
                return Err(SourceError::Location(format!(
                    "cannot list source directory {}: {e}",
                    dir.display()
                )))
            }
        };
        for entry in entries {
            let entry = entry.map_err(|e| {
                SourceError::Location(format!("cannot list {}: {e}", dir.display()))
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                let path = entry.path();
                if let Ok(mut warned) = warned.lock() {
                    if warned.insert(path.clone()) {
                        tracing::warn!(
                            "skipping source file {}: its name is not UTF-8; rename it to read it",
                            path.display()
                        );
                    }
                }
                continue;
            };
            if hidden(name) {
                continue;
            }
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            // Under incremental listing, a name at or before the offset is not looked up (the
            // directory entry's own type tells a folder without a stat).
            if let Some(after) = after {
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if !is_dir && path.as_str() <= after {
                    continue;
                }
                if is_dir && !super::candidates::folder_may_hold_later(&path, after) {
                    continue;
                }
            }
            // Follows links; a file removed since the directory was read is not listed.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                dirs.push((entry.path(), path));
            } else if let Some(file) = entry_of(path, &meta) {
                files.push(file);
            }
        }
    }
    Ok(files)
}

/// A listed file, unless it is empty or not a plain file.
fn entry_of(path: String, meta: &std::fs::Metadata) -> Option<FileEntry> {
    if !meta.is_file() || meta.len() == 0 {
        return None;
    }
    let mtime_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0);
    Some(FileEntry {
        path,
        size: meta.len(),
        mtime_ms,
    })
}

/// The files among local paths a watcher saw land below `root`: a file is looked up alone, a
/// folder is listed whole; what listing would skip is skipped here too.
pub(super) fn look_up_local(
    root: &FsPath,
    landed: &[PathBuf],
    warned: &Mutex<HashSet<PathBuf>>,
) -> Result<Vec<FileEntry>, SourceError> {
    let mut files = Vec::new();
    for path in landed {
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str() else {
            continue;
        };
        if rel.is_empty() || rel.split('/').any(hidden) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            files.extend(list_local_below(root, rel, None, warned)?);
        } else if let Some(file) = entry_of(rel.to_string(), &meta) {
            files.push(file);
        }
    }
    Ok(files)
}

/// Read a local source file.
pub(super) async fn read_local(root: &FsPath, file: &str) -> Result<bytes::Bytes, SourceError> {
    let path = root.join(file);
    match tokio::fs::read(&path).await {
        Ok(data) => Ok(bytes::Bytes::from(data)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(gone(file)),
        Err(e) => Err(SourceError::Unreadable(format!("{file}: {e}"))),
    }
}

/// Get an object of an S3 source by its listed name.
async fn get(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    file: &str,
) -> Result<object_store::GetResult, SourceError> {
    store.get(&key(prefix, file)?).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => gone(file),
        other => SourceError::Storage(other),
    })
}

/// The body of an S3 source object, as it arrives.
pub(super) async fn open_store(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    file: &str,
) -> Result<futures::stream::BoxStream<'static, object_store::Result<bytes::Bytes>>, SourceError> {
    Ok(get(store, prefix, file).await?.into_stream())
}

/// The object path of a file named relative to `prefix`, as listed.
pub(super) fn key(prefix: &Path, file: &str) -> Result<Path, SourceError> {
    let key = if prefix.as_ref().is_empty() {
        file.to_string()
    } else {
        format!("{}/{file}", prefix.as_ref())
    };
    Path::parse(&key).map_err(|e| SourceError::Unreadable(format!("{file}: not a usable key: {e}")))
}

pub(super) fn gone(file: &str) -> SourceError {
    SourceError::Unreadable(format!(
        "{file}: the file was listed for this batch but is gone; source files must not be deleted before they are read"
    ))
}

/// The objects below `prefix`, named relative to it as their keys spell them; with `after`,
/// only those named after it (S3's `start-after`).
pub(super) async fn list_store(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    after: Option<&str>,
) -> Result<Vec<FileEntry>, SourceError> {
    let metas: Vec<_> = match after {
        Some(after) => {
            store
                .list_with_offset(Some(prefix), &key(prefix, after)?)
                .try_collect()
                .await?
        }
        None => store.list(Some(prefix)).try_collect().await?,
    };
    let skip = prefix.as_ref().len();
    let mut files = Vec::with_capacity(metas.len());
    for meta in metas {
        let key = meta.location.as_ref();
        let rel = key
            .get(skip..)
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_string();
        if rel.is_empty() || meta.size == 0 || rel.split('/').any(hidden) {
            continue;
        }
        files.push(FileEntry {
            path: rel,
            size: meta.size,
            mtime_ms: meta.last_modified.timestamp_millis(),
        });
    }
    Ok(files)
}

/// Read an object of an S3 source by its listed name.
pub(super) async fn read_store(
    store: &Arc<dyn ObjectStore>,
    prefix: &Path,
    file: &str,
) -> Result<bytes::Bytes, SourceError> {
    Ok(get(store, prefix, file).await?.bytes().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ODD: [&str; 8] = [
        "x[1].json",
        "y 50%.json",
        "z#2.json",
        "w~.json",
        "ts=12%3A00.json",
        "é ü 日本.json",
        "a{b}^`|<>\"?*.json",
        "sub dir/q[1] %41.json",
    ];

    /// The listed files, which must be exactly the [`ODD`] ones, sorted.
    fn just_the_odd_names(mut listed: Vec<FileEntry>) -> Vec<FileEntry> {
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        let mut want: Vec<&str> = ODD.to_vec();
        want.sort();
        let names: Vec<&str> = listed.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, want);
        listed
    }

    #[tokio::test]
    async fn local_files_with_odd_names_are_listed_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        for name in ODD {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, name).unwrap();
        }
        std::fs::write(dir.path().join("empty.json"), "").unwrap();
        std::fs::write(dir.path().join("_hidden.json"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join(".tmp")).unwrap();
        std::fs::write(dir.path().join(".tmp/a.json"), "x").unwrap();
        let warned = Mutex::default();
        let listed = list_local_below(dir.path(), "", None, &warned).unwrap();
        for f in &just_the_odd_names(listed) {
            let data = read_local(dir.path(), &f.path).await.unwrap();
            assert_eq!(data, f.path.as_bytes());
        }
    }

    #[test]
    fn a_local_listing_after_a_name_lists_only_later_names_in_every_folder() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.json",
            "b.json",
            "d=1/x.json",
            "d=2/x.json",
            "d=2/y.json",
            "e.json",
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
        }
        let warned = Mutex::default();
        let mut names: Vec<String> = list_local_below(dir.path(), "", Some("d=2/x.json"), &warned)
            .unwrap()
            .into_iter()
            .map(|f| f.path)
            .collect();
        names.sort();
        assert_eq!(names, ["d=2/y.json", "e.json"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_name_that_is_not_utf8_is_skipped_not_fatal() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let bad = std::ffi::OsStr::from_bytes(b"bad\xff.json");
        std::fs::write(dir.path().join(bad), "x").unwrap();
        std::fs::write(dir.path().join("good.json"), "x").unwrap();
        let warned = Mutex::default();
        let listed = list_local_below(dir.path(), "", None, &warned).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, "good.json");
        assert_eq!(warned.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn store_keys_with_odd_names_and_folder_markers() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let prefix = Path::parse("landing/zone").unwrap();
        for name in ODD {
            let key = Path::parse(format!("landing/zone/{name}")).unwrap();
            store
                .put(&key, name.as_bytes().to_vec().into())
                .await
                .unwrap();
        }
        // A zero-byte folder marker, as consoles create for `landing/zone/sub/`.
        let marker = Path::parse("landing/zone/sub").unwrap();
        store.put(&marker, Vec::new().into()).await.unwrap();
        let listed = list_store(&store, &prefix, None).await.unwrap();
        for f in &just_the_odd_names(listed) {
            let data = read_store(&store, &prefix, &f.path).await.unwrap();
            assert_eq!(data, f.path.as_bytes());
        }
    }
}
