//! Small helpers for reading and walking melior IR in passes (the error-free ones live in
//! `agentc_plan::ir`, shared with the runtime).

pub use agentc_plan::ir::{
    Piece, block_ops, defining, module_ops, op_name, string_value, template_pieces, value_key,
};

use melior::ir::attribute::{ArrayAttribute, FloatAttribute, IntegerAttribute, StringAttribute};
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{Attribute, BlockRef, Module, RegionLike};

use crate::{Error, Result};

fn missing(op: &dyn std::fmt::Display, name: &str, kind: &str) -> Error {
    Error::Internal(format!("expected {kind} attribute `{name}` on {op}"))
}

pub fn attr<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Result<Attribute<'c>> {
    op.attribute(name)
        .map_err(|_| Error::Internal(format!("missing attribute `{name}` on {}", op_name(op))))
}

pub fn str_attr<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Result<String> {
    let a = attr(op, name)?;
    StringAttribute::try_from(a)
        .map(|s| string_value(&s))
        .map_err(|_| missing(&op_name(op), name, "string"))
}

pub fn int_attr<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Result<i64> {
    let a = attr(op, name)?;
    IntegerAttribute::try_from(a)
        .map(|i| i.value())
        .map_err(|_| missing(&op_name(op), name, "integer"))
}

pub fn float_attr<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>, name: &str) -> Result<f64> {
    let a = attr(op, name)?;
    FloatAttribute::try_from(a)
        .map(|f| f.value())
        .map_err(|_| missing(&op_name(op), name, "float"))
}

pub fn array_attr<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
    name: &str,
) -> Result<ArrayAttribute<'c>> {
    let a = attr(op, name)?;
    ArrayAttribute::try_from(a).map_err(|_| missing(&op_name(op), name, "array"))
}

/// The body block of a `func.func`.
pub fn func_block<'c, 'a>(func: OperationRef<'c, 'a>) -> Result<BlockRef<'c, 'a>> {
    func.region(0)
        .ok()
        .and_then(|r| r.first_block())
        .ok_or_else(|| Error::Internal("func.func without a body".into()))
}

/// Every op nested in the module's functions (one level: functions' entry blocks).
pub fn all_func_ops<'c, 'a>(module: &'a Module<'c>) -> Result<Vec<OperationRef<'c, 'a>>> {
    let mut out = Vec::new();
    for f in module_ops(module) {
        if op_name(&f) == "func.func" {
            out.extend(block_ops(func_block(f)?));
        }
    }
    Ok(out)
}
