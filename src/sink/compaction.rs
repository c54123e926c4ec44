//! Automatic compaction (Delta's `delta.autoOptimize.autoCompact`): after a batch commits, when
//! the table holds at least a threshold of small live files, they are bin-packed into larger
//! ones in a `dataChange=false` commit, so the number of live files follows the data's size, not
//! the number of batches a query has run.
//!
//! ```text
//!   batch N committed ──► small live files (< MAX_FILE_SIZE) ≥ min files? ──► optimize:
//!                          (the table property says auto compaction is on)      remove + add,
//!                                                                               dataChange=false
//! ```
//!
//! It runs in the query's own process between two batches, so it never races the stream's own
//! commits; a kill during it leaves the table as it was (the commit is atomic), and readers of
//! the change feed see no data change. Tables Sluice creates have the property on unless the
//! query says otherwise.

/// Databricks' `spark.databricks.delta.autoCompact.minNumFiles`: compaction waits for this
/// many small files.
pub const MIN_FILES: usize = 50;

/// Databricks' `spark.databricks.delta.autoCompact.maxFileSize`: files below it are small.
pub const MAX_FILE_SIZE: u64 = 128 << 20;

/// Does a value of `delta.autoOptimize.autoCompact` turn automatic compaction on (Databricks
/// reads `true`, `auto` and `legacy` as on)?
pub fn enabled(value: Option<&str>) -> bool {
    value.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "auto" | "legacy"))
}

/// Is a compaction due for live files of these sizes?
pub fn due(sizes: impl IntoIterator<Item = u64>, min_files: usize) -> bool {
    sizes
        .into_iter()
        .filter(|size| *size < MAX_FILE_SIZE)
        .count()
        >= min_files.max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_property_turns_it_on_as_databricks_reads_it() {
        for on in ["true", "TRUE", "auto", "legacy"] {
            assert!(enabled(Some(on)), "{on}");
        }
        for off in [None, Some("false"), Some(""), Some("yes")] {
            assert!(!enabled(off), "{off:?}");
        }
    }

    #[test]
    fn due_when_small_files_reach_the_threshold() {
        let small = 1 << 20;
        assert!(!due(vec![small; 49], MIN_FILES));
        assert!(due(vec![small; 50], MIN_FILES));
        // Large files do not count, however many.
        assert!(!due(vec![MAX_FILE_SIZE; 500], MIN_FILES));
        // One small file alone is never compacted.
        assert!(!due(vec![small], 1));
        assert!(due(vec![small, small], 1));
    }
}
