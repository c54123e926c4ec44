//! CSV with an optional header and a chosen separator. Like JSON, a file that fails the fast
//! path is decoded again record by record so that parse modes can act on single rows.

use std::io::Cursor;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_csv::reader::{Format as CsvFormat, ReaderBuilder};

use super::collector::Collector;
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
    let parse_schema = timestamps::parse_schema(&parsed, spelling, spec.formats());
    let format = spec.formats();
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
    let mut out = Collector::new(spec, &parse_schema, &parsed);
    let mut malformed = 0usize;
    for (index, raw) in data.split(|b| *b == b'\n').enumerate() {
        if index == 0 && header {
            continue;
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
                    out.push_good(b)?;
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
                        let row = RecordBatch::try_new(parse_schema.clone(), nulls)?;
                        out.push_corrupt(row, line)?;
                    }
                }
            }
        }
    }
    Ok(Decoded {
        batches: out.finish()?,
        malformed,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::options::Format;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int32Type;

    /// The per-record path, as a file with one malformed record takes it: rows in order, the
    /// bad one kept with nulls and its text (PERMISSIVE). (Its batches are bounded by the shared
    /// collector, whose bound the JSON test checks: a file past 64 Ki rows is slow here, one CSV
    /// reader per record.)
    #[test]
    fn a_malformed_record_keeps_every_row_in_order() {
        let rows = 300;
        let bad = 200;
        let mut data = String::from("id,note\n");
        for i in 0..rows {
            if i == bad {
                data.push_str("not a number,x\n");
            } else {
                data.push_str(&format!("{i},n{i}\n"));
            }
        }
        let options = SourceOptions {
            header: true,
            ..Default::default()
        };
        let spec = DecodeSpec {
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int32, true),
                Field::new("note", DataType::Utf8, true),
                Field::new("_corrupt_record", DataType::Utf8, true),
            ])),
            format: Format::Csv,
            options,
        };
        let decoded = decode(&spec, "a.csv", data.as_bytes(), 1, true).unwrap();
        assert_eq!(decoded.malformed, 1);
        assert!(decoded.batches.iter().all(|b| b.num_rows() <= BATCH_ROWS));
        let mut ids = Vec::new();
        let mut corrupt = Vec::new();
        for b in &decoded.batches {
            ids.extend(b.column(0).as_primitive::<Int32Type>().iter());
            let texts = b.column(2).as_string::<i32>();
            corrupt.extend((0..texts.len()).map(|i| texts.is_valid(i)));
        }
        let want: Vec<Option<i32>> = (0..rows as i32)
            .map(|i| (i as usize != bad).then_some(i))
            .collect();
        assert_eq!(ids, want);
        assert_eq!(corrupt.iter().filter(|c| **c).count(), 1);
        assert!(corrupt[bad]);
    }
}
