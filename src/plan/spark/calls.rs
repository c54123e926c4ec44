//! Spark's functions and operators spelled in SQL DataFusion reads the same way:
//!
//! | Spark                                   | read as                                          |
//! |-----------------------------------------|--------------------------------------------------|
//! | `year(t)`, `month`, `day`, `quarter`, ... | `CAST(date_part('year', t) AS INT)`            |
//! | `dayofweek(t)` (Sunday = 1)             | Spark's `date_part('dow', t)`                    |
//! | `isnull(x)`, `isnotnull(x)`             | `x IS NULL`, `x IS NOT NULL`                     |
//! | `startswith`, `endswith`                | `starts_with`, `ends_with`                       |
//! | `locate(sub, s[, pos])`                 | `strpos` (0 when absent)                         |
//! | `regexp_replace(s, p, r)`               | every match replaced (`'g'`)                     |
//! | `s RLIKE p`                             | `regexp_like(s, p)`                              |
//! | `sort_array(a[, asc])`                  | `array_sort` (NULLs first ascending)             |
//! | `array_position(a, x)`                  | 0 when absent                                    |
//! | `date_format`, `to_date`, `to_timestamp`, `from_unixtime`, `unix_timestamp` with a Spark pattern | the same pattern in `chrono`'s letters |
//! | `timestamp_seconds/millis/micros(n)`    | `to_timestamp_micros`                            |
//! | `CAST(x AS t)`                          | `TRY_CAST`: NULL when the value does not convert |
//! | `CAST(x AS STRING)`                     | `spark_string(x)`: Spark's text of the value     |
//!
//! Pure: a parsed expression in, the rewritten expression out.

use datafusion::sql::sqlparser::ast::{
    CastKind, DataType as SqlType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, Ident, ObjectName, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::datetime::chrono_pattern;
use crate::plan::PlanError;

/// Spark's `CAST(t AS STRING)` default text of a timestamp.
const DEFAULT_TIME_PATTERN: &str = "yyyy-MM-dd HH:mm:ss";

/// A call `name(args)`.
pub fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// Rewrite `expr` when it is one of the spellings in the module docs; `Ok(true)` when it was.
pub fn rewrite(expr: &mut Expr) -> Result<bool, PlanError> {
    let text = match expr {
        Expr::RLike {
            negated,
            expr: subject,
            pattern,
            ..
        } => format!(
            "{}regexp_like({subject}, {pattern})",
            if *negated { "NOT " } else { "" }
        ),
        Expr::Cast {
            kind: kind @ (CastKind::Cast | CastKind::DoubleColon),
            expr: value,
            data_type,
            format: None,
            ..
        } => {
            if matches!(
                data_type,
                SqlType::String(_) | SqlType::Varchar(_) | SqlType::Text
            ) {
                format!("spark_string({value})")
            } else {
                *kind = CastKind::TryCast;
                return Ok(true);
            }
        }
        Expr::Case {
            conditions,
            else_result,
            ..
        } => {
            // Integer results are INTs, as Spark types `CASE ... THEN 1 ELSE 0 END`.
            let mut changed = false;
            let results = conditions
                .iter_mut()
                .map(|c| &mut c.result)
                .chain(else_result.iter_mut().map(|e| e.as_mut()));
            for result in results {
                if let Some(text) = int_literal(result) {
                    *result = parse(&text)?;
                    changed = true;
                }
            }
            return Ok(changed);
        }
        Expr::Function(f) => match function(f)? {
            Some(text) => text,
            None => return Ok(false),
        },
        _ => return Ok(false),
    };
    *expr = parse(&text)?;
    Ok(true)
}

/// The expression `text` spells (printed by the parser, so read with the generic dialect:
/// its string literals hold their characters unescaped).
fn parse(text: &str) -> Result<Expr, PlanError> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| PlanError::Invalid(format!("{text}: {e}")))
}

/// The SQL a Spark function call reads as, or `None` for a call left as written.
fn function(f: &Function) -> Result<Option<String>, PlanError> {
    if f.over.is_some() || f.filter.is_some() {
        return Ok(None);
    }
    let [name] = f.name.0.as_slice() else {
        return Ok(None);
    };
    let Some(name) = name.as_ident().map(|i| i.value.to_ascii_lowercase()) else {
        return Ok(None);
    };
    let FunctionArguments::List(list) = &f.args else {
        return Ok(None);
    };
    if list.duplicate_treatment.is_some() || !list.clauses.is_empty() {
        return Ok(None);
    }
    let mut args = Vec::with_capacity(list.args.len());
    for arg in &list.args {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => args.push(e),
            _ => return Ok(None),
        }
    }
    let a: Vec<String> = args.iter().map(|e| e.to_string()).collect();
    let pattern = |i: usize| -> Result<Option<String>, PlanError> {
        match args.get(i) {
            Some(Expr::Value(v)) => match &v.value {
                Value::SingleQuotedString(p) => chrono_pattern(p)
                    .map(|c| Some(quoted(&c)))
                    .map_err(|e| PlanError::Invalid(format!("{name}(): {e}"))),
                _ => Ok(None),
            },
            _ => Ok(None),
        }
    };
    let text = match (name.as_str(), a.as_slice()) {
        (part @ ("year" | "month" | "day" | "dayofmonth" | "quarter" | "dayofyear" | "weekofyear"), [t]) => {
            let part = match part {
                "dayofmonth" => "day",
                "dayofyear" => "doy",
                "weekofyear" => "week",
                other => other,
            };
            format!("CAST(date_part('{part}', {t}) AS INT)")
        }
        ("dayofweek", [t]) => format!("CAST(date_part('dow', {t}) AS INT)"),
        ("isnull", [x]) => format!("({x}) IS NULL"),
        ("isnotnull", [x]) => format!("({x}) IS NOT NULL"),
        ("startswith", [s, p]) => format!("starts_with({s}, {p})"),
        ("endswith", [s, p]) => format!("ends_with({s}, {p})"),
        ("locate", [sub, s]) => format!("CAST(strpos({s}, {sub}) AS INT)"),
        ("locate", [sub, s, pos]) => format!(
            "CASE WHEN {pos} < 1 THEN 0 ELSE CAST(coalesce(nullif(strpos(substr({s}, {pos}), {sub}), 0) + {pos} - 1, 0) AS INT) END"
        ),
        ("regexp_replace", [s, p, r]) => format!("regexp_replace({s}, {p}, {r}, 'g')"),
        ("sort_array", [arr]) => format!("array_sort({arr}, 'ASC', 'NULLS FIRST')"),
        ("sort_array", [arr, asc]) => match asc.to_ascii_lowercase().as_str() {
            "true" => format!("array_sort({arr}, 'ASC', 'NULLS FIRST')"),
            "false" => format!("array_sort({arr}, 'DESC', 'NULLS LAST')"),
            _ => return Err(PlanError::Invalid(
                "sort_array(array, ascending): ascending must be true or false".into(),
            )),
        },
        ("array_position", [arr, x]) => format!(
            "CASE WHEN ({arr}) IS NULL THEN NULL ELSE CAST(coalesce(array_position({arr}, {x}), 0) AS BIGINT) END"
        ),
        ("date_format", [t, _]) => match pattern(1)? {
            Some(p) => format!("to_char({t}, {p})"),
            None => return Ok(None),
        },
        (f @ ("to_date" | "to_timestamp"), [s, _]) => match pattern(1)? {
            Some(p) => format!("{f}({s}, {p})"),
            None => return Ok(None),
        },
        ("unix_timestamp", []) => "CAST(floor(date_part('epoch', now())) AS BIGINT)".into(),
        ("unix_timestamp", [t]) => format!("CAST(floor(date_part('epoch', {t})) AS BIGINT)"),
        ("unix_timestamp", [s, _]) => match pattern(1)? {
            Some(p) => format!("CAST(floor(date_part('epoch', to_timestamp({s}, {p}))) AS BIGINT)"),
            None => return Ok(None),
        },
        ("from_unixtime", [n]) => format!(
            "to_char(to_timestamp_seconds(CAST({n} AS BIGINT)), {})",
            quoted(&chrono_pattern(DEFAULT_TIME_PATTERN).map_err(PlanError::Invalid)?)
        ),
        ("from_unixtime", [n, _]) => match pattern(1)? {
            Some(p) => format!("to_char(to_timestamp_seconds(CAST({n} AS BIGINT)), {p})"),
            None => return Ok(None),
        },
        (unit @ ("timestamp_seconds" | "timestamp_millis" | "timestamp_micros"), [n]) => {
            let scale = match unit {
                "timestamp_seconds" => "1000000",
                "timestamp_millis" => "1000",
                _ => "1",
            };
            format!("to_timestamp_micros(CAST(CAST({n} AS DOUBLE) * {scale} AS BIGINT))")
        }
        _ if INT_LITERAL_ARGS.contains(&name.as_str()) && args.iter().any(|e| int_literal(e).is_some()) => {
            let args: Vec<String> = args
                .iter()
                .map(|e| int_literal(e).unwrap_or_else(|| e.to_string()))
                .collect();
            format!("{name}({})", args.join(", "))
        }
        _ => return Ok(None),
    };
    Ok(Some(text))
}

/// Functions whose result type follows their arguments': an integer literal there is an INT,
/// as Spark types it (`coalesce(int_column, 0)` is an INT), and the date functions that take
/// an INT count of days or months.
const INT_LITERAL_ARGS: &[&str] = &[
    "coalesce",
    "greatest",
    "least",
    "nullif",
    "if",
    "ifnull",
    "nvl",
    "nvl2",
    "array",
    "make_array",
    "date_add",
    "date_sub",
    "add_months",
];

/// `CAST(n AS INT)` for an integer literal that fits an INT.
fn int_literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, false) => n.parse::<i32>().ok().map(|n| format!("CAST({n} AS INT)")),
            _ => None,
        },
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => int_literal(expr).map(|_| format!("CAST(-{expr} AS INT)")),
        _ => None,
    }
}

/// `text` as a SQL string literal.
fn quoted(text: &str) -> String {
    Value::SingleQuotedString(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::spark::dialect::SparkDialect;
    use datafusion::sql::sqlparser::ast::{visit_expressions_mut, Statement};
    use std::ops::ControlFlow;

    fn rewritten(sql: &str) -> String {
        let mut statements = Parser::parse_sql(&SparkDialect::default(), sql).unwrap();
        let _ = visit_expressions_mut(&mut statements, |e| {
            rewrite(e).unwrap();
            ControlFlow::<()>::Continue(())
        });
        statements.iter().map(Statement::to_string).collect()
    }

    #[test]
    fn spark_functions_read_as_datafusion_ones() {
        assert_eq!(
            rewritten("SELECT year(ts), dayofweek(d) FROM s"),
            "SELECT CAST(date_part('year', ts) AS INT), CAST(date_part('dow', d) AS INT) FROM s"
        );
        assert_eq!(
            rewritten("SELECT isnull(a) FROM s WHERE s RLIKE '^x'"),
            "SELECT (a) IS NULL FROM s WHERE regexp_like(s, '^x')"
        );
        assert_eq!(
            rewritten("SELECT date_format(ts, 'yyyy-MM-dd HH:mm') FROM s"),
            "SELECT to_char(ts, '%Y-%m-%d %H:%M') FROM s"
        );
    }

    #[test]
    fn casts_give_null_when_a_value_does_not_convert() {
        assert_eq!(
            rewritten("SELECT CAST(s AS INT), CAST(t AS STRING) FROM s"),
            "SELECT TRY_CAST(s AS INT), spark_string(t) FROM s"
        );
    }

    #[test]
    fn calls_left_alone() {
        let sql = "SELECT lower(s), count(*), date_format(ts, fmt) FROM s";
        assert_eq!(rewritten(sql), sql);
    }
}
