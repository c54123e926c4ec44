//! Spark DDL schema strings (`"time TIMESTAMP, action STRING, value DOUBLE"`) to and from Arrow.
//!
//! Types follow Spark SQL's names; TIMESTAMP is Delta's `timestamp` (microseconds, UTC).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::SourceError;

/// The Arrow type Sluice uses for Spark's `TIMESTAMP` (Delta `timestamp`).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Parse a Spark DDL column list into an Arrow schema (every column nullable, as in Spark).
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef, SourceError> {
    let bad = |msg: String| SourceError::InvalidSchema(format!("{msg} in \"{ddl}\""));
    let mut fields: Vec<Field> = Vec::new();
    for column in split_top_level(ddl) {
        let column = column.trim();
        if column.is_empty() {
            return Err(bad("empty column definition".into()));
        }
        let (name, ty) = match column.find(char::is_whitespace) {
            Some(i) => (column[..i].trim(), column[i..].trim()),
            None => return Err(bad(format!("column `{column}` has no type"))),
        };
        let name = name.trim_matches('`');
        if name.is_empty() {
            return Err(bad("a column has an empty name".into()));
        }
        if fields.iter().any(|f| f.name().eq_ignore_ascii_case(name)) {
            return Err(bad(format!("column `{name}` appears twice")));
        }
        let ty = ty.strip_suffix("NOT NULL").unwrap_or(ty).trim();
        let data_type = parse_type(ty).ok_or_else(|| {
            bad(format!(
                "unknown type `{ty}` for column `{name}` (use STRING, BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DATE, TIMESTAMP or DECIMAL(p,s))"
            ))
        })?;
        fields.push(Field::new(name, data_type, true));
    }
    if fields.is_empty() {
        return Err(SourceError::InvalidSchema(
            "the schema is empty; give columns like \"time TIMESTAMP, action STRING\"".into(),
        ));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Split on commas that are not inside parentheses (DECIMAL(10,2)).
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_type(ty: &str) -> Option<DataType> {
    let upper = ty.to_ascii_uppercase();
    let compact: String = upper.chars().filter(|c| !c.is_whitespace()).collect();
    Some(match compact.as_str() {
        "STRING" | "VARCHAR" | "TEXT" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" | "BYTE" => DataType::Int8,
        "SMALLINT" | "SHORT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" | "LONG" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date32,
        "TIMESTAMP" => timestamp_type(),
        "BINARY" => DataType::Binary,
        "DECIMAL" => DataType::Decimal128(10, 0),
        other => {
            let inner = other.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
            let (p, s) = inner.split_once(',').unwrap_or((inner, "0"));
            let (p, s): (u8, i8) = (p.parse().ok()?, s.parse().ok()?);
            if p == 0 || p > 38 || s < 0 || s as u8 > p {
                return None;
            }
            DataType::Decimal128(p, s)
        }
    })
}

/// Render an Arrow schema as Spark DDL (for records and `sluice inspect`).
pub fn to_ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), type_name(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Spark's name for an Arrow type, or Arrow's own name when Spark has none.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Date32 => "DATE".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Binary | DataType::LargeBinary => "BINARY".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("ARRAY<{}>", type_name(f.data_type()))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_type() {
        let s = parse_ddl(
            "a STRING, b BOOLEAN, c INT, d BIGINT, e FLOAT, f DOUBLE, g DATE, h TIMESTAMP, i DECIMAL(10, 2)",
        )
        .unwrap();
        let types: Vec<_> = s.fields().iter().map(|f| f.data_type().clone()).collect();
        assert_eq!(
            types,
            vec![
                DataType::Utf8,
                DataType::Boolean,
                DataType::Int32,
                DataType::Int64,
                DataType::Float32,
                DataType::Float64,
                DataType::Date32,
                timestamp_type(),
                DataType::Decimal128(10, 2)
            ]
        );
        assert_eq!(
            to_ddl(&s),
            "a STRING, b BOOLEAN, c INT, d BIGINT, e FLOAT, f DOUBLE, g DATE, h TIMESTAMP, i DECIMAL(10,2)"
        );
    }

    #[test]
    fn lowercase_and_backticks() {
        let s = parse_ddl("`time` timestamp,action string").unwrap();
        assert_eq!(s.field(0).name(), "time");
        assert_eq!(s.field(1).data_type(), &DataType::Utf8);
    }

    #[test]
    fn rejects_bad_schemas_with_a_reason() {
        for (ddl, needle) in [
            ("time TIMESTAMP, action", "has no type"),
            ("time TIMESTMP", "unknown type `TIMESTMP`"),
            ("a INT, a STRING", "appears twice"),
            ("", "empty"),
            ("x DECIMAL(50,2)", "unknown type"),
        ] {
            let err = parse_ddl(ddl).unwrap_err().to_string();
            assert!(err.contains(needle), "{ddl}: {err}");
        }
    }
}
