//! Writing one micro-batch's rows as Parquet data files, on every core once the batch is large.
//!
//! ```text
//!   rows ──► lane 0 ─────────────────────────────► files ─┐
//!       └──► lane 1 .. n-1 (once 128 Ki rows came) ► files ─┴─► add actions (not committed)
//! ```
//!
//! Encoding Parquet is the costliest step of an append, and one writer runs on one core. A lane
//! is a blocking thread with its own Delta writer, so lanes encode in parallel, off the async
//! workers. Small batches (the common
//! case of a trigger picking up a file or two) stay in one lane and one file; a large one
//! spreads its record batches over the lanes by rows, a file per lane. Row order across files
//! is not kept — a Delta table has none.

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use parquet::basic::{Compression, Encoding};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{schema, SinkError};

/// Buffered file bytes, over all lanes, above which files are flushed to storage mid-batch.
const FLUSH_BYTES: usize = 128 << 20;

/// More lanes open only after this many rows went to the first.
const SPREAD_AFTER_ROWS: u64 = 128 * 1024;

/// Record batches waiting per lane.
const LANE_QUEUE: usize = 2;

/// How data files are encoded: Snappy, as Delta writers do, and timestamp columns as deltas
/// (`DELTA_BINARY_PACKED`, no dictionary). Event times mostly grow, so their deltas are small:
/// the column is about a third smaller than with a dictionary, and cheaper to encode.
fn writer_properties(schema: &SchemaRef) -> WriterProperties {
    let mut builder = WriterProperties::builder()
        .set_created_by(format!("sluice {}", env!("CARGO_PKG_VERSION")))
        .set_compression(Compression::SNAPPY);
    for field in schema.fields() {
        if let DataType::Timestamp(_, _) = field.data_type() {
            let path = ColumnPath::from(field.name().as_str());
            builder = builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path, Encoding::DELTA_BINARY_PACKED);
        }
    }
    builder.build()
}

/// A thread encoding the record batches sent to it into Parquet files.
///
/// Encoding is CPU work: it runs on a blocking thread, never on the async workers, where it
/// would hold up storage requests (and their timeouts) of everything else in flight. The lane
/// drives its writer's uploads from that thread too.
struct Lane {
    tx: mpsc::Sender<RecordBatch>,
    task: JoinHandle<Result<Vec<Add>, SinkError>>,
    /// Dropping it stops the lane at its next step (no further files are uploaded).
    _cancel: oneshot::Sender<()>,
    rows: u64,
}

impl Lane {
    /// A lane flushing its file once it holds `flush_bytes`.
    fn spawn(mut writer: RecordBatchWriter, flush_bytes: usize) -> Self {
        let (tx, mut rx) = mpsc::channel::<RecordBatch>(LANE_QUEUE);
        let (cancel, cancelled) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || {
            let work = async move {
                let mut adds = Vec::new();
                while let Some(batch) = rx.recv().await {
                    writer.write(batch).await?;
                    if writer.buffer_len() >= flush_bytes {
                        adds.extend(writer.flush().await?);
                    }
                }
                adds.extend(writer.flush().await?);
                Ok(adds)
            };
            runtime.block_on(async move {
                tokio::select! {
                    done = work => done,
                    _ = cancelled => Err(SinkError::Inconsistent("the batch was given up".into())),
                }
            })
        });
        Lane {
            tx,
            task,
            _cancel: cancel,
            rows: 0,
        }
    }

    /// Wait for the lane's files; its error if it failed.
    async fn finish(self) -> Result<Vec<Add>, SinkError> {
        let Lane {
            tx, task, _cancel, ..
        } = self;
        drop(tx);
        let done = task
            .await
            .map_err(|e| SinkError::Inconsistent(format!("a data file writer stopped: {e}")))?;
        drop(_cancel);
        done
    }
}

/// Writes one micro-batch's rows as Parquet files; returns their `add` actions (not committed).
/// A batch given up on (the writer dropped) writes no more files: each lane stops at its next
/// step once its cancel sender is dropped with it.
pub struct BatchWriter {
    schema: SchemaRef,
    /// Each lane's share of [`FLUSH_BYTES`].
    lane_flush_bytes: usize,
    /// Writers for lanes not opened yet.
    spare: Vec<RecordBatchWriter>,
    lanes: Vec<Lane>,
}

impl BatchWriter {
    /// A writer for `table`, with up to one lane per core.
    pub fn new(table: &DeltaTable) -> Result<Self, SinkError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let first = RecordBatchWriter::for_table(table)?;
        let schema = first.arrow_schema();
        let properties = writer_properties(&schema);
        let mut spare = vec![first.with_writer_properties(properties.clone())];
        for _ in 1..cores {
            spare.push(
                RecordBatchWriter::for_table(table)?.with_writer_properties(properties.clone()),
            );
        }
        Ok(BatchWriter {
            schema,
            lane_flush_bytes: FLUSH_BYTES / cores,
            spare,
            lanes: Vec::new(),
        })
    }

    /// Rows written so far.
    fn rows(&self) -> u64 {
        self.lanes.iter().map(|lane| lane.rows).sum()
    }

    /// The lane for the next rows: the first until it has had enough of them, then the one
    /// with the fewest rows, opening the spare lanes.
    fn lane(&mut self) -> Result<usize, SinkError> {
        let spread = self.rows() >= SPREAD_AFTER_ROWS;
        while self.lanes.is_empty() || (spread && !self.spare.is_empty()) {
            let writer = self
                .spare
                .pop()
                .ok_or_else(|| SinkError::Schema("no writer for the table".into()))?;
            self.lanes.push(Lane::spawn(writer, self.lane_flush_bytes));
        }
        Ok(self
            .lanes
            .iter()
            .enumerate()
            .min_by_key(|(_, lane)| lane.rows)
            .map_or(0, |(i, _)| i))
    }

    /// Write rows (already in the Delta schema's column order).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let rows = batch.num_rows() as u64;
        let batch = schema::conform(&batch, &self.schema)?;
        let index = self.lane()?;
        let lane = &mut self.lanes[index];
        lane.rows += rows;
        if lane.tx.send(batch).await.is_err() {
            // The lane stopped on an error: report it.
            self.lanes.swap_remove(index).finish().await?;
            return Err(SinkError::Inconsistent("a data file writer stopped".into()));
        }
        Ok(())
    }

    /// Finish the files and return their `add` actions and the row count.
    pub async fn finish(self) -> Result<(Vec<Add>, u64), SinkError> {
        let rows = self.rows();
        let mut adds = Vec::new();
        for lane in self.lanes {
            adds.extend(lane.finish().await?);
        }
        Ok((adds, rows))
    }
}
