//! Spark's JSON schema (`StructType.json()`, what `df.schema.json()` prints), read as the same
//! schema the DDL gives, so a user pastes what Spark printed into `--schema-file`:
//!
//! ```text
//! {"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},
//!   {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true}, ...}]}
//! ```
//!
//! Each type is rendered as Spark DDL and parsed by [`super::ddl`]: one type system.

use arrow::datatypes::SchemaRef;
use serde_json::Value;

use super::{ddl, SourceError};

/// Read a schema file: Spark's JSON schema, or (when it is not JSON) a DDL string.
pub fn parse_schema_file(text: &str) -> Result<SchemaRef, SourceError> {
    let trimmed = text.trim();
    if !trimmed.starts_with('{') {
        return ddl::parse_ddl(trimmed);
    }
    let value: Value = serde_json::from_str(trimmed)
        .map_err(|e| SourceError::InvalidSchema(format!("the schema file is not JSON: {e}")))?;
    let fields = struct_fields(&value)?;
    ddl::parse_ddl(&fields)
}

fn invalid(what: impl std::fmt::Display) -> SourceError {
    SourceError::InvalidSchema(format!(
        "{what}; give Spark's StructType JSON (df.schema.json()) or a DDL string"
    ))
}

/// The fields of a `{"type":"struct","fields":[...]}` as DDL (`name TYPE, ...`).
fn struct_fields(value: &Value) -> Result<String, SourceError> {
    if value.get("type").and_then(Value::as_str) != Some("struct") {
        return Err(invalid("expected {\"type\": \"struct\", ...}"));
    }
    let fields = value
        .get("fields")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("a struct without \"fields\""))?;
    let parts = fields
        .iter()
        .map(|f| {
            let name = f
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| invalid("a field without a \"name\""))?;
            let t = f
                .get("type")
                .ok_or_else(|| invalid(format!("field {name} has no \"type\"")))?;
            Ok(format!("`{}` {}", name.replace('`', "``"), type_ddl(t)?))
        })
        .collect::<Result<Vec<_>, SourceError>>()?;
    Ok(parts.join(", "))
}

/// One Spark JSON type as DDL.
fn type_ddl(t: &Value) -> Result<String, SourceError> {
    match t {
        Value::String(name) => Ok(match name.as_str() {
            "null" | "void" => "STRING".into(),
            // string, long, integer, short, byte, double, float, boolean, binary, date,
            // timestamp, decimal(p,s), char(n), varchar(n): DDL spells them alike.
            other if other.starts_with("char(") || other.starts_with("varchar(") => "STRING".into(),
            other => other.to_ascii_uppercase(),
        }),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => Ok(format!("STRUCT<{}>", struct_fields(t)?)),
            Some("array") => Ok(format!(
                "ARRAY<{}>",
                type_ddl(
                    o.get("elementType")
                        .ok_or_else(|| invalid("an array without \"elementType\""))?
                )?
            )),
            Some("map") => Ok(format!(
                "MAP<{}, {}>",
                type_ddl(
                    o.get("keyType")
                        .ok_or_else(|| invalid("a map without \"keyType\""))?
                )?,
                type_ddl(
                    o.get("valueType")
                        .ok_or_else(|| invalid("a map without \"valueType\""))?
                )?
            )),
            _ => Err(invalid(format!("unknown type {t}"))),
        },
        _ => Err(invalid(format!("unknown type {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `spark.read.json(...).schema.json()` prints for a nested event (Spark 3.5).
    #[test]
    fn reads_what_spark_prints() {
        let json = r#"{"type":"struct","fields":[
            {"name":"actor","type":{"type":"struct","fields":[
                {"name":"id","type":"long","nullable":true,"metadata":{}},
                {"name":"login","type":"string","nullable":true,"metadata":{}}]},"nullable":true,"metadata":{}},
            {"name":"amount","type":"decimal(10,2)","nullable":true,"metadata":{}},
            {"name":"at","type":"timestamp","nullable":true,"metadata":{}},
            {"name":"attrs","type":{"type":"map","keyType":"string","valueType":"integer","valueContainsNull":true},"nullable":true,"metadata":{}},
            {"name":"local","type":"timestamp_ntz","nullable":true,"metadata":{}},
            {"name":"log.level","type":"string","nullable":true,"metadata":{}},
            {"name":"tags","type":{"type":"array","elementType":"string","containsNull":true},"nullable":false,"metadata":{"comment":"x"}}]}"#;
        let schema = parse_schema_file(json).unwrap();
        assert!(ddl::is_ntz(schema.field_with_name("local").unwrap()));
        assert_eq!(
            ddl::to_ddl(&schema),
            "actor STRUCT<id: BIGINT, login: STRING>, amount DECIMAL(10,2), at TIMESTAMP, attrs MAP<STRING, INT>, local TIMESTAMP_NTZ, `log.level` STRING, tags ARRAY<STRING>"
        );
        // A DDL string works too.
        assert_eq!(
            ddl::to_ddl(&parse_schema_file("a INT, b STRING\n").unwrap()),
            "a INT, b STRING"
        );
    }

    #[test]
    fn bad_schema_files_say_what_to_give() {
        for bad in [
            r#"{"type":"array"}"#,
            r#"{"type":"struct","fields":[{"name":"a"}]}"#,
            "{not json",
        ] {
            let err = parse_schema_file(bad).unwrap_err().to_string();
            assert!(err.contains("schema"), "{bad}: {err}");
        }
    }
}
