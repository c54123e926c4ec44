//! The streaming query: SQL over the micro-batch, planned and run by DataFusion.
//!
//! At start the SQL is planned once against an empty table of the source schema, to validate it
//! (only stateless queries for now) and learn its output schema. Each micro-batch then plans it
//! again over a one-shot streaming table that yields the batch's decoded rows, so rows flow
//! from the decoders through DataFusion into the sink without the batch being held whole.

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The SQL does not parse or does not plan.
    #[error("invalid query: {0}")]
    Invalid(String),
    /// The query needs state, which this version cannot keep yet.
    #[error("{0}")]
    Stateful(String),
    /// Running the query failed.
    #[error("query failed: {0}")]
    Execution(String),
}

/// Kinds of operators a stateless streaming query may not contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatefulOperator {
    /// GROUP BY or an aggregate function.
    Aggregate,
    /// `window()` time windows.
    TimeWindow,
    /// ORDER BY.
    Sort,
    /// LIMIT.
    Limit,
    /// A join.
    Join,
    /// DISTINCT.
    Distinct,
    /// Analytic functions with OVER.
    AnalyticWindow,
}

impl fmt::Display for StatefulOperator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StatefulOperator::Aggregate => "streaming aggregations (GROUP BY, count, sum, ...) are not supported yet; remove the aggregation and aggregate the table downstream",
            StatefulOperator::TimeWindow => "window() aggregations are not supported yet; remove the GROUP BY window(...) and aggregate the table downstream",
            StatefulOperator::Sort => "ORDER BY is not supported on a stream without an aggregation in complete mode; remove the ORDER BY",
            StatefulOperator::Limit => "LIMIT is not supported on a stream; remove the LIMIT",
            StatefulOperator::Join => "joins are not supported on a stream; remove the JOIN",
            StatefulOperator::Distinct => "DISTINCT needs deduplication state, which is not supported yet; remove the DISTINCT",
            StatefulOperator::AnalyticWindow => "analytic window functions (OVER ...) are not supported on streams; remove the OVER clause",
        })
    }
}

/// Find the first operator that would need state across micro-batches.
pub fn find_stateful(plan: &LogicalPlan) -> Option<StatefulOperator> {
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        let op = match node {
            LogicalPlan::Aggregate(_) => Some(StatefulOperator::Aggregate),
            LogicalPlan::Sort(_) => Some(StatefulOperator::Sort),
            LogicalPlan::Limit(_) => Some(StatefulOperator::Limit),
            LogicalPlan::Join(_) => Some(StatefulOperator::Join),
            LogicalPlan::Distinct(_) => Some(StatefulOperator::Distinct),
            LogicalPlan::Window(_) => Some(StatefulOperator::AnalyticWindow),
            _ => None,
        };
        if op.is_some() {
            found = op;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// A validated streaming query.
#[derive(Clone)]
pub struct QueryPlan {
    ctx: SessionContext,
    sql: String,
    source_name: String,
    source_schema: SchemaRef,
    output_schema: SchemaRef,
}

fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_batch_size(64 * 1024);
    let options = config.options_mut();
    options.sql_parser.enable_ident_normalization = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    options.execution.time_zone = Some("UTC".into());
    SessionContext::new_with_config(config)
}

fn sql_options() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

impl QueryPlan {
    /// Plan `sql` over a table named `source_name` of `source_schema`, and validate it.
    pub async fn new(
        sql: &str,
        source_name: &str,
        source_schema: SchemaRef,
    ) -> Result<Self, PlanError> {
        let ctx = session();
        let empty = MemTable::try_new(source_schema.clone(), vec![vec![]])
            .map_err(|e| PlanError::Invalid(first_line(&e)))?;
        ctx.register_table(source_name, Arc::new(empty))
            .map_err(|e| PlanError::Invalid(first_line(&e)))?;
        let df = ctx
            .sql_with_options(sql, sql_options())
            .await
            .map_err(|e| explain_planning_error(&e, source_name))?;
        if let Some(op) = find_stateful(df.logical_plan()) {
            return Err(PlanError::Stateful(op.to_string()));
        }
        let output_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let _ = ctx.deregister_table(source_name);
        Ok(QueryPlan {
            ctx,
            sql: sql.to_string(),
            source_name: source_name.to_string(),
            source_schema,
            output_schema,
        })
    }

    /// The query's output schema (as DataFusion produces it).
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Run the query over one micro-batch's input stream.
    pub async fn execute(
        &self,
        input: SendableRecordBatchStream,
    ) -> Result<SendableRecordBatchStream, PlanError> {
        let partition = Arc::new(OneShot {
            schema: self.source_schema.clone(),
            stream: Mutex::new(Some(input)),
        });
        let table = StreamingTable::try_new(self.source_schema.clone(), vec![partition])
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        let _ = self.ctx.deregister_table(self.source_name.as_str());
        self.ctx
            .register_table(self.source_name.as_str(), Arc::new(table))
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        let df = self
            .ctx
            .sql_with_options(&self.sql, sql_options())
            .await
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        df.execute_stream()
            .await
            .map_err(|e| PlanError::Execution(first_line(&e)))
    }
}

impl fmt::Debug for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryPlan")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

/// A partition that hands out one prepared stream, once.
struct OneShot {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for OneShot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneShot").finish_non_exhaustive()
    }
}

impl PartitionStream for OneShot {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        match taken {
            Some(stream) => stream,
            None => Box::pin(
                datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                    self.schema.clone(),
                    futures::stream::once(async {
                        Err(DataFusionError::Internal(
                            "micro-batch input read twice".into(),
                        ))
                    }),
                ),
            ),
        }
    }
}

fn first_line(e: &DataFusionError) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn explain_planning_error(e: &DataFusionError, source_name: &str) -> PlanError {
    let text = first_line(e);
    let lower = text.to_ascii_lowercase();
    if lower.contains("invalid function 'window'") || lower.contains("function 'window'") {
        return PlanError::Stateful(StatefulOperator::TimeWindow.to_string());
    }
    if lower.contains("table") && lower.contains("not found") {
        return PlanError::Invalid(format!(
            "{text}; the stream is the table `{source_name}` (rename it with --source-name)"
        ));
    }
    if lower.contains("unsupported sql statement")
        || lower.contains("not supported") && lower.contains("statement")
    {
        return PlanError::Invalid(format!("{text}; --sql takes one SELECT query"));
    }
    PlanError::Invalid(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("time", crate::source::ddl::timestamp_type(), true),
            Field::new("action", DataType::Utf8, true),
        ]))
    }

    #[tokio::test]
    async fn stateless_queries_plan() {
        let p = QueryPlan::new(
            "SELECT time, upper(action) AS act, CASE WHEN action = 'Open' THEN 1 ELSE 0 END AS is_open FROM source WHERE action IS NOT NULL",
            "source",
            schema(),
        )
        .await
        .unwrap();
        let names: Vec<_> = p
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["time", "act", "is_open"]);
    }

    #[tokio::test]
    async fn stateful_queries_are_rejected_with_the_reason() {
        for (sql, needle) in [
            ("SELECT action, count(*) AS n FROM source GROUP BY action", "aggregations"),
            ("SELECT * FROM source ORDER BY time", "ORDER BY"),
            ("SELECT * FROM source LIMIT 3", "LIMIT"),
            ("SELECT DISTINCT action FROM source", "DISTINCT"),
            ("SELECT action, window(time, '1 hour') AS w FROM source GROUP BY action, window(time, '1 hour')", "window()"),
            ("SELECT a.time FROM source a JOIN source b ON a.time = b.time", "joins"),
        ] {
            let err = QueryPlan::new(sql, "source", schema()).await.unwrap_err().to_string();
            assert!(err.contains(needle), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn bad_sql_names_the_problem() {
        let err = QueryPlan::new("SELECT * FROM events", "source", schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--source-name"), "{err}");
        let err = QueryPlan::new("SELEC * FROM source", "source", schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid query"), "{err}");
        let err = QueryPlan::new("CREATE TABLE t (a INT)", "source", schema())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid query"), "{err}");
    }
}
