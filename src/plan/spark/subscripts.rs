//! Spark's subscripts: `array[i]` counted from 0, `map[key]` looked up, and `element_at`.

use std::sync::Arc;

use arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DFSchema, Result as DfResult};
use datafusion::error::DataFusionError;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawFieldAccessExpr};
use datafusion::logical_expr::{
    lit, when, ColumnarValue, ExprSchemable, GetFieldAccess, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `array[i]` counted from 0, as Spark counts (see the module docs).
#[derive(Debug)]
pub(super) struct SparkSubscripts;

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
pub(super) struct ElementAt {
    signature: Signature,
}

impl ElementAt {
    pub(super) fn new() -> Self {
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
