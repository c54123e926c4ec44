//! The SQL dialect a query is parsed with: the generic one, plus what Spark's parser reads
//! differently:
//!
//! - a backslash escapes the next character in a string literal (`'a\nb'`, `'%\\_%'`), as
//!   Spark's default (`spark.sql.parser.escapedStringLiterals=false`) reads it;
//! - `a DIV b`, Spark's integral division, reads as the call `div(a, b)`.
//!
//! The rewritten statement prints string literals with their characters unescaped, so the
//! generic parser that reads it again sees the same values.

use std::any::TypeId;

use datafusion::sql::sqlparser::ast::Expr;
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::calls::call;

/// Spark's reading of SQL text (see the module docs).
#[derive(Debug, Default)]
pub struct SparkDialect {
    generic: GenericDialect,
}

impl SparkDialect {
    fn next_is_div(parser: &Parser) -> bool {
        matches!(parser.peek_token().token, Token::Word(w) if w.keyword == Keyword::DIV)
    }
}

impl Dialect for SparkDialect {
    /// The generic dialect's parsing paths apply.
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.generic.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.generic.is_identifier_part(ch)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.generic.is_delimited_identifier_start(ch)
    }

    fn supports_string_literal_backslash_escape(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        self.generic.supports_filter_during_aggregation()
    }

    fn supports_group_by_expr(&self) -> bool {
        self.generic.supports_group_by_expr()
    }

    fn supports_window_function_null_treatment_arg(&self) -> bool {
        self.generic.supports_window_function_null_treatment_arg()
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<Result<u8, ParserError>> {
        Self::next_is_div(parser).then(|| Ok(self.prec_value(Precedence::MulDivModOp)))
    }

    fn parse_infix(
        &self,
        parser: &mut Parser,
        expr: &Expr,
        precedence: u8,
    ) -> Option<Result<Expr, ParserError>> {
        if !Self::next_is_div(parser) {
            return None;
        }
        parser.next_token();
        Some(
            parser
                .parse_subexpr(precedence)
                .map(|right| call("div", vec![expr.clone(), right])),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(sql: &str) -> String {
        Parser::new(&SparkDialect::default())
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_expr())
            .unwrap()
            .to_string()
    }

    #[test]
    fn div_is_a_call_with_the_precedence_of_division() {
        assert_eq!(expr("a DIV 2 + 1"), "div(a, 2) + 1");
        assert_eq!(expr("1 + a div b * 3"), "1 + div(a, b) * 3");
    }

    #[test]
    fn backslashes_escape_in_string_literals() {
        // Spark reads '%\\_%' as the pattern %\_% (a literal underscore).
        assert_eq!(expr(r"'%\\_%'"), r"'%\_%'");
        assert_eq!(expr(r"'it\'s'"), "'it''s'");
    }
}
