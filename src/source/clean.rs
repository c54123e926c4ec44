//! Spark's `cleanSource`: once a batch is committed, its files are archived (moved under
//! `sourceArchiveDir`, keeping their whole path) or deleted, so that the source holds what is
//! still to be read and listing it costs what is new, not everything ever delivered.
//!
//! ```text
//!   batch N planned (its record names its files)
//!     └─► committed (txn N in the table) ──► clean the files of N
//!   restart: the last committed batch's files are cleaned again (a kill may have cut the
//!   cleaning short); a file already gone is skipped.
//!   The files of a planned batch that is not committed are never touched: its re-run reads them.
//! ```
//!
//! Cleaning is housekeeping, as in Spark: a file that cannot be moved or deleted is reported and
//! left where it is (it was read and committed; it is not read again).

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::{path::Path, ObjectStore, ObjectStoreExt};

use super::SourceError;
use crate::storage::Location;

/// What happens to a committed batch's files (`cleanSource`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CleanSource {
    /// They stay (Spark's default).
    #[default]
    Off,
    /// They move under `sourceArchiveDir`.
    Archive,
    /// They are deleted.
    Delete,
}

impl CleanSource {
    /// Spark's spelling, any case: `off`, `archive`, `delete`.
    pub fn parse(value: &str) -> Option<CleanSource> {
        match value.to_ascii_lowercase().as_str() {
            "off" => Some(CleanSource::Off),
            "archive" => Some(CleanSource::Archive),
            "delete" => Some(CleanSource::Delete),
            _ => None,
        }
    }
}

/// Where a source's committed files go, checked against the source when it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cleaner {
    /// Nothing is cleaned.
    Off,
    /// Deleted.
    Delete,
    /// Moved under this location (on the same file system or bucket as the source).
    Archive(Location),
}

impl Cleaner {
    /// The cleaner for `mode` and `archive_dir` over a source at `source`, or the one-line
    /// reason the pair cannot work (Spark's checks: archive needs a folder, on the source's
    /// file system, outside the source so archived files are not read again).
    pub fn new(
        mode: &CleanSource,
        archive_dir: Option<&str>,
        source: &Location,
    ) -> Result<Cleaner, SourceError> {
        let bad = |msg: String| SourceError::InvalidOption(msg);
        match mode {
            CleanSource::Off => Ok(Cleaner::Off),
            CleanSource::Delete => Ok(Cleaner::Delete),
            CleanSource::Archive => {
                let dir = archive_dir.ok_or_else(|| {
                    bad("cleanSource=archive needs --option sourceArchiveDir=FOLDER (outside the source) to move committed files to".into())
                })?;
                let archive =
                    Location::parse(dir).map_err(|e| bad(format!("sourceArchiveDir: {e}")))?;
                let same_store = match (&archive, source) {
                    (Location::Local { .. }, Location::Local { .. }) => true,
                    (Location::S3 { bucket: a, .. }, Location::S3 { bucket: s, .. }) => a == s,
                    _ => false,
                };
                if !same_store {
                    return Err(bad(format!(
                        "sourceArchiveDir {dir} is not on the source's file system (or bucket); give a folder beside the source"
                    )));
                }
                if inside(&archive.canonical(), &source.canonical()) {
                    return Err(bad(format!(
                        "sourceArchiveDir {dir} is inside the source {}: archived files would be read again; give a folder outside it",
                        source.as_str()
                    )));
                }
                Ok(Cleaner::Archive(archive))
            }
        }
    }
}

/// Is `path` the folder `dir` or below it?
fn inside(path: &str, dir: &str) -> bool {
    let dir = dir.trim_end_matches('/');
    path == dir || path.starts_with(&format!("{dir}/"))
}

/// Where Spark's archiver moves a file: the archive folder, then the file's whole path
/// (`/data/in/a.json` under `/archive` becomes `/archive/data/in/a.json`; on S3 the key).
pub fn archived_path(archive: &str, file: &str) -> String {
    format!(
        "{}/{}",
        archive.trim_end_matches('/'),
        file.trim_start_matches('/')
    )
}

/// Clean one local file (named relative to the source folder `root`); a file already gone
/// (cleaned before a restart) is skipped.
pub(super) fn clean_local(
    cleaner: &Cleaner,
    root: &FsPath,
    file: &str,
) -> Result<bool, std::io::Error> {
    let from = root.join(file);
    let result = match cleaner {
        Cleaner::Off => return Ok(false),
        Cleaner::Delete => std::fs::remove_file(&from),
        Cleaner::Archive(archive) => {
            let Some(dir) = archive.local_path() else {
                return Ok(false);
            };
            // The archive folder, then the file's whole path (see [`archived_path`]).
            let to = dir.join(from.strip_prefix("/").unwrap_or(&from));
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::rename(&from, &to).or_else(|e| {
                // Another file system (a different mount): copy, then remove.
                if from.exists() && e.kind() != std::io::ErrorKind::NotFound {
                    std::fs::copy(&from, &to)?;
                    std::fs::remove_file(&from)
                } else {
                    Err(e)
                }
            })
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Clean one object (its key in the source's bucket); an object already gone is skipped.
pub(super) async fn clean_object(
    cleaner: &Cleaner,
    store: &Arc<dyn ObjectStore>,
    key: &Path,
) -> Result<bool, object_store::Error> {
    let result = match cleaner {
        Cleaner::Off => return Ok(false),
        Cleaner::Delete => store.delete(key).await,
        Cleaner::Archive(archive) => {
            let to = archived_path(archive.prefix().as_ref(), key.as_ref());
            let to = Path::parse(&to).unwrap_or_else(|_| Path::from(to.as_str()));
            match store.copy(key, &to).await {
                Ok(()) => store.delete(key).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(()) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn location(uri: &str) -> Location {
        Location::parse(uri).unwrap()
    }

    /// Spark's `FileStreamSource` checks: archive needs a folder, on the source's file system,
    /// not inside the source (`sourceArchiveDir` must not match the source pattern).
    #[test]
    fn archive_needs_a_folder_beside_the_source() {
        let source = location("/data/in");
        let err = |mode: &CleanSource, dir: Option<&str>| {
            Cleaner::new(mode, dir, &source).unwrap_err().to_string()
        };
        assert!(err(&CleanSource::Archive, None).contains("sourceArchiveDir=FOLDER"));
        assert!(err(&CleanSource::Archive, Some("/data/in/archive")).contains("inside the source"));
        assert!(err(&CleanSource::Archive, Some("/data/in")).contains("inside the source"));
        assert!(err(&CleanSource::Archive, Some("s3://b/archive")).contains("file system"));
        assert_eq!(
            Cleaner::new(&CleanSource::Archive, Some("/data/in-archive"), &source).unwrap(),
            Cleaner::Archive(location("/data/in-archive"))
        );
        let s3 = location("s3://b/in");
        assert!(Cleaner::new(&CleanSource::Archive, Some("s3://other/a"), &s3).is_err());
        assert!(Cleaner::new(&CleanSource::Archive, Some("s3://b/archive"), &s3).is_ok());
        assert_eq!(
            Cleaner::new(&CleanSource::Delete, None, &s3).unwrap(),
            Cleaner::Delete
        );
        assert_eq!(CleanSource::parse("ARCHIVE"), Some(CleanSource::Archive));
        assert_eq!(CleanSource::parse("move"), None);
    }

    /// Spark's `SourceFileArchiver`: the archive folder, then the file's whole path.
    #[test]
    fn archived_files_keep_their_whole_path() {
        assert_eq!(
            archived_path("/archive/", "/data/in/date=2024-01-01/x[1].json"),
            "/archive/data/in/date=2024-01-01/x[1].json"
        );
        assert_eq!(archived_path("archive", "in/a.json"), "archive/in/a.json");
    }

    #[test]
    fn local_files_are_archived_or_deleted_once() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("in");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/a b%.json"), "{}").unwrap();
        std::fs::write(src.join("c.json"), "{}").unwrap();
        let archive = location(dir.path().join("archive").to_str().unwrap());
        let cleaner = Cleaner::Archive(archive);
        assert!(clean_local(&cleaner, &src, "sub/a b%.json").unwrap());
        // Again (a restart re-cleans the last batch): already gone, skipped.
        assert!(!clean_local(&cleaner, &src, "sub/a b%.json").unwrap());
        let moved = PathBuf::from(archived_path(
            dir.path().join("archive").to_str().unwrap(),
            src.join("sub/a b%.json").to_str().unwrap(),
        ));
        assert_eq!(std::fs::read_to_string(moved).unwrap(), "{}");
        assert!(clean_local(&Cleaner::Delete, &src, "c.json").unwrap());
        assert!(!src.join("c.json").exists());
        assert!(!clean_local(&Cleaner::Delete, &src, "c.json").unwrap());
    }
}
