//! TIMESTAMP columns: JSON integers are epoch seconds (Spark), strings are ISO-8601 or follow
//! `timestampFormat`. Decoders read timestamps in the unit the file uses, then scale to
//! Delta's microseconds with one vectorised cast.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime};

use crate::source::SourceError;

/// How a file spells its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampSpelling {
    /// JSON numbers: epoch seconds.
    EpochSeconds,
    /// ISO-8601 strings.
    Iso,
    /// Strings in the user's `timestampFormat`.
    Custom,
}

/// The schema a parser should fill for a target schema, given the spelling of timestamps.
pub fn parse_schema(target: &SchemaRef, spelling: TimestampSpelling) -> SchemaRef {
    let fields: Vec<Field> = target
        .fields()
        .iter()
        .map(|f| match (f.data_type(), spelling) {
            (DataType::Timestamp(_, tz), TimestampSpelling::EpochSeconds) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(TimeUnit::Second, tz.clone())),
            (DataType::Timestamp(_, _), TimestampSpelling::Custom) => {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Convert a batch decoded with [`parse_schema`] to the target schema.
pub fn to_target(
    batch: RecordBatch,
    target: &SchemaRef,
    format: Option<&str>,
) -> Result<RecordBatch, SourceError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(target.fields()) {
        if column.data_type() == field.data_type() {
            columns.push(column.clone());
        } else if let (DataType::Utf8, Some(fmt)) = (column.data_type(), format) {
            columns.push(parse_with_format(column, fmt, field.data_type())?);
        } else {
            columns.push(cast(column, field.data_type())?);
        }
    }
    RecordBatch::try_new(target.clone(), columns).map_err(SourceError::Arrow)
}

fn parse_with_format(
    column: &ArrayRef,
    format: &str,
    target: &DataType,
) -> Result<ArrayRef, SourceError> {
    let strings = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| SourceError::InvalidOption("timestampFormat needs string values".into()))?;
    let chrono_fmt = to_chrono_format(format);
    let values: Vec<Option<i64>> = strings
        .iter()
        .map(|v| v.and_then(|s| parse_one(s, &chrono_fmt)))
        .collect();
    let tz = match target {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    Ok(Arc::new(
        TimestampMicrosecondArray::from(values).with_timezone_opt(tz),
    ))
}

fn parse_one(s: &str, fmt: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
        return Some(dt.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(s, fmt)
        .ok()
        .map(|dt| dt.and_utc().timestamp_micros())
}

/// Translate Spark's datetime pattern letters (`yyyy-MM-dd HH:mm:ss.SSS`) to chrono's.
/// A pattern that already uses `%` is taken as chrono's own.
pub fn to_chrono_format(pattern: &str) -> String {
    if pattern.contains('%') {
        return pattern.to_string();
    }
    let mut out = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut run = 1;
        while i + run < chars.len() && chars[i + run] == c {
            run += 1;
        }
        let piece = match (c, run) {
            ('y', 2) => "%y".to_string(),
            ('y', _) => "%Y".to_string(),
            ('M', _) => "%m".to_string(),
            ('d', _) => "%d".to_string(),
            ('H', _) => "%H".to_string(),
            ('h', _) => "%I".to_string(),
            ('m', _) => "%M".to_string(),
            ('s', _) => "%S".to_string(),
            ('S', n) => format!("%{n}f"),
            ('a', _) => "%p".to_string(),
            ('X', 1) | ('x', 1) | ('Z', _) => "%z".to_string(),
            ('X', _) | ('x', _) => "%:z".to_string(),
            (other, n) => other.to_string().repeat(n),
        };
        out.push_str(&piece);
        i += run;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_patterns_become_chrono() {
        assert_eq!(to_chrono_format("yyyy-MM-dd HH:mm:ss"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(
            to_chrono_format("yyyy-MM-dd'T'HH:mm:ss.SSSXXX"),
            "%Y-%m-%dT%H:%M:%S.%3f%:z"
        );
        assert_eq!(to_chrono_format("%d/%m/%Y"), "%d/%m/%Y");
    }

    #[test]
    fn parses_custom_formats_to_micros() {
        assert_eq!(
            parse_one(
                "2016-07-26 02:45:07",
                &to_chrono_format("yyyy-MM-dd HH:mm:ss")
            ),
            Some(1_469_501_107_000_000)
        );
        assert_eq!(parse_one("nope", "%Y"), None);
    }
}
