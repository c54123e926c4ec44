//! Spark SQL spellings DataFusion does not read, rewritten into ones it does:
//!
//! - the generators `explode(array)` and `explode_outer(array)` in a SELECT list, and
//!   `LATERAL VIEW [OUTER] explode(array) t AS c`, become DataFusion's `unnest` (an outer one
//!   keeps a row with NULL for an empty or NULL array, as Spark does);
//! - an unnamed generator column is named `col`, and an unnamed nested field `actor.login` is
//!   named by its last part, `login`, as Spark names them;
//! - `.field` after a subscript or a call (`commits[0].sha`, Spark's spelling) reads as
//!   `['field']`, the spelling DataFusion reads;
//! - Spark's functions, casts and operators as [`spark::calls`] reads them;
//! - `*` over the stream leaves out the hidden column `_metadata` (Spark shows it only to a
//!   query that names it).
//!
//! Pure: SQL text in, SQL text out.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    AccessExpr, ExcludeSelectItem, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments,
    Ident, LateralView, ObjectName, Query, Select, SelectItem, SetExpr, Statement, Subscript,
    TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::spark::{self, SparkDialect};
use super::PlanError;
use crate::source::file_columns::METADATA;

/// Rewrite the Spark spellings of `sql` (see the module docs); SQL without them comes back
/// unchanged.
pub fn rewrite(sql: &str, source_name: &str) -> Result<String, PlanError> {
    let mut statements = Parser::parse_sql(&SparkDialect::default(), sql)
        .map_err(|e| PlanError::Invalid(format!("the SQL does not parse: {e}")))?;
    let mut rewriter = Rewriter {
        hide_metadata: crate::source::file_columns::wants_metadata(sql)
            .then(|| source_name.to_string()),
        // A backslash escape Spark reads must reach the generic parser unescaped.
        changed: sql.contains('\\') || sql.to_ascii_lowercase().contains("div"),
        ..Default::default()
    };
    let _ = statements.visit(&mut rewriter);
    if let Some(e) = rewriter.error {
        return Err(e);
    }
    if !rewriter.changed {
        return Ok(sql.to_string());
    }
    Ok(statements
        .iter()
        .map(Statement::to_string)
        .collect::<Vec<_>>()
        .join("; "))
}

#[derive(Default)]
struct Rewriter {
    changed: bool,
    error: Option<PlanError>,
    /// The stream's table name, when its `*` must leave `_metadata` out.
    hide_metadata: Option<String>,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match spark::calls::rewrite(expr) {
            Ok(changed) => self.changed |= changed,
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        if let Expr::CompoundFieldAccess { root, access_chain } = expr {
            // `.field` after a subscript or a call (`commits[0].sha`) reads as `['field']`.
            let mut after_ident = matches!(root.as_ref(), Expr::Identifier(_));
            for access in access_chain.iter_mut() {
                match access {
                    AccessExpr::Dot(Expr::Identifier(_)) if after_ident => {}
                    AccessExpr::Dot(Expr::Identifier(field)) => {
                        *access = AccessExpr::Subscript(Subscript::Index {
                            index: Expr::value(Value::SingleQuotedString(field.value.clone())),
                        });
                        self.changed = true;
                    }
                    _ => after_ident = false,
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Err(e) = self.body(query.body.as_mut()) {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

impl Rewriter {
    fn body(&mut self, body: &mut SetExpr) -> Result<(), PlanError> {
        match body {
            SetExpr::Select(select) => self.select(select),
            SetExpr::SetOperation { left, right, .. } => {
                self.body(left)?;
                self.body(right)
            }
            _ => Ok(()),
        }
    }

    fn select(&mut self, select: &mut Select) -> Result<(), PlanError> {
        if let Some(source) = &self.hide_metadata {
            if reads_table(select, source) {
                for item in &mut select.projection {
                    if let SelectItem::Wildcard(options) = item {
                        if options.opt_exclude.is_none() {
                            options.opt_exclude =
                                Some(ExcludeSelectItem::Single(ObjectName::from(vec![
                                    Ident::new(METADATA),
                                ])));
                            self.changed = true;
                        }
                    }
                }
            }
        }
        for view in std::mem::take(&mut select.lateral_views) {
            self.lateral_view(select, view)?;
            self.changed = true;
        }
        for item in &mut select.projection {
            let (expr, alias) = match item {
                SelectItem::UnnamedExpr(expr) => (expr, None),
                SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.clone())),
                _ => continue,
            };
            if let Some(outer) = generator(expr)? {
                let array = first_arg(expr)?;
                *item = SelectItem::ExprWithAlias {
                    expr: unnest(array, outer)?,
                    alias: alias.unwrap_or_else(|| Ident::new("col")),
                };
                self.changed = true;
            } else if alias.is_none() {
                if let Expr::CompoundIdentifier(parts) = expr {
                    if let Some(last) = parts.last().cloned() {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: last,
                        };
                        self.changed = true;
                    }
                }
            }
        }
        Ok(())
    }

    /// `FROM r LATERAL VIEW [OUTER] explode(e) v AS c` reads as
    /// `FROM (SELECT *, unnest(e) AS c FROM r) AS r`, and `v.c` as `c`.
    fn lateral_view(&mut self, select: &mut Select, view: LateralView) -> Result<(), PlanError> {
        let Some(outer_kind) = generator(&view.lateral_view)? else {
            return Err(PlanError::Invalid(format!(
                "LATERAL VIEW {} is not supported; use LATERAL VIEW explode(array) t AS name",
                view.lateral_view
            )));
        };
        let [from] = select.from.as_mut_slice() else {
            return Err(PlanError::Invalid(
                "LATERAL VIEW needs exactly one table in FROM".into(),
            ));
        };
        if !from.joins.is_empty() {
            return Err(PlanError::Invalid(
                "LATERAL VIEW cannot follow a JOIN here; explode in a subquery first".into(),
            ));
        }
        let column = match view.lateral_col_alias.as_slice() {
            [] => Ident::new("col"),
            [one] => one.clone(),
            _ => {
                return Err(PlanError::Invalid(
                    "explode() of an array gives one column; name one after AS".into(),
                ))
            }
        };
        let table_name = match &from.relation {
            TableFactor::Table { alias: Some(a), .. }
            | TableFactor::Derived { alias: Some(a), .. } => a.name.clone(),
            TableFactor::Table { name, .. } => match name.0.last().and_then(|p| p.as_ident()) {
                Some(i) => i.clone(),
                None => Ident::new("source"),
            },
            _ => Ident::new("source"),
        };
        let unnested = unnest(first_arg(&view.lateral_view)?, outer_kind || view.outer)?;
        // The hidden `_metadata` column goes through the view when the query names it.
        let star = match self.hide_metadata {
            Some(_) => format!("* EXCLUDE ({METADATA}), {METADATA}"),
            None => "*".to_string(),
        };
        let inner = format!(
            "SELECT {star}, {unnested} AS {column} FROM {relation}",
            relation = from.relation
        );
        let subquery = Parser::new(&GenericDialect {})
            .try_with_sql(&inner)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| PlanError::Invalid(e.to_string()))?;
        from.relation = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(datafusion::sql::sqlparser::ast::TableAlias {
                explicit: true,
                name: table_name,
                columns: vec![],
                at: None,
            }),
            sample: None,
        };
        // `v.c` names the view's column: it is now a column of the table.
        let view_name = view
            .lateral_view_name
            .0
            .last()
            .and_then(|p| p.as_ident())
            .map(|i| i.value.clone());
        if let Some(view_name) = view_name {
            let _ = datafusion::sql::sqlparser::ast::visit_expressions_mut(select, |e| {
                if let Expr::CompoundIdentifier(parts) = e {
                    if parts.len() >= 2 && parts[0].value == view_name {
                        parts.remove(0);
                        if parts.len() == 1 {
                            *e = Expr::Identifier(parts.remove(0));
                        }
                    }
                }
                ControlFlow::<()>::Continue(())
            });
        }
        Ok(())
    }
}

/// Does `select` read the table `name` alone?
fn reads_table(select: &Select, name: &str) -> bool {
    match select.from.as_slice() {
        [only] if only.joins.is_empty() => match &only.relation {
            TableFactor::Table { name: table, .. } => table
                .0
                .last()
                .and_then(|p| p.as_ident())
                .is_some_and(|i| i.value == name),
            _ => false,
        },
        _ => false,
    }
}

/// Is `expr` a generator call: `Some(false)` for `explode`, `Some(true)` for `explode_outer`?
/// Generators Spark has that are not read here are refused with what to write instead.
fn generator(expr: &Expr) -> Result<Option<bool>, PlanError> {
    let Expr::Function(Function { name, .. }) = expr else {
        return Ok(None);
    };
    let name = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase());
    match name.as_deref() {
        Some("explode") => Ok(Some(false)),
        Some("explode_outer") => Ok(Some(true)),
        Some(g @ ("posexplode" | "posexplode_outer" | "inline" | "inline_outer" | "stack")) => {
            Err(PlanError::Invalid(format!(
                "{g}() is not supported yet; use explode(array) (or unnest) and read fields of the element"
            )))
        }
        _ => Ok(None),
    }
}

/// The one argument of a generator call.
fn first_arg(expr: &Expr) -> Result<String, PlanError> {
    if let Expr::Function(f) = expr {
        if let FunctionArguments::List(list) = &f.args {
            if let [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] = list.args.as_slice() {
                return Ok(arg.to_string());
            }
        }
    }
    Err(PlanError::Invalid(format!(
        "{expr}: explode() takes one array argument"
    )))
}

/// `unnest(array)`; outer: an empty or NULL array gives one NULL element.
fn unnest(array: String, outer: bool) -> Result<Expr, PlanError> {
    let text = if outer {
        format!("unnest(CASE WHEN cardinality({array}) > 0 THEN {array} ELSE make_array(NULL) END)")
    } else {
        format!("unnest({array})")
    };
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| PlanError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite_(sql: &str) -> Result<String, PlanError> {
        rewrite(sql, "source")
    }

    /// `*` over the stream leaves out `_metadata`, which a query names to read.
    #[test]
    fn star_hides_metadata() {
        assert_eq!(
            rewrite_("SELECT *, _metadata.file_name AS f FROM source").unwrap(),
            "SELECT * EXCLUDE _metadata, _metadata.file_name AS f FROM source"
        );
        assert_eq!(
            rewrite_("SELECT * FROM source").unwrap(),
            "SELECT * FROM source"
        );
    }

    #[test]
    fn explode_becomes_unnest_named_col() {
        assert_eq!(
            rewrite_("SELECT id, explode(tags) FROM source").unwrap(),
            "SELECT id, unnest(tags) AS col FROM source"
        );
        assert_eq!(
            rewrite_("SELECT EXPLODE(payload.commits) AS c FROM source").unwrap(),
            "SELECT unnest(payload.commits) AS c FROM source"
        );
        assert!(rewrite_("SELECT explode_outer(a) AS x FROM s")
            .unwrap()
            .contains("ELSE make_array(NULL) END) AS x"));
    }

    #[test]
    fn nested_fields_are_named_by_their_last_part() {
        assert_eq!(
            rewrite_("SELECT actor.login, repo.name AS r FROM source").unwrap(),
            "SELECT actor.login AS login, repo.name AS r FROM source"
        );
        assert_eq!(rewrite_("SELECT a FROM s").unwrap(), "SELECT a FROM s");
    }

    #[test]
    fn lateral_views_become_subqueries() {
        assert_eq!(
            rewrite_("SELECT id, c.sha FROM source LATERAL VIEW explode(payload.commits) t AS c WHERE id > 1")
                .unwrap(),
            "SELECT id, c.sha AS sha FROM (SELECT *, unnest(payload.commits) AS c FROM source) AS source WHERE id > 1"
        );
        assert_eq!(
            rewrite_("SELECT s.id, t.c FROM source s LATERAL VIEW explode(tags) t AS c").unwrap(),
            "SELECT s.id AS id, c FROM (SELECT *, unnest(tags) AS c FROM source s) AS s"
        );
    }

    #[test]
    fn unsupported_generators_say_what_to_write() {
        let err = rewrite_("SELECT posexplode(a) FROM s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("explode(array)"), "{err}");
    }
}
