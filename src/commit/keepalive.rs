//! Keeping an idle query's txn record alive.
//!
//! With `delta.setTransactionRetentionDuration` set, readers (and Sluice itself at restart)
//! drop a txn whose `lastUpdated` is older than the retention. A query's txn is refreshed by
//! every batch it commits; a query that sits idle longer than the retention would lose it, and
//! with it the proof of which batches were committed. So while idle, the query re-commits its
//! txn at the same version with a fresh `lastUpdated`, and nothing else:
//!
//! ```text
//!  idle trigger ──► retention set? ──► last refresh older than retention/3? ──► reload log
//!                                                                                  │
//!        txn version still this run's last batch N? ──no──► skip (another writer moved it)
//!                       │ yes
//!                       ▼
//!        commit { txn(Q, N, lastUpdated = now), commitInfo keepAlive }   (no retry: a
//!        conflict means someone else committed, and the next idle trigger looks again)
//! ```

use std::time::Duration;

use deltalake::kernel::transaction::CommitBuilder;
use deltalake::protocol::{DeltaOperation, OutputMode};
use deltalake::DeltaTable;
use serde_json::json;

use super::{committed_batch, txn_properties};
use crate::duration::parse_duration;
use crate::sink::SinkError;

/// The table property that expires txn records.
pub const RETENTION_PROPERTY: &str = "delta.setTransactionRetentionDuration";

/// The table's txn retention, when it sets one (and it parses).
pub fn txn_retention(table: &DeltaTable) -> Option<Duration> {
    let snapshot = table.snapshot().ok()?;
    let value = snapshot
        .metadata()
        .configuration()
        .get(RETENTION_PROPERTY)?;
    parse_duration(value)
}

/// Is a refresh due? `since_refresh` is `None` when this run has not written the txn yet (its
/// age is then unknown, so it is treated as due).
pub fn keep_alive_due(retention: Option<Duration>, since_refresh: Option<Duration>) -> bool {
    match (retention, since_refresh) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(retention), Some(since)) => since >= retention / 3,
    }
}

/// The query whose txn is refreshed.
#[derive(Debug, Clone, Copy)]
pub struct TxnOwner<'a> {
    /// The txn app id.
    pub app_id: &'a str,
    /// The query's stable id.
    pub query_id: &'a str,
    /// The query's name.
    pub query_name: &'a str,
    /// The query's output mode.
    pub output_mode: OutputMode,
}

/// Re-commit `txn(app_id, batch_id)` with a fresh timestamp if the table's txn version is still
/// `batch_id`. Returns the new table version, or `None` when it was skipped.
pub async fn refresh_txn(
    table: &mut DeltaTable,
    owner: TxnOwner<'_>,
    batch_id: i64,
) -> Result<Option<i64>, SinkError> {
    let TxnOwner {
        app_id,
        query_id,
        query_name,
        output_mode,
    } = owner;
    table.update_incremental(None).await?;
    if committed_batch(table, app_id).await? != Some(batch_id) {
        return Ok(None);
    }
    let properties = txn_properties(
        app_id,
        batch_id,
        json!({ "queryName": query_name, "batchId": batch_id, "keepAlive": true }),
    );
    let operation = DeltaOperation::StreamingUpdate {
        output_mode,
        query_id: query_id.to_string(),
        epoch_id: batch_id,
    };
    let snapshot = table.snapshot()?;
    match CommitBuilder::from(properties)
        .with_max_retries(0)
        .build(Some(snapshot), table.log_store(), operation)
        .await
    {
        Ok(done) => Ok(Some(i64::try_from(done.version()).unwrap_or(i64::MAX))),
        Err(e) => {
            tracing::debug!("txn keep-alive skipped: {e}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_only_with_a_retention() {
        let hour = Duration::from_secs(3600);
        assert!(!keep_alive_due(None, None));
        assert!(!keep_alive_due(None, Some(hour * 100)));
        assert!(keep_alive_due(Some(hour), None));
        assert!(!keep_alive_due(Some(hour * 3), Some(hour / 2)));
        assert!(keep_alive_due(Some(hour * 3), Some(hour)));
    }
}
