//! Files written by an older lake, read as today's.
//!
//! A store's files are read as one table of today's schema ([`crate::columnar::schema`]).
//! DataFusion adapts each file's expressions to what the file holds (its *physical* schema):
//! a field the file's `eventData` lacks reads as NULL, one of another nullability is cast. That is
//! right for every field but a parameter column (`columnar::params`), which a file written before
//! its key was in the catalog lacks although its events may carry the key: there, the column's
//! reads become `element_at(eventData.requestParameters, '<key>')`, what the column would hold.

use std::sync::Arc;

use datafusion::{
    arrow::datatypes::SchemaRef,
    common::{
        Result,
        tree_node::{Transformed, TransformedResult, TreeNode},
    },
    execution::FunctionRegistry,
    functions::core::getfield::GetFieldFunc,
    logical_expr::ScalarUDF,
    physical_expr::{
        PhysicalExpr, ScalarFunctionExpr,
        expressions::{Column, Literal, lit},
    },
    physical_expr_adapter::{DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory},
    prelude::SessionContext,
};

use crate::columnar::params;

/// Adapts a query's expressions to each file (see the module).
#[derive(Debug)]
pub(super) struct OlderFiles {
    /// The query's `element_at` (bounded as every function of a query is).
    element_at: Arc<ScalarUDF>,
}

impl OlderFiles {
    pub(super) fn new(ctx: &SessionContext) -> Result<OlderFiles> {
        Ok(OlderFiles { element_at: ctx.udf("element_at")? })
    }
}

impl PhysicalExprAdapterFactory for OlderFiles {
    fn create(&self, logical: SchemaRef, physical: SchemaRef) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let held = params::keys_in(&physical);
        let missing = params::keys_in(&logical).into_iter().filter(|k| !held.contains(k)).collect();
        let default = DefaultPhysicalExprAdapterFactory.create(logical.clone(), physical)?;
        Ok(Arc::new(Adapter { default, missing, logical, element_at: self.element_at.clone() }))
    }
}

#[derive(Debug)]
struct Adapter {
    default: Arc<dyn PhysicalExprAdapter>,
    /// The parameter columns' keys the file lacks.
    missing: Vec<String>,
    logical: SchemaRef,
    element_at: Arc<ScalarUDF>,
}

impl PhysicalExprAdapter for Adapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let expr = if self.missing.is_empty() { expr } else { expr.transform_up(|e| self.read_from_json(e)).data()? };
        self.default.rewrite(expr)
    }
}

impl Adapter {
    /// `get_field(eventData, '$rp:<key>')` of a key the file lacks as `element_at` over the
    /// file's `requestParameters`.
    fn read_from_json(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Transformed<Arc<dyn PhysicalExpr>>> {
        let Some(call) = ScalarFunctionExpr::try_downcast_func::<GetFieldFunc>(expr.as_ref()) else {
            return Ok(Transformed::no(expr));
        };
        let [source, name] = call.args() else { return Ok(Transformed::no(expr)) };
        let is_event_data = source.downcast_ref::<Column>().is_some_and(|c| c.name() == "eventData");
        let field = name.downcast_ref::<Literal>().and_then(|l| l.value().try_as_str().flatten());
        let Some(key) = field.and_then(params::key_of).filter(|k| is_event_data && self.missing.iter().any(|m| m == k))
        else {
            return Ok(Transformed::no(expr));
        };
        let config = Arc::new(call.config_options().clone());
        let text = ScalarFunctionExpr::try_new(
            Arc::new(call.fun().clone()),
            vec![source.clone(), lit("requestParameters")],
            &self.logical,
            config.clone(),
        )?;
        let value = ScalarFunctionExpr::try_new(
            self.element_at.clone(),
            vec![Arc::new(text), lit(key)],
            &self.logical,
            config,
        )?;
        Ok(Transformed::yes(Arc::new(value)))
    }
}
