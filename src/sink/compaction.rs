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
//! Compaction is tiered: it merges the newest files, and an older one only while it is at most
//! twice what is being merged, so a compacted file is rewritten only once as much new data has
//! come — each byte O(log n) times, live files O(log n) beyond the threshold. (Merging every
//! file under the size limit rewrote the growing compacted file at every compaction until it
//! reached 128 MiB, and in update mode put the open keys into that big file, which the next
//! upsert then rewrote.) The files are chosen here and rewritten by the sink; a partitioned
//! table is compacted by delta-rs's `optimize`, per partition, as before.
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

/// How many of the newest live files (`sizes`, newest first) the next compaction merges: the
/// newest files, while each older one is at most twice their total, all under
/// [`MAX_FILE_SIZE`] together. 0 when that is a single file (nothing to merge).
pub fn newest_tier(sizes_newest_first: &[u64]) -> usize {
    let mut total = 0u64;
    let mut files = 0usize;
    for &size in sizes_newest_first {
        if (files > 0 && size > 2 * total) || total + size > MAX_FILE_SIZE {
            break;
        }
        total += size;
        files += 1;
    }
    if files >= 2 {
        files
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_tier_is_merged_and_a_much_bigger_file_is_left() {
        let (small, s) = (1 << 15, 50 << 15);
        // 50 new small files, then a compacted file 40 times bigger: only the small ones.
        let mut sizes = vec![small; 50];
        sizes.push(40 * s);
        assert_eq!(newest_tier(&sizes), 50);
        // A compacted file at most twice the new data is merged with them.
        sizes[50] = 2 * s;
        assert_eq!(newest_tier(&sizes), 51);
        // Never past the size limit, never one file alone.
        assert_eq!(newest_tier(&[s, MAX_FILE_SIZE]), 0);
        assert_eq!(newest_tier(&[MAX_FILE_SIZE - 1, MAX_FILE_SIZE - 1]), 0);
        assert_eq!(newest_tier(&[s, s]), 2);
    }

    /// Compacting 50 new files at a time, as a stream would: each byte is rewritten a number
    /// of times that grows with the log of the table, not with the table (merging everything
    /// under the limit rewrote the whole table each time: 100 times the data here), and live
    /// files stay few.
    #[test]
    fn tiers_rewrite_each_byte_a_logarithmic_number_of_times() {
        let mut live: Vec<u64> = Vec::new(); // oldest first
        let mut rewritten = 0u64;
        let rounds = 200u64;
        for _ in 0..rounds {
            live.extend(std::iter::repeat_n(1000, 50));
            let newest_first: Vec<u64> = live.iter().rev().copied().collect();
            let n = newest_tier(&newest_first);
            let merged: u64 = live.split_off(live.len() - n).iter().sum();
            rewritten += merged;
            live.push(merged);
        }
        let written = rounds * 50 * 1000;
        assert!(
            rewritten <= 10 * written,
            "{rewritten} bytes rewritten for {written}"
        );
        assert!(live.len() <= 12, "{live:?}");
    }

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
