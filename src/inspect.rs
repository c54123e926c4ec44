//! `sluice inspect`: what a table holds and which streaming queries write it.

use std::sync::Arc;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::ObjectStore;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::commit;
use crate::commit::record::{BatchRecord, RecordStore};
use crate::engine::app_id;
use crate::error::{Error, Result};
use crate::sink::SinkError;
use crate::source::ddl;
use crate::state::store::StateStore;
use crate::storage::Location;

/// A table's description.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableReport {
    /// The table location.
    pub table: String,
    /// Current version.
    pub version: i64,
    /// Columns and Spark types.
    pub schema: Vec<ColumnReport>,
    /// Partition columns.
    pub partition_columns: Vec<String>,
    /// Live data files.
    pub num_files: usize,
    /// Rows in live files (from file statistics).
    pub num_rows: u64,
    /// Streaming queries recorded in the table.
    pub queries: Vec<QueryReport>,
    /// The first rows.
    pub rows: Vec<Map<String, Value>>,
}

/// One column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    /// Name.
    pub name: String,
    /// Spark type name.
    #[serde(rename = "type")]
    pub data_type: String,
}

/// One streaming query recorded in the table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryReport {
    /// Query name.
    pub name: String,
    /// The txn app id.
    pub app_id: String,
    /// Stable query id.
    pub query_id: Option<String>,
    /// Last committed batch id.
    pub last_batch_id: Option<i64>,
    /// The source.
    pub source: Option<String>,
    /// The schema the query reads its source with (Spark DDL), and its partition columns.
    pub source_schema: Option<String>,
    /// The source offsets reached by the last committed batch.
    pub source_offsets: Value,
    /// Event-time watermark (ms), when the query has one.
    pub watermark_ms: Option<i64>,
    /// A planned batch not committed yet (re-run at the next start).
    pub pending_batch_id: Option<i64>,
    /// Aggregation state: keys held after the last committed batch.
    pub state_rows: Option<u64>,
    /// Aggregation state: the batch of its newest snapshot.
    pub state_snapshot_batch: Option<i64>,
}

/// Describe the table at `uri`, with up to `limit` sample rows.
pub async fn inspect(uri: &str, limit: usize) -> Result<TableReport> {
    let location = Location::parse(uri).map_err(|e| SinkError::Location(e.to_string()))?;
    if let Some(dir) = location.local_path() {
        if !dir.join("_delta_log").is_dir() {
            return Err(Error::Config(format!(
                "{} is not a Delta table (no _delta_log); point inspect at a table directory",
                dir.display()
            )));
        }
    }
    let table = crate::maintenance::load(uri).await?;
    let snapshot = table.snapshot()?;
    let arrow_schema = snapshot.snapshot().arrow_schema();
    let schema = arrow_schema
        .fields()
        .iter()
        .map(|f| ColumnReport {
            name: f.name().clone(),
            data_type: ddl::type_name(f.data_type()),
        })
        .collect();
    let partition_columns = snapshot.metadata().partition_columns().to_vec();
    let mut num_files = 0usize;
    let mut num_rows = 0u64;
    for file in snapshot.log_data().iter() {
        num_files += 1;
        num_rows += file
            .stats()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v.get("numRecords").and_then(Value::as_u64))
            .unwrap_or(0);
    }
    let queries = queries(&table).await?;
    let rows = sample_rows(&table, limit).await?;
    Ok(TableReport {
        table: uri.to_string(),
        version: i64::try_from(snapshot.version()).unwrap_or(i64::MAX),
        schema,
        partition_columns,
        num_files,
        num_rows,
        queries,
        rows,
    })
}

async fn queries(table: &deltalake::DeltaTable) -> Result<Vec<QueryReport>> {
    let store: Arc<dyn ObjectStore> = table.object_store();
    let listing = store
        .list_with_delimiter(Some(&Path::from("_sluice/queries")))
        .await
        .map_err(SinkError::Storage)?;
    let mut out = Vec::new();
    for prefix in listing.common_prefixes {
        let Some(name) = prefix.filename().map(str::to_string) else {
            continue;
        };
        let app = app_id(&name);
        let committed = commit::committed_batch(table, &app).await?;
        let records = RecordStore::new(store.clone(), &name);
        let record = match committed {
            Some(v) => records.read(v).await?,
            None => None,
        };
        let next = committed.map_or(0, |v| v + 1);
        let pending = records.read(next).await?.map(|r| r.batch_id);
        let source_offsets = record.as_ref().map_or(Value::Null, BatchRecord::offset);
        let state = match committed {
            Some(v) => StateStore::new(store.clone(), &name).meta(v).await?,
            None => None,
        };
        out.push(QueryReport {
            name,
            app_id: app,
            query_id: record.as_ref().map(|r| r.query_id.clone()),
            last_batch_id: committed,
            source: record.as_ref().map(|r| r.source.uri.clone()),
            source_schema: record.as_ref().map(|r| {
                let mut ddl = r.source.schema.clone();
                if !r.source.partition_columns.is_empty() {
                    ddl.push_str(&format!(
                        " (from folders: {})",
                        r.source.partition_columns.join(", ")
                    ));
                }
                ddl
            }),
            source_offsets,
            watermark_ms: record.as_ref().and_then(|r| r.watermark_ms),
            pending_batch_id: pending,
            state_rows: state.as_ref().map(|m| m.rows),
            state_snapshot_batch: state.as_ref().map(|m| m.snapshot_batch),
        });
    }
    Ok(out)
}

async fn sample_rows(
    table: &deltalake::DeltaTable,
    limit: usize,
) -> Result<Vec<Map<String, Value>>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table
        .table_provider()
        .await
        .map_err(|e| Error::Config(format!("cannot read the table's rows: {e}")))?;
    let df = ctx
        .read_table(provider)
        .and_then(|df| df.limit(0, Some(limit)))
        .map_err(|e| Error::Config(format!("cannot read the table's rows: {e}")))?;
    let batches: Vec<_> = df
        .execute_stream()
        .await
        .map_err(|e| Error::Config(format!("cannot read the table's rows: {e}")))?
        .try_collect()
        .await
        .map_err(|e| Error::Config(format!("cannot read the table's rows: {e}")))?;
    let options = FormatOptions::default().with_null("null");
    let mut rows = Vec::new();
    for batch in &batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<_, _>>()
            .map_err(SinkError::Arrow)?;
        for row in 0..batch.num_rows() {
            let mut map = Map::new();
            for (field, f) in batch.schema().fields().iter().zip(&formatters) {
                let value = if batch
                    .column_by_name(field.name())
                    .is_some_and(|c| c.is_null(row))
                {
                    Value::Null
                } else {
                    Value::String(f.value(row).to_string())
                };
                map.insert(field.name().clone(), value);
            }
            rows.push(map);
        }
    }
    Ok(rows)
}

/// Render a report for a terminal.
pub fn render(report: &TableReport) -> String {
    let mut out = String::new();
    out.push_str(&format!("table:      {}\n", report.table));
    out.push_str(&format!("version:    {}\n", report.version));
    out.push_str(&format!(
        "schema:     {}\n",
        report
            .schema
            .iter()
            .map(|c| format!("{} {}", c.name, c.data_type))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.push_str(&format!(
        "partitions: {}\n",
        if report.partition_columns.is_empty() {
            "none".to_string()
        } else {
            report.partition_columns.join(", ")
        }
    ));
    out.push_str(&format!(
        "files:      {}\nrows:       {}\n",
        report.num_files, report.num_rows
    ));
    if report.queries.is_empty() {
        out.push_str("queries:    none\n");
    }
    for q in &report.queries {
        out.push_str(&format!("query:      {} (appId {})\n", q.name, q.app_id));
        out.push_str(&format!(
            "  last batch id: {}\n",
            q.last_batch_id
                .map_or("none".to_string(), |v| v.to_string())
        ));
        if let Some(id) = &q.query_id {
            out.push_str(&format!("  query id:      {id}\n"));
        }
        if let Some(src) = &q.source {
            out.push_str(&format!("  source:        {src}\n"));
        }
        if let Some(schema) = &q.source_schema {
            out.push_str(&format!("  source schema: {schema}\n"));
        }
        out.push_str(&format!("  offsets:       {}\n", q.source_offsets));
        out.push_str(&format!(
            "  watermark:     {}\n",
            q.watermark_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or("none".to_string(), |w| w.to_rfc3339())
        ));
        if let Some(rows) = q.state_rows {
            out.push_str(&format!(
                "  state:         {rows} keys (snapshot at batch {})\n",
                q.state_snapshot_batch.unwrap_or_default()
            ));
        }
        if let Some(p) = q.pending_batch_id {
            out.push_str(&format!(
                "  pending batch: {p} (planned, not committed; re-run on next start)\n"
            ));
        }
    }
    out.push_str(&format!("first {} rows:\n", report.rows.len()));
    for row in &report.rows {
        let cells: Vec<String> = report
            .schema
            .iter()
            .map(|c| match row.get(&c.name) {
                Some(Value::String(s)) => format!("{}={s}", c.name),
                _ => format!("{}=null", c.name),
            })
            .collect();
        out.push_str(&format!("  {}\n", cells.join("  ")));
    }
    out
}
