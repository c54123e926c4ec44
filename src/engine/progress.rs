//! Per-batch progress with the field names of Spark's `StreamingQueryProgress`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::storage::IoCounts;

/// One micro-batch's progress.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Stable query id.
    pub id: String,
    /// Id of this run.
    pub run_id: String,
    /// Query name.
    pub name: String,
    /// When the trigger started (ISO-8601).
    pub timestamp: String,
    /// The batch id.
    pub batch_id: i64,
    /// Wall time of the batch, ms.
    pub batch_duration: u64,
    /// Rows read.
    pub num_input_rows: u64,
    /// Input rate since the previous batch.
    pub input_rows_per_second: f64,
    /// Processing rate of this batch.
    pub processed_rows_per_second: f64,
    /// Phase durations, ms (Spark's keys).
    pub duration_ms: BTreeMap<String, u64>,
    /// Event-time statistics (empty without an event-time column).
    pub event_time: BTreeMap<String, String>,
    /// Stateful operators (none for stateless queries).
    pub state_operators: Vec<Value>,
    /// The source.
    pub sources: Vec<SourceProgress>,
    /// The sink.
    pub sink: SinkProgress,
}

/// Progress of the source in a batch.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceProgress {
    /// Which source.
    pub description: String,
    /// Offset before the batch.
    pub start_offset: Value,
    /// Offset after the batch.
    pub end_offset: Value,
    /// Newest offset known.
    pub latest_offset: Value,
    /// Rows read.
    pub num_input_rows: u64,
    /// Input rate.
    pub input_rows_per_second: f64,
    /// Processing rate.
    pub processed_rows_per_second: f64,
    /// Malformed records met (dropped, or kept with a corrupt-record value).
    pub num_malformed_records: u64,
    /// How the batch's files were found, and what is left.
    pub discovery: DiscoveryProgress,
    /// Storage requests since the previous progress.
    pub metrics: StorageMetrics,
}

/// How a batch's files were found (see [`crate::source::candidates`]), with Auto Loader's names
/// for the backlog. All zero for a batch replayed from its record.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiscoveryProgress {
    /// `full`, `incremental` or `arrivals`.
    pub mode: String,
    /// Whether this trigger listed every file (always under `full`; the safety net otherwise).
    pub full_listing: bool,
    /// Files the trigger's scan found (listed, or looked up after their arrival).
    pub num_files_listed: u64,
    /// New files found and left for later batches (the read limit held them back).
    pub num_files_outstanding: u64,
    /// Their bytes.
    pub num_bytes_outstanding: u64,
}

/// Progress of the sink in a batch.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SinkProgress {
    /// Which sink.
    pub description: String,
    /// Rows written.
    pub num_output_rows: u64,
    /// The Delta table version the batch committed.
    pub table_version: i64,
    /// Commit attempts it took (more than 1 after conflicts with other writers, or after a
    /// storage failure while writing the commit).
    pub commit_attempts: usize,
    /// Storage requests since the previous progress.
    pub metrics: StorageMetrics,
}

/// Requests to S3 (zero on local disk) since the previous progress.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StorageMetrics {
    /// HTTP requests, every attempt counted.
    pub storage_requests: u64,
    /// Attempts that failed with a transient error (5xx, 429, timeouts, connection errors);
    /// the store retried them with backoff.
    pub storage_retries: u64,
}

impl From<IoCounts> for StorageMetrics {
    fn from(c: IoCounts) -> Self {
        StorageMetrics {
            storage_requests: c.requests,
            storage_retries: c.failed,
        }
    }
}
