//! `dce`: removes operations whose results nothing reads.
//!
//! Expects: an `exec` module. Guarantees: no op without side effects has an unused result.
//! Tools, inputs, outputs and compound ops (whose bodies may call tools) are always kept.

use melior::ir::Module;
use melior::ir::operation::OperationLike;

use super::ir::*;
use super::ir_mut::{erase, has_uses};
use super::{Pass, PassContext};
use crate::Result;

pub struct Dce;

const REMOVABLE: &[&str] = &[
    "exec.render",
    "exec.tokenize",
    "exec.prefill",
    "exec.decode",
    "exec.detokenize",
    "exec.embed",
    "exec.knn",
    "exec.json_op",
    "exec.transfer",
];

impl Pass for Dce {
    fn name(&self) -> &'static str {
        "dce"
    }

    fn run<'c>(&self, _cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let mut changed = false;
        for f in module_ops(module) {
            if op_name(&f) != "func.func" {
                continue;
            }
            // Backwards, so a chain whose end is unused goes in one sweep.
            for op in block_ops(func_block(f)?).into_iter().rev() {
                if REMOVABLE.contains(&op_name(&op).as_str())
                    && !op.results().any(|r| has_uses(r.into()))
                {
                    erase(op);
                    changed = true;
                }
            }
        }
        Ok(changed)
    }
}
