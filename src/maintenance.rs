//! Table housekeeping: `sluice optimize` compacts small files (a `dataChange=false` commit, so it
//! neither conflicts with an appending stream nor re-triggers downstream readers), and
//! `sluice vacuum` deletes files no longer in the table. Vacuum never touches `_sluice/`, where
//! queries keep their records and state: folders starting with `_` are not data.

use std::num::NonZeroU64;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::sink::{table_at, SinkError};
use crate::storage::Location;

/// What `optimize` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OptimizeReport {
    /// Small files rewritten.
    pub files_removed: u64,
    /// Compacted files written.
    pub files_added: u64,
    /// The table version after.
    pub version: i64,
}

/// What `vacuum` did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VacuumReport {
    /// Files deleted (or, in a dry run, that would be).
    pub files_deleted: usize,
    /// Nothing was deleted.
    pub dry_run: bool,
}

/// Load an existing table; a location without one is a user error.
pub async fn load(uri: &str) -> Result<deltalake::DeltaTable> {
    let location = Location::parse(uri).map_err(|e| SinkError::Location(e.to_string()))?;
    let mut table = table_at(&location, &Default::default())?;
    table.load().await.map_err(|e| match e {
        deltalake::DeltaTableError::NotATable(_) => Error::Config(format!(
            "{uri} is not a Delta table; point at a table directory"
        )),
        other => other.into(),
    })?;
    Ok(table)
}

/// Compact the table's small files into files of about `target_size` bytes.
pub async fn optimize(uri: &str, target_size: Option<u64>) -> Result<OptimizeReport> {
    let table = load(uri).await?;
    let mut builder = table.optimize();
    if let Some(size) = target_size.and_then(NonZeroU64::new) {
        builder = builder.with_target_size(size);
    }
    let (table, metrics) = builder.await.map_err(|e| match e {
        deltalake::DeltaTableError::Transaction { .. } => Error::Config(format!(
            "the table changed while it was being optimized ({e}); run optimize again"
        )),
        other => other.into(),
    })?;
    Ok(OptimizeReport {
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        version: table
            .version()
            .and_then(|v| i64::try_from(v).ok())
            .unwrap_or(-1),
    })
}

/// Orphaned data files (written by an attempt that never committed: a crash, or a losing
/// instance) are deleted only past this age, whatever `--retention-hours` says: a running
/// query's batch in flight has written files it has not committed yet.
pub const ORPHAN_MIN_AGE_HOURS: i64 = 24;

/// Delete files removed from the table more than `retention_hours` ago (the table's own
/// retention, 7 days by default, when `None`), and data files no commit ever added (orphans of
/// crashed or superseded attempts) once older than that retention and [`ORPHAN_MIN_AGE_HOURS`].
pub async fn vacuum(
    uri: &str,
    retention_hours: Option<u64>,
    dry_run: bool,
) -> Result<VacuumReport> {
    use deltalake::operations::vacuum::VacuumMode;
    use deltalake::table::config::TablePropertiesExt;
    let table = load(uri).await?;
    let retention = match retention_hours {
        Some(hours) => chrono::Duration::hours(
            i64::try_from(hours)
                .map_err(|_| Error::Config("--retention-hours is too large".into()))?,
        ),
        None => chrono::Duration::from_std(
            table
                .snapshot()?
                .table_config()
                .deleted_file_retention_duration(),
        )
        .map_err(|e| Error::Config(format!("the table's retention is unusable: {e}")))?,
    };
    let orphan_age = retention.max(chrono::Duration::hours(ORPHAN_MIN_AGE_HOURS));
    let mut deleted = std::collections::BTreeSet::new();
    // Full mode: tombstoned files and orphans older than `orphan_age`.
    let (table, metrics) = table
        .vacuum()
        .with_mode(VacuumMode::Full)
        .with_retention_period(orphan_age)
        .with_enforce_retention_duration(retention_hours.is_none())
        .with_dry_run(dry_run)
        .await?;
    deleted.extend(metrics.files_deleted);
    // A shorter retention asked for: the tombstoned files of that age too (never orphans).
    if retention < orphan_age {
        let (_, metrics) = table
            .vacuum()
            .with_mode(VacuumMode::Lite)
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .await?;
        deleted.extend(metrics.files_deleted);
    }
    Ok(VacuumReport {
        files_deleted: deleted.len(),
        dry_run,
    })
}
