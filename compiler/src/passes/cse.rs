//! `cse`: identical deterministic operations run once.
//!
//! Expects: an `exec` module. Guarantees: within each function, of two pure ops with the same
//! name, operands and attributes (ignoring `node` and placement), the later is removed and its
//! uses read the earlier. A decode is pure only at temperature 0; tools and inputs never are
//! (a tool may have effects). Repeats until nothing changes, so whole call chains merge.

use agentc_plan::attr;
use std::collections::HashMap;

use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{Module, ValueLike};

use super::ir::*;
use super::ir_mut::erase;
use super::{Pass, PassContext};
use crate::Result;

pub struct Cse;

/// Attributes that name or place an op rather than say what it computes.
const IGNORED: &[&str] = &["node", "device", "predicted_ms", "usd", "batch"];

fn is_pure(op: &OperationRef) -> bool {
    match op_name(op).as_str() {
        "exec.render" | "exec.tokenize" | "exec.prefill" | "exec.detokenize" | "exec.embed"
        | "exec.knn" | "exec.json_op" => true,
        "exec.decode" => float_attr(op, attr::TEMPERATURE).is_ok_and(|t| t == 0.0),
        _ => false,
    }
}

/// What an op computes: its name, operands and attributes. MLIR uniques attributes and
/// identifiers in the context, so their pointers compare as their values do.
#[derive(PartialEq, Eq, Hash)]
struct Key {
    name: usize,
    operands: Vec<usize>,
    attributes: Vec<(usize, usize)>,
}

fn key(op: &OperationRef) -> Key {
    use melior::ir::AttributeLike;
    let mut attributes: Vec<(usize, usize)> = op
        .attributes()
        .filter(|(id, _)| !IGNORED.contains(&id.as_string_ref().as_str().unwrap_or("")))
        .map(|(id, a)| (id.to_raw().ptr as usize, a.to_raw().ptr as usize))
        .collect();
    attributes.sort_unstable();
    Key {
        name: op.name().to_raw().ptr as usize,
        operands: op.operands().map(value_key).collect(),
        attributes,
    }
}

impl Pass for Cse {
    fn name(&self) -> &'static str {
        "cse"
    }

    fn run<'c>(&self, _cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let mut changed = false;
        loop {
            let mut merged = false;
            for f in module_ops(module) {
                if op_name(&f) != "func.func" {
                    continue;
                }
                let mut seen: HashMap<Key, OperationRef> = HashMap::new();
                for op in block_ops(func_block(f)?) {
                    if !is_pure(&op) {
                        continue;
                    }
                    let k = key(&op);
                    match seen.get(&k) {
                        Some(first) => {
                            let (old, new) = (op.result(0)?, first.result(0)?);
                            // SAFETY: both values belong to live ops of this module and the
                            // replacement dominates every use (it comes earlier in the same
                            // block); `op` is then unused and erased, and not touched again.
                            unsafe {
                                mlir_sys::mlirValueReplaceAllUsesOfWith(old.to_raw(), new.to_raw());
                            }
                            erase(op);
                            merged = true;
                        }
                        None => {
                            seen.insert(k, op);
                        }
                    }
                }
            }
            if !merged {
                break;
            }
            changed = true;
        }
        Ok(changed)
    }
}
