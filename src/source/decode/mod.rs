//! Turning the bytes of one source file into Arrow record batches of the source schema.
//!
//! Every format shares the same contract: whole file in, batches of exactly the target schema
//! out, malformed records handled by the parse mode (Spark's PERMISSIVE / DROPMALFORMED /
//! FAILFAST). Decoding is CPU work and runs on a blocking thread, one file per thread.

mod collector;
mod csv;
mod fast_json;
mod json;
mod lenient;
mod parquet;
mod text;
mod timestamps;

use std::sync::Arc;

use arrow::array::{new_null_array, ArrayRef, StringArray};
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;

use super::options::{Format, ParseMode, SourceOptions};
use super::SourceError;

pub use self::csv::infer_schema as infer_csv_schema;
pub use self::parquet::file_schema as parquet_schema;
pub use json::infer_schema as infer_json_schema;

/// Rows per decoded batch.
pub const BATCH_ROWS: usize = 64 * 1024;

/// What one file decoded into.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Batches of the target schema.
    pub batches: Vec<RecordBatch>,
    /// Malformed records dropped (DROPMALFORMED) or kept with a corrupt-record value (PERMISSIVE).
    pub malformed: usize,
}

/// Decoding parameters shared by all files of a source.
#[derive(Debug, Clone)]
pub struct DecodeSpec {
    /// The source schema (what the query sees), including any corrupt-record column.
    pub schema: SchemaRef,
    /// The file format.
    pub format: Format,
    /// Source options.
    pub options: SourceOptions,
    /// Every column of the files, when `schema` holds only those the query reads: CSV finds a
    /// value by its position among these. `None`: `schema` is every column.
    pub file_schema: Option<SchemaRef>,
}

impl DecodeSpec {
    /// The corrupt-record column's index, when PERMISSIVE mode fills one.
    fn corrupt_index(&self) -> Option<usize> {
        if self.options.mode != ParseMode::Permissive {
            return None;
        }
        self.schema
            .index_of(&self.options.corrupt_column)
            .ok()
            .filter(|i| self.schema.field(*i).data_type() == &DataType::Utf8)
    }

    /// The text formats of times (`timestampFormat`, `dateFormat`).
    fn formats(&self) -> timestamps::Formats<'_> {
        timestamps::Formats {
            timestamp: self.options.timestamp_format.as_deref(),
            date: self.options.date_format.as_deref(),
            timestamp_ntz: self.options.timestamp_ntz_format.as_deref(),
        }
    }

    /// The schema the parser fills: the source schema less the corrupt-record column.
    fn parsed_schema(&self) -> SchemaRef {
        match self.corrupt_index() {
            None => self.schema.clone(),
            Some(i) => {
                let mut fields: Vec<_> = self.schema.fields().iter().cloned().collect();
                fields.remove(i);
                Arc::new(Schema::new(fields))
            }
        }
    }

    /// Decode one whole file.
    pub fn decode(&self, path: &str, data: Bytes) -> Result<Decoded, SourceError> {
        self.decode_part(path, data, 1, true)
    }

    /// Decode one part of a file (see [`crate::source::chunks`]): its bytes, the file's line
    /// number of its first line, and whether it is the file's first part (CSV headers).
    pub fn decode_part(
        &self,
        path: &str,
        data: Bytes,
        first_line: usize,
        first: bool,
    ) -> Result<Decoded, SourceError> {
        match self.format {
            Format::Json => json::decode(self, path, &data, first_line),
            Format::Csv => csv::decode(self, path, &data, first_line, first),
            Format::Parquet => parquet::decode(self, path, data),
            Format::Text => text::decode(self, path, &data),
        }
    }

    /// Put the corrupt-record column (if any) back into batches of the parsed schema.
    fn with_corrupt_column(
        &self,
        parsed: RecordBatch,
        corrupt: Option<Vec<Option<String>>>,
    ) -> Result<RecordBatch, SourceError> {
        let Some(index) = self.corrupt_index() else {
            return Ok(parsed);
        };
        let rows = parsed.num_rows();
        let column: ArrayRef = match corrupt {
            Some(values) => Arc::new(StringArray::from(values)),
            None => new_null_array(&DataType::Utf8, rows),
        };
        let mut columns = parsed.columns().to_vec();
        columns.insert(index, column);
        RecordBatch::try_new(self.schema.clone(), columns).map_err(SourceError::Arrow)
    }

    /// The error FAILFAST raises for a record.
    fn malformed(&self, path: &str, line: usize, reason: impl std::fmt::Display) -> SourceError {
        SourceError::Malformed {
            path: path.to_string(),
            line,
            reason: reason
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        }
    }
}
