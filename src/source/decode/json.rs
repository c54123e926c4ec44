//! JSON lines. The fast path decodes the whole file with arrow-json in large batches; only a
//! file that fails is decoded again line by line, so that parse modes can act on single records.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_json::reader::{infer_json_schema, Decoder, ReaderBuilder};

use super::flat_json;
use super::timestamps::{self, TimestampSpelling};
use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::options::ParseMode;
use crate::source::SourceError;

pub(super) fn decode(spec: &DecodeSpec, path: &str, data: &[u8]) -> Result<Decoded, SourceError> {
    let parsed = spec.parsed_schema();
    let spelling = timestamp_spelling(spec, &parsed, data);
    let parse_schema = timestamps::parse_schema(&parsed, spelling);
    let format = spec.options.timestamp_format.as_deref();
    let fast = flat_json::decode(&parse_schema, data).map(Ok);
    match fast.unwrap_or_else(|| decode_fast(&parse_schema, data)) {
        Ok(batches) => {
            let mut out = Vec::with_capacity(batches.len());
            for b in batches {
                let b = timestamps::to_target(b, &parsed, format)?;
                out.push(spec.with_corrupt_column(b, None)?);
            }
            Ok(Decoded {
                batches: out,
                malformed: 0,
            })
        }
        Err(_) => decode_by_line(spec, path, data, &parse_schema, &parsed),
    }
}

fn builder(schema: &SchemaRef) -> ReaderBuilder {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_coerce_primitive(true)
}

fn decode_fast(
    schema: &SchemaRef,
    data: &[u8],
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut decoder = builder(schema).build_decoder()?;
    let mut batches = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let consumed = decoder.decode(rest)?;
        rest = &rest[consumed..];
        if let Some(batch) = decoder.flush()? {
            batches.push(batch);
        }
    }
    if let Some(batch) = decoder.flush()? {
        batches.push(batch);
    }
    Ok(batches)
}

/// Decode a single record with a decoder; on error the decoder must be rebuilt.
fn decode_one(
    decoder: &mut Decoder,
    line: &[u8],
) -> Result<Option<RecordBatch>, arrow::error::ArrowError> {
    decoder.decode(line)?;
    if decoder.has_partial_record() {
        return Err(arrow::error::ArrowError::JsonError(
            "incomplete record".into(),
        ));
    }
    decoder.flush()
}

fn decode_by_line(
    spec: &DecodeSpec,
    path: &str,
    data: &[u8],
    parse_schema: &SchemaRef,
    parsed: &SchemaRef,
) -> Result<Decoded, SourceError> {
    let format = spec.options.timestamp_format.as_deref();
    let mut strict = builder(parse_schema).build_decoder()?;
    let mut rows: Vec<RecordBatch> = Vec::new();
    let mut corrupt: Vec<Option<String>> = Vec::new();
    let mut malformed = 0usize;
    for (index, raw) in data.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match decode_one(&mut strict, line) {
            Ok(Some(row)) => {
                rows.push(row);
                corrupt.push(None);
                continue;
            }
            Ok(None) => continue,
            Err(err) => {
                strict = builder(parse_schema).build_decoder()?;
                malformed += 1;
                match spec.options.mode {
                    ParseMode::FailFast => return Err(spec.malformed(path, index + 1, err)),
                    ParseMode::DropMalformed => continue,
                    ParseMode::Permissive => {
                        rows.push(salvage(parse_schema, line)?);
                        corrupt.push(Some(String::from_utf8_lossy(line).into_owned()));
                    }
                }
            }
        }
    }
    let mut batches = Vec::new();
    if !rows.is_empty() {
        let all = concat_batches(parse_schema, &rows)?;
        let all = timestamps::to_target(all, parsed, format)?;
        let corrupt = spec.corrupt_index().map(|_| corrupt);
        batches.push(spec.with_corrupt_column(all, corrupt)?);
    }
    Ok(Decoded { batches, malformed })
}

/// PERMISSIVE: keep the fields that fit the schema, null the rest (all null when the line is
/// not a JSON object at all).
fn salvage(schema: &SchemaRef, line: &[u8]) -> Result<RecordBatch, SourceError> {
    let mut lenient = builder(schema)
        .with_ignore_type_conflicts(true)
        .build_decoder()?;
    if let Ok(Some(row)) = decode_one(&mut lenient, line) {
        return Ok(row);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), 1))
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Look at the first record: does it spell timestamps as numbers or strings?
fn timestamp_spelling(spec: &DecodeSpec, schema: &Schema, data: &[u8]) -> TimestampSpelling {
    if spec.options.timestamp_format.is_some() {
        return TimestampSpelling::Custom;
    }
    let ts_columns: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)))
        .map(|f| f.name().as_str())
        .collect();
    if ts_columns.is_empty() {
        return TimestampSpelling::EpochSeconds;
    }
    for line in data.split(|b| *b == b'\n').take(100) {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(line)
        else {
            continue;
        };
        for name in &ts_columns {
            match map.get(*name) {
                Some(serde_json::Value::String(_)) => return TimestampSpelling::Iso,
                Some(serde_json::Value::Number(_)) => return TimestampSpelling::EpochSeconds,
                _ => {}
            }
        }
    }
    TimestampSpelling::EpochSeconds
}

/// Infer a schema from sample files, as Spark does: numbers become BIGINT or DOUBLE, strings
/// STRING, nested values are not supported (give a schema instead).
pub fn infer_schema(samples: &[(String, Vec<u8>)]) -> Result<SchemaRef, SourceError> {
    let mut merged: Option<Schema> = None;
    for (path, data) in samples {
        let (schema, _) = infer_json_schema(Cursor::new(data), Some(10_000)).map_err(|e| {
            SourceError::Inference(format!("cannot infer a schema from {path}: {e}"))
        })?;
        merged = Some(match merged {
            None => schema,
            Some(prev) => Schema::try_merge([prev, schema]).map_err(|e| {
                SourceError::Inference(format!("files disagree on column types ({e})"))
            })?,
        });
    }
    let schema = merged.unwrap_or_else(Schema::empty);
    let mut fields = Vec::new();
    for f in schema.fields() {
        let dt = match f.data_type() {
            DataType::Int64 | DataType::Float64 | DataType::Utf8 | DataType::Boolean => {
                f.data_type().clone()
            }
            DataType::Null => DataType::Utf8,
            other => {
                return Err(SourceError::Inference(format!(
                "column `{}` holds {other} values, which inference does not support; pass --schema",
                f.name()
            )))
            }
        };
        fields.push(f.as_ref().clone().with_data_type(dt).with_nullable(true));
    }
    fields.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(Arc::new(Schema::new(fields)))
}
