//! What a streaming query may be: its stateful operators, its aggregation's shape, and Spark's
//! table of allowed output modes. Pure functions of the logical plan.

use std::fmt;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::window::{self, WindowSpec};
use super::PlanError;
/// Where the aggregation's event time lives among its grouping keys.
pub use crate::state::TimeKey;

/// Operators that need state across micro-batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatefulOperator {
    /// GROUP BY or an aggregate function.
    Aggregate,
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
            StatefulOperator::Aggregate => "aggregation",
            StatefulOperator::Sort => "ORDER BY is only supported after an aggregation in complete output mode; remove the ORDER BY",
            StatefulOperator::Limit => "LIMIT is only supported after an aggregation in complete output mode; remove the LIMIT",
            StatefulOperator::Join => "joins are not supported on a stream; remove the JOIN",
            StatefulOperator::Distinct => "DISTINCT (deduplication) is not supported on a stream yet; remove the DISTINCT",
            StatefulOperator::AnalyticWindow => "analytic window functions (OVER ...) are not supported on streams; remove the OVER clause",
        })
    }
}

/// Every stateful operator in a plan, with the number of aggregates.
pub fn stateful_operators(plan: &LogicalPlan) -> (Vec<StatefulOperator>, usize) {
    let mut found = Vec::new();
    let mut aggregates = 0;
    let _ = plan.apply_with_subqueries(|node| {
        let op = match node {
            LogicalPlan::Aggregate(_) => {
                aggregates += 1;
                Some(StatefulOperator::Aggregate)
            }
            LogicalPlan::Sort(_) => Some(StatefulOperator::Sort),
            LogicalPlan::Limit(_) => Some(StatefulOperator::Limit),
            LogicalPlan::Join(_) => Some(StatefulOperator::Join),
            LogicalPlan::Distinct(_) => Some(StatefulOperator::Distinct),
            LogicalPlan::Window(_) => Some(StatefulOperator::AnalyticWindow),
            _ => None,
        };
        if let Some(op) = op {
            if !found.contains(&op) {
                found.push(op);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    (found, aggregates)
}

/// Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputModeKind {
    /// New rows only.
    Append,
    /// The whole result every batch.
    Complete,
    /// Changed rows only.
    Update,
}

impl std::str::FromStr for OutputModeKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "append" => Ok(OutputModeKind::Append),
            "complete" => Ok(OutputModeKind::Complete),
            "update" => Ok(OutputModeKind::Update),
            other => Err(format!(
                "invalid output mode `{other}`; use append, complete or update"
            )),
        }
    }
}

impl OutputModeKind {
    /// Spark's name.
    pub fn name(self) -> &'static str {
        match self {
            OutputModeKind::Append => "Append",
            OutputModeKind::Complete => "Complete",
            OutputModeKind::Update => "Update",
        }
    }
}

/// An event-time watermark: `column` may lag the newest event by `delay_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The event-time column.
    pub column: String,
    /// The allowed lateness, µs.
    pub delay_us: i64,
}

impl Watermark {
    /// Parse `"col, delay"`.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let usage = || {
            PlanError::Invalid(format!(
                "invalid watermark `{text}`; write \"COLUMN, DELAY\" such as \"time, 10 minutes\""
            ))
        };
        let (column, delay) = text.split_once(',').ok_or_else(usage)?;
        let column = column.trim().trim_matches('`').to_string();
        let delay_us = crate::duration::parse_duration(delay)
            .and_then(|d| i64::try_from(d.as_micros()).ok())
            .ok_or_else(usage)?;
        if column.is_empty() {
            return Err(usage());
        }
        Ok(Watermark { column, delay_us })
    }
}

/// What an aggregation query is built from, for state compatibility across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateSignature {
    /// Grouping keys.
    pub keys: Vec<String>,
    /// Aggregate expressions.
    pub aggregates: Vec<String>,
    /// The time window, if any.
    pub window: Option<String>,
    /// The output mode.
    pub output_mode: String,
}

impl StateSignature {
    /// A signature as persisted with state of `format` (see `state::store::STATE_FORMAT`):
    /// format 1 named the window key `__window`, format 2 groups by its two bound columns.
    pub fn read(json: &str, format: u32) -> Result<Self, serde_json::Error> {
        let mut signature: StateSignature = serde_json::from_str(json)?;
        if format < 2 {
            signature.keys = signature
                .keys
                .into_iter()
                .flat_map(|key| {
                    match key
                        .strip_suffix("__window")
                        .filter(|q| q.is_empty() || q.ends_with('.'))
                    {
                        Some(prefix) => vec![
                            format!("{prefix}{}", window::WINDOW_START),
                            format!("{prefix}{}", window::WINDOW_END),
                        ],
                        None => vec![key],
                    }
                })
                .collect();
        }
        Ok(signature)
    }

    /// What differs from `earlier`, in words; `None` when compatible.
    pub fn changes_from(&self, earlier: &StateSignature) -> Option<String> {
        let mut what = Vec::new();
        if self.keys != earlier.keys {
            what.push(format!(
                "grouping keys were [{}], now [{}]",
                earlier.keys.join(", "),
                self.keys.join(", ")
            ));
        }
        if self.aggregates != earlier.aggregates {
            what.push(format!(
                "aggregates were [{}], now [{}]",
                earlier.aggregates.join(", "),
                self.aggregates.join(", ")
            ));
        }
        if self.window != earlier.window {
            what.push(format!(
                "window was {}, now {}",
                earlier.window.as_deref().unwrap_or("none"),
                self.window.as_deref().unwrap_or("none")
            ));
        }
        if self.output_mode != earlier.output_mode {
            what.push(format!(
                "output mode was {}, now {}",
                earlier.output_mode, self.output_mode
            ));
        }
        (!what.is_empty()).then(|| what.join("; "))
    }
}

/// An aggregation query's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateInfo {
    /// Grouping keys as DataFusion names them.
    pub keys: Vec<String>,
    /// Aggregate expressions as DataFusion names them.
    pub aggregates: Vec<String>,
    /// The event-time key, for watermarks.
    pub time_key: Option<TimeKey>,
    /// Output columns that are grouping keys (what update mode upserts on).
    pub output_keys: Vec<String>,
    /// Grouping keys missing from the output.
    pub missing_keys: Vec<String>,
    /// The plan sorts the result.
    pub sorts: bool,
    /// The plan limits the result.
    pub limits: bool,
}

/// Stateless or aggregating.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    /// Projections and filters only.
    Stateless,
    /// One aggregation (with optional HAVING, projection, ORDER BY in complete mode).
    Aggregate(AggregateInfo),
}

pub(super) fn describe_aggregate(
    plan: &LogicalPlan,
    window: Option<&WindowSpec>,
    watermark: Option<&Watermark>,
) -> Option<AggregateInfo> {
    // The topmost projection (under any sort/limit/filter) and the aggregate below it.
    let mut node = plan;
    let mut sorts = false;
    let mut limits = false;
    let mut projection: Option<&datafusion::logical_expr::Projection> = None;
    loop {
        match node {
            LogicalPlan::Sort(s) => {
                sorts = true;
                node = s.input.as_ref();
            }
            LogicalPlan::Limit(l) => {
                limits = true;
                node = l.input.as_ref();
            }
            LogicalPlan::Filter(f) => node = f.input.as_ref(),
            LogicalPlan::SubqueryAlias(a) => node = a.input.as_ref(),
            LogicalPlan::Projection(p) if projection.is_none() => {
                projection = Some(p);
                node = p.input.as_ref();
            }
            LogicalPlan::Aggregate(_) => break,
            _ => return None,
        }
    }
    let LogicalPlan::Aggregate(agg) = node else {
        return None;
    };
    let group_fields: Vec<String> = agg.schema.fields()[..agg.group_expr.len()]
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let keys: Vec<String> = agg.group_expr.iter().map(|e| e.to_string()).collect();
    // A cast reads as TRY_CAST (Spark's NULL on a failed cast); state built before that
    // names the same aggregate with CAST.
    let aggregates: Vec<String> = agg
        .aggr_expr
        .iter()
        .map(|e| e.to_string().replace("TRY_CAST(", "CAST("))
        .collect();
    let time_key = agg
        .group_expr
        .iter()
        .enumerate()
        .find_map(|(i, e)| match e {
            Expr::Column(c) if c.name == window::WINDOW_END && window.is_some() => {
                Some(TimeKey::WindowEnd(i))
            }
            // GROUP BY the alias of `window(...)`: the struct itself.
            _ if window.is_some() && is_window_struct(e) => Some(TimeKey::WindowEnd(i)),
            Expr::Column(c) if watermark.is_some_and(|w| w.column == c.name) => {
                Some(TimeKey::Timestamp(i))
            }
            _ => None,
        });
    let (output_keys, missing_keys) = match projection {
        Some(p) => {
            let mut out = Vec::new();
            let mut covered = Vec::new();
            for (expr, field) in p.expr.iter().zip(p.schema.fields()) {
                let expr = expr.clone().unalias();
                let columns: Vec<String> = match &expr {
                    Expr::Column(c) => vec![c.name.clone()],
                    // The window struct is a key as a whole: it covers both its bounds.
                    e if is_window_struct(e) => vec![
                        window::WINDOW_START.to_string(),
                        window::WINDOW_END.to_string(),
                    ],
                    _ => Vec::new(),
                };
                let found: Vec<usize> = columns
                    .iter()
                    .filter_map(|c| group_fields.iter().position(|g| g == c))
                    .collect();
                if !found.is_empty() && found.len() == columns.len() {
                    out.push(field.name().clone());
                    covered.extend(found);
                }
            }
            let missing = group_fields
                .iter()
                .enumerate()
                .filter(|(i, _)| !covered.contains(i))
                .map(|(_, g)| g.clone())
                .collect();
            (out, missing)
        }
        None => (group_fields.clone(), Vec::new()),
    };
    Some(AggregateInfo {
        keys,
        aggregates,
        time_key,
        output_keys,
        missing_keys,
        sorts,
        limits,
    })
}

/// Is `expr` the rewritten `window(...)`: `named_struct(.., __window_start, .., __window_end)`?
fn is_window_struct(expr: &Expr) -> bool {
    let Expr::ScalarFunction(f) = expr else {
        return false;
    };
    let column = |name: &str| {
        f.args
            .iter()
            .any(|a| matches!(a, Expr::Column(c) if c.name == name))
    };
    f.name() == "named_struct" && column(window::WINDOW_START) && column(window::WINDOW_END)
}

/// Check a query against Spark's table of allowed output modes.
pub fn check_output_mode(
    kind: &QueryKind,
    mode: OutputModeKind,
    watermark: Option<&Watermark>,
) -> Result<(), PlanError> {
    let info = match kind {
        QueryKind::Stateless => {
            if mode == OutputModeKind::Complete {
                return Err(PlanError::Stateful(
                    "complete output mode requires an aggregation in the query; use --output-mode append".into(),
                ));
            }
            return Ok(());
        }
        QueryKind::Aggregate(info) => info,
    };
    if mode == OutputModeKind::Append {
        match (watermark, info.time_key) {
            (None, _) => {
                return Err(PlanError::Stateful(
                    "append output mode needs a watermark for aggregations: add --watermark \"COL, DELAY\" and group by window(COL, ...), or use --output-mode update or complete".into(),
                ))
            }
            (Some(w), None) => {
                return Err(PlanError::Stateful(format!(
                    "append output mode needs the watermark column `{}` to be a grouping key or the window() time column",
                    w.column
                )))
            }
            _ => {}
        }
    }
    if info.sorts && mode != OutputModeKind::Complete {
        return Err(PlanError::Stateful(StatefulOperator::Sort.to_string()));
    }
    if info.limits && mode != OutputModeKind::Complete {
        return Err(PlanError::Stateful(StatefulOperator::Limit.to_string()));
    }
    if mode == OutputModeKind::Update && !info.missing_keys.is_empty() {
        return Err(PlanError::Stateful(format!(
            "update output mode upserts on the grouping keys, so the output must hold them all; add {} to the SELECT",
            info.missing_keys.join(", ")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_1_signatures_name_the_window_by_its_bounds() {
        let json = r#"{"keys":["source.__window","source.action","my__window"],"aggregates":["count(Int64(1))"],"window":null,"outputMode":"Update"}"#;
        let keys = |format| StateSignature::read(json, format).unwrap().keys;
        assert_eq!(
            keys(1),
            [
                "source.__window_start",
                "source.__window_end",
                "source.action",
                "my__window"
            ]
        );
        assert_eq!(keys(2), ["source.__window", "source.action", "my__window"]);
    }

    #[test]
    fn signature_changes_are_explained() {
        let a = StateSignature {
            keys: vec!["action".into()],
            aggregates: vec!["count(*)".into()],
            window: None,
            output_mode: "Complete".into(),
        };
        let mut b = a.clone();
        assert_eq!(b.changes_from(&a), None);
        b.keys.push("device".into());
        b.output_mode = "Update".into();
        let what = b.changes_from(&a).unwrap();
        assert!(
            what.contains("grouping keys were [action], now [action, device]"),
            "{what}"
        );
        assert!(
            what.contains("output mode was Complete, now Update"),
            "{what}"
        );
    }
}
