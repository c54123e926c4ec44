//! One micro-batch, one atomic Delta commit.
//!
//! ```text
//!  plan batch N ──► _sluice/queries/Q/batches/N.json   (put-if-absent: the batch's files)
//!        │
//!        ▼
//!  read files ─► SQL ─► Parquet data files             (invisible: not in the log yet)
//!        │
//!        ▼
//!  ┌─────────────── commit attempt (repeat on conflict) ───────────────┐
//!  │ reload the log incrementally; v = txn version of appId Q          │
//!  │ decide(v, N):  v = N-1 → commit  { add*, txn(Q, N), commitInfo }  │
//!  │                v ≥ N   → someone else committed N: stop           │
//!  │                v < N-1 → the table lost batches: stop             │
//!  │ removes computed from an older table version → compute them again│
//!  └───────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A crash anywhere before the commit leaves only invisible files and a planned record, and the
//! restart re-runs batch N from that record; a crash after it resumes at N+1. delta-rs does not
//! enforce monotonic txn versions, so the decision is re-taken before every attempt.

pub mod keepalive;
pub mod record;
pub mod seen;

use std::collections::HashMap;

use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, OutputMode};
use deltalake::{DeltaTable, DeltaTableError};
use serde_json::Value;

use crate::sink::SinkError;

/// Attempts at one commit before giving up (each after a conflicting commit by someone else).
const MAX_ATTEMPTS: usize = 25;
/// Attempts after storage failures while writing the commit, with backoff (0.4 s, 0.8 s, ...).
const AMBIGUOUS_ATTEMPTS: usize = 5;

/// What the table's txn version says about committing batch `batch_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The previous batch is the last committed one: commit.
    Commit,
    /// This batch (or a later one) is already committed.
    AlreadyCommitted {
        /// The table's txn version.
        committed: i64,
    },
    /// Batches between the table's version and this one are missing.
    Gap {
        /// The table's txn version, if any.
        committed: Option<i64>,
    },
}

/// Decide whether batch `batch_id` may be committed over txn version `committed`.
pub fn decide(committed: Option<i64>, batch_id: i64) -> Decision {
    match committed {
        Some(v) if v >= batch_id => Decision::AlreadyCommitted { committed: v },
        Some(v) if v == batch_id - 1 => Decision::Commit,
        None if batch_id == 0 => Decision::Commit,
        other => Decision::Gap { committed: other },
    }
}

/// The result of committing a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum CommitOutcome {
    /// Committed as this table version.
    Committed {
        /// The new table version.
        version: i64,
        /// Attempts it took.
        attempts: usize,
    },
    /// Someone else committed this batch first.
    Superseded {
        /// The table's txn version for the query.
        committed: i64,
    },
    /// The actions were computed from a table version that is no longer the latest (another
    /// writer committed since): compute them again.
    Stale,
}

/// Everything one batch's commit holds.
#[derive(Debug, Clone)]
pub struct BatchCommit {
    /// The txn app id.
    pub app_id: String,
    /// The query's id (commitInfo `queryId`).
    pub query_id: String,
    /// The batch id (txn version, commitInfo `epochId`).
    pub batch_id: i64,
    /// Output mode for commitInfo.
    pub output_mode: OutputMode,
    /// Data files added.
    pub adds: Vec<Add>,
    /// Extra actions (removes, for complete mode).
    pub extra: Vec<Action>,
    /// The query's record for this batch, copied into commitInfo for readers of the history.
    pub info: Value,
    /// For actions that depend on the table's content (removes): the version they were
    /// computed from.
    pub read_version: Option<i64>,
}

/// The query's last committed batch in the table as loaded.
pub async fn committed_batch(table: &DeltaTable, app_id: &str) -> Result<Option<i64>, SinkError> {
    let snapshot = table.snapshot()?;
    Ok(snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await?)
}

/// A storage failure while writing the commit: the commit may or may not have landed (a put
/// that timed out can still complete), so the next attempt must look before it writes.
fn is_ambiguous(e: &DeltaTableError) -> bool {
    match e {
        DeltaTableError::ObjectStore { source }
        | DeltaTableError::Transaction {
            source: TransactionError::ObjectStore { source },
        } => may_have_landed(source),
        _ => false,
    }
}

/// A failed write that may still have happened: timeouts, dropped connections, server errors
/// (the storage client reports them as generic). Denied access or a missing bucket is final.
pub fn may_have_landed(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::Generic { .. })
}

/// Is the commit that set the query's txn to `batch.batch_id` the one this run wrote? Looks
/// for this run's id and the batch id in the recent commits' `sluice` commitInfo.
async fn landed_version(table: &DeltaTable, batch: &BatchCommit) -> Result<Option<i64>, SinkError> {
    use futures::TryStreamExt;
    let history: Vec<_> = table.history(Some(50)).try_collect().await?;
    let ours = |info: &deltalake::kernel::CommitInfo| {
        let mine = info.info.get("sluice");
        mine.and_then(|m| m.get("runId")) == batch.info.get("runId")
            && mine.and_then(|m| m.get("batchId")) == batch.info.get("batchId")
    };
    let newest = table_version(table).unwrap_or(0);
    Ok(history
        .iter()
        .enumerate()
        .find(|(_, info)| ours(info))
        .map(|(i, _)| newest - i as i64))
}

/// Whether the table's log shows a commit of a query's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InLog {
    /// A commit of the batch is in the log.
    Committed,
    /// The whole log is there, and no commit of the batch is in it.
    NotCommitted,
    /// Not in the log, but older commits were cleaned up: the log cannot tell.
    Unknown,
}

/// The `sluice` commitInfo of the commit of batch `batch_id` of query `query_name`, from the
/// newest `limit` commits of the log (all with `None`), and whether those were the whole log.
async fn find_commit(
    table: &DeltaTable,
    query_name: &str,
    batch_id: i64,
    limit: Option<usize>,
) -> Result<(Option<Value>, bool), SinkError> {
    use futures::TryStreamExt;
    let Some(newest) = table_version(table) else {
        return Ok((None, true));
    };
    let history: Vec<_> = table.history(limit).try_collect().await?;
    let found = history.iter().find_map(|info| {
        let mine = info.info.get("sluice")?;
        let ours = mine.get("queryName").and_then(Value::as_str) == Some(query_name)
            && mine.get("batchId").and_then(Value::as_i64) == Some(batch_id)
            && mine.get("keepAlive").is_none();
        ours.then(|| mine.clone())
    });
    Ok((found, history.len() as i64 > newest))
}

/// Look for the commit of batch `batch_id` of query `query_name` in the table's log (its
/// commitInfos). Reads the whole log: only for the rare start of a query whose txn is gone.
pub async fn batch_in_log(
    table: &DeltaTable,
    query_name: &str,
    batch_id: i64,
) -> Result<InLog, SinkError> {
    Ok(
        match find_commit(table, query_name, batch_id, None).await? {
            (Some(_), _) => InLog::Committed,
            (None, true) => InLog::NotCommitted,
            (None, false) => InLog::Unknown,
        },
    )
}

/// The state attempt (commitInfo `stateAttempt`) the commit of batch `batch_id` names, looked
/// up in the recent commits first. For the start after a crash between a commit and its state
/// pointer.
pub async fn state_attempt_in_log(
    table: &DeltaTable,
    query_name: &str,
    batch_id: i64,
) -> Result<Option<String>, SinkError> {
    for limit in [Some(100), None] {
        if let (Some(info), _) = find_commit(table, query_name, batch_id, limit).await? {
            return Ok(info
                .get("stateAttempt")
                .and_then(Value::as_str)
                .map(str::to_string));
        }
    }
    Ok(None)
}

fn is_conflict(e: &DeltaTableError) -> bool {
    matches!(
        e,
        DeltaTableError::VersionAlreadyExists(_)
            | DeltaTableError::Transaction {
                source: TransactionError::CommitConflict(_)
                    | TransactionError::MaxCommitAttempts(_)
                    | TransactionError::VersionAlreadyExists(_)
            }
    )
}

/// What this process last committed: while the table is still at that version, nobody else has
/// committed since, and the query's txn version is known without reading the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnCommit {
    /// The table version of our last commit.
    pub table_version: i64,
    /// The batch id it committed.
    pub batch_id: i64,
}

/// The txn version to decide on: from our own last commit when the table has not moved since,
/// else `None` (read it from the log).
pub fn known_committed(own: Option<OwnCommit>, table_version: Option<i64>) -> Option<i64> {
    match (own, table_version) {
        (Some(own), Some(v)) if own.table_version == v => Some(own.batch_id),
        _ => None,
    }
}

/// Our commit of `batch_id` is table version `version`: remember it, and say so.
fn ours(
    own: &mut Option<OwnCommit>,
    version: i64,
    batch_id: i64,
    attempts: usize,
) -> CommitOutcome {
    *own = Some(OwnCommit {
        table_version: version,
        batch_id,
    });
    CommitOutcome::Committed { version, attempts }
}

fn table_version(table: &DeltaTable) -> Option<i64> {
    table.version().and_then(|v| i64::try_from(v).ok())
}

/// What every commit of a query carries: its txn at `batch_id`, stamped now (the stamp that
/// `delta.setTransactionRetentionDuration` ages), the query's `sluice` block in commitInfo, and
/// no expired-log cleanup (that runs periodically, see [`crate::sink::LOG_CLEANUP_EVERY`]).
pub(crate) fn txn_properties(app_id: &str, batch_id: i64, info: Value) -> CommitProperties {
    CommitProperties::default()
        .with_application_transaction(Transaction::new_with_last_update(
            app_id,
            batch_id,
            Some(chrono::Utc::now().timestamp_millis()),
        ))
        .with_metadata(HashMap::from([("sluice".to_string(), info)]))
        .with_cleanup_expired_logs(Some(false))
}

/// Commit one batch, exactly once. See the module docs for the protocol. `own` remembers this
/// process's last commit and is updated on success.
pub async fn commit_batch(
    table: &mut DeltaTable,
    batch: &BatchCommit,
    own: &mut Option<OwnCommit>,
) -> Result<CommitOutcome, SinkError> {
    let mut ambiguous = false;
    for attempt in 1..=MAX_ATTEMPTS {
        let started = std::time::Instant::now();
        table.update_incremental(None).await?;
        let reload = started.elapsed();
        let committed = match known_committed(*own, table_version(table)) {
            Some(v) => Some(v),
            None => committed_batch(table, &batch.app_id).await?,
        };
        match decide(committed, batch.batch_id) {
            Decision::AlreadyCommitted { committed } => {
                // After a storage failure mid-commit, the commit that landed may be our own.
                if ambiguous && committed == batch.batch_id {
                    if let Some(version) = landed_version(table, batch).await? {
                        return Ok(ours(own, version, batch.batch_id, attempt));
                    }
                }
                return Ok(CommitOutcome::Superseded { committed });
            }
            Decision::Gap { committed } => {
                return Err(SinkError::Inconsistent(format!(
                    "cannot commit batch {} of `{}`: the table's last committed batch is {}; was the table restored to an older version?",
                    batch.batch_id,
                    batch.app_id,
                    committed.map_or("none".to_string(), |v| v.to_string())
                )))
            }
            Decision::Commit => {}
        }
        if batch.read_version.is_some() && batch.read_version != table_version(table) {
            return Ok(CommitOutcome::Stale);
        }
        let mut actions: Vec<Action> = batch.extra.clone();
        actions.extend(batch.adds.iter().cloned().map(Action::Add));
        let properties = txn_properties(&batch.app_id, batch.batch_id, batch.info.clone());
        let operation = DeltaOperation::StreamingUpdate {
            output_mode: batch.output_mode,
            query_id: batch.query_id.clone(),
            epoch_id: batch.batch_id,
        };
        let snapshot = table.snapshot()?;
        let result = CommitBuilder::from(properties)
            .with_actions(actions)
            .with_max_retries(0)
            .build(Some(snapshot), table.log_store(), operation)
            .await;
        match result {
            Ok(done) => {
                tracing::debug!(?reload, total = ?started.elapsed(), attempt, "batch committed");
                let version = i64::try_from(done.version()).unwrap_or(i64::MAX);
                return Ok(ours(own, version, batch.batch_id, attempt));
            }
            Err(e) if is_ambiguous(&e) && attempt < AMBIGUOUS_ATTEMPTS => {
                tracing::info!(
                    batch = batch.batch_id,
                    attempt,
                    "commit write failed ({e}); checking whether it landed, then retrying"
                );
                ambiguous = true;
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt.min(5))).await;
                continue;
            }
            Err(e) if is_conflict(&e) => {
                tracing::debug!(
                    batch = batch.batch_id,
                    attempt,
                    "commit conflict; reloading: {e}"
                );
                continue;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(SinkError::Inconsistent(format!(
        "batch {} of `{}` met {MAX_ATTEMPTS} conflicting commits in a row; too many writers on this table",
        batch.batch_id, batch.app_id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(decide(None, 0), Decision::Commit);
        assert_eq!(decide(Some(4), 5), Decision::Commit);
        assert_eq!(
            decide(Some(5), 5),
            Decision::AlreadyCommitted { committed: 5 }
        );
        assert_eq!(
            decide(Some(9), 5),
            Decision::AlreadyCommitted { committed: 9 }
        );
        assert_eq!(decide(Some(2), 5), Decision::Gap { committed: Some(2) });
        assert_eq!(decide(None, 3), Decision::Gap { committed: None });
    }

    #[test]
    fn own_commit_is_trusted_only_while_the_table_has_not_moved() {
        let own = Some(OwnCommit {
            table_version: 7,
            batch_id: 3,
        });
        assert_eq!(known_committed(own, Some(7)), Some(3));
        assert_eq!(known_committed(own, Some(8)), None);
        assert_eq!(known_committed(None, Some(7)), None);
    }
}
