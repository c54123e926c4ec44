//! The file source: a directory (local or `s3://`) whose files are the stream.
//!
//! ```text
//!   list ──► discovery::select_batch ──► get (object_store) ──► decode (blocking, parallel)
//!   (each trigger)   (pure: new files, order, limit)               └─► RecordBatch stream
//! ```

pub mod arrivals;
pub mod chunks;
pub mod ddl;
pub mod decode;
pub mod discovery;
mod listing;
pub mod options;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::storage::{self, IoCounts, IoStats, Location};
use chunks::ChunkReader;
use decode::{DecodeSpec, Decoded};
use discovery::FileEntry;
use options::{Format, SourceOptions};

/// Errors of the source layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The DDL schema string is wrong.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// A source option is unknown or has a bad value.
    #[error("invalid source option: {0}")]
    InvalidOption(String),
    /// The schema could not be inferred.
    #[error("{0}")]
    Inference(String),
    /// FAILFAST met a malformed record.
    #[error("malformed record in {path} line {line}: {reason}; fix the file, or run with --option mode=PERMISSIVE or mode=DROPMALFORMED")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A file could not be read as the format.
    #[error("cannot read source file {0}")]
    Unreadable(String),
    /// The source location is missing or unusable.
    #[error("{0}")]
    Location(String),
    /// Object storage failed.
    #[error("source storage error: {0}; fix access to the source (location, AWS_* settings) and run again: committed batches are kept")]
    Storage(#[from] object_store::Error),
    /// Arrow failed on the data.
    #[error("source data error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// How many sample files schema inference reads.
const INFER_SAMPLE_FILES: usize = 8;

/// A directory of files, read as a stream.
#[derive(Debug, Clone)]
pub struct FileSource {
    location: Location,
    store: Arc<dyn ObjectStore>,
    io: Arc<IoStats>,
    format: Format,
    options: SourceOptions,
    /// Local files already warned about (names that are not UTF-8).
    warned: Arc<Mutex<HashSet<PathBuf>>>,
}

impl FileSource {
    /// Open the source at `uri` (it must exist).
    pub fn open(uri: &str, format: Format, options: SourceOptions) -> Result<Self, SourceError> {
        let location = Location::parse(uri).map_err(|e| SourceError::Location(e.to_string()))?;
        if let Some(dir) = location.local_path() {
            if !dir.is_dir() {
                return Err(SourceError::Location(format!(
                    "source directory {} does not exist; create it or point --source at an existing directory",
                    dir.display()
                )));
            }
        }
        let io = Arc::new(IoStats::default());
        let store = storage::object_store(&location, &io)
            .map_err(|e| SourceError::Location(e.to_string()))?;
        Ok(FileSource {
            location,
            store,
            io,
            format,
            options,
            warned: Arc::default(),
        })
    }

    /// Storage requests made so far (counted on S3 only).
    pub fn io_counts(&self) -> IoCounts {
        self.io.read()
    }

    /// The source location itself, however the user spelled it.
    pub fn canonical(&self) -> String {
        self.location.canonical()
    }

    /// The source as the user named it.
    pub fn uri(&self) -> &str {
        self.location.as_str()
    }

    /// A watch for files landing in a local source directory (`None` on S3, or when the OS
    /// cannot watch it).
    pub fn arrivals(&self) -> Option<arrivals::Arrivals> {
        self.location
            .local_path()
            .and_then(|dir| arrivals::Arrivals::watch(dir))
    }

    /// The file format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The options in force.
    pub fn options(&self) -> &SourceOptions {
        &self.options
    }

    /// List the files of the source (see [`listing`] for what is skipped).
    pub async fn list(&self) -> Result<Vec<FileEntry>, SourceError> {
        match self.location.local_path() {
            Some(dir) => {
                let (dir, warned) = (dir.clone(), self.warned.clone());
                tokio::task::spawn_blocking(move || listing::list_local(&dir, &warned))
                    .await
                    .map_err(|e| SourceError::Location(format!("listing stopped: {e}")))?
            }
            None => listing::list_store(&self.store, &self.key_prefix()).await,
        }
    }

    fn key_prefix(&self) -> Path {
        match &self.location {
            Location::S3 { prefix, .. } => listing::key_prefix(prefix),
            Location::Local { .. } => Path::default(),
        }
    }

    async fn fetch(&self, file: &str) -> Result<bytes::Bytes, SourceError> {
        match self.location.local_path() {
            Some(dir) => listing::read_local(dir, file).await,
            None => listing::read_store(&self.store, &self.key_prefix(), file).await,
        }
    }

    /// Infer the schema from (up to a few of) the listed files.
    pub async fn infer_schema(&self, files: &[FileEntry]) -> Result<SchemaRef, SourceError> {
        if self.format == Format::Text {
            return Ok(Arc::new(arrow::datatypes::Schema::new(vec![
                arrow::datatypes::Field::new("value", arrow::datatypes::DataType::Utf8, true),
            ])));
        }
        if files.is_empty() {
            return Err(SourceError::Inference(format!(
                "cannot infer a schema: {} holds no files yet; pass --schema \"col TYPE, ...\"",
                self.uri()
            )));
        }
        let mut samples = Vec::new();
        for f in files.iter().take(INFER_SAMPLE_FILES) {
            // A large line-based file is sampled by its first part only.
            let data = if self.format == Format::Parquet || chunks::parts_of(f.size) == 1 {
                self.fetch(&f.path).await?
            } else {
                let mut parts = self.open_parts(&f.path).await?;
                parts.next().await?.map(|p| p.data).unwrap_or_default()
            };
            samples.push((f.path.clone(), data));
        }
        match self.format {
            Format::Parquet => {
                let (path, data) = samples.swap_remove(0);
                decode::parquet_schema(&path, data)
            }
            Format::Csv => {
                let samples: Vec<_> = samples.into_iter().map(|(p, d)| (p, d.to_vec())).collect();
                decode::infer_csv_schema(&samples, &self.options)
            }
            _ => {
                let samples: Vec<_> = samples.into_iter().map(|(p, d)| (p, d.to_vec())).collect();
                decode::infer_json_schema(&samples)
            }
        }
    }

    /// A reader of `file` in parts (line-based formats).
    async fn open_parts(&self, file: &str) -> Result<ChunkReader, SourceError> {
        let quoted = self.format == Format::Csv;
        Ok(match self.location.local_path() {
            Some(dir) => ChunkReader::local(listing::open_local(dir, file).await?, file, quoted),
            None => ChunkReader::store(
                listing::open_store(&self.store, &self.key_prefix(), file).await?,
                file,
                quoted,
            ),
        })
    }

    /// Read `files` with `schema`: fetches and decodes run concurrently (a file, or a part of a
    /// large line-based file, per core), and come out in order, each as its decoded batches.
    /// Memory follows the parts in flight, not the size of a file (see [`chunks`]). The stream
    /// ends at the first error.
    pub fn read(
        &self,
        files: Vec<FileEntry>,
        schema: SchemaRef,
    ) -> BoxStream<'static, Result<Decoded, SourceError>> {
        let spec = Arc::new(DecodeSpec {
            schema,
            format: self.format,
            options: self.options.clone(),
        });
        let this = self.clone();
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        stream::iter(files)
            .flat_map(move |file| {
                let parts = match this.format {
                    Format::Parquet => 1,
                    _ => chunks::parts_of(file.size),
                };
                let reader = Arc::new(tokio::sync::Mutex::new(None::<ChunkReader>));
                let (this, spec) = (this.clone(), spec.clone());
                stream::iter((0..parts).map(move |k| {
                    let last = k + 1 == parts;
                    this.clone()
                        .read_part(file.clone(), spec.clone(), reader.clone(), last)
                }))
            })
            .buffered(parallel)
            .boxed()
    }

    /// Read and decode the next part of `file` (the whole file for Parquet, or when it is
    /// small); the file's `last` expected part also takes whatever is left, so no byte of a
    /// file that grew since it was listed goes unread.
    async fn read_part(
        self,
        file: FileEntry,
        spec: Arc<DecodeSpec>,
        reader: Arc<tokio::sync::Mutex<Option<ChunkReader>>>,
        last: bool,
    ) -> Result<Decoded, SourceError> {
        let path = format!("{}/{}", self.uri().trim_end_matches('/'), file.path);
        let stopped = |e: tokio::task::JoinError| {
            SourceError::Unreadable(format!("{}: decoder stopped: {e}", file.path))
        };
        // Parquet is read whole (its footer is at the end), and so is a file of one part.
        if spec.format == Format::Parquet || (chunks::parts_of(file.size) == 1 && last) {
            let data = self.fetch(&file.path).await?;
            return tokio::task::spawn_blocking(move || spec.decode(&path, data))
                .await
                .map_err(stopped)?;
        }
        let mut decoded = Decoded::default();
        loop {
            let part = {
                let mut guard = reader.lock().await;
                if guard.is_none() {
                    *guard = Some(self.open_parts(&file.path).await?);
                }
                match guard.as_mut() {
                    Some(r) => r.next().await?,
                    None => None,
                }
                // The reader is free again: others read the next part while this one decodes.
            };
            let Some(part) = part else {
                return Ok(decoded);
            };
            let (spec, path) = (spec.clone(), path.clone());
            let got = tokio::task::spawn_blocking(move || {
                spec.decode_part(&path, part.data, part.first_line, part.first)
            })
            .await
            .map_err(stopped)??;
            decoded.batches.extend(got.batches);
            decoded.malformed += got.malformed;
            if !last {
                return Ok(decoded);
            }
        }
    }
}

/// Resolve the schema of a source: the user's DDL, else what the table remembered, else inference.
pub fn parse_schema_option(ddl: Option<&str>) -> Result<Option<SchemaRef>, SourceError> {
    ddl.map(ddl::parse_ddl).transpose()
}
