//! JSON lines. The fast path decodes the whole file with arrow-json in large batches; only a
//! file that fails is decoded again line by line, so that parse modes can act on single records.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::new_null_array;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_json::reader::{infer_json_schema, Decoder, ReaderBuilder};

use super::collector::Collector;
use super::flat_json;
use super::timestamps::{self, TimestampSpelling};
use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::options::ParseMode;
use crate::source::SourceError;

pub(super) fn decode(
    spec: &DecodeSpec,
    path: &str,
    data: &[u8],
    first_line: usize,
) -> Result<Decoded, SourceError> {
    let parsed = spec.parsed_schema();
    let spelling = timestamp_spelling(spec, &parsed, data);
    let format = spec.options.timestamp_format.as_deref();
    // TIMESTAMP columns are read as text (numbers are epoch seconds, strings ISO-8601 or
    // `timestampFormat`), except by the flat fast path over a file of epoch-second numbers,
    // which reads them as seconds straight away.
    let text_schema = timestamps::parse_schema(
        &parsed,
        match spelling {
            TimestampSpelling::Custom => TimestampSpelling::Custom,
            _ => TimestampSpelling::Text,
        },
    );
    let seconds_schema = timestamps::parse_schema(&parsed, TimestampSpelling::EpochSeconds);
    let seconds = (spelling == TimestampSpelling::EpochSeconds && seconds_schema != text_schema)
        .then(|| flat_json::decode(&seconds_schema, data))
        .flatten();
    let decoded = match seconds {
        Some(batches) => Ok(batches),
        None => flat_json::decode(&text_schema, data)
            .map(Ok)
            .unwrap_or_else(|| decode_fast(&text_schema, data)),
    };
    // A text time that is not a time makes its record malformed: the per-record path decides.
    let converted = decoded.ok().and_then(|batches| {
        batches
            .into_iter()
            .map(|b| timestamps::to_target_strict(b, &parsed, format).ok())
            .collect::<Option<Vec<_>>>()
    });
    match converted {
        Some(batches) => Ok(Decoded {
            batches: batches
                .into_iter()
                .map(|b| spec.with_corrupt_column(b, None))
                .collect::<Result<_, _>>()?,
            malformed: 0,
        }),
        None => decode_by_line(spec, (path, first_line), data, &text_schema, &parsed),
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

/// The per-record path, for a file the fast path refused: each line is tried alone (a probe
/// decoder, whose one-row result is dropped), and good lines go on into one decoder that
/// accumulates them, so rows come out in batches of up to [`BATCH_ROWS`] — never a batch per
/// line — and memory stays what the file's rows take, however many lines are bad.
fn decode_by_line(
    spec: &DecodeSpec,
    (path, first_line): (&str, usize),
    data: &[u8],
    parse_schema: &SchemaRef,
    parsed: &SchemaRef,
) -> Result<Decoded, SourceError> {
    let mut probe = builder(parse_schema).build_decoder()?;
    let mut good = builder(parse_schema).build_decoder()?;
    let mut out = Collector::new(spec, parse_schema, parsed);
    let mut buffered = 0usize;
    let mut malformed = 0usize;
    let format = spec.options.timestamp_format.as_deref();
    for (index, raw) in data.split(|b| *b == b'\n').enumerate() {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if line.len() >= MAX_RECORD_BYTES {
            return Err(SourceError::Unreadable(format!(
                "{path} line {}: a record of {} bytes is larger than a value can hold (2 GiB); split the record",
                index + first_line,
                line.len()
            )));
        }
        let probed = decode_one(&mut probe, line).and_then(|row| match row {
            // A time that is not a time makes the record malformed.
            Some(row) => timestamps::to_target_strict(row, parsed, format)
                .map(Some)
                .map_err(|e| arrow::error::ArrowError::JsonError(e.to_string())),
            None => Ok(None),
        });
        match probed {
            Ok(Some(_)) => {
                good.decode(line)?;
                good.decode(b"\n")?;
                buffered += 1;
                out.note_good();
                if buffered >= BATCH_ROWS {
                    out.push_rows(good.flush()?)?;
                    buffered = 0;
                }
            }
            Ok(None) => {}
            Err(err) => {
                probe = builder(parse_schema).build_decoder()?;
                malformed += 1;
                match spec.options.mode {
                    ParseMode::FailFast => {
                        return Err(spec.malformed(path, index + first_line, err))
                    }
                    ParseMode::DropMalformed => {}
                    ParseMode::Permissive => {
                        // Rows keep their order: the good ones so far, then this one.
                        out.push_rows(good.flush()?)?;
                        buffered = 0;
                        out.push_corrupt(salvage(parse_schema, line)?, line)?;
                    }
                }
            }
        }
    }
    out.push_rows(good.flush()?)?;
    Ok(Decoded {
        batches: out.finish()?,
        malformed,
    })
}

/// A record at least this long cannot be a string value (Arrow's 32-bit offsets).
const MAX_RECORD_BYTES: usize = i32::MAX as usize;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::options::{Format, SourceOptions};
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type};

    /// Regression: one bad line sent the file down a path that built one record batch per line
    /// and concatenated them all. Rows now come in batches of at most BATCH_ROWS, in order,
    /// with the bad line's text in the corrupt-record column.
    #[test]
    fn one_bad_line_in_a_large_file_keeps_batches_bounded() {
        let rows = 3 * BATCH_ROWS + 17;
        let bad = 100_000;
        let mut data = Vec::new();
        for i in 0..rows {
            if i == bad {
                data.extend_from_slice(b"{\"v\": not json}\n");
            } else {
                data.extend_from_slice(format!("{{\"v\":{i}}}\n").as_bytes());
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("v", DataType::Int64, true),
            Field::new("_corrupt_record", DataType::Utf8, true),
        ]));
        let spec = DecodeSpec {
            schema,
            format: Format::Json,
            options: SourceOptions::default(),
        };
        let decoded = decode(&spec, "big.json", &data, 1).unwrap();
        assert_eq!(decoded.malformed, 1);
        assert!(decoded.batches.iter().all(|b| b.num_rows() <= BATCH_ROWS));
        assert!(
            decoded.batches.len() <= rows / BATCH_ROWS + 3,
            "{}",
            decoded.batches.len()
        );
        let mut values = Vec::new();
        let mut corrupt = Vec::new();
        for b in &decoded.batches {
            values.extend(b.column(0).as_primitive::<Int64Type>().iter());
            corrupt.extend(
                b.column(1)
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(str::to_string)),
            );
        }
        let want: Int64Array = (0..rows).map(|i| (i != bad).then_some(i as i64)).collect();
        assert_eq!(values, want.iter().collect::<Vec<_>>());
        assert_eq!(corrupt.iter().flatten().count(), 1);
        assert_eq!(corrupt[bad].as_deref(), Some("{\"v\": not json}"));
    }
}
