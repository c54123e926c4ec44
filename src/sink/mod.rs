//! The Delta table the query writes: opened (or created at the first batch) and written with
//! Parquet data files that stay invisible until the batch's commit (see [`crate::commit`]).

pub mod compaction;
pub mod schema;
pub mod upsert;
pub mod writer;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::StructField;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStore;

use crate::storage::{self, IoCounts, IoStats, Location};
pub use writer::BatchWriter;

/// Errors of the sink and commit layers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink location is unusable.
    #[error("{0}")]
    Location(String),
    /// The output does not fit the table.
    #[error("{0}")]
    Schema(String),
    /// The query's record in the table is missing or unreadable.
    #[error("{0}")]
    Record(String),
    /// Another instance of the same query committed this batch.
    #[error("another instance of query `{query}` committed batch {batch_id} first; this instance stops (run one instance per query name)")]
    AnotherInstance {
        /// The query name.
        query: String,
        /// The batch.
        batch_id: i64,
    },
    /// The table's record of the query is ahead of or behind what this run expects.
    #[error("{0}")]
    Inconsistent(String),
    /// Delta failed.
    #[error("{}", explain_delta(.0))]
    Delta(#[from] DeltaTableError),
    /// Object storage failed.
    #[error("table storage error: {0}; fix the table's storage (location, AWS_* settings) and run again: committed batches are kept")]
    Storage(#[from] object_store::Error),
    /// Arrow failed on the data.
    #[error("output data error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// A Delta error in words: storage advice only where storage failed (data that Parquet or
/// Arrow refused is not fixed by fixing the storage).
fn explain_delta(e: &DeltaTableError) -> String {
    let refused = match e {
        DeltaTableError::Parquet { source } => {
            !matches!(source, parquet::errors::ParquetError::External(_))
        }
        DeltaTableError::Arrow { source } => {
            !matches!(source, arrow::error::ArrowError::ExternalError(_))
        }
        _ => false,
    };
    match e {
        _ if refused => format!(
            "the batch's data could not be written to the table: {e}; the query's output must be storable in Parquet (committed batches are kept)"
        ),
        _ => format!(
            "delta table error: {e}; fix the table's storage (location, AWS_* settings) and run again: committed batches are kept"
        ),
    }
}

/// A (not yet loaded) Delta table handle for a location, configured from the AWS environment;
/// on S3 its requests are counted in `io`.
pub fn table_at(location: &Location, io: &Arc<IoStats>) -> Result<DeltaTable, SinkError> {
    let url = location
        .url()
        .map_err(|e| SinkError::Location(e.to_string()))?;
    let mut builder = DeltaTableBuilder::from_url(url.clone())?
        .with_storage_options(storage::delta_storage_options());
    match location {
        Location::S3 { .. } => {
            let store = storage::object_store(location, io)
                .map_err(|e| SinkError::Location(e.to_string()))?;
            builder = builder.with_storage_backend(store, url);
        }
        // Local tables: every write durable before it returns (see `storage::durable`).
        Location::Local { .. } => {
            builder = builder.with_storage_backend(storage::durable::durable_local(), url);
        }
    }
    Ok(builder.build()?)
}

/// Checkpoint interval of the tables Sluice creates. A micro-batch commit costs more with every
/// commit since the last checkpoint, and streams commit often, so checkpoints come more often
/// than Delta's default of 100 commits.
pub const CHECKPOINT_INTERVAL: &str = "20";

/// Expired log files are cleaned up once every this many batches, not after every commit.
pub const LOG_CLEANUP_EVERY: i64 = 100;

/// The Delta table a query writes to.
#[derive(Debug)]
pub struct DeltaSink {
    location: Location,
    table: DeltaTable,
    exists: bool,
    partition_by: Vec<String>,
    io: Arc<IoStats>,
    /// Does a table this sink creates compact itself (`delta.autoOptimize.autoCompact`)?
    auto_compact: bool,
}

impl DeltaSink {
    /// Open the table at `uri`; it need not exist yet.
    pub async fn open(uri: &str, partition_by: Vec<String>) -> Result<Self, SinkError> {
        let location = Location::parse(uri).map_err(|e| SinkError::Location(e.to_string()))?;
        if let Some(dir) = location.local_path() {
            std::fs::create_dir_all(dir).map_err(|e| {
                SinkError::Location(format!(
                    "cannot create the table directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let io = Arc::new(IoStats::default());
        let mut table = table_at(&location, &io)?;
        let exists = table.log_store().is_delta_table_location().await?;
        if exists {
            table.load().await?;
        }
        Ok(DeltaSink {
            location,
            table,
            exists,
            partition_by,
            io,
            auto_compact: true,
        })
    }

    /// Whether a table this sink creates turns automatic compaction on (the default) or off.
    pub fn set_auto_compact(&mut self, on: bool) {
        self.auto_compact = on;
    }

    /// Is an automatic compaction due: the table's `delta.autoOptimize.autoCompact` is on and
    /// it holds at least `min_files` small live files (see [`compaction`])? Counted on the
    /// table as loaded, less the files the batch just committed removed (`removed`: paths),
    /// plus those it added (`added`: sizes), without reading the log again: listing the log
    /// costs what the log holds.
    pub fn auto_compaction_due(
        &self,
        min_files: usize,
        added: &[u64],
        removed: &std::collections::HashSet<String>,
    ) -> Result<bool, SinkError> {
        if !self.exists {
            return Ok(false);
        }
        let snapshot = self.table.snapshot()?;
        let property = snapshot
            .metadata()
            .configuration()
            .get(deltalake::TableProperty::AutoOptimizeAutoCompact.as_ref())
            .cloned();
        if !compaction::enabled(property.as_deref()) {
            return Ok(false);
        }
        let files = snapshot.log_data();
        let sizes = files
            .iter()
            .filter(|f| !removed.contains(f.path().as_ref()))
            .map(|f| u64::try_from(f.size()).unwrap_or(0))
            .chain(added.iter().copied());
        Ok(compaction::due(sizes, min_files))
    }

    /// Storage requests made so far (counted on S3 only).
    pub fn io_counts(&self) -> IoCounts {
        self.io.read()
    }

    /// The table as the user named it.
    pub fn uri(&self) -> &str {
        self.location.as_str()
    }

    /// Does the table exist yet?
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The underlying table.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The loaded table version.
    pub fn version(&self) -> Option<i64> {
        self.table.version().and_then(|v| i64::try_from(v).ok())
    }

    /// The underlying table, mutably (for commits).
    pub fn table_mut(&mut self) -> &mut DeltaTable {
        &mut self.table
    }

    /// The object store rooted at the table.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.table.object_store()
    }

    /// Check that a query producing `output` (a Delta schema) can write here.
    pub fn check(&self, output: &SchemaRef) -> Result<(), SinkError> {
        for col in &self.partition_by {
            if output.index_of(col).is_err() {
                return Err(SinkError::Schema(format!(
                    "partition column `{col}` is not in the query's output; pick --partition-by from: {}",
                    output.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        if !self.exists {
            return Ok(());
        }
        let snapshot = self.table.snapshot()?;
        let table_schema = snapshot.snapshot().arrow_schema();
        schema::check_matches(output, &table_schema)?;
        let existing: Vec<String> = snapshot.metadata().partition_columns().to_vec();
        if !self.partition_by.is_empty() && existing != self.partition_by {
            return Err(SinkError::Schema(format!(
                "the table is partitioned by [{}], not [{}]; drop --partition-by or use a new table",
                existing.join(", "),
                self.partition_by.join(", ")
            )));
        }
        Ok(())
    }

    /// Drop from the table's schema the struct columns with no fields (at any depth): no
    /// Parquet file can hold one, so a table whose schema has one could never be written (an
    /// earlier Sluice inferred them from objects that were always `{}`; Spark drops them in
    /// inference, SPARK-8093). They hold no value, so nothing is lost. The names dropped.
    pub async fn drop_unstorable_columns(&mut self) -> Result<Vec<String>, SinkError> {
        if !self.exists {
            return Ok(Vec::new());
        }
        let snapshot = self.table.snapshot()?;
        let arrow_schema = snapshot.snapshot().arrow_schema();
        let mut dropped = Vec::new();
        let kept = schema::without_empty_structs(&arrow_schema, &mut dropped);
        if dropped.is_empty() {
            return Ok(dropped);
        }
        let kernel_schema: deltalake::kernel::StructType =
            kept.as_ref().try_into_kernel().map_err(|e| {
                SinkError::Schema(format!("cannot map the table's schema to Delta: {e}"))
            })?;
        use deltalake::kernel::MetadataExt;
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&kernel_schema)
            .map_err(|e| SinkError::Schema(format!("cannot update the table's schema: {e}")))?;
        deltalake::kernel::transaction::CommitBuilder::default()
            .with_actions(vec![deltalake::kernel::Action::Metadata(metadata)])
            .build(
                Some(snapshot),
                self.table.log_store(),
                deltalake::protocol::DeltaOperation::UpdateTableMetadata {
                    metadata_update:
                        deltalake::operations::update_table_metadata::TableMetadataUpdate {
                            name: None,
                            description: None,
                        },
                },
            )
            .await?;
        self.table.update_incremental(None).await?;
        tracing::info!(
            ?dropped,
            "dropped struct columns with no fields from the table's schema"
        );
        Ok(dropped)
    }

    /// Create the table with `schema` if it does not exist (another writer may win the race).
    pub async fn ensure_table(&mut self, schema: &SchemaRef) -> Result<(), SinkError> {
        if self.exists {
            return Ok(());
        }
        let kernel_schema: deltalake::kernel::StructType =
            schema.as_ref().try_into_kernel().map_err(|e| {
                SinkError::Schema(format!("cannot map the output schema to Delta: {e}"))
            })?;
        let columns: Vec<StructField> = kernel_schema.fields().cloned().collect();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let created = deltalake::operations::create::CreateBuilder::new()
                .with_log_store(self.table.log_store())
                .with_columns(columns.clone())
                .with_partition_columns(self.partition_by.clone())
                .with_configuration_property(
                    deltalake::TableProperty::CheckpointInterval,
                    Some(CHECKPOINT_INTERVAL),
                )
                .with_configuration_property(
                    deltalake::TableProperty::AutoOptimizeAutoCompact,
                    Some(if self.auto_compact { "true" } else { "false" }),
                )
                .with_save_mode(SaveMode::Ignore)
                .await;
            match created {
                Ok(table) => self.table = table,
                // The create may have landed anyway (a put that timed out can still complete),
                // or another writer created the table: look before trying again.
                Err(DeltaTableError::ObjectStore { source })
                    if crate::commit::may_have_landed(&source) && attempt < 5 =>
                {
                    tracing::info!("creating the table failed ({source}); checking, then retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                    if !self.table.log_store().is_delta_table_location().await? {
                        continue;
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.table.load().await?;
            self.exists = true;
            return Ok(());
        }
    }

    /// Delete log files past the table's log retention (30 days by default) that a checkpoint
    /// covers. Run now and then, not per commit: it lists the log.
    pub async fn cleanup_logs(&mut self) -> Result<usize, SinkError> {
        use deltalake::table::config::TablePropertiesExt;
        self.table.update_incremental(None).await?;
        // The table's owner may keep its whole history (`delta.enableExpiredLogCleanup=false`).
        if !self
            .table
            .snapshot()?
            .table_config()
            .enable_expired_log_cleanup()
        {
            return Ok(0);
        }
        Ok(deltalake::checkpoints::cleanup_metadata(&self.table, None).await?)
    }

    /// Compact small files (a `dataChange=false` commit); returns the files compacted.
    pub async fn compact(&mut self) -> Result<u64, SinkError> {
        // Planned on the newest version (the batch just committed may have removed files), so
        // the compaction does not conflict with the stream's own commits.
        self.table.update_incremental(None).await?;
        if !self.partition_by.is_empty()
            || !self
                .table
                .snapshot()?
                .metadata()
                .partition_columns()
                .is_empty()
        {
            let (table, metrics) = self.table.clone().optimize().await?;
            self.table = table;
            return Ok(metrics.num_files_removed);
        }
        let removed = compact_newest_tier(&self.table).await?;
        if removed > 0 {
            self.table.update_incremental(None).await?;
        }
        Ok(removed)
    }

    /// A writer for one batch's data files.
    pub fn writer(&self) -> Result<BatchWriter, SinkError> {
        BatchWriter::new(&self.table)
    }
}

/// Rewrite the newest tier of an unpartitioned table's live files (see [`compaction`]) into
/// new files, in one `dataChange=false` commit; the number of files removed.
async fn compact_newest_tier(table: &DeltaTable) -> Result<u64, SinkError> {
    use deltalake::kernel::transaction::CommitBuilder;
    use deltalake::kernel::Action;
    use futures::StreamExt;
    let snapshot = table.snapshot()?;
    let mut files: Vec<_> = snapshot
        .log_data()
        .iter()
        .map(|f| {
            let size = u64::try_from(f.size()).unwrap_or(0);
            (
                f.modification_time(),
                size,
                f.path().to_string(),
                f.remove_action(false),
            )
        })
        .collect();
    files.sort_by(|a, b| (b.0, &b.2).cmp(&(a.0, &a.2)));
    let sizes: Vec<u64> = files.iter().map(|f| f.1).collect();
    let n = compaction::newest_tier(&sizes);
    if n == 0 {
        return Ok(0);
    }
    files.truncate(n);
    let paths: Vec<String> = files.iter().map(|f| f.2.clone()).collect();
    let unreadable = |e: datafusion::error::DataFusionError| {
        SinkError::Schema(format!("compaction could not read its files: {e}"))
    };
    let ctx = datafusion::prelude::SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table
        .table_provider()
        .with_file_paths(paths)
        .await
        .map_err(unreadable)?;
    let mut rows = ctx
        .read_table(provider)
        .map_err(unreadable)?
        .execute_stream()
        .await
        .map_err(unreadable)?;
    let mut writer = writer::BatchWriter::new(table)?;
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(unreadable)?;
        writer.write(batch).await?;
    }
    let (adds, _) = writer.finish().await?;
    let target = i64::try_from(sizes.iter().take(n).sum::<u64>()).unwrap_or(i64::MAX);
    let mut actions: Vec<Action> = adds
        .into_iter()
        .map(|mut add| {
            add.data_change = false;
            Action::Add(add)
        })
        .collect();
    actions.extend(files.into_iter().map(|f| Action::Remove(f.3)));
    CommitBuilder::default()
        .with_actions(actions)
        .build(
            Some(snapshot),
            table.log_store(),
            deltalake::protocol::DeltaOperation::Optimize {
                predicate: None,
                target_size: target,
            },
        )
        .await?;
    Ok(n as u64)
}
