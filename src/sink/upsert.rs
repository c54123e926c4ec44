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

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::datasource::MemTable;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::prelude::{col, lit, DataFrame, Expr, SessionContext};
use deltalake::kernel::Action;
use deltalake::DeltaTable;
use object_store::path::Path;

use super::SinkError;

const FILE_COLUMN: &str = "__sluice_file";

fn df_err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Schema(format!("update-mode upsert failed: {e}"))
}

async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, SinkError> {
    ctx.sql(sql)
        .await
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The key expressions worth a range filter: plain columns, and the fields of struct keys
/// (a `window` key's start and end).
fn range_targets(schema: &SchemaRef, keys: &[String]) -> Vec<(Expr, String)> {
    let mut targets = Vec::new();
    for k in keys {
        let Ok(field) = schema.field_with_name(k) else {
            continue;
        };
        match field.data_type() {
            DataType::Struct(fields) => {
                for f in fields.iter().filter(|f| !f.data_type().is_nested()) {
                    targets.push((
                        get_field(col(quoted(k)), f.name().as_str()),
                        format!("c.{}['{}']", quoted(k), f.name().replace('\'', "''")),
                    ));
                }
            }
            dt if !dt.is_nested() => targets.push((col(quoted(k)), format!("c.{}", quoted(k)))),
            _ => {}
        }
    }
    targets
}

/// `key BETWEEN min AND max` (or NULL, when a changed key is null) over every key expression.
async fn key_ranges(
    ctx: &SessionContext,
    schema: &SchemaRef,
    keys: &[String],
) -> Result<Option<Expr>, SinkError> {
    let targets = range_targets(schema, keys);
    if targets.is_empty() {
        return Ok(None);
    }
    let selects: Vec<String> = targets
        .iter()
        .map(|(_, c)| format!("min({c}), max({c}), count(*) - count({c})"))
        .collect();
    let stats = collect(ctx, &format!("SELECT {} FROM c", selects.join(", "))).await?;
    let Some(row) = stats.first() else {
        return Ok(None);
    };
    let mut filter: Option<Expr> = None;
    for (i, (expr, _)) in targets.into_iter().enumerate() {
        let min = ScalarValue::try_from_array(row.column(3 * i), 0).map_err(df_err)?;
        let max = ScalarValue::try_from_array(row.column(3 * i + 1), 0).map_err(df_err)?;
        let nulls = ScalarValue::try_from_array(row.column(3 * i + 2), 0).map_err(df_err)?;
        if min.is_null() || max.is_null() {
            continue;
        }
        let mut range = expr.clone().between(lit(min), lit(max));
        if nulls != ScalarValue::Int64(Some(0)) {
            range = range.or(expr.is_null());
        }
        filter = Some(match filter {
            Some(f) => f.and(range),
            None => range,
        });
    }
    Ok(filter)
}

/// The table's rows, with the file of each, that can hold a key of the changed rows (table
/// `c` of `ctx`): only files whose key ranges overlap the changed keys can, so filtering the
/// scan on those ranges lets file statistics skip the rest of the table.
async fn candidate_rows(
    ctx: &SessionContext,
    table: &DeltaTable,
    schema: &SchemaRef,
    keys: &[String],
) -> Result<DataFrame, SinkError> {
    let with_files = table
        .table_provider()
        .with_file_column(FILE_COLUMN)
        .await
        .map_err(df_err)?;
    let mut scan = ctx.read_table(with_files).map_err(df_err)?;
    if let Some(range) = key_ranges(ctx, schema, keys).await? {
        scan = scan.filter(range).map_err(df_err)?;
    }
    Ok(scan)
}

/// The files to remove, and the rows of theirs to keep, so that the table holds the changed
/// rows (written beside) in place of the rows with the same keys as `changed` (every key the
/// batch touched: with HAVING, a superset of the rows written). Kept rows go to files of
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
    let changed_table =
        MemTable::try_new(schema.clone(), vec![changed.to_vec()]).map_err(df_err)?;
    ctx.register_table("c", Arc::new(changed_table))
        .map_err(df_err)?;
    let scan = candidate_rows(&ctx, table, schema, keys).await?;
    ctx.register_table("t", scan.into_view()).map_err(df_err)?;
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
    let batches = collect(&ctx, &files_sql).await?;
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
    let kept = collect(&ctx, &kept_sql).await?;
    Ok((removes, kept))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array, StringArray, StructArray, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Fields, Schema, TimeUnit};

    fn rows(schema: &SchemaRef, window: i64, actions: &[&str], count: i64) -> RecordBatch {
        let ts = |us: i64| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(vec![us; actions.len()]).with_timezone("UTC"))
        };
        let minute = 60_000_000;
        let DataType::Struct(fields) = schema.field(0).data_type().clone() else {
            unreachable!("the window is a struct")
        };
        let window = StructArray::new(
            fields,
            vec![ts(window * minute), ts((window + 1) * minute)],
            None,
        );
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(window),
                Arc::new(StringArray::from(actions.to_vec())),
                Arc::new(Int64Array::from(vec![count; actions.len()])),
            ],
        )
        .unwrap()
    }

    /// Update mode on a windowed count: a batch that changes keys of the newest window reads
    /// only the file that can hold them; the statistics of the window's `start` and `end`
    /// fields skip the files of every other window.
    #[tokio::test]
    async fn file_statistics_on_the_window_fields_skip_other_windows_files() {
        let time = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let window = Fields::from(vec![
            Field::new("start", time.clone(), true),
            Field::new("end", time, true),
        ]);
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("window", DataType::Struct(window), true),
            Field::new("action", DataType::Utf8, true),
            Field::new("count", DataType::Int64, true),
        ]));
        let dir = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(dir.path()).unwrap();
        for w in 0..6 {
            let table = DeltaTable::try_from_url(url.clone()).await.unwrap();
            table
                .write(vec![rows(&schema, w, &["a", "b"], 1)])
                .await
                .unwrap();
        }
        let mut table = DeltaTable::try_from_url(url).await.unwrap();
        table.load().await.unwrap();
        assert_eq!(table.snapshot().unwrap().log_data().num_files(), 6);
        let changed = rows(&schema, 5, &["a"], 2);
        let keys = ["window".to_string(), "action".to_string()];
        let ctx = SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        let c = MemTable::try_new(schema.clone(), vec![vec![changed.clone()]]).unwrap();
        ctx.register_table("c", Arc::new(c)).unwrap();
        let plan = candidate_rows(&ctx, &table, &schema, &keys)
            .await
            .unwrap()
            .create_physical_plan()
            .await
            .unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        assert_eq!(
            shown.matches(".parquet").count(),
            1,
            "only the newest window's file is read: {shown}"
        );
        // And the upsert itself replaces that file alone.
        let (actions, kept) = upsert(&table, &schema, &[changed], &keys).await.unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    }
}
