//! CSV in one pass, as Spark's CSV source reads it: csv-core splits each record into fields,
//! the fields the query reads (found by their position in the file's schema, whatever columns
//! are pruned) are gathered as text, and each column is converted to its type at once.
//!
//! ```text
//!   bytes ─► records (csv-core) ─► text columns of the read fields ─► typed columns
//!                                   + per record: field count, raw text     │
//!                                                        malformed? ◄──────┘ (a value that
//!                                                                            did not convert)
//! ```
//!
//! A record is malformed when its field count differs from the schema's or a value does not
//! convert (Spark's `UnivocityParser`): PERMISSIVE keeps the values that converted and puts the
//! record's text in the corrupt-record column, DROPMALFORMED drops the row, FAILFAST stops at it.
//! An empty field is NULL (Spark's `nullValue`); blank lines are skipped.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, StringBuilder};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_csv::reader::Format as CsvFormat;

use super::timestamps;
use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::ddl::timestamp_type;
use crate::source::options::{ParseMode, SourceOptions};
use crate::source::SourceError;

/// One record's place in the part: its line, where its text starts and ends, and how many
/// fields it had.
struct Record {
    line: usize,
    start: usize,
    end: usize,
    fields: usize,
}

/// Where each parsed column's values are in a record, and how many fields a record has.
fn positions(spec: &DecodeSpec, parsed: &SchemaRef) -> Result<(Vec<usize>, usize), SourceError> {
    let corrupt = spec
        .corrupt_index()
        .map(|i| spec.schema.field(i).name().clone());
    let all = spec.file_schema.as_ref().unwrap_or(&spec.schema);
    let in_file: Vec<&str> = all
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|n| Some(*n) != corrupt.as_deref())
        .collect();
    let at = parsed
        .fields()
        .iter()
        .map(|f| {
            in_file.iter().position(|n| n == f.name()).ok_or_else(|| {
                SourceError::InvalidSchema(format!(
                    "CSV column `{}` is not in the schema",
                    f.name()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((at, in_file.len()))
}

pub(super) fn decode(
    spec: &DecodeSpec,
    path: &str,
    data: &[u8],
    first_line: usize,
    first: bool,
) -> Result<Decoded, SourceError> {
    let parsed = spec.parsed_schema();
    let (at, width) = positions(spec, &parsed)?;
    let utf8 = simdutf8::basic::from_utf8(data).is_ok();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(spec.options.sep)
        .from_reader(data);
    let mut record = csv::ByteRecord::new();
    let mut part = Part::new(parsed.fields().len());
    let mut out = Decoded::default();
    // Only a file's first part starts with its header.
    let mut skip_header = spec.options.header && first;
    loop {
        let more = reader.read_byte_record(&mut record).map_err(|e| {
            spec.malformed(
                path,
                first_line + e.position().map_or(0, |p| p.line() as usize - 1),
                &e,
            )
        })?;
        if !more {
            break;
        }
        if std::mem::take(&mut skip_header) {
            continue;
        }
        let (line, start) = record
            .position()
            .map_or((0, 0), |p| (p.line() as usize, p.byte() as usize));
        for (builder, i) in part.texts.iter_mut().zip(&at) {
            match record.get(*i).filter(|v| !v.is_empty()) {
                None => builder.append_null(),
                Some(v) if utf8 => builder.append_value(
                    // Whole-part UTF-8 was checked, and fields split at ASCII bytes.
                    std::str::from_utf8(v).unwrap_or_default(),
                ),
                Some(v) => builder.append_value(String::from_utf8_lossy(v)),
            }
        }
        part.records.push(Record {
            line: first_line + line.saturating_sub(1),
            start,
            end: reader.position().byte() as usize,
            fields: record.len(),
        });
        if part.records.len() == BATCH_ROWS {
            part.emit(spec, &parsed, path, data, width, &mut out)?;
        }
    }
    part.emit(spec, &parsed, path, data, width, &mut out)?;
    Ok(out)
}

/// The records of a part gathered so far (at most [`BATCH_ROWS`]).
struct Part {
    texts: Vec<StringBuilder>,
    records: Vec<Record>,
}

impl Part {
    fn new(columns: usize) -> Self {
        Part {
            texts: (0..columns).map(|_| StringBuilder::new()).collect(),
            records: Vec::with_capacity(BATCH_ROWS),
        }
    }

    /// Convert the gathered records into a batch of the source schema, as the parse mode says.
    fn emit(
        &mut self,
        spec: &DecodeSpec,
        parsed: &SchemaRef,
        path: &str,
        data: &[u8],
        width: usize,
        out: &mut Decoded,
    ) -> Result<(), SourceError> {
        let records = std::mem::take(&mut self.records);
        if records.is_empty() {
            return Ok(());
        }
        // Why each record is malformed, if it is.
        let mut bad: Vec<Option<String>> = records
            .iter()
            .map(|r| {
                (r.fields != width)
                    .then(|| format!("{} fields where the schema has {width}", r.fields))
            })
            .collect();
        let mut columns = Vec::with_capacity(self.texts.len());
        for (builder, field) in self.texts.iter_mut().zip(parsed.fields()) {
            let text = builder.finish();
            let typed = convert(&text, field, spec)?;
            if typed.null_count() != text.null_count() {
                for (i, why) in bad.iter_mut().enumerate() {
                    if why.is_none() && text.is_valid(i) && typed.is_null(i) {
                        *why = Some(format!(
                            "`{}` is not a {} (column `{}`)",
                            text.value(i),
                            spark_name(field.data_type()),
                            field.name()
                        ));
                    }
                }
            }
            columns.push(typed);
        }
        let batch = RecordBatch::try_new(parsed.clone(), columns)?;
        let malformed = bad.iter().filter(|b| b.is_some()).count();
        out.malformed += malformed;
        if malformed == 0 {
            out.batches.push(spec.with_corrupt_column(batch, None)?);
            return Ok(());
        }
        match spec.options.mode {
            ParseMode::FailFast => {
                let (record, why) = records
                    .iter()
                    .zip(&bad)
                    .find_map(|(r, b)| b.as_ref().map(|b| (r, b)))
                    .ok_or_else(|| SourceError::InvalidSchema("no malformed record".into()))?;
                Err(spec.malformed(path, record.line, why))
            }
            ParseMode::DropMalformed => {
                let keep: BooleanArray = bad.iter().map(|b| Some(b.is_none())).collect();
                let kept = filter_record_batch(&batch, &keep)?;
                if kept.num_rows() > 0 {
                    out.batches.push(spec.with_corrupt_column(kept, None)?);
                }
                Ok(())
            }
            ParseMode::Permissive => {
                let texts = records
                    .iter()
                    .zip(&bad)
                    .map(|(r, b)| {
                        b.as_ref().map(|_| {
                            let raw = &data[r.start.min(data.len())..r.end.min(data.len())];
                            let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
                            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
                            String::from_utf8_lossy(raw).into_owned()
                        })
                    })
                    .collect();
                out.batches
                    .push(spec.with_corrupt_column(batch, Some(texts))?);
                Ok(())
            }
        }
    }
}

/// A column of text converted to `field`'s type; a value that does not convert is NULL.
fn convert(text: &StringArray, field: &Field, spec: &DecodeSpec) -> Result<ArrayRef, SourceError> {
    match field.data_type() {
        DataType::Utf8 if !crate::source::ddl::is_ntz(field) => Ok(Arc::new(text.clone())),
        // Spark reads `true` and `false`, in any case, and nothing else.
        DataType::Boolean => Ok(Arc::new(
            text.iter()
                .map(|v| {
                    v.and_then(|v| {
                        if v.eq_ignore_ascii_case("true") {
                            Some(true)
                        } else if v.eq_ignore_ascii_case("false") {
                            Some(false)
                        } else {
                            None
                        }
                    })
                })
                .collect::<BooleanArray>(),
        )),
        _ => {
            let source = Arc::new(Schema::new(vec![Field::new(
                field.name(),
                DataType::Utf8,
                true,
            )]));
            let batch = RecordBatch::try_new(source, vec![Arc::new(text.clone())])?;
            let target = Arc::new(Schema::new(vec![field.clone()]));
            let typed = timestamps::to_target(batch, &target, spec.formats())?;
            Ok(typed.column(0).clone())
        }
    }
}

/// A type as Spark names it, for messages.
fn spark_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(..) => "TIMESTAMP".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        other => other.to_string(),
    }
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
            file_schema: None,
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
