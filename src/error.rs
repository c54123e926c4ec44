//! The crate's error: one variant per layer, each message saying what the user can do.

use crate::plan::PlanError;
use crate::sink::SinkError;
use crate::source::SourceError;

/// Any error Sluice reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag or setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The query failed.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The table failed.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Aggregation state failed.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

impl From<deltalake::DeltaTableError> for Error {
    fn from(e: deltalake::DeltaTableError) -> Self {
        Error::Sink(SinkError::Delta(e))
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
