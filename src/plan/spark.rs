//! Spark SQL where DataFusion reads the same text differently:
//!
//! - identifiers Spark takes unquoted but the SQL parser reads as something else (`user`, a
//!   function there) are quoted before parsing, so `user.name` is a struct field;
//! - `array[i]` is 0-based as in Spark (DataFusion's is 1-based); out of range, or negative,
//!   gives NULL; `map[key]` looks the key up;
//! - `element_at(array, i)` is 1-based (negative counts from the end) and
//!   `element_at(map, key)` looks the key up;
//! - Spark's scalar functions from `datafusion-spark` (`size`, `concat`, `sha2`, ...) take the
//!   place of DataFusion's where the names clash.

use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr};
use datafusion::logical_expr::{
    lit, when, ColumnarValue, ExprSchemable, GetFieldAccess, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::PlanError;

/// Words the parser reads as something other than a column where Spark reads a column.
const SPARK_IDENTIFIERS: &[Keyword] = &[Keyword::USER];

/// Quote the words Spark reads as identifiers but the parser would not (see the module docs);
/// everything else is left as written.
pub fn quote_identifiers(sql: &str) -> Result<String, PlanError> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| PlanError::Invalid(format!("the SQL does not parse: {e}")))?;
    let mut changed = false;
    let mut out = String::with_capacity(sql.len() + 8);
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Word(w)
                if w.quote_style.is_none()
                    && SPARK_IDENTIFIERS.contains(&w.keyword)
                    && !called(&tokens[i + 1..]) =>
            {
                changed = true;
                out.push('"');
                out.push_str(&w.value);
                out.push('"');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    Ok(if changed { out } else { sql.to_string() })
}

/// Whether the next token that is not white space opens a call's parentheses.
fn called(rest: &[Token]) -> bool {
    rest.iter()
        .find(|t| !matches!(t, Token::Whitespace(_)))
        .is_some_and(|t| *t == Token::LParen)
}

/// Register Spark's functions and subscripts on a session being built.
pub fn with_spark_sql(mut builder: SessionStateBuilder) -> SessionStateBuilder {
    builder
        .expr_planners()
        .get_or_insert_with(Vec::new)
        .insert(0, Arc::new(SparkSubscripts));
    let functions = builder.scalar_functions().get_or_insert_with(Vec::new);
    functions.extend(datafusion_spark::all_default_scalar_functions());
    functions.push(Arc::new(ScalarUDF::from(ElementAt::new())));
    builder
}

/// `array[i]` counted from 0, as Spark counts (see the module docs).
#[derive(Debug)]
struct SparkSubscripts;

impl ExprPlanner for SparkSubscripts {
    fn plan_field_access(
        &self,
        expr: RawFieldAccessExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawFieldAccessExpr>> {
        let RawFieldAccessExpr { expr, field_access } = expr;
        match field_access {
            GetFieldAccess::ListIndex { key } if is_list(&expr.get_type(schema)?) => {
                // Spark's 0-based index is DataFusion's 1-based one plus 1; a negative index is
                // out of range (DataFusion would count it from the end).
                let index = when(key.clone().gt_eq(lit(0i64)), *key + lit(1i64)).end()?;
                Ok(PlannerResult::Planned(
                    datafusion::functions_nested::expr_fn::array_element(expr, index),
                ))
            }
            field_access => Ok(PlannerResult::Original(RawFieldAccessExpr {
                expr,
                field_access,
            })),
        }
    }
}

fn is_list(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _)
    )
}

/// Spark's `element_at`: an array's element counted from 1 (negative from the end), or a
/// map's value for a key.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ElementAt {
    signature: Signature,
}

impl ElementAt {
    fn new() -> Self {
        ElementAt {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ElementAt {
    fn name(&self) -> &str {
        "element_at"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(
            "element_at's type comes from its arguments".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        delegate(args.arg_fields[0].data_type())?.return_field_from_args(args)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        delegate(args.arg_fields[0].data_type())?.invoke_with_args(args)
    }
}

/// The function that does `element_at`'s work for a container type.
fn delegate(container: &DataType) -> DfResult<Arc<ScalarUDF>> {
    match container {
        t if is_list(t) => Ok(datafusion::functions_nested::extract::array_element_udf()),
        DataType::Map(_, _) | DataType::Null => Ok(datafusion::functions::core::get_field()),
        other => Err(DataFusionError::Plan(format!(
            "element_at() takes an array or a map, not {other}"
        ))),
    }
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
        let plain = "SELECT a, 'user' FROM source";
        assert_eq!(quote_identifiers(plain).unwrap(), plain);
    }
}
