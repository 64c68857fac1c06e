//! `form-batches`: marks operations that can share one forward pass.
//!
//! Expects: an `exec` module. Guarantees: prefills, decodes and embeds of the same model that
//! are independent of each other (no path between them: same dependency depth in their function)
//! carry the same `batch` id, `b<N>`, when there are at least two; the prefills, decodes and
//! embeds of a map body carry `map:<node>`, since all elements run them together.

use agentc_plan::attr;
use std::collections::{BTreeMap, HashMap};

use agentc_plan::exec;
use melior::ir::Module;
use melior::ir::attribute::FlatSymbolRefAttribute;
use melior::ir::operation::OperationLike;

use super::ir::*;
use super::ir_mut::set_attribute;
use super::{Pass, PassContext};
use crate::Result;
use crate::emit::attrs::Attrs;

pub struct FormBatches;

const BATCHABLE: &[&str] = &[exec::PREFILL, exec::DECODE, exec::EMBED];

impl Pass for FormBatches {
    fn name(&self) -> &'static str {
        "form-batches"
    }

    fn run<'c>(&self, cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let a = Attrs {
            context: cx.context,
        };
        let mut map_owner: HashMap<String, String> = HashMap::new();
        for op in all_func_ops(module)? {
            if op_name(&op) == exec::MAP
                && let Some(s) = op
                    .attribute(attr::BODY)
                    .ok()
                    .and_then(|b| FlatSymbolRefAttribute::try_from(b).ok())
            {
                map_owner.insert(s.value().to_string(), str_attr(&op, attr::NODE)?);
            }
        }
        let mut changed = false;
        let mut next_id = 0;
        for f in module_ops(module) {
            if op_name(&f) != "func.func" {
                continue;
            }
            let fname = str_attr(&f, attr::func::SYM_NAME)?;
            let ops = block_ops(func_block(f)?);
            if let Some(owner) = map_owner.get(&fname) {
                for op in ops
                    .into_iter()
                    .filter(|o| BATCHABLE.contains(&op_name(o).as_str()))
                {
                    set_attribute(op, attr::BATCH, a.str(&format!("map:{owner}")));
                    changed = true;
                }
                continue;
            }
            // Depth of each op: 1 + the deepest op it reads (block arguments are depth 0).
            let mut depth: HashMap<usize, usize> = HashMap::new();
            let mut groups: BTreeMap<(usize, String, String), Vec<usize>> = BTreeMap::new();
            for (i, op) in ops.iter().enumerate() {
                let d = op
                    .operands()
                    .map(|v| depth.get(&value_key(v)).copied().unwrap_or(0))
                    .max()
                    .unwrap_or(0)
                    + 1;
                for r in op.results() {
                    depth.insert(value_key(r.into()), d);
                }
                let name = op_name(op);
                if BATCHABLE.contains(&name.as_str()) {
                    groups
                        .entry((d, name, str_attr(op, attr::MODEL)?))
                        .or_default()
                        .push(i);
                }
            }
            for members in groups.values().filter(|m| m.len() >= 2) {
                let id = format!("b{next_id}");
                next_id += 1;
                for &i in members {
                    set_attribute(ops[i], "batch", a.str(&id));
                }
                changed = true;
            }
        }
        Ok(changed)
    }
}
