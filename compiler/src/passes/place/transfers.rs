//! `exec.transfer` insertion: after placement, each value that crosses devices is moved
//! explicitly, sized for the cost model.

use agentc_plan::attr;
use agentc_plan::exec;
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationBuilder, OperationLike, OperationRef};
use melior::ir::{Module, Value, ValueLike};

use super::super::PassContext;
use super::super::ir::*;
use super::BYTES_PER_TOKEN;
use crate::Result;
use crate::emit::attrs::Attrs;

/// Inserts an `exec.transfer` before each use of a value produced on another device.
pub(super) fn insert_transfers<'c>(cx: &PassContext<'c, '_>, module: &Module<'c>) -> Result<()> {
    let a = Attrs {
        context: cx.context,
    };
    for f in module_ops(module) {
        if op_name(&f) != "func.func" {
            continue;
        }
        let block = func_block(f)?;
        for op in block_ops(block) {
            let Ok(to) = str_attr(&op, attr::DEVICE) else {
                continue;
            };
            if to.is_empty() || op_name(&op) == exec::TRANSFER {
                continue;
            }
            for (i, v) in op.operands().enumerate() {
                let Some(producer) = defining(v) else {
                    continue;
                };
                let from = str_attr(&producer, attr::DEVICE).unwrap_or_default();
                if from.is_empty() || from == to {
                    continue;
                }
                let bytes = transfer_bytes(&producer);
                let node = str_attr(&op, attr::NODE).unwrap_or_default();
                let t = OperationBuilder::new(exec::TRANSFER, op.location())
                    .add_operands(&[v])
                    .add_attributes(&[
                        a.named(attr::NODE, a.str(&node)),
                        a.named(attr::FROM, a.str(&from)),
                        a.named(attr::BYTES, a.int(bytes as i64)),
                        a.named(attr::DEVICE, a.str(&to)),
                        a.named(attr::PREDICTED_MS, a.float(0.0)),
                        a.named(attr::USD, a.float(0.0)),
                    ])
                    .add_results(&[v.r#type()])
                    .build()?;
                let t = block.insert_operation_before(op, t);
                let moved: Value = t.result(0)?.into();
                // SAFETY: `op` is live; setting operand `i` to a value defined just before it in the
                // same block keeps dominance.
                unsafe {
                    mlir_sys::mlirOperationSetOperand(op.to_raw(), i as isize, moved.to_raw())
                };
            }
        }
    }
    Ok(())
}

/// Bytes a value carries between devices: a KV cache by its tokens, text by its size.
fn transfer_bytes(producer: &OperationRef) -> u64 {
    let tokens = int_attr(producer, attr::EST_TOKENS).map_or(64, |n| n.max(1) as u64);
    if op_name(producer) == exec::PREFILL {
        // The engine's cache for SmolLM2-sized models: 30 layers x 3 KV heads x 64 x 2 x f16.
        tokens * 23_040
    } else {
        tokens * BYTES_PER_TOKEN as u64
    }
}
