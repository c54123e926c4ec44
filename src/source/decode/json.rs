//! JSON lines. The fast path decodes the whole file with arrow-json in large batches; only a
//! file that fails is decoded again line by line, so that parse modes can act on single records.

use arrow::array::new_null_array;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_json::reader::{Decoder, ReaderBuilder};

use super::collector::Collector;
use super::fast_json;
use super::lenient;
use super::timestamps::{self, TimestampSpelling};
use super::{DecodeSpec, Decoded, BATCH_ROWS};
use crate::source::ddl;
use crate::source::infer::json::Inference;
use crate::source::options::{ParseMode, SourceOptions};
use crate::source::SourceError;

pub(super) fn decode(
    spec: &DecodeSpec,
    path: &str,
    data: &[u8],
    first_line: usize,
) -> Result<Decoded, SourceError> {
    if spec.options.json.multi_line {
        return decode_multi_line(spec, path, data);
    }
    let parsed = spec.parsed_schema();
    if let Some(decoded) = decode_whole(spec, &parsed, data)? {
        return Ok(decoded);
    }
    let text_schema = text_schema(spec, &parsed, data);
    // Refused as strict JSON lines: Spark's lenient spellings, top-level arrays, objects in
    // STRING fields (see `lenient`). Rewritten, the file may still decode at full speed.
    let mut rewritten = Vec::new();
    let record = DataType::Struct(text_schema.fields().clone());
    if lenient::rewrite(
        data,
        spec.options.json.syntax,
        Some(&record),
        &mut rewritten,
    )
    .is_ok()
    {
        if let Some(decoded) = decode_whole(spec, &parsed, &rewritten)? {
            return Ok(decoded);
        }
    }
    decode_by_line(spec, (path, first_line), data, &text_schema, &parsed)
}

/// The schema the decoder fills: TIMESTAMP columns as text (numbers are epoch seconds,
/// strings ISO-8601 or `timestampFormat`).
fn text_schema(spec: &DecodeSpec, parsed: &SchemaRef, data: &[u8]) -> SchemaRef {
    text_schema_for(spec, parsed, timestamp_spelling(spec, parsed, data))
}

fn text_schema_for(
    spec: &DecodeSpec,
    parsed: &SchemaRef,
    spelling: TimestampSpelling,
) -> SchemaRef {
    timestamps::parse_schema(
        parsed,
        match spelling {
            TimestampSpelling::Custom => TimestampSpelling::Custom,
            _ => TimestampSpelling::Text,
        },
        spec.formats(),
    )
}

/// Decode strict JSON lines at full speed; `None` when a record needs the per-record path.
fn decode_whole(
    spec: &DecodeSpec,
    parsed: &SchemaRef,
    data: &[u8],
) -> Result<Option<Decoded>, SourceError> {
    let spelling = timestamp_spelling(spec, parsed, data);
    let format = spec.formats();
    let text_schema = text_schema_for(spec, parsed, spelling);
    // The fast path over a file of epoch-second numbers reads them as seconds straight
    // away.
    let seconds_schema =
        timestamps::parse_schema(parsed, TimestampSpelling::EpochSeconds, spec.formats());
    let seconds = (spelling == TimestampSpelling::EpochSeconds && seconds_schema != text_schema)
        .then(|| fast_json::decode(&seconds_schema, data))
        .flatten();
    let decoded = match seconds {
        Some(batches) => Ok(batches),
        None => fast_json::decode(&text_schema, data)
            .map(Ok)
            .unwrap_or_else(|| decode_fast(&text_schema, data)),
    };
    // A text time that is not a time makes its record malformed: the per-record path decides.
    let converted = decoded.ok().and_then(|batches| {
        batches
            .into_iter()
            .map(|b| timestamps::to_target_strict(b, parsed, format).ok())
            .collect::<Option<Vec<_>>>()
    });
    let Some(batches) = converted else {
        return Ok(None);
    };
    Ok(Some(Decoded {
        batches: batches
            .into_iter()
            .map(|b| spec.with_corrupt_column(b, None))
            .collect::<Result<_, _>>()?,
        malformed: 0,
    }))
}

/// `multiLine`: the file is one JSON value (an array: one row per element), or several
/// whitespace-separated ones. A file that is not JSON is one malformed record: its whole text
/// goes to the corrupt-record column under PERMISSIVE, as in Spark.
fn decode_multi_line(spec: &DecodeSpec, path: &str, data: &[u8]) -> Result<Decoded, SourceError> {
    let parsed = spec.parsed_schema();
    let text_schema = text_schema(spec, &parsed, data);
    let record = DataType::Struct(text_schema.fields().clone());
    let mut lines = Vec::new();
    if let Err(reason) = lenient::rewrite(data, spec.options.json.syntax, Some(&record), &mut lines)
    {
        return match spec.options.mode {
            ParseMode::FailFast => Err(spec.malformed(path, 1, reason)),
            ParseMode::DropMalformed => Ok(Decoded {
                batches: Vec::new(),
                malformed: 1,
            }),
            ParseMode::Permissive => {
                let mut out = Collector::new(spec, &text_schema, &parsed);
                out.push_corrupt(null_row(&text_schema)?, data)?;
                Ok(Decoded {
                    batches: out.finish()?,
                    malformed: 1,
                })
            }
        };
    }
    if let Some(decoded) = decode_whole(spec, &parsed, &lines)? {
        return Ok(decoded);
    }
    decode_by_line(spec, (path, 1), &lines, &text_schema, &parsed)
}

/// Rows the Arrow JSON decoder gathers before it builds arrays. Small enough that its tape of
/// nested records stays in cache and its buffers are reused (64 Ki rows of nested events made
/// decoding about 1.5x slower on the nested benchmark).
const DECODER_ROWS: usize = 8 * 1024;

/// A decoder builder for the per-record path, which flushes it itself every [`BATCH_ROWS`].
fn builder(schema: &SchemaRef) -> ReaderBuilder {
    ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .with_coerce_primitive(true)
}

fn decode_fast(
    schema: &SchemaRef,
    data: &[u8],
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut decoder = builder(schema)
        .with_batch_size(DECODER_ROWS)
        .build_decoder()?;
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

/// Feed all of `line` to a decoder (a line may hold more records than a batch: a top-level
/// array); the batches it filled on the way come back, the rest stays in the decoder. On error
/// the decoder must be rebuilt.
fn decode_line(
    decoder: &mut Decoder,
    line: &[u8],
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut full = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        let used = decoder.decode(rest)?;
        rest = &rest[used..];
        if !rest.is_empty() {
            // The decoder holds a full batch: take it, then go on.
            match decoder.flush()? {
                Some(batch) => full.push(batch),
                None if used == 0 => {
                    return Err(arrow::error::ArrowError::JsonError(
                        "the decoder made no progress".into(),
                    ))
                }
                None => {}
            }
        }
    }
    Ok(full)
}

/// Decode one line with a decoder, all of it, into batches; on error the decoder must be
/// rebuilt.
fn decode_all(
    decoder: &mut Decoder,
    line: &[u8],
) -> Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let mut batches = decode_line(decoder, line)?;
    if decoder.has_partial_record() {
        return Err(arrow::error::ArrowError::JsonError(
            "incomplete record".into(),
        ));
    }
    batches.extend(decoder.flush()?);
    Ok(batches)
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
    let format = spec.formats();
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
        let mut probed = probe_line(&mut probe, line, parsed, format);
        let mut rewritten = Vec::new();
        if probed.is_err() {
            // Spark's lenient spellings, or an object in a STRING field: rewritten, it may fit.
            probe = builder(parse_schema).build_decoder()?;
            let record = DataType::Struct(parse_schema.fields().clone());
            if lenient::rewrite(
                line,
                spec.options.json.syntax,
                Some(&record),
                &mut rewritten,
            )
            .is_ok()
            {
                probed = probe_line(&mut probe, &rewritten, parsed, format);
            }
        }
        match probed {
            Ok(Some(rows)) => {
                let record = if rewritten.is_empty() {
                    line
                } else {
                    &rewritten
                };
                // A line of many records (a top-level array) may fill batches on the way.
                for full in decode_line(&mut good, record)? {
                    out.push_rows(Some(full))?;
                    buffered = 0;
                }
                good.decode(b"\n")?;
                buffered += rows;
                for _ in 0..rows {
                    out.note_good();
                }
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

/// Decode one line alone (it may hold several records: a top-level array); `Ok(rows)` when it
/// fits the schema.
fn probe_line(
    probe: &mut Decoder,
    line: &[u8],
    parsed: &SchemaRef,
    format: timestamps::Formats<'_>,
) -> Result<Option<usize>, arrow::error::ArrowError> {
    let mut rows = None;
    for batch in decode_all(probe, line)? {
        // A time that is not a time makes the record malformed.
        let batch = timestamps::to_target_strict(batch, parsed, format)
            .map_err(|e| arrow::error::ArrowError::JsonError(e.to_string()))?;
        rows = Some(rows.unwrap_or(0) + batch.num_rows());
    }
    Ok(rows)
}

/// A record at least this long cannot be a string value (Arrow's 32-bit offsets).
const MAX_RECORD_BYTES: usize = i32::MAX as usize;

/// PERMISSIVE: keep the fields that fit the schema, null the rest (all null when the line is
/// not a JSON object at all).
fn salvage(schema: &SchemaRef, line: &[u8]) -> Result<RecordBatch, SourceError> {
    let mut lenient = builder(schema)
        .with_ignore_type_conflicts(true)
        .build_decoder()?;
    if let Some(row) = decode_all(&mut lenient, line)
        .ok()
        .and_then(|rows| rows.into_iter().next())
    {
        return Ok(row);
    }
    null_row(schema)
}

/// One row of `schema`, every value NULL.
fn null_row(schema: &SchemaRef) -> Result<RecordBatch, SourceError> {
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
        .filter(|f| matches!(f.data_type(), DataType::Timestamp(_, _)) && !ddl::is_ntz(f))
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

/// Infer a schema from sample files with Spark's rules (see [`crate::source::infer`]). Records
/// in Spark's lenient spellings are read as the decoder reads them.
pub fn infer_schema(
    samples: &[(String, Vec<u8>)],
    options: &SourceOptions,
) -> Result<SchemaRef, SourceError> {
    let json = &options.json;
    let mut inference = Inference::new(
        json.infer,
        json.sampling_ratio,
        options.mode,
        &options.corrupt_column,
    );
    for (path, data) in samples {
        let mut rewritten = Vec::new();
        if json.multi_line {
            // The whole file is the record (or, an array, its elements are).
            match lenient::rewrite(data, json.syntax, None, &mut rewritten) {
                Ok(()) => {}
                Err(reason) => {
                    inference
                        .add(data)
                        .map_err(|_| infer_error(path, 1, &reason))?;
                    continue;
                }
            }
        }
        let lines: &[u8] = if json.multi_line { &rewritten } else { data };
        let mut record = Vec::new();
        let mut index = 0u64;
        for (number, line) in lines.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            index += 1;
            if !inference.samples(index - 1) {
                continue;
            }
            let strict = serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok();
            record.clear();
            let line = if strict || lenient::rewrite(line, json.syntax, None, &mut record).is_err()
            {
                line
            } else {
                &record
            };
            inference
                .add(line)
                .map_err(|reason| infer_error(path, number + 1, &reason))?;
        }
    }
    Ok(inference.finish())
}

fn infer_error(path: &str, line: usize, reason: &str) -> SourceError {
    SourceError::Inference(format!(
        "cannot infer a schema: malformed record in {path} line {line}: {reason}; fix the file, pass --schema, or run with --option mode=PERMISSIVE"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::options::{Format, SourceOptions};
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type};
    use std::sync::Arc;

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
            file_schema: None,
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

    fn rows_of(spec: &DecodeSpec, data: &[u8]) -> (Vec<String>, usize) {
        let decoded = decode(spec, "f.json", data, 1).unwrap();
        let mut rows = Vec::new();
        for b in &decoded.batches {
            let text = arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                .unwrap()
                .to_string();
            rows.extend(
                text.lines()
                    .skip(3)
                    .filter(|l| l.starts_with('|'))
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")),
            );
        }
        (rows, decoded.malformed)
    }

    fn spec_of(ddl: &str, pairs: &[(&str, &str)]) -> DecodeSpec {
        let raw = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DecodeSpec {
            schema: crate::source::ddl::parse_ddl(ddl).unwrap(),
            format: Format::Json,
            options: SourceOptions::from_map(&raw).unwrap(),
            file_schema: None,
        }
    }

    /// Spark reads single quotes and NaN/Infinity by default (allowSingleQuotes and
    /// allowNonNumericNumbers default to true); a whole file of them still decodes in one go.
    #[test]
    fn spark_default_spellings_are_read() {
        let spec = spec_of("a STRING, d DOUBLE", &[]);
        let data =
            b"{'a': 'x', 'd': NaN}\n{\"a\": \"y\", \"d\": -Infinity}\n{\"a\": \"z\", \"d\": 1.5}\n";
        let (rows, malformed) = rows_of(&spec, data);
        assert_eq!(malformed, 0);
        assert_eq!(rows, ["| x | NaN |", "| y | -inf |", "| z | 1.5 |"]);
        // allowSingleQuotes=false makes the first record malformed (PERMISSIVE keeps it).
        let strict = spec_of(
            "a STRING, d DOUBLE, _corrupt_record STRING",
            &[("allowSingleQuotes", "false")],
        );
        let (rows, malformed) = rows_of(&strict, data);
        assert_eq!(malformed, 1);
        assert_eq!(rows[0], "| | | {'a': 'x', 'd': NaN} |");
    }

    /// An object where the schema has a STRING is kept as its JSON text (Spark's
    /// JacksonParser), and a top-level array on a line is a row per element.
    #[test]
    fn objects_in_string_columns_and_top_level_arrays() {
        let spec = spec_of("id BIGINT, payload STRING", &[]);
        let data = b"{\"id\": 1, \"payload\": \"plain\"}\n{\"id\": 2, \"payload\": {\"k\": [1, 2]}}\n[{\"id\": 3}, {\"id\": 4, \"payload\": 5}]\n";
        let (rows, malformed) = rows_of(&spec, data);
        assert_eq!(malformed, 0);
        assert_eq!(
            rows,
            [
                "| 1 | plain |",
                "| 2 | {\"k\":[1,2]} |",
                "| 3 | |",
                "| 4 | 5 |"
            ]
        );
    }

    /// Regression: on the per-record path (a malformed line elsewhere in the file), a line
    /// holding a top-level array of more than a batch of elements kept only the first batch:
    /// the decoders stopped at a full batch and the rest of the line was dropped, silently.
    #[test]
    fn a_top_level_array_larger_than_a_batch_keeps_every_element() {
        let spec = spec_of("v BIGINT, _corrupt_record STRING", &[]);
        let n = BATCH_ROWS + 4_464;
        let items: Vec<String> = (0..n).map(|i| format!("{{'v': {i}}}")).collect();
        let data = format!("not json\n[{}]\n{{\"v\": -1}}\n", items.join(", "));
        let decoded = decode(&spec, "f.json", data.as_bytes(), 1).unwrap();
        assert_eq!(decoded.malformed, 1);
        let values: Vec<Option<i64>> = decoded
            .batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::Int64Array>()
                    .unwrap()
                    .iter()
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut want = vec![None];
        want.extend((0..n as i64).map(Some));
        want.push(Some(-1));
        assert_eq!(values.len(), want.len());
        assert_eq!(values, want);
    }

    /// multiLine: a pretty-printed document with a top-level array is a row per element; a
    /// file that is not JSON is one corrupt record holding the whole file (Spark's multiLine
    /// PERMISSIVE).
    #[test]
    fn multi_line_files() {
        let spec = spec_of("a BIGINT, _corrupt_record STRING", &[("multiLine", "true")]);
        let (rows, _) = rows_of(&spec, b"[\n  {\n    \"a\": 1\n  },\n  {\"a\": 2}\n]\n");
        assert_eq!(rows, ["| 1 | |", "| 2 | |"]);
        let decoded = decode(&spec, "f.json", b"{\n \"a\": 1,\n", 1).unwrap();
        assert_eq!(decoded.malformed, 1);
        assert_eq!(decoded.batches[0].num_rows(), 1);
        let corrupt = decoded.batches[0]
            .column(1)
            .as_string::<i32>()
            .value(0)
            .to_string();
        assert_eq!(corrupt, "{\n \"a\": 1,\n");
    }
}
