//! Spark SQL where DataFusion reads the same text differently, planned as Spark plans it:
//!
//! ```text
//!  SQL text ─▶ quote_identifiers ─▶ parse (SparkDialect) ─▶ calls::rewrite ─▶ SQL text
//!               `user` → "user"      '\n' escapes, DIV      year(), CAST, ...
//!                                                            │
//!  DataFusion's planner, with: SparkSubscripts (arr[0]), SparkArithmetic (/ and %),
//!  Spark's functions (datafusion-spark, udfs: div, split, regexp_extract, spark_string)
//! ```
//!
//! - identifiers Spark takes unquoted but the SQL parser reads as something else (`user`, a
//!   function there) are quoted before parsing, so `user.name` is a struct field;
//! - `array[i]` is 0-based as in Spark (DataFusion's is 1-based); out of range, or negative,
//!   gives NULL; `map[key]` looks the key up; `element_at(array, i)` is 1-based (negative
//!   counts from the end) and `element_at(map, key)` looks the key up;
//! - Spark's scalar functions from `datafusion-spark` (`size`, `concat`, `sha2`,
//!   `substring`, ...) take the place of DataFusion's where the names clash;
//! - arithmetic, casts and the functions in [`calls`] follow Spark's non-ANSI defaults.

pub mod calls;
pub mod datetime;
pub mod dialect;
mod operators;
mod subscripts;
mod udfs;

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::ScalarUDF;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

pub use dialect::SparkDialect;

use super::PlanError;

/// Words the parser reads as something other than a column where Spark reads a column.
const SPARK_IDENTIFIERS: &[Keyword] = &[Keyword::USER];

/// Quote the words Spark reads as identifiers but the parser would not (see the module docs);
/// everything else is left as written.
pub fn quote_identifiers(sql: &str) -> Result<String, PlanError> {
    let tokens = Tokenizer::new(&SparkDialect::default(), sql)
        .tokenize_with_location()
        .map_err(|e| PlanError::Invalid(format!("the SQL does not parse: {e}")))?;
    let plain: Vec<Token> = tokens.iter().map(|t| t.token.clone()).collect();
    // Byte offsets of the words to quote; the text between them is kept as written.
    let mut quote = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        if let Token::Word(w) = &token.token {
            if w.quote_style.is_none()
                && SPARK_IDENTIFIERS.contains(&w.keyword)
                && !called(&plain[i + 1..])
            {
                let start = byte_offset(sql, token.span.start.line, token.span.start.column);
                quote.push((start, start + w.value.len()));
            }
        }
    }
    if quote.is_empty() {
        return Ok(sql.to_string());
    }
    let mut out = String::with_capacity(sql.len() + 2 * quote.len());
    let mut last = 0;
    for (start, end) in quote {
        out.push_str(&sql[last..start]);
        out.push('"');
        out.push_str(&sql[start..end]);
        out.push('"');
        last = end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

/// The byte offset of a 1-based line and character column in `text`.
fn byte_offset(text: &str, line: u64, column: u64) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(usize::try_from(line.saturating_sub(1)).unwrap_or(usize::MAX))
        .map(str::len)
        .sum();
    text[line_start..]
        .char_indices()
        .nth(usize::try_from(column.saturating_sub(1)).unwrap_or(usize::MAX))
        .map_or(text.len(), |(i, _)| line_start + i)
}

/// Whether the next token that is not white space opens a call's parentheses.
fn called(rest: &[Token]) -> bool {
    rest.iter()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| *t == Token::LParen)
}

/// Register Spark's functions and subscripts on a session being built.
pub fn with_spark_sql(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    let planners = builder.expr_planners().get_or_insert_with(Vec::new);
    planners.insert(0, Arc::new(subscripts::SparkSubscripts));
    planners.insert(0, Arc::new(operators::SparkArithmetic));
    planners.insert(0, Arc::new(datafusion_spark::planner::SparkFunctionPlanner));
    let functions = builder.scalar_functions().get_or_insert_with(Vec::new);
    functions.extend(datafusion_spark::all_default_scalar_functions());
    functions.push(Arc::new(ScalarUDF::from(subscripts::ElementAt::new())));
    functions.extend(udfs::functions());
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spark_identifiers_are_quoted_unless_called() {
        assert_eq!(
            quote_identifiers("SELECT user.name, user() FROM source").unwrap(),
            "SELECT \"user\".name, user() FROM source"
        );
        assert_eq!(
            quote_identifiers("SELECT `user`.name FROM source").unwrap(),
            "SELECT `user`.name FROM source"
        );
        assert_eq!(
            quote_identifiers("SELECT 'it\\'s', user.name\n  FROM source WHERE s LIKE '%\\\\_%'")
                .unwrap(),
            "SELECT 'it\\'s', \"user\".name\n  FROM source WHERE s LIKE '%\\\\_%'"
        );
        let plain = "SELECT a, 'user' FROM source";
        assert_eq!(quote_identifiers(plain).unwrap(), plain);
    }
}
