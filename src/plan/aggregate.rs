//! Incremental aggregation with DataFusion's own accumulator state.
//!
//! The physical plan of an aggregation query is split around its aggregate:
//!
//! ```text
//!   top (HAVING, projection, ORDER BY)           top, with the aggregate replaced by
//!    └── Aggregate(Final)                ──►       Final(state rows to emit)
//!         └── Aggregate(Partial)
//!              └── batch input          partial  = Partial(batch input)         → state rows
//!                                       reduce   = PartialReduce(old ++ partial) → state rows
//! ```
//!
//! State rows are plain Arrow rows (group keys, then accumulator state), so they can be kept,
//! persisted and merged: `state_N = PartialReduce(state_{N-1} ++ Partial(batch_N))`, and the
//! result is `Final(state_N)`.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, PhysicalGroupBy};
use datafusion::physical_plan::execution_plan::{ChildrenPropertiesMode, ReplaceChildrenOptions};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::udaf::AggregateFunctionExpr;
use datafusion::physical_plan::{collect, execute_stream, ExecutionPlan, PhysicalExpr};

use super::PlanError;

fn exec_err(e: impl std::fmt::Display) -> PlanError {
    PlanError::Execution(e.to_string().lines().next().unwrap_or_default().to_string())
}

/// One micro-batch's aggregation plan, split for incremental execution.
pub struct AggregatePlan {
    top: Arc<dyn ExecutionPlan>,
    target: Arc<dyn ExecutionPlan>,
    partial: Arc<dyn ExecutionPlan>,
    group_by: Arc<PhysicalGroupBy>,
    aggr_expr: Vec<Arc<AggregateFunctionExpr>>,
    filter_expr: Vec<Option<Arc<dyn PhysicalExpr>>>,
    input_schema: SchemaRef,
    task: Arc<TaskContext>,
}

impl std::fmt::Debug for AggregatePlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatePlan").finish_non_exhaustive()
    }
}

fn find_aggregate(plan: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    if plan.is::<AggregateExec>() {
        return Some(plan.clone());
    }
    plan.children().into_iter().find_map(find_aggregate)
}

fn replace(
    plan: &Arc<dyn ExecutionPlan>,
    target: &Arc<dyn ExecutionPlan>,
    with: &Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>, PlanError> {
    if std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(target)) {
        return Ok(with.clone());
    }
    let children = plan.children();
    if children.is_empty() {
        return Ok(plan.clone());
    }
    let new_children = children
        .into_iter()
        .map(|c| replace(c, target, with))
        .collect::<Result<Vec<_>, _>>()?;
    let rebuilt = plan.clone().replace_children(
        new_children,
        ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
    );
    rebuilt.map_err(exec_err)
}

fn holds(plan: &Arc<dyn ExecutionPlan>, target: &Arc<dyn ExecutionPlan>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(target))
        || plan.children().into_iter().any(|c| holds(c, target))
}

/// Is there a filter between `plan` and the aggregate `target` below it?
fn filters_above(plan: &Arc<dyn ExecutionPlan>, target: &Arc<dyn ExecutionPlan>) -> bool {
    if std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(target)) {
        return false;
    }
    (plan.is::<FilterExec>() && holds(plan, target))
        || plan
            .children()
            .into_iter()
            .any(|c| filters_above(c, target))
}

/// `plan` with the filters above the aggregate `target` taken out (each replaced by its input).
fn without_filters_above(
    plan: &Arc<dyn ExecutionPlan>,
    target: &Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>, PlanError> {
    if std::ptr::addr_eq(Arc::as_ptr(plan), Arc::as_ptr(target)) || !holds(plan, target) {
        return Ok(plan.clone());
    }
    if let Some(filter) = plan.downcast_ref::<FilterExec>() {
        // A filter may also project; the projection stays.
        let input = without_filters_above(filter.input(), target)?;
        return match filter.projection() {
            Some(projection) => {
                let exprs = projection
                    .iter()
                    .map(|&i| {
                        let field = input.schema().field(i).clone();
                        let column: Arc<dyn PhysicalExpr> = Arc::new(
                            datafusion::physical_expr::expressions::Column::new(field.name(), i),
                        );
                        (column, field.name().to_string())
                    })
                    .collect::<Vec<_>>();
                Ok(Arc::new(
                    ProjectionExec::try_new(exprs, input).map_err(exec_err)?,
                ))
            }
            None => Ok(input),
        };
    }
    let children = plan
        .children()
        .into_iter()
        .map(|c| without_filters_above(c, target))
        .collect::<Result<Vec<_>, _>>()?;
    plan.clone()
        .replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
        .map_err(exec_err)
}

impl AggregatePlan {
    /// Split a physical plan holding one aggregation.
    pub fn split(top: Arc<dyn ExecutionPlan>, task: Arc<TaskContext>) -> Result<Self, PlanError> {
        let target = find_aggregate(&top)
            .ok_or_else(|| PlanError::Execution("the plan has no aggregate".into()))?;
        let agg = target
            .downcast_ref::<AggregateExec>()
            .ok_or_else(|| PlanError::Execution("the plan has no aggregate".into()))?;
        // A Final aggregate reads a Partial one, possibly through repartitioning.
        let first_stage: AggregateExec = match agg.mode() {
            AggregateMode::Final | AggregateMode::FinalPartitioned => {
                let below = find_aggregate(agg.input()).ok_or_else(|| {
                    PlanError::Execution("final aggregate without a partial one".into())
                })?;
                below
                    .downcast_ref::<AggregateExec>()
                    .cloned()
                    .ok_or_else(|| PlanError::Execution("unexpected aggregate".into()))?
            }
            _ => agg.clone(),
        };
        if find_aggregate(first_stage.input()).is_some() {
            return Err(PlanError::Stateful(
                "nested aggregations are not supported on streams; aggregate once".into(),
            ));
        }
        let group_by = Arc::new(first_stage.group_expr().clone());
        let aggr_expr = first_stage.aggr_expr().to_vec();
        let filter_expr = first_stage.filter_expr().to_vec();
        let input_schema = first_stage.input_schema();
        let partial: Arc<dyn ExecutionPlan> = Arc::new(
            AggregateExec::try_new(
                AggregateMode::Partial,
                group_by.clone(),
                aggr_expr.clone(),
                filter_expr.clone(),
                first_stage.input().clone(),
                input_schema.clone(),
            )
            .map_err(exec_err)?,
        );
        Ok(AggregatePlan {
            top,
            target,
            partial,
            group_by,
            aggr_expr,
            filter_expr,
            input_schema,
            task,
        })
    }

    /// The schema of state rows: group keys first, then accumulator state.
    pub fn state_schema(&self) -> SchemaRef {
        self.partial.schema()
    }

    /// Number of group-key columns at the front of state rows.
    pub fn key_count(&self) -> usize {
        self.group_by.expr().len()
    }

    /// Aggregate the batch's input into state rows.
    pub async fn partial(&self) -> Result<Vec<RecordBatch>, PlanError> {
        collect(self.partial.clone(), self.task.clone())
            .await
            .map_err(exec_err)
    }

    fn over(
        &self,
        mode: AggregateMode,
        rows: Vec<RecordBatch>,
    ) -> Result<Arc<dyn ExecutionPlan>, PlanError> {
        let source = MemorySourceConfig::try_new_exec(&[rows], self.state_schema(), None)
            .map_err(exec_err)?;
        Ok(Arc::new(
            AggregateExec::try_new(
                mode,
                Arc::new(self.group_by.as_final()),
                self.aggr_expr.clone(),
                self.filter_expr.clone(),
                source,
                self.input_schema.clone(),
            )
            .map_err(exec_err)?,
        ))
    }

    /// Merge state rows (several rows per key allowed) into one state row per key.
    pub async fn reduce(&self, rows: Vec<RecordBatch>) -> Result<Vec<RecordBatch>, PlanError> {
        let plan = self.over(AggregateMode::PartialReduce, rows)?;
        collect(plan, self.task.clone()).await.map_err(exec_err)
    }

    /// The query's result for the given state rows (one per key).
    pub fn finalize(&self, rows: Vec<RecordBatch>) -> Result<SendableRecordBatchStream, PlanError> {
        let final_agg = self.over(AggregateMode::Final, rows)?;
        let plan = replace(&self.top, &self.target, &final_agg)?;
        execute_stream(plan, self.task.clone()).map_err(exec_err)
    }

    /// Does a filter run on the aggregate's result (HAVING)?
    pub fn has_having(&self) -> bool {
        filters_above(&self.top, &self.target)
    }

    /// The result rows of the given state rows as if the query had no HAVING: one per key, so
    /// that update mode can tell every key a batch touched, including keys HAVING now drops.
    pub fn finalize_unfiltered(
        &self,
        rows: Vec<RecordBatch>,
    ) -> Result<SendableRecordBatchStream, PlanError> {
        let final_agg = self.over(AggregateMode::Final, rows)?;
        let plan = replace(
            &without_filters_above(&self.top, &self.target)?,
            &self.target,
            &final_agg,
        )?;
        execute_stream(plan, self.task.clone()).map_err(exec_err)
    }
}
