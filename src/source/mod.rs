//! The file source: a directory (local or `s3://`) whose files are the stream.
//!
//! ```text
//!   list ──► discovery::select_batch ──► get (object_store) ──► decode (blocking, parallel)
//!   (each trigger)   (pure: new files, order, limit)               └─► RecordBatch stream
//! ```

pub mod arrivals;
pub mod candidates;
pub mod chunks;
pub mod clean;
pub mod compression;
pub mod ddl;
pub mod decode;
pub mod discovery;
pub mod file_columns;
pub mod glob;
pub mod gzip;
pub mod infer;
mod listing;
pub mod options;
pub mod partitions;
pub mod queue;
pub mod spark_schema;
pub mod transcode;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use candidates::Scan;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::ObjectStore;

use crate::storage::{self, IoCounts, IoStats, Location};
use chunks::ByteSource;
use compression::Codec;
use decode::{DecodeSpec, Decoded};
use discovery::FileEntry;
use file_columns::FileColumns;
use futures::future::{self, BoxFuture, FutureExt};
use options::{Format, SourceOptions};
use partitions::Partitioning;
use tokio::sync::mpsc;

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

/// Files opened ahead of the one being decoded (each holds at most a part or two in memory).
const FILES_AHEAD: usize = 2;

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
    /// Which listed files are read (globs in the source path, `pathGlobFilter`).
    filter: glob::FileFilter,
    /// Partition columns and `_metadata`.
    file_columns: FileColumns,
    /// The columns the query reads (`None`: all); the others are not decoded.
    read_columns: Option<Vec<String>>,
    /// What happens to the files of committed batches (`cleanSource`).
    cleaner: clean::Cleaner,
    /// The SQS queue of the bucket's events (`queueUrl`), connected at its first use.
    queue: Arc<tokio::sync::OnceCell<queue::S3Queue>>,
}

impl FileSource {
    /// Open the source at `uri` (it must exist).
    pub fn open(uri: &str, format: Format, options: SourceOptions) -> Result<Self, SourceError> {
        let (root, globbed) = glob::split_source(uri);
        let location = Location::parse(&root).map_err(|e| SourceError::Location(e.to_string()))?;
        if let Some(dir) = location.local_path() {
            if !dir.is_dir() {
                return Err(SourceError::Location(format!(
                    "source directory {} does not exist; create it or point --source at an existing directory",
                    dir.display()
                )));
            }
        }
        let discovery = &options.discovery;
        let s3 = location.local_path().is_none();
        if discovery.queue_url.is_some() && !s3 {
            return Err(SourceError::InvalidOption(
                "option queueUrl is for S3 sources; a local source's new files are found by its arrival events: remove it".into(),
            ));
        }
        if discovery.notifications == Some(true) && s3 && discovery.queue_url.is_none() {
            return Err(SourceError::InvalidOption(
                "option useNotifications=true on S3 needs queueUrl, the SQS queue that receives the bucket's s3:ObjectCreated:* events; or use useIncrementalListing=true when names sort by arrival".into(),
            ));
        }
        if options.json.line_sep.is_some() && format != Format::Json {
            return Err(SourceError::InvalidOption(format!(
                "option lineSep is read for JSON sources; {format} files end records at line ends: remove it"
            )));
        }
        let cleaner = clean::Cleaner::new(
            &options.clean_source,
            options.source_archive_dir.as_deref(),
            &location,
        )?;
        let io = Arc::new(IoStats::default());
        let store = storage::object_store(&location, &io)
            .map_err(|e| SourceError::Location(e.to_string()))?;
        let above = match &options.folders.base_path {
            Some(base) => folders_below(base, &location)?,
            None => Vec::new(),
        };
        let file_columns = FileColumns {
            partitioning: Partitioning {
                columns: Vec::new(),
                above,
                // Partition folders start below the folders a glob matched (unless basePath
                // says where they start).
                skip: if options.folders.base_path.is_some() {
                    0
                } else {
                    globbed.len()
                },
            },
            root: location.url().ok(),
        };
        let filter = glob::FileFilter {
            path: globbed,
            name: options.folders.path_glob_filter.clone(),
        };
        Ok(FileSource {
            location,
            store,
            io,
            format,
            options,
            warned: Arc::default(),
            filter,
            file_columns,
            read_columns: None,
            cleaner,
            queue: Arc::default(),
        })
    }

    /// Does an SQS queue announce this source's new files (`queueUrl`, unless
    /// `useNotifications=false`)?
    pub fn has_queue(&self) -> bool {
        self.options.discovery.queue_url.is_some()
            && self.options.discovery.notifications != Some(false)
    }

    /// Does this source archive or delete the files of committed batches (`cleanSource`)?
    pub fn cleans(&self) -> bool {
        self.cleaner != clean::Cleaner::Off
    }

    /// Archive or delete the files of a committed batch (`cleanSource`; see [`clean`]). Only
    /// a committed batch's files may be given. Housekeeping, as in Spark: a file that cannot
    /// be cleaned is reported and left. Returns how many files were cleaned.
    pub async fn clean(&self, files: &[FileEntry]) -> usize {
        if !self.cleans() {
            return 0;
        }
        let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
        match self.location.local_path() {
            Some(dir) => {
                let (dir, cleaner) = (dir.clone(), self.cleaner.clone());
                let cleaned = tokio::task::spawn_blocking(move || {
                    let mut cleaned = 0;
                    for file in &paths {
                        match clean::clean_local(&cleaner, &dir, file) {
                            Ok(done) => cleaned += usize::from(done),
                            Err(e) => tracing::warn!(file, "could not clean a committed file: {e}"),
                        }
                    }
                    cleaned
                })
                .await;
                cleaned.unwrap_or(0)
            }
            None => {
                let prefix = self.location.prefix();
                let mut cleaned = 0;
                for file in &paths {
                    let result = match listing::key(&prefix, file) {
                        Ok(key) => clean::clean_object(&self.cleaner, &self.store, &key)
                            .await
                            .map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match result {
                        Ok(done) => cleaned += usize::from(done),
                        Err(e) => tracing::warn!(file, "could not clean a committed file: {e}"),
                    }
                }
                cleaned
            }
        }
    }

    /// Decode only these columns (the ones the query reads; Spark's column pruning): the
    /// others come out NULL. `None` decodes every column.
    pub fn set_read_columns(&mut self, columns: Option<Vec<String>>) {
        self.read_columns = columns;
    }

    /// The partition columns of the files listed (Spark's partition discovery; none with
    /// `recursiveFileLookup`), typed from their folder names.
    pub fn discover_partitions(&self, files: &[FileEntry]) -> Vec<arrow::datatypes::Field> {
        if self.options.folders.recursive_file_lookup {
            return Vec::new();
        }
        let p = &self.file_columns.partitioning;
        let relative: Vec<String> = files.iter().map(|f| p.relative(&f.path)).collect();
        partitions::discover(&p.above, relative.iter().map(String::as_str))
    }

    /// The columns read from the folders of each file.
    pub fn partition_columns(&self) -> &[String] {
        &self.file_columns.partitioning.columns
    }

    /// Read the named columns from the folders of each file (see [`partitions`]).
    pub fn set_partition_columns(&mut self, columns: Vec<String>) {
        self.file_columns.partitioning.columns = columns;
    }

    /// Storage requests made so far (counted on S3 only).
    pub fn io_counts(&self) -> IoCounts {
        self.io.read()
    }

    /// The source location itself, however the user spelled it (with its globs, if any).
    pub fn canonical(&self) -> String {
        match self.filter.path.is_empty() {
            true => self.location.canonical(),
            false => format!(
                "{}/{}",
                self.location.canonical().trim_end_matches('/'),
                self.filter.path.join("/")
            ),
        }
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
        self.list_after(None).await
    }

    /// Find files as `scan` says (see [`candidates`]), with what is skipped as in [`Self::list`].
    /// Returns the scan made — a full listing instead of arrivals when the watcher lost
    /// events — and the files found.
    pub async fn scan(
        &self,
        scan: Scan,
        arrivals: Option<&arrivals::Arrivals>,
    ) -> Result<(Scan, Vec<FileEntry>), SourceError> {
        let files = match &scan {
            Scan::Arrivals => {
                let landed = match (arrivals, self.location.local_path()) {
                    (Some(arrivals), Some(root)) => arrivals.take().map(|p| (root.clone(), p)),
                    _ => None,
                };
                let Some((root, paths)) = landed else {
                    return Ok((Scan::Full, self.list().await?));
                };
                let warned = self.warned.clone();
                let mut files = tokio::task::spawn_blocking(move || {
                    listing::look_up_local(&root, &paths, &warned)
                })
                .await
                .map_err(|e| SourceError::Location(format!("listing stopped: {e}")))??;
                self.keep_selected(&mut files);
                files
            }
            Scan::Queue => match (&self.options.discovery.queue_url, &self.location) {
                (Some(url), storage::Location::S3 { bucket, prefix, .. }) => {
                    let queue = self
                        .queue
                        .get_or_init(|| queue::S3Queue::connect(url))
                        .await;
                    let mut files = queue.drain(bucket, prefix).await?;
                    self.keep_selected(&mut files);
                    files
                }
                _ => self.list().await?,
            },
            Scan::After(after) => self.list_after(after.as_deref()).await?,
            Scan::Full => self.list().await?,
        };
        Ok((scan, files))
    }

    fn keep_selected(&self, files: &mut Vec<FileEntry>) {
        if self.filter != glob::FileFilter::default() {
            files.retain(|f| self.filter.selects(&f.path));
        }
    }

    async fn list_after(&self, after: Option<&str>) -> Result<Vec<FileEntry>, SourceError> {
        let mut files = match self.location.local_path() {
            Some(dir) => {
                let (dir, warned) = (dir.clone(), self.warned.clone());
                let after = after.map(str::to_string);
                tokio::task::spawn_blocking(move || {
                    listing::list_local_below(&dir, "", after.as_deref(), &warned)
                })
                .await
                .map_err(|e| SourceError::Location(format!("listing stopped: {e}")))??
            }
            None => listing::list_store(&self.store, &self.location.prefix(), after).await?,
        };
        self.keep_selected(&mut files);
        Ok(files)
    }

    async fn fetch(&self, file: &str) -> Result<bytes::Bytes, SourceError> {
        let data = match self.location.local_path() {
            Some(dir) => listing::read_local(dir, file).await,
            None => listing::read_store(&self.store, &self.location.prefix(), file).await,
        }?;
        if self.format == Format::Parquet {
            return Ok(data);
        }
        // Text in another charset, with a BOM, or with `lineSep` becomes UTF-8 lines.
        let mut transcoder = self.transcoder();
        let unreadable = |e: String| SourceError::Unreadable(format!("{file}: {e}"));
        let text = transcoder.push(&data).map_err(unreadable)?;
        let rest = transcoder.finish().map_err(unreadable)?;
        Ok(match text {
            // Plain UTF-8 (less a BOM): the bytes read, not a copy.
            std::borrow::Cow::Borrowed(text) if rest.is_empty() => data.slice_ref(text),
            text => {
                let mut all = text.into_owned();
                all.extend_from_slice(&rest);
                bytes::Bytes::from(all)
            }
        })
    }

    /// How this source's files become UTF-8 lines.
    fn transcoder(&self) -> transcode::Transcoder {
        transcode::Transcoder::new(self.options.encoding, self.options.json.line_sep.as_deref())
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
            // A file read in parts is sampled by its first part.
            let data = match self.in_parts(f)? {
                None => self.fetch(&f.path).await?,
                Some(codec) => {
                    let mut parts = self.open_parts(&f.path, codec).await?;
                    match parts.recv().await {
                        Some(part) => part?.data,
                        None => bytes::Bytes::new(),
                    }
                }
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
                decode::infer_json_schema(&samples, &self.options)
            }
        }
    }

    /// How `file` is read: whole (`None`: a Parquet file, or a small uncompressed one), or in
    /// parts, decompressed with the codec its name says (see [`chunks`]).
    fn in_parts(&self, file: &FileEntry) -> Result<Option<Codec>, SourceError> {
        if self.format == Format::Parquet {
            return Ok(None);
        }
        let codec = Codec::of(&file.path)?;
        if self.multi_line() {
            return Ok((codec != Codec::None).then_some(codec));
        }
        Ok((codec != Codec::None || !chunks::fits_one_part(file.size)).then_some(codec))
    }

    /// Is each file one JSON value (`multiLine`), read whole?
    fn multi_line(&self) -> bool {
        self.format == Format::Json && self.options.json.multi_line
    }

    /// Start reading `file` in parts on a blocking thread (see [`chunks`]).
    async fn open_parts(
        &self,
        file: &str,
        codec: Codec,
    ) -> Result<mpsc::Receiver<Result<chunks::Part, SourceError>>, SourceError> {
        let source = match self.location.local_path() {
            Some(dir) => ByteSource::Local(dir.join(file)),
            None => ByteSource::Store(
                listing::open_store(&self.store, &self.location.prefix(), file).await?,
            ),
        };
        let cut = match self.format {
            Format::Csv => chunks::Cut::CsvLines,
            _ if self.multi_line() => chunks::Cut::Never,
            _ => chunks::Cut::Lines,
        };
        Ok(chunks::spawn_parts(
            source,
            codec,
            file,
            cut,
            self.transcoder(),
        ))
    }

    /// Read `files` with `schema`: fetches and decodes run concurrently (a file, or a part of a
    /// large or compressed line-based file, per core), and come out in order, each as decoded
    /// batches. Memory follows the parts in flight, not the size of a file (see [`chunks`]).
    /// The stream ends at the first error.
    pub fn read(
        &self,
        files: Vec<FileEntry>,
        schema: SchemaRef,
    ) -> BoxStream<'static, Result<Decoded, SourceError>> {
        let data = self.file_columns.data_schema(&schema);
        let decoded = match &self.read_columns {
            Some(columns) => pruned(&data, columns),
            None => data.clone(),
        };
        let spec = Arc::new(DecodeSpec {
            schema: decoded.clone(),
            format: self.format,
            options: self.options.clone(),
            file_schema: (decoded.fields().len() < data.fields().len()).then(|| data.clone()),
        });
        let full = (self.file_columns.adds_to(&schema)
            || decoded.fields().len() < data.fields().len())
        .then_some(schema);
        let this = self.clone();
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        // The next files are opened ahead (a file read in parts starts being read and
        // decompressed on its own thread when opened), so files decompress in parallel while
        // the parts of earlier ones decode.
        stream::iter(files)
            .map(move |file| {
                let jobs = this.clone().decode_jobs(file.clone(), spec.clone());
                future::ready(match &full {
                    None => jobs,
                    Some(full) => {
                        let (columns, full) = (this.file_columns.clone(), full.clone());
                        jobs.map(move |job| {
                            let (columns, full, file) =
                                (columns.clone(), full.clone(), file.clone());
                            job.map(move |decoded| complete(decoded?, &columns, &full, &file))
                                .boxed()
                        })
                        .boxed()
                    }
                })
            })
            .buffered(FILES_AHEAD)
            .flatten()
            .buffered(parallel)
            .boxed()
    }

    /// The decoding jobs of one file, in order: one for a Parquet file or a small uncompressed
    /// one (read whole), else one per part, each started as its part has been read.
    fn decode_jobs(self, file: FileEntry, spec: Arc<DecodeSpec>) -> BoxStream<'static, DecodeJob> {
        let path = format!("{}/{}", self.uri().trim_end_matches('/'), file.path);
        let codec = match self.in_parts(&file) {
            Ok(Some(codec)) => codec,
            Ok(None) => {
                let job = async move {
                    let data = self.fetch(&file.path).await?;
                    decode_blocking(spec, path, chunks::Part::whole(data)).await
                };
                return stream::once(future::ready(job.boxed())).boxed();
            }
            Err(e) => return stream::once(future::ready(failed(e))).boxed(),
        };
        // Opened now, not when the first part is asked for (see `read`).
        let opening = tokio::spawn(async move { self.open_parts(&file.path, codec).await });
        let opened = async move {
            opening
                .await
                .map_err(|e| SourceError::Unreadable(format!("opening stopped: {e}")))?
        };
        stream::once(opened)
            .flat_map(move |opened| match opened {
                Err(e) => stream::once(future::ready(failed(e))).boxed(),
                Ok(rx) => {
                    let (spec, path) = (spec.clone(), path.clone());
                    stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|p| (p, rx)) })
                        .map(move |part| match part {
                            Ok(part) => decode_blocking(spec.clone(), path.clone(), part).boxed(),
                            Err(e) => failed(e),
                        })
                        .boxed()
                }
            })
            .boxed()
    }
}

/// Add the file's columns (partition values, `_metadata`) to what was decoded of it.
fn complete(
    decoded: Decoded,
    columns: &FileColumns,
    full: &SchemaRef,
    file: &FileEntry,
) -> Result<Decoded, SourceError> {
    Ok(Decoded {
        batches: decoded
            .batches
            .into_iter()
            .map(|b| columns.complete(full, file, b))
            .collect::<Result<_, _>>()?,
        malformed: decoded.malformed,
    })
}

/// The fields of `schema` named in `columns` (at least one field, so rows are counted).
fn pruned(schema: &SchemaRef, columns: &[String]) -> SchemaRef {
    let kept: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| columns.contains(f.name()))
        .cloned()
        .collect();
    match kept.is_empty() {
        true => Arc::new(arrow::datatypes::Schema::new(
            schema.fields().iter().take(1).cloned().collect::<Vec<_>>(),
        )),
        false => Arc::new(arrow::datatypes::Schema::new(kept)),
    }
}

/// The folders from `base` (`basePath`) down to the source `location`.
fn folders_below(base: &str, location: &Location) -> Result<Vec<String>, SourceError> {
    let base = Location::parse(base).map_err(|e| SourceError::Location(e.to_string()))?;
    let (base, source) = (base.canonical(), location.canonical());
    let below = source
        .strip_prefix(base.trim_end_matches('/'))
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .ok_or_else(|| {
            SourceError::InvalidOption(format!(
                "option basePath={base}: expected a folder above the source {source}"
            ))
        })?;
    Ok(below
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

/// Decoding one file or part, on a blocking thread.
type DecodeJob = BoxFuture<'static, Result<Decoded, SourceError>>;

fn failed(e: SourceError) -> DecodeJob {
    future::ready(Err(e)).boxed()
}

async fn decode_blocking(
    spec: Arc<DecodeSpec>,
    path: String,
    part: chunks::Part,
) -> Result<Decoded, SourceError> {
    let name = path.clone();
    tokio::task::spawn_blocking(move || {
        spec.decode_part(&path, part.data, part.first_line, part.first)
    })
    .await
    .map_err(|e| SourceError::Unreadable(format!("{name}: decoder stopped: {e}")))?
}

/// Resolve the schema of a source: the user's DDL, else what the table remembered, else inference.
pub fn parse_schema_option(ddl: Option<&str>) -> Result<Option<SchemaRef>, SourceError> {
    ddl.map(ddl::parse_ddl).transpose()
}
