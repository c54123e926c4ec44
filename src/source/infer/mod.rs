//! Schema inference with Spark's rules (`JsonInferSchema`, `TypeCoercion`): each sampled record
//! gives a type, the types of all records merge into one, and the result is canonicalized into
//! the schema the stream is read with.
//!
//! ```text
//!   record ──► json::record_type ──► SparkType ─┐
//!   record ──► json::record_type ──► SparkType ─┼─► merge (compatible) ──► canonical ──► Arrow schema
//!   ...                                          ┘
//! ```
//!
//! Pure: no IO. Every rule cites what it matches in Spark.

pub mod json;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Spark's largest decimal precision (`DecimalType.MAX_PRECISION`).
pub const MAX_PRECISION: u8 = 38;

/// The types inference deals in: Spark's, before they become Arrow's.
#[derive(Debug, Clone, PartialEq)]
pub enum SparkType {
    /// `null`, or a zero-length string (Spark treats both alike while inferring).
    Null,
    /// `true` / `false`.
    Boolean,
    /// A whole number that fits 64 bits.
    Long,
    /// A number with a fraction or exponent (or one too large for a decimal).
    Double,
    /// A decimal of (precision, scale).
    Decimal(u8, u8),
    /// Text.
    String,
    /// An array of the element type.
    Array(Box<SparkType>),
    /// An object: fields sorted by name.
    Struct(Vec<(String, SparkType)>),
}

/// How inference reads values (Spark's JSON options of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct InferOptions {
    /// Every number and boolean is a string (`primitivesAsString`).
    pub primitives_as_string: bool,
    /// Numbers with a fraction are decimals when they fit (`prefersDecimal`).
    pub prefers_decimal: bool,
    /// Columns that were null (or empty arrays / structs) in every sampled record are left out
    /// (`dropFieldIfAllNull`).
    pub drop_field_if_all_null: bool,
}

/// Merge two types into one that holds both (Spark's `JsonInferSchema.compatibleType`).
pub fn compatible(a: SparkType, b: SparkType) -> SparkType {
    use SparkType::*;
    match (a, b) {
        // TypeCoercion.findTightestCommonType: equal types, and null with anything.
        (a, b) if a == b => a,
        (Null, t) | (t, Null) => t,
        // Numeric widening: long + double → double.
        (Long, Double) | (Double, Long) => Double,
        // A double with a decimal is a double.
        (Double, Decimal(..)) | (Decimal(..), Double) => Double,
        (Decimal(p1, s1), Decimal(p2, s2)) => widen_decimals((p1, s1), (p2, s2)),
        // An integral with a decimal: the long as DecimalType.forType(LongType) = (20, 0).
        (Long, Decimal(p, s)) | (Decimal(p, s), Long) => widen_decimals((20, 0), (p, s)),
        (Struct(f1), Struct(f2)) => Struct(merge_fields(f1, f2)),
        (Array(e1), Array(e2)) => Array(Box::new(compatible(*e1, *e2))),
        // Anything else (number and string, struct and primitive, array and struct): string.
        _ => String,
    }
}

/// Spark's decimal widening: enough integer digits and scale for both; past 38 digits, double.
fn widen_decimals((p1, s1): (u8, u8), (p2, s2): (u8, u8)) -> SparkType {
    let scale = s1.max(s2);
    let range = (p1 - s1.min(p1)).max(p2 - s2.min(p2));
    let precision = u16::from(range) + u16::from(scale);
    if precision > u16::from(MAX_PRECISION) {
        SparkType::Double
    } else {
        SparkType::Decimal(precision as u8, scale)
    }
}

/// Fields of two structs merged by name, kept sorted.
fn merge_fields(
    a: Vec<(String, SparkType)>,
    b: Vec<(String, SparkType)>,
) -> Vec<(String, SparkType)> {
    let mut out: Vec<(String, SparkType)> = Vec::with_capacity(a.len().max(b.len()));
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    loop {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((na, _)), Some((nb, _))) => {
                if na == nb {
                    if let (Some((name, ta)), Some((_, tb))) = (a.next(), b.next()) {
                        out.push((name, compatible(ta, tb)));
                    }
                    continue;
                }
                na < nb
            }
        };
        let next = if take_a { a.next() } else { b.next() };
        out.extend(next);
    }
    out
}

/// The type a column is read with (Spark's `canonicalizeType`): null-only becomes string,
/// fields without a name and structs without fields are dropped (`None`); with `drop_all_null`,
/// null-only fields and empty arrays are dropped too.
pub fn canonical(t: SparkType, drop_all_null: bool) -> Option<SparkType> {
    match t {
        SparkType::Null => (!drop_all_null).then_some(SparkType::String),
        SparkType::Array(element) => {
            canonical(*element, drop_all_null).map(|e| SparkType::Array(Box::new(e)))
        }
        SparkType::Struct(fields) => {
            let kept: Vec<_> = fields
                .into_iter()
                .filter(|(name, _)| !name.is_empty())
                .filter_map(|(name, t)| canonical(t, drop_all_null).map(|t| (name, t)))
                .collect();
            // A struct with no fields is dropped (Spark's SPARK-8093): Parquet cannot store
            // one, and it holds no value.
            (!kept.is_empty()).then_some(SparkType::Struct(kept))
        }
        other => Some(other),
    }
}

impl SparkType {
    /// The Arrow type a column of this type is read as (as the DDL parser spells them).
    pub fn to_arrow(&self) -> DataType {
        match self {
            SparkType::Null | SparkType::String => DataType::Utf8,
            SparkType::Boolean => DataType::Boolean,
            SparkType::Long => DataType::Int64,
            SparkType::Double => DataType::Float64,
            SparkType::Decimal(p, s) => DataType::Decimal128(*p, *s as i8),
            SparkType::Array(e) => {
                DataType::List(Arc::new(Field::new("element", e.to_arrow(), true)))
            }
            SparkType::Struct(fields) => DataType::Struct(
                fields
                    .iter()
                    .map(|(n, t)| Field::new(n, t.to_arrow(), true))
                    .collect(),
            ),
        }
    }
}

/// The schema of merged record types: a struct's fields become the columns (a sample whose
/// records were not objects gives no columns).
pub fn schema_of(merged: Option<SparkType>, options: &InferOptions) -> SchemaRef {
    let fields = match merged.and_then(|t| canonical(t, options.drop_field_if_all_null)) {
        Some(SparkType::Struct(fields)) => fields
            .iter()
            .map(|(n, t)| Field::new(n, t.to_arrow(), true))
            .collect(),
        _ => Vec::new(),
    };
    Arc::new(Schema::new(fields))
}

#[cfg(test)]
mod tests {
    use super::SparkType::*;
    use super::*;

    fn st(fields: &[(&str, SparkType)]) -> SparkType {
        Struct(
            fields
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        )
    }

    /// JsonInferSchemaSuite / TypeCoercion: int + bigint → bigint (Spark reads every JSON
    /// integer as LongType), integer + double → double.
    #[test]
    fn numbers_widen_as_spark_does() {
        assert_eq!(compatible(Long, Long), Long);
        assert_eq!(compatible(Long, Double), Double);
        assert_eq!(compatible(Double, Long), Double);
        assert_eq!(compatible(Decimal(5, 2), Double), Double);
        // DecimalType.forType(LongType) = (20, 0), widened with (5, 2) → (22, 2).
        assert_eq!(compatible(Long, Decimal(5, 2)), Decimal(22, 2));
        assert_eq!(compatible(Decimal(5, 2), Decimal(10, 0)), Decimal(12, 2));
        // Past 38 digits a decimal becomes a double.
        assert_eq!(compatible(Decimal(38, 0), Decimal(38, 37)), Double);
    }

    /// compatibleType's fallback: a number and a string, a boolean and a number, a struct and a
    /// primitive, an array and a struct → StringType.
    #[test]
    fn conflicts_become_string() {
        assert_eq!(compatible(Long, String), String);
        assert_eq!(compatible(Boolean, Long), String);
        assert_eq!(compatible(st(&[("a", Long)]), Long), String);
        assert_eq!(compatible(Array(Box::new(Long)), st(&[])), String);
    }

    /// findTightestCommonType: NullType with any type is that type.
    #[test]
    fn null_takes_the_other_type() {
        assert_eq!(compatible(Null, Double), Double);
        assert_eq!(compatible(st(&[("a", Long)]), Null), st(&[("a", Long)]));
    }

    /// compatibleType on StructTypes: fields are unioned by name, sorted, each merged.
    #[test]
    fn struct_fields_union_sorted() {
        let a = st(&[("b", Long), ("d", String)]);
        let b = st(&[("a", Boolean), ("b", Double)]);
        assert_eq!(
            compatible(a, b),
            st(&[("a", Boolean), ("b", Double), ("d", String)])
        );
    }

    /// compatibleType on ArrayTypes: element types are merged.
    #[test]
    fn array_elements_merge() {
        assert_eq!(
            compatible(Array(Box::new(Long)), Array(Box::new(Double))),
            Array(Box::new(Double))
        );
        assert_eq!(
            compatible(Array(Box::new(Null)), Array(Box::new(st(&[("x", Long)])))),
            Array(Box::new(st(&[("x", Long)])))
        );
    }

    /// canonicalizeType: NullType → StringType, an empty array's element → StringType; with
    /// dropFieldIfAllNull, such fields (and structs left empty) are dropped.
    #[test]
    fn null_only_becomes_string_or_is_dropped() {
        let t = st(&[
            ("a", Null),
            ("b", Array(Box::new(Null))),
            ("c", st(&[("x", Null)])),
            ("d", Long),
        ]);
        assert_eq!(
            canonical(t.clone(), false),
            Some(st(&[
                ("a", String),
                ("b", Array(Box::new(String))),
                ("c", st(&[("x", String)])),
                ("d", Long),
            ]))
        );
        assert_eq!(canonical(t, true), Some(st(&[("d", Long)])));
    }

    #[test]
    fn arrow_types_follow_the_ddl_spelling() {
        let t = st(&[("l", Array(Box::new(Decimal(5, 2))))]);
        let schema = schema_of(Some(t), &InferOptions::default());
        assert_eq!(crate::source::ddl::to_ddl(&schema), "l ARRAY<DECIMAL(5,2)>");
    }
}
