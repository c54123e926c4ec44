//! Sluice streams a directory of arriving files into a Delta Lake table, micro-batch by
//! micro-batch, exactly once, with the table itself as the only checkpoint.
//!
//! The data's path through the crate:
//!
//! ```text
//!  source ──────────► plan ───────────► sink ───────────► commit
//!  list, select new   SQL over the      Parquet files     one Delta commit per batch:
//!  files, decode      batch (DataFusion) (invisible)      adds + txn(query, batch) + record
//!  (source/)          (plan/)            (sink/)           (commit/)
//!                    └──────────── engine/ runs it per trigger ────────────┘
//! ```
//!
//! Use it from the command line (`sluice run`, `sluice inspect`) or through the Spark-shaped
//! API in [`api`].

pub mod api;
pub mod cli;
pub mod commit;
pub mod duration;
pub mod engine;
pub mod error;
pub mod inspect;
pub mod maintenance;
pub mod plan;
pub mod sink;
pub mod source;
pub mod state;
pub mod storage;

pub use api::{Session, StreamingQuery};
pub use engine::{OutputModeKind, Progress, QueryConfig, Trigger};
pub use error::{Error, Result};
