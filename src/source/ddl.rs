//! Spark DDL schema strings (`"time TIMESTAMP, action STRING, value DOUBLE"`) to and from Arrow.
//!
//! Types follow Spark SQL's names; TIMESTAMP is Delta's `timestamp` (microseconds, UTC),
//! TIMESTAMP_NTZ Delta's `timestamp_ntz` (microseconds, no time zone). A TIMESTAMP_NTZ field
//! carries [`NTZ_KEY`] in its metadata, so that a column read as one stays one in the table,
//! while the zone-less timestamps SQL functions return (`to_timestamp`, `CAST(.. AS
//! TIMESTAMP)`) stay Spark's TIMESTAMP.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use super::SourceError;

/// The Arrow type Sluice uses for Spark's `TIMESTAMP` (Delta `timestamp`).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Field metadata marking a column as Spark's `TIMESTAMP_NTZ`.
pub const NTZ_KEY: &str = "sluice.timestampNtz";

/// The Arrow type of Spark's `TIMESTAMP_NTZ` (Delta `timestamp_ntz`): microseconds of a local
/// date-time, no time zone.
pub fn ntz_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

/// A nullable field, marked with [`NTZ_KEY`] when it is a TIMESTAMP_NTZ.
pub fn field(name: &str, data_type: DataType) -> Field {
    let ntz = data_type == ntz_type();
    let field = Field::new(name, data_type, true);
    if ntz {
        field.with_metadata(HashMap::from([(NTZ_KEY.to_string(), "true".to_string())]))
    } else {
        field
    }
}

/// Is this field a TIMESTAMP_NTZ (a zone-less timestamp marked as one)?
pub fn is_ntz(field: &Field) -> bool {
    matches!(field.data_type(), DataType::Timestamp(_, None))
        && field.metadata().contains_key(NTZ_KEY)
}

/// Parse a Spark DDL column list into an Arrow schema (every column nullable, as in Spark's
/// Delta sink, which does not trust NOT NULL).
///
/// Column types may nest: `STRUCT<a: INT, b STRING>`, `ARRAY<T>`, `MAP<K, V>`, to any depth.
/// Names may be backticked (spaces, dots, a doubled backtick for a backtick); `NOT NULL` and
/// `COMMENT '...'` are accepted after a column or a struct field.
pub fn parse_ddl(ddl: &str) -> Result<SchemaRef, SourceError> {
    let bad = |msg: String| SourceError::InvalidSchema(format!("{msg} in \"{ddl}\""));
    if ddl.trim().is_empty() {
        return Err(SourceError::InvalidSchema(
            "the schema is empty; give columns like \"time TIMESTAMP, action STRING\"".into(),
        ));
    }
    let mut parser = Parser::new(ddl).map_err(bad)?;
    let fields = parser.fields(None).map_err(bad)?;
    if !parser.done() {
        return Err(bad(format!("unexpected `{}`", parser.rest())));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A word: a name, a type, a keyword.
    Word(String),
    /// A backticked name.
    Quoted(String),
    /// A '...' or "..." string (comments).
    Text,
    /// A number (DECIMAL's precision and scale).
    Number(u32),
    Punct(char),
}

/// A recursive-descent parser over the tokens of a DDL string.
struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

fn tokenize(ddl: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = ddl.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '`' {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next() {
                    Some('`') if chars.peek() == Some(&'`') => {
                        chars.next();
                        name.push('`');
                    }
                    Some('`') => break,
                    Some(ch) => name.push(ch),
                    None => return Err("a backticked name is not closed".into()),
                }
            }
            tokens.push(Token::Quoted(name));
        } else if c == '\'' || c == '"' {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        chars.next();
                    }
                    Some(ch) if ch == c => break,
                    Some(_) => {}
                    None => return Err("a quoted comment is not closed".into()),
                }
            }
            tokens.push(Token::Text);
        } else if c.is_ascii_digit() {
            let mut digits = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(d);
                chars.next();
            }
            tokens.push(Token::Number(
                digits
                    .parse()
                    .map_err(|_| format!("number `{digits}` is too large"))?,
            ));
        } else if c.is_alphanumeric() || c == '_' {
            let mut word = String::new();
            while let Some(&w) = chars.peek().filter(|w| w.is_alphanumeric() || **w == '_') {
                word.push(w);
                chars.next();
            }
            tokens.push(Token::Word(word));
        } else if "<>(),:".contains(c) {
            tokens.push(Token::Punct(c));
            chars.next();
        } else {
            return Err(format!("unexpected `{c}`"));
        }
    }
    Ok(tokens)
}

impl Parser {
    fn new(ddl: &str) -> Result<Self, String> {
        Ok(Parser {
            tokens: tokenize(ddl)?,
            at: 0,
        })
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn rest(&self) -> String {
        format!("{:?}", self.tokens.get(self.at))
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn punct(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char, what: &str) -> Result<(), String> {
        if self.punct(c) {
            Ok(())
        } else {
            Err(format!("expected `{c}` {what}"))
        }
    }

    fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(word) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    /// Columns (`close` None) or struct fields (until `close`), comma-separated.
    fn fields(&mut self, close: Option<char>) -> Result<Vec<Field>, String> {
        let mut fields: Vec<Field> = Vec::new();
        loop {
            if let Some(c) = close {
                if self.punct(c) {
                    return Ok(fields);
                }
            }
            let name = match self.next() {
                Some(Token::Word(w)) => w,
                Some(Token::Quoted(q)) if !q.is_empty() => q,
                Some(Token::Quoted(_)) => return Err("a column has an empty name".into()),
                other => return Err(format!("expected a column name, found {other:?}")),
            };
            if close.is_some() {
                // Spark writes struct fields as `name: TYPE` or `name TYPE`.
                self.punct(':');
            }
            if self.done() || matches!(self.peek(), Some(Token::Punct(',' | '>'))) {
                return Err(format!("column `{name}` has no type"));
            }
            let data_type = self.data_type(&name)?;
            if self.keyword("NOT") && !self.keyword("NULL") {
                return Err(format!("expected NULL after NOT for `{name}`"));
            }
            if self.keyword("COMMENT") && self.next() != Some(Token::Text) {
                return Err(format!("expected a quoted comment for `{name}`"));
            }
            if fields.iter().any(|f| f.name().eq_ignore_ascii_case(&name)) {
                return Err(format!("column `{name}` appears twice"));
            }
            fields.push(field(&name, data_type));
            match (self.punct(','), close) {
                (true, _) => continue,
                (false, None) if self.done() => return Ok(fields),
                (false, Some(c)) => {
                    self.expect(c, "to close a STRUCT")?;
                    return Ok(fields);
                }
                (false, None) => {
                    return Err(format!(
                        "unexpected {} after `{}`",
                        self.rest(),
                        fields.last().map_or("", |f| f.name().as_str())
                    ))
                }
            }
        }
    }

    fn data_type(&mut self, column: &str) -> Result<DataType, String> {
        let unknown = |ty: &str| {
            format!(
                "unknown type `{ty}` for column `{column}` (use STRING, BOOLEAN, INT, BIGINT, FLOAT, DOUBLE, DATE, TIMESTAMP, TIMESTAMP_NTZ, DECIMAL(p,s), BINARY, STRUCT<...>, ARRAY<...> or MAP<...>)"
            )
        };
        let word = match self.next() {
            Some(Token::Word(w)) => w,
            other => return Err(format!("expected a type for `{column}`, found {other:?}")),
        };
        let upper = word.to_ascii_uppercase();
        Ok(match upper.as_str() {
            "STRUCT" => {
                self.expect('<', "after STRUCT")?;
                DataType::Struct(self.fields(Some('>'))?.into())
            }
            "ARRAY" => {
                self.expect('<', "after ARRAY")?;
                let item = self.data_type(column)?;
                self.expect('>', "to close an ARRAY")?;
                DataType::List(Arc::new(field("element", item)))
            }
            "MAP" => {
                self.expect('<', "after MAP")?;
                let key = self.data_type(column)?;
                self.expect(',', "between a MAP's key and value types")?;
                let value = self.data_type(column)?;
                self.expect('>', "to close a MAP")?;
                map_type(key, value)
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                let (p, s) = if self.punct('(') {
                    let p = self.number()?;
                    let s = if self.punct(',') { self.number()? } else { 0 };
                    self.expect(')', "to close DECIMAL(p,s)")?;
                    (p, s)
                } else {
                    (10, 0)
                };
                if p == 0 || p > 38 || s > p {
                    return Err(unknown(&format!("DECIMAL({p},{s})")));
                }
                DataType::Decimal128(p as u8, s as i8)
            }
            other => parse_simple(other).ok_or_else(|| unknown(&word))?,
        })
    }

    fn number(&mut self) -> Result<u32, String> {
        match self.next() {
            Some(Token::Number(n)) => Ok(n),
            other => Err(format!("expected a number, found {other:?}")),
        }
    }
}

/// A map of `key` to `value` as Delta stores it (non-null keys).
pub fn map_type(key: DataType, value: DataType) -> DataType {
    let entries = Field::new(
        "key_value",
        DataType::Struct(vec![Field::new("key", key, false), field("value", value)].into()),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

fn parse_simple(upper: &str) -> Option<DataType> {
    Some(match upper {
        "STRING" | "VARCHAR" | "TEXT" => DataType::Utf8,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "TINYINT" | "BYTE" => DataType::Int8,
        "SMALLINT" | "SHORT" => DataType::Int16,
        "INT" | "INTEGER" => DataType::Int32,
        "BIGINT" | "LONG" => DataType::Int64,
        "FLOAT" | "REAL" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date32,
        "TIMESTAMP" | "TIMESTAMP_LTZ" => timestamp_type(),
        "TIMESTAMP_NTZ" => ntz_type(),
        "BINARY" => DataType::Binary,
        _ => return None,
    })
}

/// A name as DDL writes it: bare when it is a plain identifier, else backticked.
fn quote_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if plain {
        name.to_string()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}

/// Render an Arrow schema as Spark DDL (for records and `sluice inspect`).
pub fn to_ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_name(f.name()), type_name(f.data_type())))
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
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::Timestamp(_, _) => "TIMESTAMP".into(),
        DataType::Binary | DataType::LargeBinary => "BINARY".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", quote_name(f.name()), type_name(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("ARRAY<{}>", type_name(f.data_type()))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => format!(
                "MAP<{}, {}>",
                type_name(kv[0].data_type()),
                type_name(kv[1].data_type())
            ),
            other => format!("MAP<{other}>"),
        },
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
    fn nested_types_backticks_not_null_and_comments() {
        let s = parse_ddl(
            "actor STRUCT<id: BIGINT, login STRING NOT NULL COMMENT 'who'>, \
             `payload size` INT COMMENT 'bytes', tags ARRAY<STRING>, \
             attrs MAP<STRING, ARRAY<STRUCT<`k.v`: DOUBLE>>> NOT NULL, `a``b` DECIMAL(5, 1)",
        )
        .unwrap();
        let names: Vec<_> = s.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["actor", "payload size", "tags", "attrs", "a`b"]);
        assert!(s.fields().iter().all(|f| f.is_nullable()));
        let DataType::Struct(actor) = s.field(0).data_type() else {
            panic!("actor is a struct")
        };
        assert_eq!(actor[1].name(), "login");
        assert_eq!(actor[1].data_type(), &DataType::Utf8);
        // What to_ddl writes, parse_ddl reads back to the same schema.
        let ddl = to_ddl(&s);
        assert_eq!(
            ddl,
            "actor STRUCT<id: BIGINT, login: STRING>, `payload size` INT, tags ARRAY<STRING>, \
             attrs MAP<STRING, ARRAY<STRUCT<`k.v`: DOUBLE>>>, `a``b` DECIMAL(5,1)"
        );
        assert_eq!(parse_ddl(&ddl).unwrap(), s);
    }

    #[test]
    fn rejects_bad_schemas_with_a_reason() {
        for (ddl, needle) in [
            ("time TIMESTAMP, action", "has no type"),
            ("time TIMESTMP", "unknown type `TIMESTMP`"),
            ("a INT, a STRING", "appears twice"),
            ("", "empty"),
            ("x DECIMAL(50,2)", "unknown type"),
            ("a STRUCT<b INT", "expected `>`"),
            ("a ARRAY<INT, b STRING", "expected `>`"),
            ("a MAP<STRING>", "expected `,`"),
            ("`a INT", "not closed"),
            ("a INT NOT", "expected NULL"),
        ] {
            let err = parse_ddl(ddl).unwrap_err().to_string();
            assert!(err.contains(needle), "{ddl}: {err}");
        }
    }
}
