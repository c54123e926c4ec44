//! Columns whose value comes from the file a row was read from, not from its bytes: the
//! partition columns (see [`super::partitions`]) and Spark's `_metadata` column
//! (`file_path`, `file_name`, `file_size`, `file_block_start`, `file_block_length`,
//! `file_modification_time`), which a query gets when its SQL names `_metadata`.
//!
//! ```text
//!   decoded batch (data columns) ──► complete(file) ──► batch of the stream's schema
//!                                      + partition values of the file's folders
//!                                      + _metadata of the file
//! ```

use std::sync::Arc;

use arrow::array::{
    new_null_array, ArrayRef, Int64Array, StringArray, StructArray, TimestampMicrosecondArray,
};
use arrow::compute::{cast_with_options, CastOptions};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::discovery::FileEntry;
use super::partitions::{self, Partitioning};
use super::SourceError;
use crate::source::ddl::timestamp_type;

/// The name of Spark's file metadata column.
pub const METADATA: &str = "_metadata";

/// The type of `_metadata`.
pub fn metadata_type() -> DataType {
    DataType::Struct(metadata_fields())
}

/// The fields of `_metadata`, as Spark has them.
fn metadata_fields() -> Fields {
    Fields::from(vec![
        Field::new("file_path", DataType::Utf8, true),
        Field::new("file_name", DataType::Utf8, true),
        Field::new("file_size", DataType::Int64, true),
        Field::new("file_block_start", DataType::Int64, true),
        Field::new("file_block_length", DataType::Int64, true),
        Field::new("file_modification_time", timestamp_type(), true),
    ])
}

/// Does the query name `_metadata` (as a name of its own, not part of a longer one)? Spark
/// adds the column only to queries that name it.
pub fn wants_metadata(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    lower.match_indices(METADATA).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| lower.as_bytes()[i]);
        let after = lower.as_bytes().get(at + METADATA.len()).copied();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// `schema` with `_metadata` after its columns.
pub fn with_metadata(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(METADATA, metadata_type(), true)));
    Arc::new(Schema::new(fields))
}

/// `schema` without `_metadata` (what the table remembers as the source schema).
pub fn without_metadata(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != METADATA)
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// How the file-derived columns of a stream are made.
#[derive(Debug, Clone, Default)]
pub struct FileColumns {
    /// Partition columns and the folders above the source.
    pub partitioning: Partitioning,
    /// The source's URL (file paths are below it).
    pub root: Option<url::Url>,
}

impl FileColumns {
    /// Is a column of the stream filled from the file rather than decoded?
    fn is_file_column(&self, name: &str) -> bool {
        name == METADATA || self.partitioning.columns.iter().any(|c| c == name)
    }

    /// Does a stream of `full` need anything added to decoded batches (besides columns not
    /// decoded)?
    pub fn adds_to(&self, full: &Schema) -> bool {
        full.fields().iter().any(|f| self.is_file_column(f.name()))
    }

    /// The columns decoded from the files.
    pub fn data_schema(&self, full: &Schema) -> SchemaRef {
        Arc::new(Schema::new(
            full.fields()
                .iter()
                .filter(|f| !self.is_file_column(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        ))
    }

    /// A batch of `file`'s data columns, completed to `full`: each file column in its place.
    /// A partition value that is not of its column's type is NULL (as Spark casts it); the
    /// file's path still tells it in `_metadata.file_path`.
    pub fn complete(
        &self,
        full: &SchemaRef,
        file: &FileEntry,
        data: RecordBatch,
    ) -> Result<RecordBatch, SourceError> {
        let values = partitions::values_of(
            &self.partitioning.above,
            &self.partitioning.relative(&file.path),
        );
        let rows = data.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(full.fields().len());
        for field in full.fields() {
            let name = field.name();
            let column = if name == METADATA {
                self.metadata(file, rows)?
            } else if self.is_file_column(name) {
                let value = values
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .filter(|v| *v != partitions::NULL_VALUE);
                match value {
                    None => new_null_array(field.data_type(), rows),
                    Some(v) => {
                        let text: ArrayRef = Arc::new(StringArray::from(vec![v; rows]));
                        let safe = CastOptions {
                            safe: true,
                            ..Default::default()
                        };
                        cast_with_options(&text, field.data_type(), &safe)?
                    }
                }
            } else {
                // A column the query does not read was not decoded: NULL.
                match data.column_by_name(name) {
                    Some(column) => column.clone(),
                    None => new_null_array(field.data_type(), rows),
                }
            };
            columns.push(column);
        }
        Ok(RecordBatch::try_new(full.clone(), columns)?)
    }

    /// `_metadata` of `file`, repeated for `rows` rows.
    fn metadata(&self, file: &FileEntry, rows: usize) -> Result<ArrayRef, SourceError> {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        // A URI, as Spark gives it: each name percent-encoded.
        let path = match self.root.clone() {
            Some(mut url) => {
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.pop_if_empty().extend(file.path.split('/'));
                }
                url.to_string()
            }
            None => file.path.clone(),
        };
        let size = i64::try_from(file.size).unwrap_or(i64::MAX);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![path.as_str(); rows])),
            Arc::new(StringArray::from(vec![name; rows])),
            Arc::new(Int64Array::from(vec![size; rows])),
            Arc::new(Int64Array::from(vec![0; rows])),
            Arc::new(Int64Array::from(vec![size; rows])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![file.mtime_ms.saturating_mul(1000); rows])
                    .with_timezone("UTC"),
            ),
        ];
        Ok(Arc::new(StructArray::try_new(
            metadata_fields(),
            columns,
            None,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn metadata_is_named_as_a_word() {
        assert!(wants_metadata("SELECT _metadata.file_name FROM s"));
        assert!(wants_metadata("SELECT `_metadata`['file_size'] FROM s"));
        assert!(!wants_metadata("SELECT file_metadata, _metadata_x FROM s"));
    }

    #[test]
    fn partition_values_and_metadata_fill_their_columns() {
        let full = with_metadata(&Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("day", DataType::Date32, true),
            Field::new("hour", DataType::Int32, true),
        ]));
        let cols = FileColumns {
            partitioning: Partitioning {
                columns: vec!["day".into(), "hour".into()],
                ..Default::default()
            },
            root: url::Url::parse("file:///land/").ok(),
        };
        let data_schema = cols.data_schema(&full);
        assert_eq!(data_schema.fields().len(), 1);
        let data = RecordBatch::try_new(data_schema, vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let file = FileEntry {
            path: "day=2024-01-01/hour=oops/f 1#.json".into(),
            size: 42,
            mtime_ms: 1_000,
        };
        let out = cols.complete(&full, &file, data).unwrap();
        let text = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(&out))
            .unwrap()
            .to_string();
        assert!(text.contains("| 1 | 2024-01-01 |      |"), "{text}");
        let meta = out.column(3).as_struct();
        assert_eq!(
            meta.column(0).as_string::<i32>().value(0),
            "file:///land/day=2024-01-01/hour=oops/f%201%23.json"
        );
        assert_eq!(meta.column(1).as_string::<i32>().value(1), "f 1#.json");
    }
}
