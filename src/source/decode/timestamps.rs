//! TIMESTAMP columns: JSON integers are epoch seconds (Spark), strings are ISO-8601 or follow
//! `timestampFormat`. Decoders read timestamps in the unit the file uses, then scale to
//! Delta's microseconds with one vectorised cast.
//!
//! TIMESTAMP_NTZ columns are always read as text: a local date-time in Spark's default
//! spelling or `timestampNTZFormat`; a time zone in the text, or a number, makes the value
//! unreadable (Spark's `parseWithoutTimeZone(text, allowTimeZone = false)`).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, TimestampMicrosecondArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDateTime};

use crate::source::ddl;
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
    /// Read as text, whatever a value is: numbers are epoch seconds, strings ISO-8601 (JSON
    /// files whose spelling varies, or whose first timestamp is a string).
    Text,
}

/// The text formats of a source's times (`timestampFormat`, `dateFormat`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Formats<'a> {
    /// `timestampFormat`.
    pub timestamp: Option<&'a str>,
    /// `dateFormat`.
    pub date: Option<&'a str>,
    /// `timestampNTZFormat`.
    pub timestamp_ntz: Option<&'a str>,
}

/// The schema a parser should fill for a target schema, given the spelling of timestamps
/// (and, with a `dateFormat`, DATE columns read as text).
pub fn parse_schema(
    target: &SchemaRef,
    spelling: TimestampSpelling,
    formats: Formats<'_>,
) -> SchemaRef {
    let fields: Vec<Field> = target
        .fields()
        .iter()
        .map(|f| match (f.data_type(), spelling) {
            _ if ddl::is_ntz(f) => f.as_ref().clone().with_data_type(DataType::Utf8),
            (DataType::Date32, _) if formats.date.is_some() => {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            (DataType::Timestamp(_, tz), TimestampSpelling::EpochSeconds) => f
                .as_ref()
                .clone()
                .with_data_type(DataType::Timestamp(TimeUnit::Second, tz.clone())),
            (DataType::Timestamp(_, _), TimestampSpelling::Custom | TimestampSpelling::Text) => {
                f.as_ref().clone().with_data_type(DataType::Utf8)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// Convert a batch decoded with [`parse_schema`] to the target schema; a time that cannot be
/// read becomes null.
pub fn to_target(
    batch: RecordBatch,
    target: &SchemaRef,
    format: Formats<'_>,
) -> Result<RecordBatch, SourceError> {
    convert(batch, target, format, false)
}

/// [`to_target`], failing on a text time that cannot be read (so the record is malformed).
pub fn to_target_strict(
    batch: RecordBatch,
    target: &SchemaRef,
    format: Formats<'_>,
) -> Result<RecordBatch, SourceError> {
    convert(batch, target, format, true)
}

fn convert(
    batch: RecordBatch,
    target: &SchemaRef,
    formats: Formats<'_>,
    strict: bool,
) -> Result<RecordBatch, SourceError> {
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (column, field) in batch.columns().iter().zip(target.fields()) {
        let text = column.data_type() == &DataType::Utf8;
        if text && ddl::is_ntz(field) {
            columns.push(local_times(column, formats.timestamp_ntz, strict)?);
        } else if column.data_type() == field.data_type() {
            columns.push(column.clone());
        } else if let (true, DataType::Date32, Some(fmt)) = (text, field.data_type(), formats.date)
        {
            columns.push(parse_dates(column, fmt, strict)?);
        } else if let (true, DataType::Timestamp(..), Some(fmt)) =
            (text, field.data_type(), formats.timestamp)
        {
            columns.push(parse_with_format(column, fmt, field.data_type())?);
        } else if let (DataType::Utf8, DataType::Timestamp(_, tz)) =
            (column.data_type(), field.data_type())
        {
            columns.push(text_times(column, tz.clone(), strict)?);
        } else {
            columns.push(cast(column, field.data_type())?);
        }
    }
    RecordBatch::try_new(target.clone(), columns).map_err(SourceError::Arrow)
}

/// Each value of a column read as text, read by `read`; a value `read` cannot read is an error
/// (`unreadable` says why) when `strict`, else null.
fn read_texts<T>(
    strings: &StringArray,
    strict: bool,
    read: impl Fn(&str) -> Option<T>,
    unreadable: impl Fn(&str) -> String,
) -> Result<Vec<Option<T>>, SourceError> {
    let mut values = Vec::with_capacity(strings.len());
    for value in strings.iter() {
        values.push(match value.map(|s| (s, read(s))) {
            None => None,
            Some((_, Some(v))) => Some(v),
            Some((s, None)) if strict => return Err(SourceError::InvalidSchema(unreadable(s))),
            Some((_, None)) => None,
        });
    }
    Ok(values)
}

/// Times read as text: an integer is epoch seconds (a JSON number, as Spark reads it), anything
/// else ISO-8601. Unreadable text is an error when `strict`, else null.
fn text_times(
    column: &ArrayRef,
    tz: Option<Arc<str>>,
    strict: bool,
) -> Result<ArrayRef, SourceError> {
    let strings = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| {
            SourceError::InvalidSchema("a time column read as text is not text".into())
        })?;
    let values = read_texts(
        strings,
        strict,
        |s| match s.parse::<i64>() {
            Ok(secs) => secs.checked_mul(1_000_000),
            Err(_) => arrow::compute::kernels::cast_utils::string_to_datetime(&chrono::Utc, s)
                .ok()
                .map(|t| t.timestamp_micros()),
        },
        |s| format!("`{s}` is not a timestamp (ISO-8601 text or epoch seconds)"),
    )?;
    Ok(Arc::new(
        TimestampMicrosecondArray::from(values).with_timezone_opt(tz),
    ))
}

/// TIMESTAMP_NTZ text: Spark's default spelling of a local date-time, or `format`. Unreadable
/// text (a zone included) is an error when `strict`, else null.
fn local_times(
    column: &ArrayRef,
    format: Option<&str>,
    strict: bool,
) -> Result<ArrayRef, SourceError> {
    let strings = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| {
            SourceError::InvalidSchema("a TIMESTAMP_NTZ column read as text is not text".into())
        })?;
    let chrono_fmt = format.map(to_chrono_format);
    let values = read_texts(
        strings,
        strict,
        |s| match &chrono_fmt {
            Some(fmt) => NaiveDateTime::parse_from_str(s, fmt)
                .ok()
                .map(|t| t.and_utc().timestamp_micros()),
            None => local_micros(s),
        },
        |s| {
            format!(
                "`{s}` is not a TIMESTAMP_NTZ (a date-time without a time zone{})",
                format
                    .map(|f| format!(" in the format {f}"))
                    .unwrap_or_default()
            )
        },
    )?;
    Ok(Arc::new(TimestampMicrosecondArray::from(values)))
}

/// A local date-time as Spark's `stringToTimestampWithoutTimeZone(text, allowTimeZone =
/// false)` reads it: `[+-]yyyy[-[m]m[-[d]d]]`, then optionally `T` or a space and
/// `[h]h[:[m]m[:[s]s[.fraction]]]` (digits past microseconds dropped), surrounding spaces
/// ignored; anything more (a zone) makes it unreadable. Microseconds since 1970-01-01T00:00.
fn local_micros(text: &str) -> Option<i64> {
    let s = text.trim();
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let (negative, date) = match date.as_bytes().first() {
        Some(b'-') => (true, &date[1..]),
        Some(b'+') => (false, &date[1..]),
        _ => (false, date),
    };
    let mut parts = date.split('-');
    let year = number(parts.next()?, 4, 6)?;
    let month = parts.next().map_or(Some(1), |m| number(m, 1, 2))?;
    let day = parts.next().map_or(Some(1), |d| number(d, 1, 2))?;
    if parts.next().is_some() {
        return None;
    }
    let year = i32::try_from(year).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(if negative { -year } else { year }, month, day)?;
    let (mut hour, mut minute, mut second, mut micros) = (0, 0, 0, 0);
    if let Some(time) = time.filter(|t| !t.is_empty()) {
        let (clock, fraction) = match time.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (time, None),
        };
        let mut fields = clock.split(':');
        hour = number(fields.next()?, 1, 2)?;
        minute = fields.next().map_or(Some(0), |m| number(m, 1, 2))?;
        second = fields.next().map_or(Some(0), |s| number(s, 1, 2))?;
        if fields.next().is_some() {
            return None;
        }
        if let Some(fraction) = fraction {
            let digits = fraction.get(..fraction.len().min(6))?;
            let value = number(fraction, 1, 9).and(number(digits, 1, 6))?;
            micros = value * 10u32.pow(6 - digits.len() as u32);
        }
    }
    let time = chrono::NaiveTime::from_hms_micro_opt(hour, minute, second, micros)?;
    Some(date.and_time(time).and_utc().timestamp_micros())
}

/// A run of `min..=max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    (text.len() >= min && text.len() <= max && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
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

/// DATE text in Spark's `dateFormat`: unreadable text is an error when `strict` (the record is
/// malformed), else NULL.
fn parse_dates(column: &ArrayRef, format: &str, strict: bool) -> Result<ArrayRef, SourceError> {
    let strings = column
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| SourceError::InvalidOption("dateFormat needs string values".into()))?;
    let chrono_fmt = to_chrono_format(format);
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    // A date that reads but lies past what DATE holds is null, not an error.
    let days = read_texts(
        strings,
        strict,
        |s| {
            chrono::NaiveDate::parse_from_str(s.trim(), &chrono_fmt)
                .ok()
                .map(|d| i32::try_from((d - epoch).num_days()).ok())
        },
        |s| format!("`{s}` is not a date in the format {format}"),
    )?;
    Ok(Arc::new(arrow::array::Date32Array::from(
        days.into_iter().map(Option::flatten).collect::<Vec<_>>(),
    )))
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

    /// Regression: a file whose first time was ISO text read later epoch-second numbers as
    /// microseconds (1704067201 became 1970-01-01T00:28:24.067201Z), silently.
    #[test]
    fn text_times_read_numbers_as_epoch_seconds_and_strings_as_iso() {
        let column: ArrayRef = Arc::new(StringArray::from(vec![
            Some("2024-01-01T00:00:00.123456Z"),
            Some("1704067201"),
            None,
            Some("-1"),
        ]));
        let got = text_times(&column, Some("UTC".into()), true).unwrap();
        let got = got
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(got.value(0), 1_704_067_200_123_456);
        assert_eq!(got.value(1), 1_704_067_201_000_000);
        assert!(got.is_null(2));
        assert_eq!(got.value(3), -1_000_000);
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["yesterday"]));
        assert!(text_times(&bad, None, true).is_err());
        assert!(text_times(&bad, None, false).unwrap().is_null(0));
    }

    /// Spark's `stringToTimestampWithoutTimeZone(_, allowTimeZone = false)`, as
    /// `DateTimeUtilsSuite` ("SPARK-35780: support full range of timestamp string") and
    /// JacksonParser read a TIMESTAMP_NTZ: local date-times at any precision, dates alone,
    /// and no zone.
    #[test]
    fn local_date_times_as_spark_reads_a_timestamp_ntz() {
        let at = |y, mo, d, h, mi, s, us| {
            chrono::NaiveDate::from_ymd_opt(y, mo, d)
                .unwrap()
                .and_hms_micro_opt(h, mi, s, us)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        for (text, want) in [
            ("2024-03-01T10:20:30", at(2024, 3, 1, 10, 20, 30, 0)),
            ("2024-03-01 10:20:30.1", at(2024, 3, 1, 10, 20, 30, 100_000)),
            (
                "2024-03-01T10:20:30.123456",
                at(2024, 3, 1, 10, 20, 30, 123_456),
            ),
            (
                "2024-03-01T10:20:30.123456789",
                at(2024, 3, 1, 10, 20, 30, 123_456),
            ),
            ("2024-03-01T10:20", at(2024, 3, 1, 10, 20, 0, 0)),
            ("2024-3-1", at(2024, 3, 1, 0, 0, 0, 0)),
            ("2024-03", at(2024, 3, 1, 0, 0, 0, 0)),
            ("2024", at(2024, 1, 1, 0, 0, 0, 0)),
            (" 2024-03-01 ", at(2024, 3, 1, 0, 0, 0, 0)),
            ("1969-12-31T23:59:59.999999", -1),
        ] {
            assert_eq!(local_micros(text), Some(want), "{text}");
        }
        for text in [
            "2024-03-01T10:20:30Z",
            "2024-03-01T10:20:30+01:00",
            "2024-03-01 10:20:30 UTC",
            "2024-02-30",
            "2024-03-01T25:00",
            "1704067200",
            "24-03-01",
            "",
            "yesterday",
            "2024-03-01T10:20:30.",
        ] {
            assert_eq!(local_micros(text), None, "{text}");
        }
    }

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
