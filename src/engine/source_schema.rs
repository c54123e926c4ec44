//! The schema a query reads its source with, decided when it starts:
//!
//! ```text
//!   remembered in the table ─┐
//!   --schema ────────────────┼─► data columns ─► + partition columns ─► + _metadata
//!   inferred from the files ─┘                    (discovered at first     (when the SQL
//!                                                  start, then remembered)  names it)
//! ```

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};

use super::QueryConfig;
use crate::commit::record::BatchRecord;
use crate::error::Error;
use crate::source::{ddl, file_columns, FileSource};

/// The source schema of a query (partition columns included, `_metadata` when the SQL reads
/// it), with `source` told which columns its folders give.
pub(super) async fn resolve(
    cfg: &QueryConfig,
    sql: &str,
    source: &mut FileSource,
    newest: Option<&BatchRecord>,
) -> Result<SchemaRef, Error> {
    let (schema, partitions) = match newest {
        Some(record) => {
            // Structs with no fields, which earlier versions inferred from objects that were
            // always `{}`, are left out as inference now leaves them out (they hold no value).
            let remembered = crate::sink::schema::without_empty_structs(
                ddl::parse_ddl(&record.source.schema)?.as_ref(),
                &mut Vec::new(),
            );
            let columns = record.source.partition_columns.clone();
            // A given schema that leaves out a partition column gets it as remembered.
            let fields = columns
                .iter()
                .filter_map(|c| remembered.field_with_name(c).ok().cloned())
                .collect();
            let data = cfg.schema.clone().unwrap_or(remembered);
            (append_missing(&data, fields), columns)
        }
        None => {
            let mut listed = source.list().await?;
            listed.sort_by(|a, b| (a.mtime_ms, &a.path).cmp(&(b.mtime_ms, &b.path)));
            let discovered = source.discover_partitions(&listed);
            let names: Vec<String> = discovered.iter().map(|f| f.name().clone()).collect();
            let data = match &cfg.schema {
                Some(given) => given.clone(),
                // A data field named like a partition column is the partition column (Spark).
                None => {
                    let inferred = source.infer_schema(&listed).await?;
                    Arc::new(without(&inferred, &names))
                }
            };
            (append_missing(&data, discovered), names)
        }
    };
    source.set_partition_columns(partitions);
    Ok(if file_columns::wants_metadata(sql) {
        file_columns::with_metadata(&schema)
    } else {
        schema
    })
}

/// `schema` and, after its columns, those of `fields` it lacks.
fn append_missing(schema: &Schema, fields: Vec<Field>) -> SchemaRef {
    let mut all: Vec<_> = schema.fields().iter().cloned().collect();
    for f in fields {
        if schema.field_with_name(f.name()).is_err() {
            all.push(Arc::new(f));
        }
    }
    Arc::new(Schema::new(all))
}

fn without(schema: &Schema, names: &[String]) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| !names.contains(f.name()))
            .cloned()
            .collect::<Vec<_>>(),
    )
}
