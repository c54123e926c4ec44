//! The library API, in the shape of Spark Structured Streaming:
//!
//! ```no_run
//! # async fn demo() -> sluice::Result<()> {
//! use sluice::{Session, Trigger};
//! let session = Session::new();
//! let query = session
//!     .read_stream()
//!     .format("json")
//!     .schema("time TIMESTAMP, action STRING")
//!     .option("maxFilesPerTrigger", "1")
//!     .load("fixtures/events")?
//!     .filter("action = 'Open'")
//!     .write_stream()
//!     .format("delta")
//!     .output_mode("append")
//!     .query_name("opens")
//!     .trigger(Trigger::AvailableNow)
//!     .start("/tmp/opens")
//!     .await?;
//! query.await_termination().await?;
//! println!("{:?}", query.last_progress());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::engine::{Ending, Engine, OutputModeKind, Progress, QueryConfig, Trigger};
use crate::error::{Error, Result};
use crate::source::options::{Format, SourceOptions};
use crate::source::{ddl, SourceError};

/// Entry point, like Spark's `SparkSession`.
#[derive(Debug, Clone, Default)]
pub struct Session {}

impl Session {
    /// A new session.
    pub fn new() -> Self {
        Session {}
    }

    /// Start describing a streaming read.
    pub fn read_stream(&self) -> DataStreamReader {
        DataStreamReader {
            format: "json".into(),
            schema: None,
            options: BTreeMap::new(),
        }
    }
}

/// Describes the source of a stream (`spark.readStream`).
#[derive(Debug, Clone)]
pub struct DataStreamReader {
    format: String,
    schema: Option<String>,
    options: BTreeMap<String, String>,
}

impl DataStreamReader {
    /// File format: `json`, `csv`, `parquet` or `text`.
    pub fn format(mut self, format: &str) -> Self {
        self.format = format.to_string();
        self
    }

    /// Spark DDL schema, e.g. `"time TIMESTAMP, action STRING"`.
    pub fn schema(mut self, ddl: &str) -> Self {
        self.schema = Some(ddl.to_string());
        self
    }

    /// A source option with Spark's name (`maxFilesPerTrigger`, `mode`, ...).
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.insert(key.to_string(), value.to_string());
        self
    }

    /// The stream of files arriving in `uri` (a local directory or `s3://bucket/prefix`).
    pub fn load(self, uri: &str) -> Result<StreamFrame> {
        let format: Format = self.format.parse()?;
        let options = SourceOptions::from_map(&self.options)?;
        let schema = self.schema.as_deref().map(ddl::parse_ddl).transpose()?;
        let mut cfg = QueryConfig::new(uri, "");
        cfg.format = format;
        cfg.options = options;
        cfg.schema = schema;
        Ok(StreamFrame { cfg, query: None })
    }
}

/// A streaming query under construction (Spark's streaming `DataFrame`).
#[derive(Debug, Clone)]
pub struct StreamFrame {
    cfg: QueryConfig,
    query: Option<String>,
}

impl StreamFrame {
    fn current(&self) -> String {
        self.query
            .clone()
            .unwrap_or_else(|| format!("SELECT * FROM {}", self.cfg.source_name))
    }

    /// Name the stream for [`StreamFrame::sql`] (default `source`).
    pub fn alias(mut self, name: &str) -> Self {
        self.cfg.source_name = name.to_string();
        self
    }

    /// Replace the query with SQL over the stream (read it by its alias, `source` by default).
    pub fn sql(mut self, query: &str) -> Self {
        self.query = Some(query.to_string());
        self
    }

    /// Project SQL expressions (`selectExpr`).
    pub fn select_expr(mut self, exprs: &[&str]) -> Self {
        self.query = Some(format!(
            "SELECT {} FROM ({}) AS t",
            exprs.join(", "),
            self.current()
        ));
        self
    }

    /// Keep rows matching a SQL condition (`filter` / `where`).
    pub fn filter(mut self, condition: &str) -> Self {
        self.query = Some(format!(
            "SELECT * FROM ({}) AS t WHERE {condition}",
            self.current()
        ));
        self
    }

    /// Event-time watermark: `col` may lag the newest event by `delay` (e.g. `"10 minutes"`).
    pub fn with_watermark(mut self, col: &str, delay: &str) -> Self {
        self.cfg.watermark = Some(format!("{col}, {delay}"));
        self
    }

    /// Start describing the sink (`writeStream`).
    pub fn write_stream(self) -> DataStreamWriter {
        DataStreamWriter {
            frame: self,
            format: "delta".into(),
            output_mode: "append".into(),
            options: BTreeMap::new(),
        }
    }
}

/// Describes the sink of a stream (`df.writeStream`).
#[derive(Debug, Clone)]
pub struct DataStreamWriter {
    frame: StreamFrame,
    format: String,
    output_mode: String,
    options: BTreeMap<String, String>,
}

impl DataStreamWriter {
    /// Sink format; only `delta`.
    pub fn format(mut self, format: &str) -> Self {
        self.format = format.to_string();
        self
    }

    /// `append`, `complete` or `update`.
    pub fn output_mode(mut self, mode: &str) -> Self {
        self.output_mode = mode.to_string();
        self
    }

    /// The query's name: its identity inside the table.
    pub fn query_name(mut self, name: &str) -> Self {
        self.frame.cfg.query_name = name.to_string();
        self
    }

    /// When batches run.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.frame.cfg.trigger = trigger;
        self
    }

    /// Partition columns of a new table.
    pub fn partition_by(mut self, columns: &[&str]) -> Self {
        self.frame.cfg.partition_by = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// Compact the table's small files every `n` batches, inside the stream (0: never;
    /// automatic compaction decides).
    pub fn compact_every(mut self, n: u32) -> Self {
        self.frame.cfg.compact_every = n;
        self
    }

    /// Whether a table this query creates compacts itself (`delta.autoOptimize.autoCompact`,
    /// on by default), and after how many small files.
    pub fn auto_compact(mut self, on: bool, min_files: usize) -> Self {
        self.frame.cfg.auto_compact = on;
        self.frame.cfg.auto_compact_min_files = min_files;
        self
    }

    /// A sink option: `partitionBy` (comma-separated) or `queryName`.
    pub fn option(mut self, key: &str, value: &str) -> Self {
        self.options.insert(key.to_string(), value.to_string());
        self
    }

    /// Validate, recover the query's position from the table at `uri`, and start running.
    pub async fn start(self, uri: &str) -> Result<StreamingQuery> {
        if !self.format.eq_ignore_ascii_case("delta") {
            return Err(Error::Config(format!(
                "sink format `{}` is not supported; use delta",
                self.format
            )));
        }
        let mut cfg = self.frame.cfg.clone();
        cfg.sql = self.frame.current();
        cfg.sink = uri.to_string();
        cfg.output_mode = self
            .output_mode
            .parse::<OutputModeKind>()
            .map_err(Error::Config)?;
        for (key, value) in &self.options {
            match key.to_ascii_lowercase().as_str() {
                "partitionby" => {
                    cfg.partition_by = value.split(',').map(|c| c.trim().to_string()).collect()
                }
                "queryname" => cfg.query_name = value.clone(),
                _ => {
                    return Err(Error::Source(SourceError::InvalidOption(format!(
                        "unknown sink option `{key}`; known: partitionBy, queryName"
                    ))))
                }
            }
        }
        StreamingQuery::start(cfg).await
    }
}

/// A running query (Spark's `StreamingQuery`).
#[derive(Debug)]
pub struct StreamingQuery {
    id: String,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<Result<Ending>>>>,
    ended: Mutex<Option<Ending>>,
    last: Arc<Mutex<Option<Progress>>>,
}

impl StreamingQuery {
    /// Start a query from a full configuration.
    pub async fn start(cfg: QueryConfig) -> Result<StreamingQuery> {
        let engine = Engine::start(cfg).await?;
        let id = engine.query_id().to_string();
        let (stop, stop_rx) = watch::channel(false);
        let last = Arc::new(Mutex::new(None));
        let sink = last.clone();
        let task = tokio::spawn(engine.run(
            stop_rx,
            Box::new(move |p: &Progress| {
                if let Ok(mut slot) = sink.lock() {
                    *slot = Some(p.clone());
                }
            }),
        ));
        Ok(StreamingQuery {
            id,
            stop,
            task: Mutex::new(Some(task)),
            ended: Mutex::new(None),
            last,
        })
    }

    /// The query's stable id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The progress of the last committed batch.
    pub fn last_progress(&self) -> Option<Progress> {
        self.last.lock().ok().and_then(|p| p.clone())
    }

    /// Stop the query: the batch in flight is abandoned (a restart runs it again).
    pub async fn stop(&self) -> Result<Ending> {
        let _ = self.stop.send(true);
        self.await_termination().await
    }

    /// Wait until the query ends (a finite trigger finished, `stop()`, or an error). The error
    /// is returned to the first caller; later calls say how the query ended.
    pub async fn await_termination(&self) -> Result<Ending> {
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        let Some(task) = task else {
            return match self.ended.lock().ok().and_then(|e| *e) {
                Some(ending) => Ok(ending),
                None => Err(Error::Config(
                    "the query ended with an error (returned earlier)".into(),
                )),
            };
        };
        let result = task
            .await
            .map_err(|e| Error::Config(format!("the query task failed: {e}")))?;
        if let (Ok(ending), Ok(mut slot)) = (&result, self.ended.lock()) {
            *slot = Some(*ending);
        }
        result
    }
}
