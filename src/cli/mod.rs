//! The `sluice` command line: flags parsed by clap, then validated into a typed query.

pub mod progress;

use std::collections::BTreeMap;
use std::io::IsTerminal;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::engine::{OutputModeKind, QueryConfig, Trigger};
use crate::error::{Error, Result};
use crate::source::ddl;
use crate::source::options::{Format, SourceOptions};
use crate::source::spark_schema;

/// Stream a directory of files into a Delta Lake table, exactly once.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a streaming query from a directory of files into a Delta table.
    Run(Box<RunArgs>),
    /// Show a table's schema, size, streaming queries and first rows.
    Inspect(InspectArgs),
    /// Compact a table's small files (a dataChange=false commit; safe beside a running stream).
    Optimize(OptimizeArgs),
    /// Delete files no longer in a table (never the queries' records and state under _sluice/).
    Vacuum(VacuumArgs),
}

/// `sluice optimize` flags.
#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The table (local path or s3://bucket/prefix).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Target size of compacted files, in bytes (default: the table's, 100 MiB).
    #[arg(long, value_name = "BYTES")]
    pub target_size: Option<u64>,
}

/// `sluice vacuum` flags.
#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// The table (local path or s3://bucket/prefix).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// Keep files removed less than this many hours ago (default: the table's retention, 7 days).
    #[arg(long, value_name = "HOURS")]
    pub retention_hours: Option<u64>,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

/// Live progress styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressStyle {
    /// A live line on a terminal.
    Bar,
    /// One JSON object per batch (Spark's StreamingQueryProgress names).
    Json,
    /// Nothing.
    None,
}

/// `sluice run` flags.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Directory (local path or s3://bucket/prefix) whose files are the stream.
    #[arg(long, value_name = "URI")]
    pub source: String,
    /// The Delta table (local path or s3://bucket/prefix).
    #[arg(long, value_name = "URI")]
    pub sink: String,
    /// File format of the source: json, csv, parquet or text.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Spark DDL schema, e.g. "time TIMESTAMP, action STRING" (default: inferred at first start).
    #[arg(long, value_name = "DDL", conflicts_with = "schema_file")]
    pub schema: Option<String>,
    /// A file holding the schema: Spark's JSON schema (df.schema.json()) or a DDL string.
    #[arg(long, value_name = "PATH")]
    pub schema_file: Option<std::path::PathBuf>,
    /// Source option with Spark's name, KEY=VALUE (repeatable).
    #[arg(long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// The table name the SQL reads the stream from.
    #[arg(long, default_value = "source", value_name = "NAME")]
    pub source_name: String,
    /// The streaming query (default: SELECT * FROM <source-name>).
    #[arg(long, value_name = "SELECT ...")]
    pub sql: Option<String>,
    /// Event-time watermark, "COL, DELAY".
    #[arg(long, value_name = "COL, DELAY")]
    pub watermark: Option<String>,
    /// Output mode: append, complete or update.
    #[arg(long, default_value = "append", value_name = "MODE")]
    pub output_mode: String,
    /// The query's identity inside the table; restarts with the same name resume.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub query_name: String,
    /// available-now, once, or an interval such as 2s or 500ms.
    #[arg(long, default_value = "available-now", value_name = "TRIGGER")]
    pub trigger: String,
    /// Partition columns of the table, COL[,COL].
    #[arg(long, value_name = "COL[,COL]", value_delimiter = ',')]
    pub partition_by: Vec<String>,
    /// Compact the table's small files every N batches, inside the stream (dataChange=false).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub compact_every: u32,
    /// A table this query creates does not compact itself (delta.autoOptimize.autoCompact=false).
    #[arg(long)]
    pub no_auto_compact: bool,
    /// Small files that make an automatic compaction due.
    #[arg(long, value_name = "N", default_value_t = crate::sink::compaction::MIN_FILES)]
    pub auto_compact_min_files: usize,
    /// Live progress on stderr: bar, json or none (default: bar on a terminal, else none).
    #[arg(long, value_enum)]
    pub progress: Option<ProgressStyle>,
}

/// `sluice inspect` flags.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The table (local path or s3://bucket/prefix).
    #[arg(value_name = "TABLE")]
    pub table: String,
    /// How many rows to show.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// Validate the flags into a query.
    pub fn to_config(&self) -> Result<QueryConfig> {
        let format: Format = self.format.parse()?;
        let mut raw = BTreeMap::new();
        for pair in &self.options {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                Error::Config(format!(
                    "--option `{pair}` must be KEY=VALUE, e.g. maxFilesPerTrigger=10"
                ))
            })?;
            if key.trim().is_empty() {
                return Err(Error::Config(format!("--option `{pair}` has an empty key")));
            }
            raw.insert(key.trim().to_string(), value.to_string());
        }
        let options = SourceOptions::from_map(&raw)?;
        let schema = match (&self.schema, &self.schema_file) {
            (Some(text), _) => Some(ddl::parse_ddl(text)?),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Config(format!(
                        "cannot read --schema-file {}: {e}; point it at a readable file",
                        path.display()
                    ))
                })?;
                Some(spark_schema::parse_schema_file(&text)?)
            }
            (None, None) => None,
        };
        let output_mode: OutputModeKind = self.output_mode.parse().map_err(Error::Config)?;
        let trigger: Trigger = self.trigger.parse().map_err(Error::Config)?;
        let partition_by: Vec<String> = self
            .partition_by
            .iter()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect();
        let mut cfg = QueryConfig::new(&self.source, &self.sink);
        cfg.format = format;
        cfg.schema = schema;
        cfg.options = options;
        cfg.source_name = self.source_name.clone();
        cfg.sql = self.sql.clone().unwrap_or_default();
        cfg.watermark = self.watermark.clone();
        cfg.output_mode = output_mode;
        cfg.query_name = self.query_name.clone();
        cfg.trigger = trigger;
        cfg.partition_by = partition_by;
        cfg.compact_every = self.compact_every;
        cfg.auto_compact = !self.no_auto_compact;
        cfg.auto_compact_min_files = self.auto_compact_min_files;
        Ok(cfg)
    }

    /// The progress style in force.
    pub fn progress_style(&self) -> ProgressStyle {
        self.progress.unwrap_or(if std::io::stderr().is_terminal() {
            ProgressStyle::Bar
        } else {
            ProgressStyle::None
        })
    }
}
