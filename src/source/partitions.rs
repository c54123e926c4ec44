//! Spark's partition discovery: folders named `key=value` below the source (or below
//! `basePath`) are columns of every row of the files inside them.
//!
//! ```text
//!   src/date=2024-01-01/hour=03/part-1.json
//!        └─ date: DATE ─┘└ hour: INT ┘         (types inferred from every listed value)
//! ```
//!
//! The columns are found among the files listed when a query first starts, typed as Spark's
//! `PartitioningUtils.inferPartitionColumnValue` types them (INT, BIGINT, DECIMAL, DOUBLE,
//! TIMESTAMP `yyyy-MM-dd HH:mm:ss[.S]`, DATE `yyyy-MM-dd`, else STRING; conflicts widen, or
//! become STRING), appended after the data columns, and remembered with the query. Values are
//! unescaped (`%3A` is `:`); `__HIVE_DEFAULT_PARTITION__` is NULL. Pure: no IO.

use arrow::datatypes::{DataType, Field};

/// Spark's name for a NULL partition value.
pub(super) const NULL_VALUE: &str = "__HIVE_DEFAULT_PARTITION__";

/// The `key=value` folders of a file named relative to the source, after the folders of the
/// source itself below `basePath` (`above`), unescaped.
pub fn values_of(above: &[String], file: &str) -> Vec<(String, String)> {
    let folders = file.rsplit_once('/').map_or("", |(dir, _)| dir);
    above
        .iter()
        .map(String::as_str)
        .chain(folders.split('/').filter(|s| !s.is_empty()))
        .filter_map(|segment| {
            let (key, value) = segment.split_once('=')?;
            (!key.is_empty()).then(|| (unescape(key), unescape(value)))
        })
        .collect()
}

/// Spark's `unescapePathName`: `%XX` is the byte XX.
fn unescape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The type Spark infers for one partition value (`None` for the NULL value).
pub fn value_type(raw: &str) -> Option<DataType> {
    if raw == NULL_VALUE {
        return None;
    }
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    let integral = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    Some(if integral && raw.parse::<i32>().is_ok() {
        DataType::Int32
    } else if integral && raw.parse::<i64>().is_ok() {
        DataType::Int64
    } else if integral && digits.trim_start_matches('0').len() <= 38 {
        DataType::Decimal128(digits.trim_start_matches('0').len().max(1) as u8, 0)
    } else if raw.parse::<f64>().is_ok() && !raw.chars().any(char::is_alphabetic) {
        DataType::Float64
    } else if is_timestamp(raw) {
        crate::source::ddl::timestamp_type()
    } else if chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").is_ok() && raw.len() == 10 {
        DataType::Date32
    } else {
        DataType::Utf8
    })
}

/// `yyyy-MM-dd HH:mm:ss[.S]`, Spark's partition timestamp format.
fn is_timestamp(raw: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f").is_ok()
}

/// The wider of two partition types (Spark: the common type, else STRING).
fn wider(a: &DataType, b: &DataType) -> DataType {
    use DataType::*;
    let rank = |t: &DataType| match t {
        Int32 => Some(0),
        Int64 => Some(1),
        Float64 => Some(3),
        _ => None,
    };
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (Decimal128(p1, _), Decimal128(p2, _)) => Decimal128(*p1.max(p2), 0),
        (Int32 | Int64, Decimal128(p, _)) | (Decimal128(p, _), Int32 | Int64) => {
            Decimal128((*p).max(20), 0)
        }
        (Float64, Decimal128(..)) | (Decimal128(..), Float64) => Float64,
        _ => match (rank(a), rank(b)) {
            (Some(x), Some(y)) => {
                if x >= y {
                    a.clone()
                } else {
                    b.clone()
                }
            }
            _ => Utf8,
        },
    }
}

/// The partition columns of the listed files, in the order their folders nest, typed from
/// every value seen.
pub fn discover<'a>(above: &[String], files: impl IntoIterator<Item = &'a str>) -> Vec<Field> {
    let mut columns: Vec<(String, Option<DataType>)> = Vec::new();
    for file in files {
        for (key, value) in values_of(above, file) {
            let t = value_type(&value);
            match columns.iter_mut().find(|(k, _)| *k == key) {
                Some((_, prev)) => {
                    *prev = match (prev.take(), t) {
                        (Some(a), Some(b)) => Some(wider(&a, &b)),
                        (a, b) => a.or(b),
                    }
                }
                None => columns.push((key, t)),
            }
        }
    }
    columns
        .into_iter()
        .map(|(name, t)| Field::new(name, t.unwrap_or(DataType::Utf8), true))
        .collect()
}

/// The partition columns of a stream and where the source sits below `basePath`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Partitioning {
    /// The partition column names (their types are the schema's).
    pub columns: Vec<String>,
    /// The folders from `basePath` down to the source.
    pub above: Vec<String>,
    /// Folders of a file's path that are not partition folders: those a glob in the source
    /// path matched (Spark's partition discovery starts below them).
    pub skip: usize,
}

impl Partitioning {
    /// The part of a file's path (relative to the source) that holds partition folders.
    pub fn relative(&self, file: &str) -> String {
        file.splitn(self.skip + 1, '/')
            .nth(self.skip)
            .unwrap_or(file)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PartitioningUtils.inferPartitionColumnValue: int, then long, then decimal, then
    /// double, then timestamp, then date, else string.
    #[test]
    fn values_are_typed_as_spark_types_them() {
        assert_eq!(value_type("03"), Some(DataType::Int32));
        assert_eq!(value_type("-7"), Some(DataType::Int32));
        assert_eq!(value_type("3000000000"), Some(DataType::Int64));
        assert_eq!(
            value_type("123456789012345678901234"),
            Some(DataType::Decimal128(24, 0))
        );
        assert_eq!(value_type("1.5"), Some(DataType::Float64));
        assert_eq!(value_type("2024-01-01"), Some(DataType::Date32));
        assert_eq!(
            value_type("2024-01-01 03:00:00"),
            Some(crate::source::ddl::timestamp_type())
        );
        assert_eq!(value_type("us-east-1"), Some(DataType::Utf8));
        assert_eq!(value_type("NaN"), Some(DataType::Utf8));
        assert_eq!(value_type(NULL_VALUE), None);
    }

    #[test]
    fn folders_give_columns_widened_across_files() {
        let files = [
            "date=2024-01-01/hour=03/a.json",
            "date=2024-01-02/hour=4000000000/b.json",
            "date=x/hour=__HIVE_DEFAULT_PARTITION__/c.json",
            "other/d.json",
            "e.json",
        ];
        let fields = discover(&[], files);
        assert_eq!(
            fields,
            vec![
                Field::new("date", DataType::Utf8, true),
                Field::new("hour", DataType::Int64, true)
            ]
        );
        let typed = discover(&[], ["d=2024-01-01/a.json", "d=2024-01-02/b.json"]);
        assert_eq!(typed[0].data_type(), &DataType::Date32);
    }

    #[test]
    fn values_are_unescaped_and_base_path_folders_count() {
        assert_eq!(
            values_of(&["region=eu".into()], "ts=2024-01-01 03%3A00%3A00/f.json"),
            vec![
                ("region".to_string(), "eu".to_string()),
                ("ts".to_string(), "2024-01-01 03:00:00".to_string())
            ]
        );
        assert!(values_of(&[], "a=1.json").is_empty());
    }
}
