//! Local tables that survive a power loss: every object written is on disk before the write
//! returns.
//!
//! The exactly-once protocol orders its writes — the batch's record, then its data and state
//! files, then the Delta commit, then the deletion of what the commit made obsolete — and relies
//! on each being durable before the next. `LocalFileSystem` writes through the page cache only,
//! so after a power loss a record could be empty or a commit could point at a data file that
//! never reached the disk. This store wraps it for local tables and fsyncs each written file
//! before it becomes visible, and its folder after:
//!
//! ```text
//!   put:        write staging file ─► fsync it ─► rename / hard-link into place ─► fsync folder
//!   multipart:  parts ─► complete ─► fsync file ─► fsync folder
//!   copy/rename ─► fsync target ─► fsync folder
//! ```
//!
//! S3 needs none of this: a completed PUT is durable.

use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;

use super::log_names::LogNames;
use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
    UploadPart,
};

/// A local file system whose writes are durable when they return.
#[derive(Debug)]
pub struct DurableLocal {
    inner: LocalFileSystem,
    /// The names of Delta log folders, remembered between listings (see [`LogNames`]).
    log_names: Arc<LogNames>,
}

impl DurableLocal {
    /// The whole local file system (paths are absolute), as deltalake addresses local tables.
    pub fn new() -> Self {
        DurableLocal {
            inner: LocalFileSystem::new(),
            log_names: Arc::default(),
        }
    }
}

impl Default for DurableLocal {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocal({})", self.inner)
    }
}

fn io_error(path: &FsPath, source: std::io::Error) -> object_store::Error {
    match source.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(source),
        },
        std::io::ErrorKind::AlreadyExists => object_store::Error::AlreadyExists {
            path: path.display().to_string(),
            source: Box::new(source),
        },
        _ => object_store::Error::Generic {
            store: "DurableLocal",
            source: Box::new(source),
        },
    }
}

/// fsync a folder, so that the names it holds (a file just linked or renamed in) are durable.
fn sync_dir(dir: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// fsync a file and the folder holding it.
fn sync_file_and_dir(path: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(path)?.sync_all()?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "DurableLocal",
            source: Box::new(e),
        })?
}

/// Write `payload` to `path` durably: a staging file, fsynced, then moved into place (a hard
/// link for put-if-absent, so an existing object is never replaced), then the folder fsynced.
fn durable_put(path: PathBuf, payload: PutPayload, mode: PutMode) -> Result<()> {
    let dir = path
        .parent()
        .map(FsPath::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    // Named as `LocalFileSystem` names its own staging files (`<name>#<digits>`), which its
    // listings skip: one left by a crash is never taken for a record, a log entry or data.
    let staging = dir.join(format!(
        "{}#{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&staging)?;
        for chunk in payload.iter() {
            file.write_all(chunk)?;
        }
        file.sync_all()
    })();
    let placed = written.and_then(|()| match mode {
        PutMode::Create => std::fs::hard_link(&staging, &path),
        _ => std::fs::rename(&staging, &path),
    });
    let _ = std::fs::remove_file(&staging);
    placed.map_err(|e| io_error(&path, e))?;
    sync_dir(&dir).map_err(|e| io_error(&dir, e))
}

/// The object paths of the files in `dir` (the folder of object path `prefix`) that sort after
/// `offset`, sorted — when `dir` holds only regular files with plain names (ASCII letters,
/// digits, `.`, `_`, `-`: their object paths are their names, so comparing the names is
/// comparing the paths). `None` otherwise (a subfolder, a link, a staging `name#123`, a name
/// that needs encoding): the inner store lists such a folder.
fn plain_names_after(dir: &FsPath, prefix: &str, offset: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        if !entry.file_type().ok()?.is_file() {
            return None;
        }
        let name = entry.file_name();
        let name = name.to_str()?;
        let plain = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !plain {
            return None;
        }
        let location = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        if location.as_str() > offset {
            out.push(location);
        }
    }
    out.sort();
    Some(out)
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        if matches!(opts.mode, PutMode::Update(_)) || !opts.attributes.is_empty() {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let path = self.inner.path_to_filesystem(location)?;
        let mode = opts.mode.clone();
        blocking(move || durable_put(path, payload, mode)).await?;
        // The e-tag, as the inner store reports it.
        let meta = self.inner.head(location).await?;
        Ok(PutResult {
            e_tag: meta.e_tag,
            version: meta.version,
        })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let path = self.inner.path_to_filesystem(location)?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(DurableUpload { inner, path }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some(dir) = prefix.and_then(|p| self.inner.path_to_filesystem(p).ok()) else {
            return self.inner.list_with_offset(prefix, offset);
        };
        // The Delta log, read after each commit: names first, then only the new ones looked up
        // (the inner store converts every entry of the folder, which grows with the log); the
        // names of a `_delta_log` are remembered, new versions found by name.
        let prefix_text = prefix.map(|p| p.as_ref().to_string()).unwrap_or_default();
        let names = if LogNames::applies(&dir) {
            self.log_names.after(
                &dir,
                &prefix_text,
                offset.as_ref(),
                || plain_names_after(&dir, &prefix_text, ""),
                std::time::Instant::now(),
            )
        } else {
            plain_names_after(&dir, &prefix_text, offset.as_ref())
        };
        match names {
            Some(names) => {
                let inner = self.inner.clone();
                futures::stream::iter(names)
                    .then(move |name| {
                        let inner = inner.clone();
                        async move { inner.head(&Path::from(name)).await }
                    })
                    .filter(|meta| {
                        // One removed since the folder was read is not listed.
                        let gone = matches!(meta, Err(object_store::Error::NotFound { .. }));
                        futures::future::ready(!gone)
                    })
                    .boxed()
            }
            None => self.inner.list_with_offset(prefix, offset),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await?;
        let target = self.inner.path_to_filesystem(to)?;
        blocking(move || sync_file_and_dir(&target).map_err(|e| io_error(&target, e))).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await?;
        let target = self.inner.path_to_filesystem(to)?;
        blocking(move || sync_file_and_dir(&target).map_err(|e| io_error(&target, e))).await
    }
}

/// A multipart upload whose file is fsynced, with its folder, when it completes.
#[derive(Debug)]
struct DurableUpload {
    inner: Box<dyn MultipartUpload>,
    path: PathBuf,
}

#[async_trait]
impl MultipartUpload for DurableUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let done = self.inner.complete().await?;
        let path = self.path.clone();
        blocking(move || sync_file_and_dir(&path).map_err(|e| io_error(&path, e))).await?;
        Ok(done)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

/// The store deltalake gets for a local table.
pub fn durable_local() -> Arc<dyn ObjectStore> {
    Arc::new(DurableLocal::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    /// Listing after an offset gives what the inner store gives — on a Delta-log-like folder
    /// (read names first), and on folders it leaves to the inner store (a subfolder, a staging
    /// file, a name that needs encoding).
    #[tokio::test]
    async fn listing_after_an_offset_matches_the_inner_store() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for v in 0..30 {
            std::fs::write(log.join(format!("{v:020}.json")), "{}").unwrap();
        }
        std::fs::write(log.join("00000000000000000020.checkpoint.parquet"), "x").unwrap();
        std::fs::write(log.join("_last_checkpoint"), "{}").unwrap();
        let prefix = Path::from_absolute_path(&log).unwrap();
        // A new store each time: one store remembers a log's names between listings (see
        // `log_names`), and this compares what a first read of the folder finds.
        let listed = |offset: Path| {
            let prefix = prefix.clone();
            async move {
                let store = DurableLocal::new();
                let mut fast: Vec<ObjectMeta> = store
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
                    .unwrap();
                let mut inner: Vec<ObjectMeta> = store
                    .inner
                    .list_with_offset(Some(&prefix), &offset)
                    .try_collect()
                    .await
                    .unwrap();
                fast.sort_by(|a, b| a.location.cmp(&b.location));
                inner.sort_by(|a, b| a.location.cmp(&b.location));
                assert_eq!(fast, inner);
                fast.len()
            }
        };
        let after = |v: u64| prefix.clone().join(format!("{v:020}.json"));
        // 20..=29, the checkpoint of 20 and `_last_checkpoint` (`_` sorts after digits).
        assert_eq!(listed(after(19)).await, 12);
        assert_eq!(listed(after(29)).await, 1);
        // A staging file, a name to encode, a subfolder: the inner store lists the folder.
        std::fs::write(log.join("00000000000000000031.json#123"), "{}").unwrap();
        assert_eq!(listed(after(28)).await, 2);
        std::fs::write(log.join("a b%.json"), "{}").unwrap();
        listed(after(28)).await;
        std::fs::create_dir_all(log.join("sub")).unwrap();
        std::fs::write(log.join("sub/00000000000000000040.json"), "{}").unwrap();
        listed(after(28)).await;
        assert!(plain_names_after(&log, "x", "y").is_none());
    }

    #[tokio::test]
    async fn puts_are_atomic_and_create_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = DurableLocal::new();
        let path = Path::from_absolute_path(dir.path().join("a/b/rec.json")).unwrap();
        let create = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        store
            .put_opts(&path, PutPayload::from_static(b"first"), create.clone())
            .await
            .unwrap();
        let again = store
            .put_opts(&path, PutPayload::from_static(b"second"), create)
            .await;
        assert!(matches!(
            again,
            Err(object_store::Error::AlreadyExists { .. })
        ));
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"first");
        store
            .put(&path, PutPayload::from_static(b"third"))
            .await
            .unwrap();
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"third");
        // No staging file is left behind, and one a crash would leave is not listed.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a/b"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["rec.json"]);
        std::fs::write(dir.path().join("a/b/rec2.json#123456"), "x").unwrap();
        let folder = Path::from_absolute_path(dir.path().join("a/b")).unwrap();
        let listed: Vec<_> =
            futures::TryStreamExt::try_collect::<Vec<_>>(store.list(Some(&folder)))
                .await
                .unwrap();
        assert_eq!(listed.len(), 1);
        let mut upload = store
            .put_multipart(&Path::from_absolute_path(dir.path().join("big")).unwrap())
            .await
            .unwrap();
        upload
            .put_part(PutPayload::from_static(b"xy"))
            .await
            .unwrap();
        upload.complete().await.unwrap();
        assert_eq!(std::fs::read(dir.path().join("big")).unwrap(), b"xy");
    }
}
