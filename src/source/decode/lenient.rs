//! JSON as real producers write it, rewritten into strict JSON lines for the Arrow decoder.
//!
//! Spark reads JSON through Jackson with options that accept non-standard spellings
//! (`allowSingleQuotes`, on by default; `allowComments`; `allowUnquotedFieldNames`;
//! `allowNumericLeadingZeros`; `allowNonNumericNumbers`, on by default;
//! `allowBackslashEscapingAnyCharacter`; `allowUnquotedControlChars`). Strict JSON never comes
//! here: the decoder reads it directly, and only input it refused is rewritten.
//!
//! The rewrite also does what Spark does that the Arrow decoder cannot:
//! - a top-level array is one record per element;
//! - an object or array met where the schema has a STRING is kept as its JSON text;
//! - each record is written on one line, so a pretty-printed (`multiLine`) file becomes JSON
//!   lines.
//!
//! `NaN` and the infinities become the strings `"NaN"`, `"Infinity"` and `"-Infinity"`, which
//! the decoder reads into a DOUBLE column as those values.

use arrow::datatypes::DataType;

use crate::source::options::JsonSyntax;

/// How deep values may nest before a record is refused (as Jackson's default limits do).
const MAX_DEPTH: usize = 512;

/// Rewrite `input` (one or more JSON values separated by white space) into strict JSON, one
/// record per line, guided by the record type `schema` (a struct; `None`: no guidance).
pub fn rewrite(
    input: &[u8],
    syntax: JsonSyntax,
    schema: Option<&DataType>,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let mut r = Rewriter {
        input,
        pos: 0,
        syntax,
        out,
        depth: 0,
    };
    loop {
        r.skip_space()?;
        if r.pos >= input.len() {
            return Ok(());
        }
        if r.peek() == Some(b'[') {
            // A top-level array: each element is a record, on a line of its own.
            r.pos += 1;
            let elements = r.items(b']', "an array", b'\n', |r| r.value(schema))?;
            if elements > 0 {
                r.out.push(b'\n');
            }
        } else {
            r.value(schema)?;
            r.out.push(b'\n');
        }
    }
}

struct Rewriter<'a, 'o> {
    input: &'a [u8],
    pos: usize,
    syntax: JsonSyntax,
    out: &'o mut Vec<u8>,
    depth: usize,
}

impl Rewriter<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.pos += usize::from(b.is_some());
        b
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at byte {}", self.pos)
    }

    /// White space, and comments where allowed.
    fn skip_space(&mut self) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.pos += 1,
                Some(b'/') if self.input.get(self.pos + 1) == Some(&b'/') => {
                    if !self.syntax.comments {
                        return Err(self.error("a comment (set allowComments=true to read it)"));
                    }
                    while !matches!(self.peek(), None | Some(b'\n')) {
                        self.pos += 1;
                    }
                }
                Some(b'/') if self.input.get(self.pos + 1) == Some(&b'*') => {
                    if !self.syntax.comments {
                        return Err(self.error("a comment (set allowComments=true to read it)"));
                    }
                    let rest = &self.input[self.pos + 2..];
                    let end = rest
                        .windows(2)
                        .position(|w| w == b"*/")
                        .ok_or_else(|| self.error("an unclosed comment"))?;
                    self.pos += 2 + end + 2;
                }
                _ => return Ok(()),
            }
        }
    }

    /// One value, written strict. Where the schema wants a STRING, an object or array is
    /// written as a string of its (strict) text.
    fn value(&mut self, want: Option<&DataType>) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error("values nested too deep"));
        }
        let as_text = matches!(want, Some(DataType::Utf8 | DataType::LargeUtf8))
            && matches!(self.peek(), Some(b'{' | b'['));
        let start = self.out.len();
        let result = match self.peek() {
            Some(b'{') => self.object(want),
            Some(b'[') => self.array(want),
            Some(q @ (b'"' | b'\'')) => self.string(q),
            Some(b'-' | b'+' | b'0'..=b'9' | b'.') => self.number(),
            Some(_) => self.word(),
            None => Err(self.error("a value is missing")),
        };
        self.depth -= 1;
        result?;
        if as_text {
            let text = self.out.split_off(start);
            let text = String::from_utf8(text).map_err(|_| self.error("text that is not UTF-8"))?;
            let quoted = serde_json::to_string(&text).map_err(|e| e.to_string())?;
            self.out.extend_from_slice(quoted.as_bytes());
        }
        Ok(())
    }

    /// The items of an object or array after its opening bracket, up to `close`: each read
    /// by `item`, written `separator`-separated (the brackets are the caller's). How many
    /// there were.
    fn items(
        &mut self,
        close: u8,
        what: &str,
        separator: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<usize, String> {
        self.skip_space()?;
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(0);
        }
        let mut count = 0;
        loop {
            self.skip_space()?;
            item(self)?;
            count += 1;
            self.skip_space()?;
            match self.next() {
                Some(b',') => self.out.push(separator),
                Some(b) if b == close => return Ok(count),
                _ => return Err(self.error(&format!("expected , or {} in {what}", close as char))),
            }
        }
    }

    fn object(&mut self, want: Option<&DataType>) -> Result<(), String> {
        self.pos += 1;
        self.out.push(b'{');
        self.items(b'}', "an object", b',', |r| {
            let name_start = r.out.len();
            match r.peek() {
                Some(q @ (b'"' | b'\'')) => r.string(q)?,
                Some(_) => r.bare_name()?,
                None => return Err(r.error("a field name is missing")),
            }
            let field_type = field_type(want, &r.out[name_start..]);
            r.skip_space()?;
            if r.next() != Some(b':') {
                return Err(r.error("expected : after a field name"));
            }
            r.out.push(b':');
            r.skip_space()?;
            r.value(field_type.as_ref())
        })?;
        self.out.push(b'}');
        Ok(())
    }

    fn array(&mut self, want: Option<&DataType>) -> Result<(), String> {
        self.pos += 1;
        self.out.push(b'[');
        let element = match want {
            Some(DataType::List(f) | DataType::LargeList(f)) => Some(f.data_type().clone()),
            _ => None,
        };
        self.items(b']', "an array", b',', |r| r.value(element.as_ref()))?;
        self.out.push(b']');
        Ok(())
    }

    /// A string in `quote`s, written in double quotes.
    fn string(&mut self, quote: u8) -> Result<(), String> {
        if quote == b'\'' && !self.syntax.single_quotes {
            return Err(
                self.error("a single-quoted string (set allowSingleQuotes=true to read it)")
            );
        }
        self.pos += 1;
        self.out.push(b'"');
        loop {
            let Some(b) = self.next() else {
                return Err(self.error("an unclosed string"));
            };
            match b {
                b if b == quote => break,
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.escape(quote)?,
                b if b < 0x20 => {
                    if !self.syntax.unquoted_control_chars {
                        return Err(self.error(
                            "a control character in a string (set allowUnquotedControlChars=true to read it)",
                        ));
                    }
                    self.out.extend_from_slice(format!("\\u{b:04x}").as_bytes());
                }
                b => self.out.push(b),
            }
        }
        self.out.push(b'"');
        Ok(())
    }

    fn escape(&mut self, quote: u8) -> Result<(), String> {
        match self.next() {
            Some(e @ (b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u')) => {
                self.out.push(b'\\');
                self.out.push(e);
                Ok(())
            }
            Some(b'\'') if quote == b'\'' || self.syntax.backslash_escaping_any_character => {
                self.out.push(b'\'');
                Ok(())
            }
            Some(other) if self.syntax.backslash_escaping_any_character => {
                self.out.push(other);
                Ok(())
            }
            _ => Err(self.error(
                "an unknown escape in a string (set allowBackslashEscapingAnyCharacter=true to read it)",
            )),
        }
    }

    /// An unquoted field name, written quoted.
    fn bare_name(&mut self) -> Result<(), String> {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80)
        {
            self.pos += 1;
        }
        if self.pos == start || !self.syntax.unquoted_field_names {
            return Err(
                self.error("an unquoted field name (set allowUnquotedFieldNames=true to read it)")
            );
        }
        self.out.push(b'"');
        self.out.extend_from_slice(&self.input[start..self.pos]);
        self.out.push(b'"');
        Ok(())
    }

    /// `true`, `false`, `null`, and the non-numeric numbers.
    fn word(&mut self) -> Result<(), String> {
        let start = self.pos;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphabetic()) {
            self.pos += 1;
        }
        let word = &self.input[start..self.pos];
        match word {
            b"true" | b"false" | b"null" => self.out.extend_from_slice(word),
            b"NaN" | b"Infinity" | b"INF" => self.non_numeric(word, "")?,
            _ => return Err(self.error("an unexpected word")),
        }
        Ok(())
    }

    fn non_numeric(&mut self, word: &[u8], sign: &str) -> Result<(), String> {
        if !self.syntax.non_numeric_numbers {
            return Err(self.error("NaN or Infinity (set allowNonNumericNumbers=true to read it)"));
        }
        let text = match word {
            b"NaN" => "\"NaN\"".to_string(),
            _ => format!("\"{sign}Infinity\""),
        };
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// A number; leading zeros dropped where allowed, `+` signs and the infinities handled.
    fn number(&mut self) -> Result<(), String> {
        let sign = match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                "-"
            }
            Some(b'+') => {
                self.pos += 1;
                ""
            }
            _ => "",
        };
        if matches!(self.peek(), Some(b'I' | b'N')) {
            let start = self.pos;
            while matches!(self.peek(), Some(b) if b.is_ascii_alphabetic()) {
                self.pos += 1;
            }
            let word = self.input[start..self.pos].to_vec();
            return match word.as_slice() {
                b"Infinity" | b"INF" => self.non_numeric(&word, sign),
                _ => Err(self.error("an unexpected word")),
            };
        }
        let start = self.pos;
        while matches!(
            self.peek(),
            Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
        ) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.input[start..self.pos]).map_err(|e| e.to_string())?;
        let (int, rest) = text.split_at(text.find(['.', 'e', 'E']).unwrap_or(text.len()));
        let digits = int.trim_start_matches('0');
        if int.len() > 1 && int.starts_with('0') && !self.syntax.numeric_leading_zeros {
            return Err(self.error(
                "a number with leading zeros (set allowNumericLeadingZeros=true to read it)",
            ));
        }
        if int.is_empty() || rest.starts_with(['e', 'E']) && int.is_empty() {
            return Err(self.error("a number without digits before its point"));
        }
        self.out.extend_from_slice(sign.as_bytes());
        self.out
            .extend_from_slice(if digits.is_empty() { "0" } else { digits }.as_bytes());
        self.out.extend_from_slice(rest.as_bytes());
        Ok(())
    }
}

/// The type of field `name` (written as a JSON string) of a struct or map type.
fn field_type(within: Option<&DataType>, name: &[u8]) -> Option<DataType> {
    match within? {
        DataType::Struct(fields) => {
            let name: String = serde_json::from_slice(name).ok()?;
            fields
                .iter()
                .find(|f| *f.name() == name)
                .map(|f| f.data_type().clone())
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => Some(kv[1].data_type().clone()),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    fn strict(input: &str, syntax: JsonSyntax) -> Result<String, String> {
        let mut out = Vec::new();
        rewrite(input.as_bytes(), syntax, None, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    fn all() -> JsonSyntax {
        JsonSyntax {
            single_quotes: true,
            comments: true,
            unquoted_field_names: true,
            numeric_leading_zeros: true,
            non_numeric_numbers: true,
            backslash_escaping_any_character: true,
            unquoted_control_chars: true,
        }
    }

    /// Spark's defaults (JacksonParser with JSONOptions): single quotes and NaN/Infinity are
    /// read; comments, bare names, leading zeros and unknown escapes are not.
    #[test]
    fn spark_defaults() {
        let d = JsonSyntax::default();
        assert_eq!(
            strict(
                r#"{'a': 'it\'s "x"', "b": NaN, "c": -Infinity, "d": +INF}"#,
                d
            )
            .unwrap(),
            "{\"a\":\"it's \\\"x\\\"\",\"b\":\"NaN\",\"c\":\"-Infinity\",\"d\":\"Infinity\"}\n"
        );
        for refused in [
            r#"{"a": 1 /* c */}"#,
            r#"{a: 1}"#,
            r#"{"a": 007}"#,
            r#"{"a": "\q"}"#,
            "{\"a\": \"tab\there\"}",
        ] {
            assert!(strict(refused, d).is_err(), "{refused}");
        }
        let no_quotes = JsonSyntax {
            single_quotes: false,
            ..d
        };
        assert!(strict("{'a': 1}", no_quotes).is_err());
        let no_nan = JsonSyntax {
            non_numeric_numbers: false,
            ..d
        };
        assert!(strict(r#"{"a": NaN}"#, no_nan).is_err());
    }

    /// JsonParsingOptionsSuite's cases, each with its option on.
    #[test]
    fn options_accept_their_spelling() {
        assert_eq!(
            strict(
                "{a: 007, // note\n 'b': \"\\q\", /* x */ \"c\": \"t\tx\", \"d\": -00.5}",
                all()
            )
            .unwrap(),
            "{\"a\":7,\"b\":\"q\",\"c\":\"t\\u0009x\",\"d\":-0.5}\n"
        );
    }

    #[test]
    fn top_level_arrays_and_pretty_files_become_lines() {
        let pretty = "[\n  {\"a\": 1},\n  {\"a\": [1, 2]}\n]\n{\n \"a\": 3\n}";
        assert_eq!(
            strict(pretty, JsonSyntax::default()).unwrap(),
            "{\"a\":1}\n{\"a\":[1,2]}\n{\"a\":3}\n"
        );
        assert_eq!(strict("[]", JsonSyntax::default()).unwrap(), "");
        assert!(strict("{\"a\": 1", JsonSyntax::default()).is_err());
    }

    /// Spark keeps an object or array found where the schema has a STRING as its JSON text.
    #[test]
    fn objects_in_string_fields_become_text() {
        let schema = DataType::Struct(
            vec![
                Field::new("p", DataType::Utf8, true),
                Field::new(
                    "l",
                    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
                    true,
                ),
                Field::new("n", DataType::Int64, true),
            ]
            .into(),
        );
        let mut out = Vec::new();
        rewrite(
            br#"{"p": {"x": [1, 'y']}, "l": ["a", {"b": 2}], "n": 1, "other": {"z": 1}}"#,
            JsonSyntax::default(),
            Some(&schema),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"p":"{\"x\":[1,\"y\"]}","l":["a","{\"b\":2}"],"n":1,"other":{"z":1}}"#.to_string()
                + "\n"
        );
    }
}
