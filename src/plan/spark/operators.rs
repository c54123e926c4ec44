//! Spark's arithmetic (non-ANSI defaults, `spark.sql.ansi.enabled=false`):
//!
//! - `a / b` is a double unless a decimal is involved (then a decimal), so `5 / 2` is 2.5;
//! - division and remainder by zero give NULL;
//! - an integer literal is an INT where it fits, so `int_column + 1` stays an INT.

use arrow::datatypes::DataType;
use datafusion::common::{DFSchema, Result as DfResult, ScalarValue};
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{cast, lit, when, Expr, ExprSchemable};
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// Plans the binary operators whose Spark meaning differs (see the module docs).
#[derive(Debug)]
pub(super) struct SparkArithmetic;

impl ExprPlanner for SparkArithmetic {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let arithmetic = matches!(
            expr.op,
            BinaryOperator::Plus
                | BinaryOperator::Minus
                | BinaryOperator::Multiply
                | BinaryOperator::Divide
                | BinaryOperator::Modulo
        );
        if !arithmetic {
            return Ok(PlannerResult::Original(expr));
        }
        let (Ok(left_type), Ok(right_type)) =
            (expr.left.get_type(schema), expr.right.get_type(schema))
        else {
            return Ok(PlannerResult::Original(expr));
        };
        let RawBinaryExpr { op, left, right } = expr;
        let left = narrow_literal(left, &right_type);
        let right = narrow_literal(right, &left_type);
        let planned = match op {
            BinaryOperator::Divide => {
                let decimal = matches!(
                    left_type,
                    DataType::Decimal128(..) | DataType::Decimal256(..)
                ) || matches!(
                    right_type,
                    DataType::Decimal128(..) | DataType::Decimal256(..)
                );
                let floating = left_type.is_floating() || right_type.is_floating();
                let (left, right) = if decimal && !floating {
                    (left, right)
                } else {
                    (
                        cast(left, DataType::Float64),
                        cast(right, DataType::Float64),
                    )
                };
                null_on_zero(right.clone(), left / right)?
            }
            BinaryOperator::Modulo => null_on_zero(right.clone(), left % right)?,
            BinaryOperator::Plus => left + right,
            BinaryOperator::Minus => left - right,
            _ => left * right,
        };
        Ok(PlannerResult::Planned(planned))
    }
}

/// `result`, or NULL where `divisor` is zero.
fn null_on_zero(divisor: Expr, result: Expr) -> DfResult<Expr> {
    when(divisor.eq(lit(0i32)), lit(ScalarValue::Null)).otherwise(result)
}

/// An integer literal beside an INT (or narrower) operand is an INT, as Spark types `1`.
fn narrow_literal(expr: Expr, other: &DataType) -> Expr {
    match expr {
        Expr::Literal(ScalarValue::Int64(Some(v)), None)
            if matches!(other, DataType::Int32 | DataType::Int16 | DataType::Int8) =>
        {
            match i32::try_from(v) {
                Ok(v) => lit(v),
                Err(_) => Expr::Literal(ScalarValue::Int64(Some(v)), None),
            }
        }
        other => other,
    }
}
