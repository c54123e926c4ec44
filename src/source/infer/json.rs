//! The type of one JSON record, as Spark's `JsonInferSchema.inferField` sees it, and the
//! merging of a sample's records into a schema.
//!
//! Records are strict JSON here: a record in a lenient spelling (single quotes, comments, ...)
//! is rewritten first (see `decode::lenient`).

use std::fmt;

use arrow::datatypes::SchemaRef;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::{compatible, schema_of, InferOptions, SparkType, MAX_PRECISION};
use crate::source::options::ParseMode;

/// Reads one JSON value into its [`SparkType`].
#[derive(Clone, Copy)]
struct TypeOf(InferOptions);

impl<'de> DeserializeSeed<'de> for TypeOf {
    type Value = SparkType;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<SparkType, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TypeOf {
    type Value = SparkType;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<SparkType, E> {
        Ok(SparkType::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<SparkType, E> {
        Ok(self.primitive(SparkType::Boolean))
    }

    fn visit_i64<E>(self, _: i64) -> Result<SparkType, E> {
        Ok(self.primitive(SparkType::Long))
    }

    /// Jackson's BIG_INTEGER (past a long) is a decimal of its digits: 20 for any u64.
    fn visit_u64<E>(self, v: u64) -> Result<SparkType, E> {
        Ok(self.primitive(if i64::try_from(v).is_ok() {
            SparkType::Long
        } else {
            SparkType::Decimal(20, 0)
        }))
    }

    /// A number with a fraction or exponent: DoubleType, or with `prefersDecimal` the decimal
    /// its digits make when that fits (Spark: `DecimalType(max(precision, scale), scale)`).
    fn visit_f64<E>(self, v: f64) -> Result<SparkType, E> {
        if !self.0.prefers_decimal || self.0.primitives_as_string {
            return Ok(self.primitive(SparkType::Double));
        }
        Ok(decimal_of(v).unwrap_or(SparkType::Double))
    }

    /// Zero-length strings are like nulls while inferring (Spark: `getTextLength < 1`).
    fn visit_str<E>(self, v: &str) -> Result<SparkType, E> {
        Ok(if v.is_empty() {
            SparkType::Null
        } else {
            SparkType::String
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SparkType, A::Error> {
        let mut element = SparkType::Null;
        while let Some(t) = seq.next_element_seed(self)? {
            element = compatible(element, t);
        }
        Ok(SparkType::Array(Box::new(element)))
    }

    /// Fields sorted by name (Spark's `structFieldComparator`); a repeated key merges.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SparkType, A::Error> {
        let mut fields: Vec<(String, SparkType)> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let t = map.next_value_seed(self)?;
            match fields.iter_mut().find(|(n, _)| *n == name) {
                Some((_, prev)) => *prev = compatible(std::mem::replace(prev, SparkType::Null), t),
                None => fields.push((name, t)),
            }
        }
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(SparkType::Struct(fields))
    }
}

impl TypeOf {
    fn primitive(self, t: SparkType) -> SparkType {
        if self.0.primitives_as_string {
            SparkType::String
        } else {
            t
        }
    }
}

/// The decimal a fractional number's shortest spelling makes, if it fits 38 digits.
fn decimal_of(v: f64) -> Option<SparkType> {
    if !v.is_finite() {
        return None;
    }
    let text = format!("{}", v.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let scale = frac.len();
    let digits = format!("{int}{frac}");
    let precision = digits.trim_start_matches('0').len().max(1);
    let precision = precision.max(scale);
    (precision <= MAX_PRECISION as usize)
        .then_some(SparkType::Decimal(precision as u8, scale as u8))
}

/// The type of one record (a whole JSON value); `Err` when it is not JSON.
pub fn record_type(record: &[u8], options: InferOptions) -> Result<SparkType, String> {
    let mut de = serde_json::Deserializer::from_slice(record);
    let t = TypeOf(options)
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(t)
}

/// Spark's record sampling (`samplingRatio`): a fixed pseudo-random subset, the same on every
/// run, always holding a file's first record.
fn sampled(index: u64, ratio: f64) -> bool {
    if ratio >= 1.0 || index == 0 {
        return true;
    }
    // splitmix64
    let mut z = index.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z as f64 / u64::MAX as f64) < ratio
}

/// Merges the types of a sample's records into a schema.
#[derive(Debug)]
pub struct Inference {
    options: InferOptions,
    sampling_ratio: f64,
    mode: ParseMode,
    corrupt_column: String,
    merged: Option<SparkType>,
}

impl Inference {
    /// Inference with the source's options.
    pub fn new(
        options: InferOptions,
        sampling_ratio: f64,
        mode: ParseMode,
        corrupt_column: &str,
    ) -> Self {
        Inference {
            options,
            sampling_ratio,
            mode,
            corrupt_column: corrupt_column.to_string(),
            merged: None,
        }
    }

    /// Is the `index`-th record of a file (0-based) part of the sample?
    pub fn samples(&self, index: u64) -> bool {
        sampled(index, self.sampling_ratio)
    }

    /// Add one record. A record that is not JSON is, as in Spark: under PERMISSIVE the reason
    /// for a corrupt-record column, dropped under DROPMALFORMED, and the error under FAILFAST.
    pub fn add(&mut self, record: &[u8]) -> Result<(), String> {
        match record_type(record, self.options) {
            Ok(t) => self.add_root(t),
            Err(e) => match self.mode {
                ParseMode::FailFast => return Err(e),
                ParseMode::DropMalformed => {}
                ParseMode::Permissive => self.add_corrupt(),
            },
        }
        Ok(())
    }

    /// A root value: an object is a row, an array's elements are rows (Spark reads a top-level
    /// array as its elements), anything else is a corrupt record (`compatibleRootType`).
    fn add_root(&mut self, t: SparkType) {
        match t {
            SparkType::Struct(_) => self.merge(t),
            SparkType::Array(element) => match *element {
                SparkType::Null => {}
                SparkType::Struct(_) => self.merge(*element),
                _ => self.not_an_object(),
            },
            _ => self.not_an_object(),
        }
    }

    fn not_an_object(&mut self) {
        if self.mode == ParseMode::Permissive {
            self.add_corrupt();
        }
    }

    fn add_corrupt(&mut self) {
        let t = SparkType::Struct(vec![(self.corrupt_column.clone(), SparkType::String)]);
        self.merge(t);
    }

    fn merge(&mut self, t: SparkType) {
        self.merged = Some(match self.merged.take() {
            None => t,
            Some(prev) => compatible(prev, t),
        });
    }

    /// The schema: the merged fields, canonical (see [`super::canonical`]).
    pub fn finish(self) -> SchemaRef {
        schema_of(self.merged, &self.options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::ddl::to_ddl;

    fn infer(lines: &[&str], options: InferOptions) -> String {
        let mut inf = Inference::new(options, 1.0, ParseMode::Permissive, "_corrupt_record");
        for l in lines {
            inf.add(l.as_bytes()).unwrap();
        }
        to_ddl(&inf.finish())
    }

    fn default(lines: &[&str]) -> String {
        infer(lines, InferOptions::default())
    }

    /// JsonInferSchema.inferField: integers are LongType, fractions DoubleType, strings
    /// StringType, booleans BooleanType; fields sorted by name.
    #[test]
    fn primitives_as_spark_infers_them() {
        assert_eq!(
            default(&[r#"{"s": "x", "i": 1, "d": 1.5, "b": true}"#]),
            "b BOOLEAN, d DOUBLE, i BIGINT, s STRING"
        );
    }

    /// Fields are unioned across records; an int and a double make a double; a number and a
    /// string make a string; a field null in every record is a string.
    #[test]
    fn records_union_and_widen() {
        assert_eq!(
            default(&[
                r#"{"a": 1, "b": 1, "n": null}"#,
                r#"{"a": 2.5, "b": "x", "c": false}"#,
            ]),
            "a DOUBLE, b STRING, c BOOLEAN, n STRING"
        );
    }

    /// Nested objects become structs (fields unioned, sorted), arrays merge their elements,
    /// and a struct meeting a primitive becomes a string (compatibleType's fallback).
    #[test]
    fn nested_values() {
        assert_eq!(
            default(&[
                r#"{"actor": {"login": "a", "id": 1}, "commits": [{"sha": "x"}], "p": {"k": 1}}"#,
                r#"{"actor": {"id": 2, "url": "u"}, "commits": [{"n": 2}, {"sha": "y"}], "p": 3}"#,
            ]),
            "actor STRUCT<id: BIGINT, login: STRING, url: STRING>, commits ARRAY<STRUCT<n: BIGINT, sha: STRING>>, p STRING"
        );
        // An empty array's element type is a string.
        assert_eq!(default(&[r#"{"tags": []}"#]), "tags ARRAY<STRING>");
    }

    /// primitivesAsString: every number and boolean is a string, inside structs too.
    #[test]
    fn primitives_as_string() {
        let o = InferOptions {
            primitives_as_string: true,
            ..Default::default()
        };
        assert_eq!(
            infer(&[r#"{"a": 1, "b": {"c": 2.5, "d": true}}"#], o),
            "a STRING, b STRUCT<c: STRING, d: STRING>"
        );
    }

    /// prefersDecimal: a fraction becomes the decimal of its digits (JsonInferSchemaSuite
    /// "prefersDecimal"), widened across records; 64-bit integers stay BIGINT.
    #[test]
    fn prefers_decimal() {
        let o = InferOptions {
            prefers_decimal: true,
            ..Default::default()
        };
        assert_eq!(
            infer(&[r#"{"a": 1.25, "b": 7}"#, r#"{"a": 10.5}"#], o),
            "a DECIMAL(4,2), b BIGINT"
        );
        assert_eq!(infer(&[r#"{"a": 0.05}"#], o), "a DECIMAL(2,2)");
    }

    /// An integer past a long is a decimal of 20 digits (Jackson's BIG_INTEGER).
    #[test]
    fn unsigned_64_bit_ids_are_decimals() {
        assert_eq!(
            default(&[r#"{"id": 18446744073709551615}"#]),
            "id DECIMAL(20,0)"
        );
        assert_eq!(default(&[r#"{"id": 9223372036854775807}"#]), "id BIGINT");
    }

    /// dropFieldIfAllNull: null-only fields, empty arrays and empty structs are left out.
    #[test]
    fn drop_field_if_all_null() {
        let o = InferOptions {
            drop_field_if_all_null: true,
            ..Default::default()
        };
        assert_eq!(
            infer(
                &[r#"{"a": null, "b": [], "c": {}, "d": {"x": null}, "e": 1}"#],
                o
            ),
            "e BIGINT"
        );
    }

    /// A zero-length string infers like null (Spark: getTextLength < 1 → NullType).
    #[test]
    fn empty_strings_infer_like_null() {
        assert_eq!(default(&[r#"{"a": ""}"#, r#"{"a": 3}"#]), "a BIGINT");
    }

    /// PERMISSIVE: a malformed record adds the corrupt-record column, sorted among the fields;
    /// a top-level array gives its elements as records; a top-level primitive is corrupt.
    #[test]
    fn corrupt_records_and_top_level_arrays() {
        assert_eq!(
            default(&[r#"{"b": 1}"#, "{oops", r#"[{"a": 1}, {"c": "x"}]"#]),
            "_corrupt_record STRING, a BIGINT, b BIGINT, c STRING"
        );
        let mut dropping = Inference::new(
            InferOptions::default(),
            1.0,
            ParseMode::DropMalformed,
            "_corrupt_record",
        );
        dropping.add(b"{oops").unwrap();
        dropping.add(b"7").unwrap();
        dropping.add(br#"{"a": 1}"#).unwrap();
        assert_eq!(to_ddl(&dropping.finish()), "a BIGINT");
        let mut failing = Inference::new(
            InferOptions::default(),
            1.0,
            ParseMode::FailFast,
            "_corrupt_record",
        );
        assert!(failing.add(b"{oops").is_err());
    }

    /// samplingRatio keeps about that share of records, the same ones every time, and always
    /// a file's first record.
    #[test]
    fn sampling_is_stable() {
        let kept: Vec<u64> = (0..10_000).filter(|i| sampled(*i, 0.1)).collect();
        assert!((800..1200).contains(&kept.len()), "{}", kept.len());
        assert_eq!(kept[0], 0);
        let again: Vec<u64> = (0..10_000).filter(|i| sampled(*i, 0.1)).collect();
        assert_eq!(kept, again);
    }
}
