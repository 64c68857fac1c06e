//! Small helpers for reading and walking melior IR in passes.

use melior::ir::attribute::{ArrayAttribute, FloatAttribute, IntegerAttribute, StringAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{Attribute, BlockRef, Module, RegionLike, Value, ValueLike};

use crate::{Error, Result};

fn missing(op: &dyn std::fmt::Display, name: &str, kind: &str) -> Error {
    Error::Internal(format!("expected {kind} attribute `{name}` on {op}"))
}

pub fn op_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> String {
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
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

/// The text of a string attribute. melior's `StringAttribute::value` builds a slice from the
/// null pointer MLIR returns for an empty string, which is undefined behaviour; read it here.
pub fn string_value(s: &StringAttribute<'_>) -> String {
    use melior::ir::AttributeLike;
    // SAFETY: `s` is a live string attribute; MLIR returns its bytes and length, valid for the
    // context's lifetime, or a null pointer with length 0 for an empty string (handled first).
    unsafe {
        let raw = mlir_sys::mlirStringAttrGetValue(s.to_raw());
        if raw.length == 0 || raw.data.is_null() {
            return String::new();
        }
        let bytes = std::slice::from_raw_parts(raw.data as *const u8, raw.length);
        String::from_utf8_lossy(bytes).into_owned()
    }
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

/// Identity of an SSA value, stable while its defining op lives.
pub fn value_key<'c, 'a>(v: Value<'c, 'a>) -> usize {
    v.to_raw().ptr as usize
}

/// The op defining `v`, unless `v` is a block argument.
pub fn defining<'c, 'a>(v: Value<'c, 'a>) -> Option<OperationRef<'c, 'a>> {
    melior::ir::operation::OperationResult::try_from(v)
        .ok()
        .map(|r| r.owner())
}

/// The ops of a block, in order.
pub fn block_ops<'c, 'a>(block: BlockRef<'c, 'a>) -> Vec<OperationRef<'c, 'a>> {
    let mut out = Vec::new();
    let mut next = block.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        out.push(op);
    }
    out
}

/// The top-level ops of a module.
pub fn module_ops<'c, 'a>(module: &'a Module<'c>) -> Vec<OperationRef<'c, 'a>> {
    block_ops(module.body())
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

/// A piece of a template as the emitter rewrote it: `${N}` / `${N.path}` name the op's N-th
/// operand (or a field of it), `$${` is a literal `${`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'t> {
    Text(&'t str),
    Operand { index: usize, path: &'t str },
}

/// Splits a rewritten template into text and operand pieces; a malformed placeholder (which the
/// emitter never writes) is dropped.
pub fn template_pieces(template: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('$') {
        if i > 0 {
            pieces.push(Piece::Text(&rest[..i]));
        }
        let after = &rest[i..];
        if let Some(s) = after.strip_prefix("$${") {
            pieces.push(Piece::Text(&after[1..3]));
            rest = s;
        } else if let Some(s) = after.strip_prefix("${") {
            let end = s.find('}').unwrap_or(s.len());
            let body = &s[..end];
            let (index, path) = body.split_once('.').unwrap_or((body, ""));
            if let Ok(index) = index.parse() {
                pieces.push(Piece::Operand { index, path });
            }
            rest = s.get(end + 1..).unwrap_or("");
        } else {
            pieces.push(Piece::Text(&after[..1]));
            rest = &after[1..];
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::{Piece, template_pieces};

    #[test]
    fn pieces_of_a_rewritten_template() {
        assert_eq!(
            template_pieces("Q: ${0}\nA: ${1.x} $${lit} $5"),
            vec![
                Piece::Text("Q: "),
                Piece::Operand { index: 0, path: "" },
                Piece::Text("\nA: "),
                Piece::Operand {
                    index: 1,
                    path: "x"
                },
                Piece::Text(" "),
                Piece::Text("${"),
                Piece::Text("lit} "),
                Piece::Text("$"),
                Piece::Text("5"),
            ]
        );
    }
}
