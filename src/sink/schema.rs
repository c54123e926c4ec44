//! The query's output as Delta stores it: Arrow types mapped to Delta's, names checked.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::SinkError;
use crate::source::ddl;

/// Characters Delta forbids in column names (without column mapping).
const FORBIDDEN: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

/// The Arrow type Delta stores for an Arrow type produced by a query.
pub fn delta_type(column: &str, dt: &DataType) -> Result<DataType, SinkError> {
    Ok(match dt {
        DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary | DataType::FixedSizeBinary(_) => DataType::Binary,
        DataType::Timestamp(_, _) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        DataType::Date64 => DataType::Date32,
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Dictionary(_, value) => delta_type(column, value)?,
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => DataType::Decimal128(*p, *s),
        DataType::Struct(fields) if fields.is_empty() => {
            return Err(SinkError::Schema(format!(
                "column `{column}` is a struct with no fields, which Parquet cannot store: leave it out of the query or give it a field in the schema"
            )))
        }
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Ok(Arc::new(delta_field(f)?)))
                .collect::<Result<Fields, SinkError>>()?,
        ),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) | DataType::LargeListView(f) => {
            DataType::List(Arc::new(delta_field(f)?))
        }
        DataType::Boolean
        | DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::Float32
        | DataType::Float64
        | DataType::Utf8
        | DataType::Binary
        | DataType::Date32
        | DataType::Decimal128(_, _)
        | DataType::Map(_, _) => dt.clone(),
        other => {
            return Err(SinkError::Schema(format!(
                "column `{column}` has type {other}, which Delta cannot store; CAST it to a supported type"
            )))
        }
    })
}

/// A field as Delta stores it: a TIMESTAMP_NTZ column (marked by the source) stays zone-less
/// (`timestamp_ntz`); every other timestamp is Delta's `timestamp`.
fn delta_field(f: &Field) -> Result<Field, SinkError> {
    let data_type = if ddl::is_ntz(f) {
        ddl::ntz_type()
    } else {
        delta_type(f.name(), f.data_type())?
    };
    Ok(Field::new(f.name(), data_type, true))
}

/// `schema` without its struct fields that have no fields, at any depth (a struct left with
/// none is dropped too); the dotted names of those dropped go to `dropped`.
pub fn without_empty_structs(schema: &Schema, dropped: &mut Vec<String>) -> SchemaRef {
    fn keep(field: &Field, path: &str, dropped: &mut Vec<String>) -> Option<Field> {
        let name = match path.is_empty() {
            true => field.name().clone(),
            false => format!("{path}.{}", field.name()),
        };
        let data_type = match field.data_type() {
            DataType::Struct(fields) => {
                let kept: Vec<Field> = fields
                    .iter()
                    .filter_map(|f| keep(f, &name, dropped))
                    .collect();
                if kept.is_empty() {
                    dropped.push(name);
                    return None;
                }
                DataType::Struct(kept.into())
            }
            DataType::List(element) => match keep(element, &name, dropped) {
                Some(element) => DataType::List(Arc::new(element)),
                None => return None,
            },
            other => other.clone(),
        };
        Some(field.clone().with_data_type(data_type))
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter_map(|f| keep(f, "", dropped))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The Delta-compatible schema for a query output schema. Every column is nullable.
pub fn delta_schema(output: &Schema) -> Result<SchemaRef, SinkError> {
    let mut fields = Vec::with_capacity(output.fields().len());
    for f in output.fields() {
        if f.name().is_empty() || f.name().contains(FORBIDDEN) {
            return Err(SinkError::Schema(format!(
                "output column `{}` is not a valid Delta column name (no spaces, commas, parentheses, braces, `;` or `=`); give it an alias with AS",
                f.name()
            )));
        }
        fields.push(delta_field(f)?);
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Cast a batch of the query output to the Delta schema (columns by position).
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, SinkError> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .zip(target.fields())
        .map(|(c, f)| {
            if c.data_type() == f.data_type() {
                Ok(c.clone())
            } else {
                cast(c, f.data_type()).map_err(SinkError::Arrow)
            }
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(SinkError::Arrow)
}

/// Is a query output (already mapped with [`delta_schema`]) writable into a table of `table`?
pub fn check_matches(output: &Schema, table: &Schema) -> Result<(), SinkError> {
    let describe = |s: &Schema| crate::source::ddl::to_ddl(s);
    let same = output.fields().len() == table.fields().len()
        && output
            .fields()
            .iter()
            .zip(table.fields())
            .all(|(a, b)| a.name() == b.name() && same_type(a.data_type(), b.data_type()));
    if same {
        Ok(())
    } else {
        Err(SinkError::Schema(format!(
            "the query's output ({}) does not match the existing table ({}); change the query or write to a new table",
            describe(output),
            describe(table)
        )))
    }
}

fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        // TIMESTAMP (zoned) and TIMESTAMP_NTZ (zone-less) are different types to Delta.
        (DataType::Timestamp(_, x), DataType::Timestamp(_, y)) => x.is_some() == y.is_some(),
        (DataType::Struct(x), DataType::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(f, g)| f.name() == g.name() && same_type(f.data_type(), g.data_type()))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_query_types_to_delta_types() {
        let out = Schema::new(vec![
            Field::new("s", DataType::Utf8View, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Field::new("u", DataType::UInt32, true),
        ]);
        let d = delta_schema(&out).unwrap();
        assert_eq!(d.field(0).data_type(), &DataType::Utf8);
        assert!(d.field(0).is_nullable());
        assert_eq!(
            d.field(1).data_type(),
            &crate::source::ddl::timestamp_type()
        );
        assert_eq!(d.field(2).data_type(), &DataType::Int64);
    }

    /// A column the source read as TIMESTAMP_NTZ stays zone-less (Delta `timestamp_ntz`), in
    /// a struct too; a zone-less timestamp a SQL function made stays Spark's TIMESTAMP.
    #[test]
    fn timestamp_ntz_columns_stay_zone_less() {
        use crate::source::ddl;
        let local = ddl::field("local", ddl::ntz_type());
        let out = Schema::new(vec![
            local.clone(),
            Field::new("made", ddl::ntz_type(), true),
            Field::new(
                "s",
                DataType::Struct(Fields::from(vec![local.clone()])),
                true,
            ),
        ]);
        let d = delta_schema(&out).unwrap();
        assert_eq!(d.field(0).data_type(), &ddl::ntz_type());
        assert_eq!(d.field(1).data_type(), &ddl::timestamp_type());
        assert_eq!(
            d.field(2).data_type(),
            &DataType::Struct(Fields::from(vec![Field::new(
                "local",
                ddl::ntz_type(),
                true
            )]))
        );
        // Zoned and zone-less timestamps are different columns to an existing table.
        let zoned = Schema::new(vec![Field::new("local", ddl::timestamp_type(), true)]);
        let zone_less = Schema::new(vec![Field::new("local", ddl::ntz_type(), true)]);
        assert!(check_matches(&zone_less, &zoned).is_err());
        assert!(check_matches(&zone_less, &zone_less).is_ok());
    }

    #[test]
    fn rejects_names_delta_cannot_store() {
        let out = Schema::new(vec![Field::new("upper(action)", DataType::Utf8, true)]);
        let err = delta_schema(&out).unwrap_err().to_string();
        assert!(err.contains("alias with AS"), "{err}");
    }

    #[test]
    fn mismatch_is_explained() {
        let a = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let b = Schema::new(vec![Field::new("x", DataType::Utf8, true)]);
        let err = check_matches(&a, &b).unwrap_err().to_string();
        assert!(err.contains("does not match the existing table"), "{err}");
    }
}
