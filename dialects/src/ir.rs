//! Reading melior IR: helpers the compiler's passes and the runtime's plan loader share, and the
//! template convention of the `exec` dialect (`${N}` names an op's N-th operand).

use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DictionaryAttribute, FlatSymbolRefAttribute, FloatAttribute,
    IntegerAttribute, StringAttribute,
};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{Attribute, BlockRef, Module, Value, ValueLike};

/// The op's name, e.g. `exec.render`.
pub fn op_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> String {
    op.name().as_string_ref().as_str().unwrap_or("").to_string()
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

/// An attribute as JSON: strings, integers, floats, booleans, arrays, dictionaries and symbol
/// references (as their name); anything else as its printed form.
pub fn attribute_to_json(attribute: Attribute<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    if let Ok(s) = StringAttribute::try_from(attribute) {
        return J::String(string_value(&s));
    }
    if let Ok(b) = BoolAttribute::try_from(attribute) {
        return J::Bool(b.value());
    }
    if let Ok(i) = IntegerAttribute::try_from(attribute) {
        return J::from(i.value());
    }
    if let Ok(f) = FloatAttribute::try_from(attribute) {
        return serde_json::Number::from_f64(f.value()).map_or(J::Null, J::Number);
    }
    if let Ok(a) = ArrayAttribute::try_from(attribute) {
        return J::Array(
            (0..a.len())
                .filter_map(|i| a.element(i).ok())
                .map(attribute_to_json)
                .collect(),
        );
    }
    if let Ok(d) = DictionaryAttribute::try_from(attribute) {
        let mut map = serde_json::Map::new();
        for i in 0..d.len() {
            if let Ok((name, value)) = d.element(i) {
                let name = name.as_string_ref().as_str().unwrap_or("").to_owned();
                map.insert(name, attribute_to_json(value));
            }
        }
        return J::Object(map);
    }
    if let Ok(s) = FlatSymbolRefAttribute::try_from(attribute) {
        return J::String(s.value().to_owned());
    }
    J::String(attribute.to_string())
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
