//! The streaming query: SQL over the micro-batch, planned and run by DataFusion.
//!
//! At start the SQL is planned once against an empty table of the source schema, to validate it
//! (stateless, or one aggregation: see [`check_output_mode`]) and learn its output schema. Each micro-batch then plans it
//! again over a one-shot streaming table that yields the batch's decoded rows, so rows flow
//! from the decoders through DataFusion into the sink without the batch being held whole.

pub mod aggregate;
pub mod rules;
pub mod spark;
pub mod spelling;
pub mod window;

use std::fmt;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::TreeNode;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::streaming::PartitionStream;

use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use window::WindowSpec;

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

pub use rules::{
    check_output_mode, stateful_operators, AggregateInfo, OutputModeKind, QueryKind,
    StateSignature, StatefulOperator, TimeKey, Watermark,
};

/// A validated streaming query.
#[derive(Clone)]
pub struct QueryPlan {
    ctx: SessionContext,
    sql: String,
    rewritten: String,
    source_name: String,
    table_schema: SchemaRef,
    output_schema: SchemaRef,
    window: Option<WindowSpec>,
    watermark: Option<Watermark>,
    kind: QueryKind,
    /// The source columns the query reads (`None`: all).
    read_columns: Option<Vec<String>>,
}

impl fmt::Debug for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryPlan")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}

fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_batch_size(64 * 1024);
    let options = config.options_mut();
    options.sql_parser.enable_ident_normalization = false;
    options.sql_parser.map_string_types_to_utf8view = false;
    options.execution.time_zone = Some("UTC".into());
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features();
    SessionContext::new_with_state(spark::with_spark_sql(state).build())
}

/// The source columns an optimized plan scans, plus the window's and watermark's time column;
/// `None` when it reads them all (or the plan does not say).
async fn read_columns(
    df: datafusion::dataframe::DataFrame,
    source_name: &str,
    source: &SchemaRef,
    window_time: Option<&str>,
    watermark: Option<&str>,
) -> Option<Vec<String>> {
    let plan = df.into_optimized_plan().ok()?;
    let mut names: Vec<String> = Vec::new();
    let mut all = false;
    let _ = plan.apply(|node| {
        if let datafusion::logical_expr::LogicalPlan::TableScan(scan) = node {
            if scan.table_name.table() == source_name {
                match &scan.projection {
                    Some(indices) => names.extend(
                        indices
                            .iter()
                            .filter_map(|i| scan.source.schema().fields().get(*i).cloned())
                            .map(|f| f.name().clone()),
                    ),
                    None => all = true,
                }
            }
        }
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    });
    names.extend(window_time.into_iter().chain(watermark).map(str::to_string));
    names.retain(|n| source.field_with_name(n).is_ok());
    names.sort();
    names.dedup();
    (!all && !names.is_empty() && names.len() < source.fields().len()).then_some(names)
}

/// Does the query hold an aggregate over DISTINCT values (`count(DISTINCT s)`)?
fn distinct_aggregate(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    lower
        .match_indices("distinct")
        .any(|(i, _)| lower[..i].trim_end().ends_with('('))
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
        watermark: Option<Watermark>,
    ) -> Result<Self, PlanError> {
        if let Some(w) = &watermark {
            match source_schema.field_with_name(&w.column) {
                Ok(f) if matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) => {}
                Ok(_) => {
                    return Err(PlanError::Invalid(format!(
                        "the watermark column `{}` must be a TIMESTAMP",
                        w.column
                    )))
                }
                Err(_) => {
                    return Err(PlanError::Invalid(format!(
                        "the watermark column `{}` is not in the stream",
                        w.column
                    )))
                }
            }
        }
        let spark_sql = spark::quote_identifiers(sql)?;
        let (rewritten, window) = window::rewrite(&spelling::rewrite(&spark_sql, source_name)?)?;
        if let Some(w) = &window {
            match window::time_field(&source_schema, &w.time_column) {
                Some(f) if matches!(f.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) => {}
                _ => {
                    return Err(PlanError::Invalid(format!(
                        "window() needs a TIMESTAMP column of the stream or a TIMESTAMP field of one of its struct columns; `{}` is not one (CAST a text time AS TIMESTAMP with --schema)",
                        w.time_column
                    )))
                }
            }
        }
        let table_schema = match &window {
            Some(_) => window::expanded_schema(&source_schema),
            None => source_schema.clone(),
        };
        let ctx = session();
        let empty = MemTable::try_new(table_schema.clone(), vec![vec![]])
            .map_err(|e| PlanError::Invalid(first_line(&e)))?;
        ctx.register_table(source_name, Arc::new(empty))
            .map_err(|e| PlanError::Invalid(first_line(&e)))?;
        let df = ctx
            .sql_with_options(&rewritten, sql_options())
            .await
            .map_err(|e| explain_planning_error(&e, source_name))?;
        let plan = df.logical_plan();
        let (operators, aggregates) = stateful_operators(plan);
        for op in &operators {
            if matches!(
                op,
                StatefulOperator::Join
                    | StatefulOperator::Distinct
                    | StatefulOperator::AnalyticWindow
            ) {
                return Err(PlanError::Stateful(op.to_string()));
            }
        }
        let kind = if aggregates == 0 {
            if let Some(op) = operators.first() {
                return Err(PlanError::Stateful(op.to_string()));
            }
            if window.is_some() {
                return Err(PlanError::Stateful(
                    "window() belongs in GROUP BY with an aggregation, e.g. GROUP BY window(time, '1 hour')".into(),
                ));
            }
            QueryKind::Stateless
        } else if aggregates > 1 && distinct_aggregate(&rewritten) {
            return Err(PlanError::Stateful(
                "distinct aggregations (count(DISTINCT ...)) are not supported on streams, as in Spark; use approx_distinct(...)"
                    .into(),
            ));
        } else if aggregates > 1 {
            return Err(PlanError::Stateful(
                "nested or multiple aggregations are not supported on streams; aggregate once"
                    .into(),
            ));
        } else {
            match rules::describe_aggregate(plan, window.as_ref(), watermark.as_ref()) {
                Some(info) => QueryKind::Aggregate(info),
                None => {
                    return Err(PlanError::Stateful(
                        "only SELECT ... FROM stream [WHERE] GROUP BY ... [HAVING] [ORDER BY] aggregations are supported on streams".into(),
                    ))
                }
            }
        };
        let output_schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let read_columns = read_columns(
            df.clone(),
            source_name,
            &source_schema,
            window
                .as_ref()
                .and_then(|w| window::time_path(&source_schema, &w.time_column))
                .and_then(|path| path.into_iter().next())
                .as_deref(),
            watermark.as_ref().map(|w| w.column.as_str()),
        )
        .await;
        let _ = ctx.deregister_table(source_name);
        Ok(QueryPlan {
            ctx,
            sql: sql.to_string(),
            rewritten,
            source_name: source_name.to_string(),
            table_schema,
            output_schema,
            window,
            watermark,
            kind,
            read_columns,
        })
    }

    /// The source columns the query reads, when it reads fewer than all (Spark's column
    /// pruning: only these need decoding).
    pub fn read_columns(&self) -> Option<&[String]> {
        self.read_columns.as_deref()
    }

    /// The query's output schema (as DataFusion produces it).
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The SQL text.
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// Stateless or aggregating.
    pub fn kind(&self) -> &QueryKind {
        &self.kind
    }

    /// The time window, if the query groups by one.
    pub fn window(&self) -> Option<&WindowSpec> {
        self.window.as_ref()
    }

    /// The watermark, if any.
    pub fn watermark(&self) -> Option<&Watermark> {
        self.watermark.as_ref()
    }

    /// The schema of the table the query reads (the source, plus the window's bound columns with a window).
    pub fn table_schema(&self) -> &SchemaRef {
        &self.table_schema
    }

    /// The state signature for an output mode (aggregations only).
    pub fn signature(&self, mode: OutputModeKind) -> Option<StateSignature> {
        match &self.kind {
            QueryKind::Aggregate(info) => Some(StateSignature {
                keys: info.keys.clone(),
                aggregates: info.aggregates.clone(),
                window: self.window.as_ref().map(WindowSpec::describe),
                output_mode: mode.name().to_string(),
            }),
            QueryKind::Stateless => None,
        }
    }

    async fn plan_over(
        &self,
        input: SendableRecordBatchStream,
    ) -> Result<datafusion::dataframe::DataFrame, PlanError> {
        let partition = Arc::new(OneShot {
            schema: self.table_schema.clone(),
            stream: Mutex::new(Some(input)),
        });
        let table = StreamingTable::try_new(self.table_schema.clone(), vec![partition])
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        let _ = self.ctx.deregister_table(self.source_name.as_str());
        self.ctx
            .register_table(self.source_name.as_str(), Arc::new(table))
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        self.ctx
            .sql_with_options(&self.rewritten, sql_options())
            .await
            .map_err(|e| PlanError::Execution(first_line(&e)))
    }

    /// Run a stateless query over one micro-batch's input stream (of [`Self::table_schema`]).
    pub async fn execute(
        &self,
        input: SendableRecordBatchStream,
    ) -> Result<SendableRecordBatchStream, PlanError> {
        let df = self.plan_over(input).await?;
        df.execute_stream()
            .await
            .map_err(|e| PlanError::Execution(first_line(&e)))
    }

    /// Plan an aggregation query over one micro-batch's input stream, split for incremental
    /// execution.
    pub async fn aggregate(
        &self,
        input: SendableRecordBatchStream,
    ) -> Result<aggregate::AggregatePlan, PlanError> {
        let df = self.plan_over(input).await?;
        let task = Arc::new(df.task_ctx());
        let physical = df
            .create_physical_plan()
            .await
            .map_err(|e| PlanError::Execution(first_line(&e)))?;
        aggregate::AggregatePlan::split(physical, task)
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

    async fn plan(sql: &str, watermark: Option<&str>) -> Result<QueryPlan, PlanError> {
        let wm = watermark.map(Watermark::parse).transpose()?;
        QueryPlan::new(sql, "source", schema(), wm).await
    }

    #[tokio::test]
    async fn stateless_queries_plan() {
        let p = plan(
            "SELECT time, upper(action) AS act, CASE WHEN action = 'Open' THEN 1 ELSE 0 END AS is_open FROM source WHERE action IS NOT NULL",
            None,
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
        assert_eq!(p.kind(), &QueryKind::Stateless);
    }

    #[tokio::test]
    async fn unsupported_operators_are_rejected_with_the_reason() {
        for (sql, needle) in [
            ("SELECT * FROM source ORDER BY time", "ORDER BY"),
            ("SELECT * FROM source LIMIT 3", "LIMIT"),
            ("SELECT DISTINCT action FROM source", "DISTINCT"),
            ("SELECT window(time, '1 hour') AS w FROM source", "belongs in GROUP BY"),
            ("SELECT a.time FROM source a JOIN source b ON a.time = b.time", "joins"),
            ("SELECT action, n FROM (SELECT action, count(*) AS n FROM source GROUP BY action) GROUP BY action, n", "aggregate once"),
        ] {
            let err = plan(sql, None).await.unwrap_err().to_string();
            assert!(err.contains(needle), "{sql}: {err}");
        }
    }

    #[tokio::test]
    async fn aggregations_describe_their_keys() {
        // (query, output keys, index of the window's end among the grouping keys)
        for (sql, keys, end) in [
            // Grouped by the window's two bounds, the end third.
            (
                "SELECT action, window(time, '1 hour') AS w, count(*) AS n FROM source GROUP BY action, window(time, '1 hour')",
                ["action", "w"],
                2,
            ),
            // Grouped by the window's alias: by the struct itself.
            (
                "SELECT window(time, '1 hour') AS w, action, count(*) AS n FROM source GROUP BY w, action",
                ["w", "action"],
                0,
            ),
        ] {
            let p = plan(sql, Some("time, 10 minutes")).await.unwrap();
            let QueryKind::Aggregate(info) = p.kind() else {
                panic!("aggregate expected")
            };
            assert_eq!(info.output_keys, keys, "{sql}");
            assert_eq!(info.time_key, Some(TimeKey::WindowEnd(end)), "{sql}");
            assert!(info.missing_keys.is_empty(), "{sql}");
        }
    }

    #[tokio::test]
    async fn spark_output_mode_table() {
        use OutputModeKind::*;
        let windowed = "SELECT action, window(time, '1 hour') AS window, count(*) AS n FROM source GROUP BY action, window(time, '1 hour')";
        let cases: Vec<(&str, Option<&str>, OutputModeKind, Option<&str>)> = vec![
            ("SELECT * FROM source", None, Append, None),
            ("SELECT * FROM source", None, Update, None),
            (
                "SELECT * FROM source",
                None,
                Complete,
                Some("complete output mode requires an aggregation"),
            ),
            (windowed, Some("time, 10 minutes"), Append, None),
            (windowed, Some("time, 10 minutes"), Update, None),
            (windowed, Some("time, 10 minutes"), Complete, None),
            (
                windowed,
                None,
                Append,
                Some("append output mode needs a watermark"),
            ),
            (windowed, None, Update, None),
            (windowed, None, Complete, None),
            (
                "SELECT action, count(*) AS n FROM source GROUP BY action",
                Some("time, 10 minutes"),
                Append,
                Some("to be a grouping key"),
            ),
            (
                "SELECT action, count(*) AS n FROM source GROUP BY action ORDER BY n",
                None,
                Update,
                Some("ORDER BY is only supported"),
            ),
            (
                "SELECT action, count(*) AS n FROM source GROUP BY action ORDER BY n",
                None,
                Complete,
                None,
            ),
            (
                "SELECT action, count(*) AS n FROM source GROUP BY action LIMIT 2",
                None,
                Update,
                Some("LIMIT is only supported"),
            ),
            (
                "SELECT count(*) AS n FROM source GROUP BY action",
                None,
                Update,
                Some("add action to the SELECT"),
            ),
        ];
        for (sql, wm, mode, want) in cases {
            let p = plan(sql, wm).await.unwrap();
            let got = check_output_mode(p.kind(), mode, p.watermark());
            match (want, got) {
                (None, Ok(())) => {}
                (Some(needle), Err(e)) => {
                    assert!(e.to_string().contains(needle), "{sql} {mode:?}: {e}")
                }
                (want, got) => panic!("{sql} {mode:?}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[tokio::test]
    async fn watermark_must_name_a_timestamp_column() {
        let err = plan("SELECT * FROM source", Some("action, 1 minute"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be a TIMESTAMP"), "{err}");
        let err = plan("SELECT * FROM source", Some("nope, 1 minute"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not in the stream"), "{err}");
        assert!(Watermark::parse("time").is_err());
        assert_eq!(
            Watermark::parse("time, 10 minutes").unwrap().delay_us,
            600_000_000
        );
    }

    #[tokio::test]
    async fn bad_sql_names_the_problem() {
        let err = plan("SELECT * FROM events", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("--source-name"), "{err}");
        let err = plan("SELEC * FROM source", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid query"), "{err}");
        let err = plan("CREATE TABLE t (a INT)", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid query"), "{err}");
    }
}
