//! Parquet files, read whole and projected by column name onto the source schema.

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::ddl::timestamp_type;
use crate::source::SourceError;

pub(super) fn decode(spec: &DecodeSpec, path: &str, data: Bytes) -> Result<Decoded, SourceError> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?;
        batches.push(project(&batch, &spec.schema)?);
    }
    Ok(Decoded {
        batches,
        malformed: 0,
    })
}

fn project(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, SourceError> {
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => cast(c, f.data_type()).map_err(SourceError::Arrow),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(target.clone(), columns).map_err(SourceError::Arrow)
}

/// The schema of a Parquet file, with types mapped to what Delta stores.
pub fn file_schema(path: &str, data: Bytes) -> Result<SchemaRef, SourceError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(data)
        .map_err(|e| SourceError::Unreadable(format!("{path}: {e}")))?;
    let fields: Vec<_> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let dt = match f.data_type() {
                DataType::Timestamp(
                    TimeUnit::Nanosecond | TimeUnit::Millisecond | TimeUnit::Second,
                    _,
                )
                | DataType::Timestamp(TimeUnit::Microsecond, _) => timestamp_type(),
                DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
                other => other.clone(),
            };
            f.as_ref().clone().with_data_type(dt).with_nullable(true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}
