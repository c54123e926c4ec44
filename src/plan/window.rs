//! Spark's `window(ts, windowDuration[, slideDuration[, startTime]])`.
//!
//! Each input batch is expanded before the query runs: a row is repeated once for every window
//! that contains it, as Spark does, with the window's bounds in two timestamp columns
//! `__window_start` and `__window_end`. Windows align to the epoch shifted by `startTime`:
//! `lastStart = ts - (ts - startTime + slide) % slide`, and a row belongs to the windows
//! `lastStart - i * slide` (i = 0 .. ceil(window / slide)) that contain it. Rows with a null time
//! are dropped.
//!
//! The SQL is rewritten to read those columns:
//!
//! ```text
//!   SELECT window(time, '1 hour'), action, count(*) ... GROUP BY window(time, '1 hour'), action
//!   SELECT named_struct('start', __window_start, 'end', __window_end) AS window, action, count(*)
//!     ... GROUP BY __window_start, __window_end, action
//! ```
//!
//! Grouping on the two timestamps rather than on a struct keeps DataFusion on its columnar
//! group-by path (a struct key goes through the row format); the `struct<start, end>` Spark
//! shows is built once per group, after the aggregation.

use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    Ident, Select, SelectItem, SetExpr, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::PlanError;
use crate::duration::parse_duration;
use crate::source::ddl::timestamp_type;

/// The column holding each expanded row's window start.
pub const WINDOW_START: &str = "__window_start";
/// The column holding each expanded row's window end.
pub const WINDOW_END: &str = "__window_end";
/// What `window(...)` reads in the rewritten query, outside GROUP BY.
const WINDOW_STRUCT: &str = "named_struct('start', __window_start, 'end', __window_end)";
/// Marks a `window(...)` call during the rewrite.
const MARKER: &str = "__window";

/// A time window, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// The event-time column.
    pub time_column: String,
    /// Window length.
    pub size_us: i64,
    /// Distance between window starts (= size for tumbling windows).
    pub slide_us: i64,
    /// Offset of window starts from the epoch.
    pub start_us: i64,
}

impl WindowSpec {
    /// A short description, for messages and records.
    pub fn describe(&self) -> String {
        format!(
            "window({}, {}us, {}us, {}us)",
            self.time_column, self.size_us, self.slide_us, self.start_us
        )
    }

    /// The latest window start at or before `ts` (computed wide: `ts` may be any timestamp).
    fn last_start(&self, ts: i64) -> i64 {
        let (ts, start, slide) = (
            i128::from(ts),
            i128::from(self.start_us),
            i128::from(self.slide_us),
        );
        let last = ts - (ts - start + slide).rem_euclid(slide);
        i64::try_from(last).unwrap_or(i64::MIN)
    }

    /// The windows containing `ts`, oldest first, as start times.
    pub fn windows_of(&self, ts: i64) -> impl Iterator<Item = i64> + '_ {
        self.windows_from(self.last_start(ts), ts)
    }

    /// How many windows a time can fall in: ceil(window / slide).
    fn windows_per_time(&self) -> i64 {
        windows_per_row(self.size_us, self.slide_us)
    }

    /// The windows containing `ts`, given its [`Self::last_start`].
    fn windows_from(&self, last_start: i64, ts: i64) -> impl Iterator<Item = i64> + '_ {
        (0..self.windows_per_time())
            .rev()
            .filter_map(move |i| last_start.checked_sub(i.checked_mul(self.slide_us)?))
            .filter(move |start| {
                *start <= ts && start.checked_add(self.size_us).is_some_and(|end| ts < end)
            })
    }

    /// Repeat each row of `batch` once per window containing its time, and add the
    /// `__window_start` and `__window_end` columns. Rows with a null time are dropped.
    pub fn expand(
        &self,
        batch: &RecordBatch,
        out_schema: &SchemaRef,
    ) -> Result<RecordBatch, PlanError> {
        let values = time_values(batch, &self.time_column).ok_or_else(|| {
            PlanError::Invalid(format!(
                "window() column `{}` is not in the stream",
                self.time_column
            ))
        })?;
        let times = values
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| {
                PlanError::Invalid(format!(
                    "window() needs a TIMESTAMP column; `{}` is not one",
                    self.time_column
                ))
            })?;
        let (mut columns, starts) = if self.size_us == self.slide_us && times.null_count() == 0 {
            // Tumbling windows over times without nulls: every row is in exactly one window,
            // so the rows stay as they are.
            let mut last = LastStart::new(self);
            let starts = times
                .values()
                .iter()
                .map(|ts| last.of(*ts))
                .collect::<Vec<i64>>();
            (batch.columns().to_vec(), starts)
        } else {
            // At most MAX_WINDOWS_PER_ROW per row (checked when the query was planned).
            let per_row = usize::try_from(self.windows_per_time()).unwrap_or(1);
            let capacity = batch.num_rows().saturating_mul(per_row);
            let mut rows: Vec<u32> = Vec::with_capacity(capacity);
            let mut starts: Vec<i64> = Vec::with_capacity(capacity);
            let mut last = LastStart::new(self);
            for (row, ts) in times.iter().enumerate() {
                let Some(ts) = ts else { continue };
                for start in self.windows_from(last.of(ts), ts) {
                    rows.push(row as u32);
                    starts.push(start);
                }
            }
            let indices = UInt32Array::from(rows);
            let columns = batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| PlanError::Execution(e.to_string()))?;
            (columns, starts)
        };
        let ends: Vec<i64> = starts
            .iter()
            .map(|s| s.saturating_add(self.size_us))
            .collect();
        let start_col: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(starts).with_timezone("UTC"));
        let end_col: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(ends).with_timezone("UTC"));
        columns.push(start_col);
        columns.push(end_col);
        RecordBatch::try_new(out_schema.clone(), columns)
            .map_err(|e| PlanError::Execution(e.to_string()))
    }
}

/// [`WindowSpec::last_start`], remembered for the slide-long span it holds for: event times
/// mostly come in order, so most rows skip the division.
struct LastStart<'a> {
    spec: &'a WindowSpec,
    /// The span `[lo, hi)` whose times all have the last start `lo`.
    lo: i64,
    hi: i64,
}

impl<'a> LastStart<'a> {
    fn new(spec: &'a WindowSpec) -> Self {
        // An empty span.
        LastStart { spec, lo: 1, hi: 0 }
    }

    fn of(&mut self, ts: i64) -> i64 {
        if ts < self.lo || ts >= self.hi {
            self.lo = self.spec.last_start(ts);
            self.hi = self.lo.saturating_add(self.spec.slide_us);
        }
        self.lo
    }
}

/// The source schema plus the `__window_start` and `__window_end` columns.
pub fn expanded_schema(source: &Schema) -> SchemaRef {
    let mut fields: Vec<_> = source.fields().iter().cloned().collect();
    for name in [WINDOW_START, WINDOW_END] {
        fields.push(Arc::new(Field::new(name, timestamp_type(), true)));
    }
    Arc::new(Schema::new(fields))
}

fn string_arg(arg: &FunctionArg) -> Option<String> {
    let expr = match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => e,
        FunctionArg::Named {
            arg: FunctionArgExpr::Expr(e),
            ..
        } => e,
        _ => return None,
    };
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        Expr::Interval(i) => Some(i.value.to_string().trim_matches('\'').to_string()),
        _ => None,
    }
}

/// The time column a `window()` call names: a column, or a field of a struct column
/// (`metadata.creationTimestamp`), as its dotted path (a table name before it is dropped when
/// the query's source is known, see [`time_field`]).
fn column_arg(arg: &FunctionArg) -> Option<String> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(id))) => Some(id.value.clone()),
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::CompoundIdentifier(ids))) => Some(
            ids.iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join("."),
        ),
        _ => None,
    }
}

/// The path of fields a window's time column names in `schema`: the column itself, a field of
/// a struct column (`a.b.c`), or either after a table name (`source.a.b`).
pub fn time_path(schema: &Schema, column: &str) -> Option<Vec<String>> {
    if schema.field_with_name(column).is_ok() {
        return Some(vec![column.to_string()]);
    }
    let parts: Vec<&str> = column.split('.').collect();
    let resolves = |path: &[&str]| -> bool {
        let Some((first, rest)) = path.split_first() else {
            return false;
        };
        let Ok(mut field) = schema.field_with_name(first) else {
            return false;
        };
        for name in rest {
            match field.data_type() {
                arrow::datatypes::DataType::Struct(fields) => {
                    match fields.iter().find(|f| f.name() == name) {
                        Some(f) => field = f,
                        None => return false,
                    }
                }
                _ => return false,
            }
        }
        true
    };
    let path = if resolves(&parts) {
        &parts[..]
    } else {
        parts.get(1..).filter(|rest| resolves(rest))?
    };
    Some(path.iter().map(|p| p.to_string()).collect())
}

/// The field a window's time column names in `schema` (see [`time_path`]).
pub fn time_field<'a>(schema: &'a Schema, column: &str) -> Option<&'a Field> {
    let path = time_path(schema, column)?;
    let (first, rest) = path.split_first()?;
    let mut field = schema.field_with_name(first).ok()?;
    for name in rest {
        let arrow::datatypes::DataType::Struct(fields) = field.data_type() else {
            return None;
        };
        field = fields.iter().find(|f| f.name() == name)?;
    }
    Some(field)
}

/// The values of the time column `column` names in `batch` (see [`time_path`]).
fn time_values(batch: &RecordBatch, column: &str) -> Option<ArrayRef> {
    let path = time_path(batch.schema_ref(), column)?;
    let (first, rest) = path.split_first()?;
    let mut values = batch.column_by_name(first)?.clone();
    for name in rest {
        let structs = values
            .as_any()
            .downcast_ref::<arrow::array::StructArray>()?;
        let child = structs.column_by_name(name)?.clone();
        // A null struct has a null field, whatever its child array holds.
        values = match structs.logical_nulls() {
            Some(nulls) => {
                let combined =
                    arrow::buffer::NullBuffer::union(Some(&nulls), child.logical_nulls().as_ref());
                arrow::array::make_array(
                    child
                        .into_data()
                        .into_builder()
                        .nulls(combined)
                        .build()
                        .ok()?,
                )
            }
            None => child,
        };
    }
    Some(values)
}

fn micros(text: &str, what: &str) -> Result<i64, PlanError> {
    parse_duration(text)
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .ok_or_else(|| {
            PlanError::Invalid(format!(
                "window() {what} `{text}` is not a duration; write e.g. '10 minutes' or '1 hour'"
            ))
        })
}

/// The most windows one row may fall in (window / slide). Each row is repeated once per
/// window before the aggregation, so this bounds the memory a batch's expansion takes.
pub const MAX_WINDOWS_PER_ROW: i64 = 4096;

/// ceil(size / slide), for positive durations.
fn windows_per_row(size_us: i64, slide_us: i64) -> i64 {
    size_us / slide_us + i64::from(size_us % slide_us != 0)
}

fn parse_call(args: &[FunctionArg]) -> Result<WindowSpec, PlanError> {
    let usage = "window() takes (time_column, 'duration'[, 'slide'[, 'start']])";
    if args.len() < 2 || args.len() > 4 {
        return Err(PlanError::Invalid(usage.into()));
    }
    let time_column = column_arg(&args[0]).ok_or_else(|| PlanError::Invalid(usage.into()))?;
    let text = |i: usize| string_arg(&args[i]).ok_or_else(|| PlanError::Invalid(usage.into()));
    let size_us = micros(&text(1)?, "duration")?;
    let slide_us = if args.len() > 2 {
        micros(&text(2)?, "slide")?
    } else {
        size_us
    };
    let start_us = if args.len() > 3 {
        micros(&text(3)?, "start time")?
    } else {
        0
    };
    if size_us <= 0 || slide_us <= 0 {
        return Err(PlanError::Invalid(
            "window() durations must be positive".into(),
        ));
    }
    if slide_us > size_us {
        return Err(PlanError::Invalid(
            "window() slide must not be longer than the window".into(),
        ));
    }
    if start_us >= slide_us {
        return Err(PlanError::Invalid(
            "window() start time must be shorter than the slide".into(),
        ));
    }
    let per_row = windows_per_row(size_us, slide_us);
    if per_row > MAX_WINDOWS_PER_ROW {
        // The shortest slide allowed, rounded up to a whole second or millisecond.
        let shortest = windows_per_row(size_us, MAX_WINDOWS_PER_ROW);
        let unit = if shortest > 1_000_000 {
            1_000_000
        } else {
            1_000
        };
        let shortest = windows_per_row(shortest, unit).saturating_mul(unit);
        return Err(PlanError::Invalid(format!(
            "window() puts each row in {per_row} windows (window / slide); at most {MAX_WINDOWS_PER_ROW} are allowed: use a slide of at least {}",
            crate::duration::describe_micros(shortest)
        )));
    }
    Ok(WindowSpec {
        time_column,
        size_us,
        slide_us,
        start_us,
    })
}

fn is_marker(expr: &Expr) -> bool {
    matches!(expr, Expr::Identifier(id) if id.value == MARKER)
}

/// In one SELECT: name an unaliased `window(...)` `window`, as Spark does, and group by the
/// window's two bound columns where it groups by `window(...)`.
fn name_and_group(select: &mut Select) {
    for item in &mut select.projection {
        if let SelectItem::UnnamedExpr(expr) = item {
            if is_marker(expr) {
                *item = SelectItem::ExprWithAlias {
                    expr: expr.clone(),
                    alias: Ident::new("window"),
                };
            }
        }
    }
    if let GroupByExpr::Expressions(exprs, _) = &mut select.group_by {
        *exprs = std::mem::take(exprs)
            .into_iter()
            .flat_map(|e| match is_marker(&e) {
                true => vec![
                    Expr::Identifier(Ident::new(WINDOW_START)),
                    Expr::Identifier(Ident::new(WINDOW_END)),
                ],
                false => vec![e],
            })
            .collect();
    }
}

/// Rewrite `window(...)` calls to read the window columns (see the module docs). Returns the SQL unchanged (and `None`)
/// when it has none; all calls must name the same window.
pub fn rewrite(sql: &str) -> Result<(String, Option<WindowSpec>), PlanError> {
    let lower = sql.to_ascii_lowercase();
    if !lower.contains("window") {
        // Neither window() nor session_window().
        return Ok((sql.to_string(), None));
    }
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| PlanError::Invalid(e.to_string()))?;
    let mut spec: Option<WindowSpec> = None;
    let mut error: Option<PlanError> = None;
    let _ = visit_expressions_mut(&mut statements, |expr| {
        if let Expr::Function(f) = expr {
            let name = f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase());
            let is_window = name.as_deref() == Some("window");
            let is_session = name.as_deref() == Some("session_window");
            if is_session {
                error = Some(PlanError::Stateful(
                    "session_window() is not supported yet; use window(time, 'duration') for tumbling or sliding windows".into(),
                ));
                return ControlFlow::Break(());
            }
            if is_window {
                let parsed = match &f.args {
                    FunctionArguments::List(list) => parse_call(&list.args),
                    _ => Err(PlanError::Invalid("window() needs arguments".into())),
                };
                match parsed {
                    Ok(found) => {
                        if spec.as_ref().is_some_and(|s| *s != found) {
                            error = Some(PlanError::Invalid(
                                "a query may use only one window(); use the same arguments everywhere".into(),
                            ));
                            return ControlFlow::Break(());
                        }
                        spec = Some(found);
                        *expr = Expr::Identifier(Ident::new(MARKER));
                    }
                    Err(e) => {
                        error = Some(e);
                        return ControlFlow::Break(());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = error {
        return Err(e);
    }
    if spec.is_none() {
        return Ok((sql.to_string(), None));
    }
    for statement in &mut statements {
        if let Statement::Query(query) = statement {
            if let SetExpr::Select(select) = query.body.as_mut() {
                name_and_group(select);
            }
        }
    }
    // Everywhere else, a window is the struct of its bounds.
    let window_struct = Parser::new(&GenericDialect {})
        .try_with_sql(WINDOW_STRUCT)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| PlanError::Execution(e.to_string()))?;
    let _ = visit_expressions_mut(&mut statements, |expr| {
        if is_marker(expr) {
            *expr = window_struct.clone();
        }
        ControlFlow::<()>::Continue(())
    });
    let rewritten = statements
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join("; ");
    Ok((rewritten, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;

    const MIN: i64 = 60_000_000;

    fn spec(size: i64, slide: i64, start: i64) -> WindowSpec {
        WindowSpec {
            time_column: "time".into(),
            size_us: size * MIN,
            slide_us: slide * MIN,
            start_us: start * MIN,
        }
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch() {
        let s = spec(60, 60, 0);
        let ts = 90 * MIN + 5;
        assert_eq!(s.windows_of(ts).collect::<Vec<_>>(), vec![60 * MIN]);
        assert_eq!(s.windows_of(60 * MIN).collect::<Vec<_>>(), vec![60 * MIN]);
        // Before the epoch too.
        assert_eq!(s.windows_of(-1).collect::<Vec<_>>(), vec![-60 * MIN]);
    }

    #[test]
    fn sliding_windows_contain_the_row_in_each() {
        // 10m/5m: a row at 12:07 is in [12:00,12:10) and [12:05,12:15).
        let s = spec(10, 5, 0);
        let ts = (12 * 60 + 7) * MIN;
        assert_eq!(
            s.windows_of(ts).collect::<Vec<_>>(),
            vec![(12 * 60) * MIN, (12 * 60 + 5) * MIN]
        );
        // With a start offset of 2 minutes: [11:57,12:07) excludes 12:07; [12:02,12:12) holds it.
        let s = spec(10, 5, 2);
        assert_eq!(
            s.windows_of(ts).collect::<Vec<_>>(),
            vec![(12 * 60 + 2) * MIN, (12 * 60 + 7) * MIN]
        );
    }

    #[test]
    fn rewrites_window_calls_and_names_the_column() {
        let (sql, spec) = rewrite(
            "SELECT action, window(time, '1 hour') , count(*) AS count FROM source GROUP BY action, window(time, '1 hour')",
        )
        .unwrap();
        assert_eq!(spec.unwrap().size_us, 60 * MIN);
        assert!(
            sql.contains("named_struct('start', __window_start, 'end', __window_end) AS window"),
            "{sql}"
        );
        assert!(
            sql.contains("GROUP BY action, __window_start, __window_end"),
            "{sql}"
        );
    }

    #[test]
    fn rejects_bad_windows() {
        for (sql, needle) in [
            (
                "SELECT window(time, 'soon') FROM s GROUP BY window(time, 'soon')",
                "not a duration",
            ),
            ("SELECT window(time) FROM s", "window() takes"),
            (
                "SELECT window(time, '5 minutes', '10 minutes') FROM s",
                "slide must not be longer",
            ),
            (
                "SELECT window(time, '1 hour') AS w FROM s GROUP BY window(time, '2 hours')",
                "only one window()",
            ),
        ] {
            let err = rewrite(sql).unwrap_err().to_string();
            assert!(err.contains(needle), "{sql}: {err}");
        }
    }

    #[test]
    fn expand_repeats_rows_per_window_and_drops_null_times() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "time",
            timestamp_type(),
            true,
        )]));
        let times = TimestampMicrosecondArray::from(vec![Some(7 * MIN), None, Some(12 * MIN)])
            .with_timezone("UTC");
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(times)]).unwrap();
        let out = spec(10, 5, 0)
            .expand(&batch, &expanded_schema(&schema))
            .unwrap();
        assert_eq!(out.num_rows(), 4);
        assert_eq!(out.schema().field(1).name(), WINDOW_START);
        assert_eq!(out.schema().field(2).name(), WINDOW_END);
    }

    #[test]
    fn expand_finds_every_window_of_times_in_and_out_of_order() {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "time",
            timestamp_type(),
            true,
        )]));
        let mut ts: Vec<i64> = vec![0, -1, 60 * MIN, 60 * MIN - 1, 60 * MIN, 5, 2 * MIN];
        // Ascending runs, jumps back and forward, repeats, across several spans.
        ts.extend((0..500).map(|i: i64| (i * 7_919 * 1_000_003) % (300 * MIN) - 100 * MIN));
        ts.extend((0..500).map(|i: i64| i * 37 * 1_000_000));
        let times = TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC");
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(times)]).unwrap();
        for s in [
            spec(60, 60, 0),
            spec(60, 60, 7),
            spec(60, 30, 0),
            spec(10, 5, 2),
        ] {
            let out = s.expand(&batch, &expanded_schema(&schema)).unwrap();
            let column = |i: usize| {
                out.column(i)
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .unwrap()
                    .values()
                    .to_vec()
            };
            let want: Vec<(i64, i64)> = ts
                .iter()
                .flat_map(|t| s.windows_of(*t).map(move |w| (*t, w)))
                .collect();
            let got: Vec<(i64, i64)> = column(0).into_iter().zip(column(1)).collect();
            assert_eq!(got, want, "{s:?}");
            let ends: Vec<i64> = want.iter().map(|(_, w)| w + s.size_us).collect();
            assert_eq!(column(2), ends, "{s:?}");
        }
    }

    #[test]
    fn tumbling_expand_keeps_rows_and_finds_each_window() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("time", timestamp_type(), true),
            Field::new("n", DataType::Int64, true),
        ]));
        let ts = vec![-1, 0, 59 * MIN, 60 * MIN + 1, 7 * 60 * MIN + 3];
        let times = TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC");
        let ns = arrow::array::Int64Array::from(vec![1, 2, 3, 4, 5]);
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(times), Arc::new(ns)]).unwrap();
        let s = spec(60, 60, 0);
        let out = s.expand(&batch, &expanded_schema(&schema)).unwrap();
        assert_eq!(out.num_rows(), 5);
        assert_eq!(out.column(1), batch.column(1));
        let starts = out
            .column(2)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        let ends = out
            .column(3)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        for (i, t) in ts.iter().enumerate() {
            let want: Vec<i64> = s.windows_of(*t).collect();
            assert_eq!(vec![starts.value(i)], want, "row {i}");
            assert_eq!(ends.value(i), want[0] + 60 * MIN);
        }
    }
}
