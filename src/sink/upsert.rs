//! Update mode: upsert the changed result rows, keyed on the grouping columns, rewriting only
//! the data files that hold one of the changed keys.
//!
//! ```text
//!   changed rows c ──► files F = DISTINCT file of t JOIN c ON keys   (t = the table as loaded)
//!                      kept    = rows of F LEFT ANTI JOIN c ON keys
//!   commit: remove(F) + add(kept) + add(c)     (nothing else is read back or rewritten)
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use deltalake::kernel::Action;
use deltalake::DeltaTable;
use object_store::path::Path;

use super::SinkError;

const FILE_COLUMN: &str = "__sluice_file";

fn df_err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Schema(format!("update-mode upsert failed: {e}"))
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The files to remove, and the rows of theirs to keep, so that the table holds the changed
/// rows (written beside) in place of the rows with the same keys. Kept rows go to files of
/// their own, so that files of old keys settle and stop being rewritten.
pub async fn upsert(
    table: &DeltaTable,
    schema: &SchemaRef,
    changed: &[RecordBatch],
    keys: &[String],
) -> Result<(Vec<Action>, Vec<RecordBatch>), SinkError> {
    let snapshot = table.snapshot()?;
    if changed.iter().all(|b| b.num_rows() == 0) || snapshot.log_data().num_files() == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let with_files = table
        .table_provider()
        .with_file_column(FILE_COLUMN)
        .await
        .map_err(df_err)?;
    ctx.register_table("t", with_files).map_err(df_err)?;
    let changed_table =
        MemTable::try_new(schema.clone(), vec![changed.to_vec()]).map_err(df_err)?;
    ctx.register_table("c", Arc::new(changed_table))
        .map_err(df_err)?;
    let on = |left: &str| {
        keys.iter()
            .map(|k| format!("({left}.{q} IS NOT DISTINCT FROM c.{q})", q = quoted(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let files_sql = format!(
        "SELECT DISTINCT t.{FILE_COLUMN} FROM t JOIN c ON {}",
        on("t")
    );
    let batches = ctx
        .sql(&files_sql)
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    let mut files: Vec<String> = Vec::new();
    for b in &batches {
        let column = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let strings = column
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .ok_or_else(|| df_err("file column is not text"))?;
        files.extend(strings.iter().flatten().map(str::to_string));
    }
    tracing::debug!(?files, "files holding changed keys");
    if files.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // The scan names files by URL; the log by path relative to the table root.
    let root = table.table_url().path().to_string();
    let wanted: HashSet<Path> = files
        .iter()
        .filter_map(|f| url::Url::parse(f).ok())
        .filter_map(|u| {
            let rel = u.path().strip_prefix(root.as_str())?.to_string();
            Path::from_url_path(rel).ok()
        })
        .collect();
    let mut removes = Vec::new();
    let mut paths = Vec::new();
    for file in snapshot.log_data().iter() {
        if wanted.contains(&file.object_store_path()) {
            removes.push(Action::Remove(file.remove_action(true)));
            paths.push(file.path().to_string());
        }
    }
    if removes.len() != wanted.len() {
        return Err(df_err(format!(
            "could not match the files holding changed keys ({} found, {} matched)",
            wanted.len(),
            removes.len()
        )));
    }
    let only_those = table
        .table_provider()
        .with_file_paths(paths)
        .await
        .map_err(df_err)?;
    ctx.register_table("f", only_those).map_err(df_err)?;
    let columns = schema
        .fields()
        .iter()
        .map(|f| format!("f.{}", quoted(f.name())))
        .collect::<Vec<_>>()
        .join(", ");
    let kept_sql = format!("SELECT {columns} FROM f LEFT ANTI JOIN c ON {}", on("f"));
    let kept = ctx
        .sql(&kept_sql)
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    Ok((removes, kept))
}
