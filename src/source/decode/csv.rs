//! CSV with an optional header and a chosen separator. Like JSON, a file that fails the fast
//! path is decoded again record by record so that parse modes can act on single rows.

use std::io::Cursor;
use std::sync::Arc;

use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_csv::reader::{Format as CsvFormat, ReaderBuilder};

use super::timestamps::{self, TimestampSpelling};
use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::ddl::timestamp_type;
use crate::source::options::{ParseMode, SourceOptions};
use crate::source::SourceError;

fn builder(schema: &SchemaRef, options: &SourceOptions, header: bool) -> ReaderBuilder {
    ReaderBuilder::new(schema.clone())
        .with_header(header)
        .with_delimiter(options.sep)
        .with_batch_size(BATCH_ROWS)
}

pub(super) fn decode(
    spec: &DecodeSpec,
    path: &str,
    data: &[u8],
    first_line: usize,
    first: bool,
) -> Result<Decoded, SourceError> {
    // Only a file's first part starts with its header.
    let header = spec.options.header && first;
    let parsed = spec.parsed_schema();
    let spelling = if spec.options.timestamp_format.is_some() {
        TimestampSpelling::Custom
    } else {
        TimestampSpelling::Iso
    };
    let parse_schema = timestamps::parse_schema(&parsed, spelling);
    let format = spec.options.timestamp_format.as_deref();
    let fast: Result<Vec<RecordBatch>, _> = builder(&parse_schema, &spec.options, header)
        .build_buffered(Cursor::new(data))
        .and_then(|reader| reader.collect());
    if let Ok(batches) = fast {
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let b = timestamps::to_target(b, &parsed, format)?;
            out.push(spec.with_corrupt_column(b, None)?);
        }
        return Ok(Decoded {
            batches: out,
            malformed: 0,
        });
    }
    // Slow path: record by record (one record per line), put into batches of at most
    // BATCH_ROWS rows as they come.
    let mut rows = Vec::new();
    let mut corrupt = Vec::new();
    let mut batches = Vec::new();
    let mut malformed = 0usize;
    for (index, raw) in data.split(|b| *b == b'\n').enumerate() {
        if index == 0 && header {
            continue;
        }
        if rows.len() >= BATCH_ROWS {
            flush_rows(
                spec,
                (&parse_schema, &parsed),
                &mut rows,
                &mut corrupt,
                &mut batches,
            )?;
        }
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        let one: Result<Vec<RecordBatch>, _> = builder(&parse_schema, &spec.options, false)
            .build_buffered(Cursor::new(line))
            .and_then(|reader| reader.collect());
        match one {
            Ok(batches) => {
                for b in batches {
                    corrupt.extend(std::iter::repeat_n(None, b.num_rows()));
                    rows.push(b);
                }
            }
            Err(err) => {
                malformed += 1;
                match spec.options.mode {
                    ParseMode::FailFast => {
                        return Err(spec.malformed(path, index + first_line, err))
                    }
                    ParseMode::DropMalformed => {}
                    ParseMode::Permissive => {
                        let nulls = parse_schema
                            .fields()
                            .iter()
                            .map(|f| arrow::array::new_null_array(f.data_type(), 1))
                            .collect();
                        rows.push(RecordBatch::try_new(parse_schema.clone(), nulls)?);
                        corrupt.push(Some(String::from_utf8_lossy(line).into_owned()));
                    }
                }
            }
        }
    }
    flush_rows(
        spec,
        (&parse_schema, &parsed),
        &mut rows,
        &mut corrupt,
        &mut batches,
    )?;
    Ok(Decoded { batches, malformed })
}

/// Put the rows decoded one by one so far (if any) into one batch of the source schema.
fn flush_rows(
    spec: &DecodeSpec,
    (parse_schema, parsed): (&SchemaRef, &SchemaRef),
    rows: &mut Vec<RecordBatch>,
    corrupt: &mut Vec<Option<String>>,
    batches: &mut Vec<RecordBatch>,
) -> Result<(), SourceError> {
    if rows.is_empty() {
        return Ok(());
    }
    let format = spec.options.timestamp_format.as_deref();
    let all = concat_batches(parse_schema, rows.iter())?;
    let all = timestamps::to_target(all, parsed, format)?;
    let texts = std::mem::take(corrupt);
    let corrupt = spec.corrupt_index().map(|_| texts);
    rows.clear();
    batches.push(spec.with_corrupt_column(all, corrupt)?);
    Ok(())
}

/// Infer a schema from sample files. Without a header, columns are `_c0`, `_c1`, ... as in Spark.
pub fn infer_schema(
    samples: &[(String, Vec<u8>)],
    options: &SourceOptions,
) -> Result<SchemaRef, SourceError> {
    let format = CsvFormat::default()
        .with_header(options.header)
        .with_delimiter(options.sep);
    let mut merged: Option<Schema> = None;
    for (path, data) in samples {
        let (schema, _) = format
            .infer_schema(Cursor::new(data), Some(10_000))
            .map_err(|e| {
                SourceError::Inference(format!("cannot infer a schema from {path}: {e}"))
            })?;
        merged = Some(match merged {
            None => schema,
            Some(prev) => Schema::try_merge([prev, schema])
                .map_err(|e| SourceError::Inference(format!("files disagree on columns ({e})")))?,
        });
    }
    let schema = merged.unwrap_or_else(Schema::empty);
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let name = if options.header {
                f.name().clone()
            } else {
                format!("_c{i}")
            };
            let dt = match f.data_type() {
                DataType::Timestamp(_, _) => timestamp_type(),
                DataType::Null => DataType::Utf8,
                other => other.clone(),
            };
            Field::new(name, dt, true)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}
