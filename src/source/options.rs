//! Source options with Spark's names and defaults, parsed and validated into a typed form.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::clean::CleanSource;
use super::transcode::Charset;
use super::SourceError;
use crate::duration::parse_duration;

/// The file formats a source can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines, one object per line.
    Json,
    /// Delimited text with an optional header.
    Csv,
    /// Apache Parquet files.
    Parquet,
    /// Plain text: one `value STRING` row per line.
    Text,
}

impl FromStr for Format {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "parquet" => Ok(Format::Parquet),
            "text" => Ok(Format::Text),
            other => Err(SourceError::InvalidOption(format!(
                "unknown format `{other}`; use json, csv, parquet or text"
            ))),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Text => "text",
        })
    }
}

/// What to do with a record that does not parse (Spark's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ParseMode {
    /// Keep the row, null the bad fields, put the raw line in the corrupt-record column.
    #[default]
    Permissive,
    /// Drop the row.
    DropMalformed,
    /// Fail the query, naming the file and line.
    FailFast,
}

/// How many files or bytes one micro-batch may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadLimit {
    /// Everything new.
    #[default]
    Unlimited,
    /// At most this many files.
    MaxFiles(usize),
    /// At most this many bytes (but always at least one file).
    MaxBytes(u64),
}

/// Validated source options.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOptions {
    /// Per-batch read limit.
    pub limit: ReadLimit,
    /// Take the newest files first.
    pub latest_first: bool,
    /// Files older than the newest seen file by more than this are ignored (after the first batch).
    pub max_file_age: Duration,
    /// Identify files by name only, not full path.
    pub file_name_only: bool,
    /// What to do with malformed records.
    pub mode: ParseMode,
    /// Column receiving the raw text of malformed records (when present in the schema).
    pub corrupt_column: String,
    /// CSV: the first line of each file is a header.
    pub header: bool,
    /// CSV: field separator.
    pub sep: u8,
    /// Format for string timestamps (chrono `strftime` syntax, or Spark's pattern letters).
    pub timestamp_format: Option<String>,
    /// Format for string TIMESTAMP_NTZ values (`timestampNTZFormat`, Spark's pattern letters);
    /// `None`: Spark's default, ISO-8601 local date-times.
    pub timestamp_ntz_format: Option<String>,
    /// Format for string dates (`dateFormat`, Spark's pattern letters).
    pub date_format: Option<String>,
    /// The charset of files without a BOM (`encoding` / `charset`); `None`: UTF-8.
    pub encoding: Option<Charset>,
    /// JSON: how records are spelled and inferred.
    pub json: JsonOptions,
    /// Folders: which files below the source are read, and partition columns.
    pub folders: FolderOptions,
    /// What happens to a committed batch's files (`cleanSource`).
    pub clean_source: CleanSource,
    /// Where `cleanSource=archive` moves them (`sourceArchiveDir`).
    pub source_archive_dir: Option<String>,
    /// How new files are found between full listings.
    pub discovery: DiscoveryOptions,
}

/// How new files are found (see [`crate::source::candidates`]), with Auto Loader's names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// List only names after the greatest one listed (`useIncrementalListing`, default false):
    /// safe when file names sort by arrival.
    pub incremental: bool,
    /// A local source's arrival events find new files (`useNotifications`; unset: yes on local
    /// disk, for processing-time triggers; S3 sources have none).
    pub notifications: Option<bool>,
    /// An S3 source's new files come from the bucket's event notifications in this SQS queue
    /// (`queueUrl`).
    pub queue_url: Option<String>,
    /// A full listing at least this often when any of the above is in use (`backfillInterval`).
    pub backfill_interval: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            incremental: false,
            notifications: None,
            queue_url: None,
            backfill_interval: Duration::from_secs(3600),
        }
    }
}

/// JSON options with Spark's names and defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonOptions {
    /// Each file is one JSON value (`multiLine`); a top-level array is one row per element.
    pub multi_line: bool,
    /// Inference: numbers and booleans as strings, fractions as decimals, all-null fields left
    /// out (`primitivesAsString`, `prefersDecimal`, `dropFieldIfAllNull`).
    pub infer: crate::source::infer::InferOptions,
    /// Share of records inference samples (`samplingRatio`).
    pub sampling_ratio: f64,
    /// The lenient spellings accepted (`allowSingleQuotes`, `allowComments`, ...).
    pub syntax: JsonSyntax,
    /// What ends a record instead of a line end (`lineSep`).
    pub line_sep: Option<String>,
}

impl Default for JsonOptions {
    fn default() -> Self {
        JsonOptions {
            multi_line: false,
            infer: Default::default(),
            sampling_ratio: 1.0,
            syntax: JsonSyntax::default(),
            line_sep: None,
        }
    }
}

/// Which non-standard JSON spellings are read (Spark's `allow*` options, Spark's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonSyntax {
    /// `'text'` strings and names (default true).
    pub single_quotes: bool,
    /// `/* ... */`, `// ...` and `#` comments.
    pub comments: bool,
    /// Names without quotes: `{a: 1}`.
    pub unquoted_field_names: bool,
    /// Numbers with leading zeros: `007`.
    pub numeric_leading_zeros: bool,
    /// `NaN`, `Infinity`, `-Infinity`, `+INF`, `-INF` (default true).
    pub non_numeric_numbers: bool,
    /// `\q` reads as `q`.
    pub backslash_escaping_any_character: bool,
    /// Control characters (tab, ...) inside strings.
    pub unquoted_control_chars: bool,
}

impl Default for JsonSyntax {
    fn default() -> Self {
        JsonSyntax {
            single_quotes: true,
            comments: false,
            unquoted_field_names: false,
            numeric_leading_zeros: false,
            non_numeric_numbers: true,
            backslash_escaping_any_character: false,
            unquoted_control_chars: false,
        }
    }
}

/// Which files below the source are read, and what their folders mean.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FolderOptions {
    /// Only files whose name matches this glob (`pathGlobFilter`), e.g. `*.json`.
    pub path_glob_filter: Option<String>,
    /// Read files in every folder, with no partition columns (`recursiveFileLookup`).
    pub recursive_file_lookup: bool,
    /// Where partition discovery starts, a folder above the source (`basePath`).
    pub base_path: Option<String>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            limit: ReadLimit::Unlimited,
            latest_first: false,
            max_file_age: Duration::from_secs(7 * 24 * 3600),
            file_name_only: false,
            mode: ParseMode::Permissive,
            corrupt_column: "_corrupt_record".into(),
            header: false,
            sep: b',',
            timestamp_format: None,
            timestamp_ntz_format: None,
            date_format: None,
            encoding: None,
            json: JsonOptions::default(),
            folders: FolderOptions::default(),
            clean_source: CleanSource::Off,
            source_archive_dir: None,
            discovery: DiscoveryOptions::default(),
        }
    }
}

const KNOWN: &[&str] = &[
    "maxFilesPerTrigger",
    "maxBytesPerTrigger",
    "latestFirst",
    "maxFileAge",
    "fileNameOnly",
    "mode",
    "columnNameOfCorruptRecord",
    "header",
    "sep",
    "delimiter",
    "timestampFormat",
    "timestampNTZFormat",
    "cleanSource",
    "sourceArchiveDir",
    "useIncrementalListing",
    "useNotifications",
    "backfillInterval",
    "queueUrl",
    "multiLine",
    "primitivesAsString",
    "prefersDecimal",
    "dropFieldIfAllNull",
    "samplingRatio",
    "allowSingleQuotes",
    "allowComments",
    "allowUnquotedFieldNames",
    "allowNumericLeadingZeros",
    "allowNonNumericNumbers",
    "allowBackslashEscapingAnyCharacter",
    "allowUnquotedControlChars",
    "pathGlobFilter",
    "recursiveFileLookup",
    "basePath",
    "lineSep",
    "encoding",
    "charset",
    "dateFormat",
];

impl SourceOptions {
    /// Parse Spark-named options (names are case-insensitive, as in Spark).
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<Self, SourceError> {
        let mut o = SourceOptions::default();
        let bad = |key: &str, value: &str, want: &str| {
            SourceError::InvalidOption(format!("option {key}={value}: {want}"))
        };
        let mut max_files = None;
        let mut max_bytes = None;
        for (key, value) in raw {
            let canonical = KNOWN
                .iter()
                .find(|k| k.eq_ignore_ascii_case(key))
                .ok_or_else(|| {
                    SourceError::InvalidOption(format!(
                        "unknown source option `{key}`; known options: {}",
                        KNOWN.join(", ")
                    ))
                })?;
            let v = value.trim();
            match *canonical {
                "maxFilesPerTrigger" => {
                    let n: usize = v
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad(key, v, "expected a positive whole number"))?;
                    max_files = Some(n);
                }
                "maxBytesPerTrigger" => {
                    let n = parse_bytes(v).filter(|n| *n > 0).ok_or_else(|| {
                        bad(key, v, "expected a positive size such as 1048576 or 64m")
                    })?;
                    max_bytes = Some(n);
                }
                "latestFirst" => {
                    o.latest_first =
                        parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?
                }
                "fileNameOnly" => {
                    o.file_name_only =
                        parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?
                }
                "header" => {
                    o.header = parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?
                }
                "maxFileAge" => {
                    o.max_file_age = parse_duration(v)
                        .ok_or_else(|| bad(key, v, "expected a duration such as 7d or 12 hours"))?
                }
                "mode" => {
                    o.mode = match v.to_ascii_uppercase().as_str() {
                        "PERMISSIVE" => ParseMode::Permissive,
                        "DROPMALFORMED" => ParseMode::DropMalformed,
                        "FAILFAST" => ParseMode::FailFast,
                        _ => {
                            return Err(bad(
                                key,
                                v,
                                "expected PERMISSIVE, DROPMALFORMED or FAILFAST",
                            ))
                        }
                    }
                }
                "columnNameOfCorruptRecord" => {
                    if v.is_empty() {
                        return Err(bad(key, v, "expected a column name"));
                    }
                    o.corrupt_column = v.to_string()
                }
                "sep" | "delimiter" => {
                    let unescaped = match v {
                        "\\t" => "\t",
                        other => other,
                    };
                    let bytes = unescaped.as_bytes();
                    if bytes.len() != 1 {
                        return Err(bad(key, v, "expected a single one-byte character"));
                    }
                    o.sep = bytes[0];
                }
                "timestampFormat" => o.timestamp_format = Some(v.to_string()),
                "timestampNTZFormat" => o.timestamp_ntz_format = Some(v.to_string()),
                "samplingRatio" => {
                    o.json.sampling_ratio = v
                        .parse::<f64>()
                        .ok()
                        .filter(|r| *r > 0.0 && *r <= 1.0)
                        .ok_or_else(|| bad(key, v, "expected a number above 0 and at most 1"))?
                }
                "lineSep" => {
                    let sep = unescape(value);
                    if sep.is_empty() {
                        return Err(bad(key, value, "expected a separator such as \\u001e or ;"));
                    }
                    o.json.line_sep = Some(sep)
                }
                "encoding" | "charset" => {
                    o.encoding = Some(Charset::from_label(v).ok_or_else(|| {
                        bad(
                            key,
                            v,
                            "expected a charset such as UTF-8, UTF-16LE, UTF-32 or ISO-8859-1",
                        )
                    })?)
                }
                "dateFormat" => o.date_format = Some(v.to_string()),
                "useIncrementalListing" => {
                    o.discovery.incremental =
                        parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?
                }
                "useNotifications" => {
                    o.discovery.notifications =
                        Some(parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?)
                }
                "queueUrl" => {
                    if v.is_empty() {
                        return Err(bad(key, v, "expected the URL of an SQS queue"));
                    }
                    o.discovery.queue_url = Some(v.to_string())
                }
                "backfillInterval" => {
                    o.discovery.backfill_interval = parse_duration(v)
                        .filter(|d| !d.is_zero())
                        .ok_or_else(|| bad(key, v, "expected a duration such as 1 hour or 10m"))?
                }
                "cleanSource" => {
                    o.clean_source = CleanSource::parse(v)
                        .ok_or_else(|| bad(key, v, "expected off, archive or delete"))?
                }
                "sourceArchiveDir" => {
                    if v.trim().is_empty() {
                        return Err(bad(key, v, "expected a folder outside the source"));
                    }
                    o.source_archive_dir = Some(v.to_string())
                }
                "basePath" => {
                    if v.is_empty() {
                        return Err(bad(key, v, "expected a folder above the source"));
                    }
                    o.folders.base_path = Some(v.to_string())
                }
                "pathGlobFilter" => {
                    if v.is_empty() {
                        return Err(bad(key, v, "expected a glob such as *.json"));
                    }
                    o.folders.path_glob_filter = Some(v.to_string())
                }
                flag => {
                    let on = parse_bool(v).ok_or_else(|| bad(key, v, "expected true or false"))?;
                    let syntax = &mut o.json.syntax;
                    match flag {
                        "multiLine" => o.json.multi_line = on,
                        "primitivesAsString" => o.json.infer.primitives_as_string = on,
                        "prefersDecimal" => o.json.infer.prefers_decimal = on,
                        "dropFieldIfAllNull" => o.json.infer.drop_field_if_all_null = on,
                        "allowSingleQuotes" => syntax.single_quotes = on,
                        "allowComments" => syntax.comments = on,
                        "allowUnquotedFieldNames" => syntax.unquoted_field_names = on,
                        "allowNumericLeadingZeros" => syntax.numeric_leading_zeros = on,
                        "allowNonNumericNumbers" => syntax.non_numeric_numbers = on,
                        "allowBackslashEscapingAnyCharacter" => {
                            syntax.backslash_escaping_any_character = on
                        }
                        "allowUnquotedControlChars" => syntax.unquoted_control_chars = on,
                        "recursiveFileLookup" => o.folders.recursive_file_lookup = on,
                        _ => {}
                    }
                }
            }
        }
        o.limit =
            match (max_files, max_bytes) {
                (Some(_), Some(_)) => return Err(SourceError::InvalidOption(
                    "maxFilesPerTrigger and maxBytesPerTrigger cannot be set together; keep one"
                        .into(),
                )),
                (Some(n), None) => ReadLimit::MaxFiles(n),
                (None, Some(n)) => ReadLimit::MaxBytes(n),
                (None, None) => ReadLimit::Unlimited,
            };
        Ok(o)
    }
}

/// `\n`, `\r`, `\t`, `\u001e` and `\x1e` as the characters they name (a shell passes
/// them as text).
fn unescape(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(k @ ('u' | 'x')) => {
                let len = if k == 'u' { 4 } else { 2 };
                let hex: String = (0..len).filter_map(|_| chars.next()).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push('\\');
                        out.push(k);
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// `1048576`, `64k`, `64m`, `1g`, `10mb`.
fn parse_bytes(v: &str) -> Option<u64> {
    let lower = v.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let n: u64 = lower[..split].parse().ok()?;
    let mult: u64 = match lower[split..].trim() {
        "" | "b" => 1,
        "k" | "kb" => 1 << 10,
        "m" | "mb" => 1 << 20,
        "g" | "gb" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Result<SourceOptions, SourceError> {
        SourceOptions::from_map(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn spark_defaults() {
        let o = opts(&[]).unwrap();
        assert_eq!(o.limit, ReadLimit::Unlimited);
        assert_eq!(o.mode, ParseMode::Permissive);
        assert_eq!(o.corrupt_column, "_corrupt_record");
        assert_eq!(o.max_file_age, Duration::from_secs(7 * 86400));
    }

    #[test]
    fn parses_spark_names_case_insensitively() {
        let o = opts(&[
            ("maxfilespertrigger", "7"),
            ("mode", "dropMalformed"),
            ("sep", ";"),
            ("header", "true"),
            ("latestFirst", "true"),
        ])
        .unwrap();
        assert_eq!(o.limit, ReadLimit::MaxFiles(7));
        assert_eq!(o.mode, ParseMode::DropMalformed);
        assert_eq!(o.sep, b';');
        assert!(o.header && o.latest_first);
        assert_eq!(
            opts(&[("maxBytesPerTrigger", "2m")]).unwrap().limit,
            ReadLimit::MaxBytes(2 << 20)
        );
    }

    #[test]
    fn line_separators_are_unescaped() {
        let o = opts(&[("lineSep", "\\u001e")]).unwrap();
        assert_eq!(o.json.line_sep.as_deref(), Some("\u{1e}"));
        let o = opts(&[("lineSep", "\\r\\n")]).unwrap();
        assert_eq!(o.json.line_sep.as_deref(), Some("\r\n"));
        let o = opts(&[("lineSep", "||")]).unwrap();
        assert_eq!(o.json.line_sep.as_deref(), Some("||"));
    }

    #[test]
    fn rejects_bad_options() {
        for (pairs, needle) in [
            (vec![("maxFilesPerTriger", "1")], "unknown source option"),
            (vec![("maxFilesPerTrigger", "0")], "positive whole number"),
            (
                vec![("maxFilesPerTrigger", "1"), ("maxBytesPerTrigger", "10")],
                "cannot be set together",
            ),
            (
                vec![("mode", "STRICT")],
                "PERMISSIVE, DROPMALFORMED or FAILFAST",
            ),
            (vec![("maxFileAge", "old")], "duration"),
            (vec![("sep", "ab")], "one-byte"),
            (vec![("encoding", "klingon")], "charset"),
            (vec![("samplingRatio", "0")], "above 0"),
            (vec![("allowComments", "yes")], "true or false"),
        ] {
            let err = opts(&pairs).unwrap_err().to_string();
            assert!(err.contains(needle), "{pairs:?}: {err}");
        }
    }
}
