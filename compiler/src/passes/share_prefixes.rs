//! `share-prefixes`: finds prompt prefixes that several prefills compute and names each once.
//!
//! Expects: an `exec` module from `lower-agent-to-exec`. Guarantees: for every group of prefills
//! of one model whose prompts start the same way (same static text, same values in the same
//! places) for at least [`KV_BLOCK_TOKENS`] tokens, a module-level `exec.kv_prefix` names that
//! prefix, and each prefill's `prefix` / `prefix_tokens` point at the longest one it starts with.
//! Inside a map body, the part of a prompt before the first per-element value is shared by every
//! element. Tokens are counted in whole KV blocks, as the runtime's radix cache shares them.

use agentc_plan::attr;
use std::collections::{HashMap, HashSet};

use agentc_plan::exec;
use melior::ir::attribute::{DictionaryAttribute, FlatSymbolRefAttribute, StringAttribute};
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationBuilder, OperationLike, OperationRef};
use melior::ir::{Location, Module, Value};

use super::ir::*;
use super::ir_mut::set_attribute;
use super::lower_agent_to_exec::{DEFAULT_INPUT_TOKENS, DEFAULT_LIST_ITEMS};
use super::{Pass, PassContext};
use crate::Result;
use crate::emit::attrs::Attrs;

/// Tokens per KV-cache block: the unit of sharing.
pub const KV_BLOCK_TOKENS: u64 = 16;

pub struct SharePrefixes;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Atom {
    Char(char),
    /// An SSA value, by identity.
    Val(usize),
    /// The text a call generated, by the identity of the call's prefill: a prompt that repeats a
    /// parent call's prompt followed by its output extends the parent's KV cache, generated
    /// tokens included.
    Gen(usize),
}

struct Prompt<'c, 'a> {
    prefill: OperationRef<'c, 'a>,
    node: String,
    model: String,
    atoms: Vec<Atom>,
    /// Atoms shareable across a map's elements (up to the first per-element value).
    invariant: usize,
}

/// A shared prefix: its atoms, the prefills that use it, and whether it repeats per map element.
struct Group {
    model: String,
    atoms: Vec<Atom>,
    consumers: Vec<usize>,
    per_element: bool,
}

impl Pass for SharePrefixes {
    fn name(&self) -> &'static str {
        "share-prefixes"
    }

    fn run<'c>(&self, cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let map_bodies = map_bodies(module);
        let (generated_by, generated_tokens) = generations(module)?;
        let mut value_names: HashMap<usize, String> = HashMap::new();
        let mut value_tokens: HashMap<usize, u64> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        let mut prompts: Vec<Prompt> = Vec::new();
        for f in module_ops(module) {
            if op_name(&f) != "func.func" {
                continue;
            }
            let fname = str_attr(&f, attr::func::SYM_NAME)?;
            let block = func_block(f)?;
            for i in 0..block.argument_count() {
                let arg: Value = block.argument(i)?.into();
                value_names.insert(value_key(arg), format!("arg{i}"));
                value_tokens.insert(value_key(arg), DEFAULT_INPUT_TOKENS);
            }
            let is_map_body = map_bodies.contains(&fname);
            // Captured arguments are the same for every element; the element (argument 0) and
            // anything computed in the body vary.
            let invariant_args: HashSet<usize> = (1..block.argument_count())
                .filter_map(|i| block.argument(i).ok())
                .map(|a| value_key(a.into()))
                .collect();
            let first = prompts.len();
            for op in block_ops(block) {
                for r in op.results() {
                    let v: Value = r.into();
                    value_names.insert(value_key(v), str_attr(&op, attr::NODE).unwrap_or_default());
                    value_tokens.insert(value_key(v), result_tokens(&op));
                }
                if op_name(&op) == exec::PREFILL
                    && let Some(p) = prompt_of(op, &invariant_args, &generated_by)?
                {
                    prompts.push(p);
                }
            }
            let local = first..prompts.len();
            groups.extend(common_prefixes(&prompts, local.clone()));
            if is_map_body {
                for i in local {
                    let p = &prompts[i];
                    groups.push(Group {
                        model: p.model.clone(),
                        atoms: p.atoms[..p.invariant].to_vec(),
                        consumers: vec![i],
                        per_element: true,
                    });
                }
            }
        }
        for p in &prompts {
            value_names.insert(op_key(&p.prefill), p.node.clone());
        }
        let a = Attrs {
            context: cx.context,
        };
        let mut best: HashMap<usize, (String, u64, u64)> = HashMap::new();
        let mut declared = 0;
        for g in groups {
            let tokens = atom_tokens(cx, &g.model, &g.atoms, &value_tokens, &generated_tokens);
            let tokens = tokens / KV_BLOCK_TOKENS * KV_BLOCK_TOKENS;
            let uses = if g.per_element {
                DEFAULT_LIST_ITEMS
            } else {
                g.consumers.len() as u64
            };
            if tokens == 0 || uses < 2 {
                continue;
            }
            let name = format!("p{declared}");
            declared += 1;
            let consumers: Vec<_> = g
                .consumers
                .iter()
                .map(|&i| a.str(&prompts[i].node))
                .collect();
            let op = OperationBuilder::new(exec::KV_PREFIX, Location::unknown(cx.context))
                .add_attributes(&[
                    a.named(attr::NAME, a.str(&name)),
                    a.named(attr::MODEL, a.str(&g.model)),
                    a.named(attr::TOKENS, a.int(tokens as i64)),
                    a.named(attr::TEXT, a.str(&atoms_text(&g.atoms, &value_names))),
                    a.named(attr::CONSUMERS, a.array(&consumers)),
                    a.named(attr::USES, a.int(uses as i64)),
                ])
                .add_attributes(&a.unplaced())
                .build()?;
            module.body().insert_operation(declared - 1, op);
            for &i in &g.consumers {
                let entry = best.entry(i).or_insert((String::new(), 0, 0));
                if tokens > entry.1 {
                    *entry = (name.clone(), tokens, uses);
                }
            }
        }
        for (i, (name, tokens, _)) in &best {
            let prefill = prompts[*i].prefill;
            // A parent call shares its prompt and output with a child, but reads back only its
            // prompt.
            let own = int_attr(&prefill, attr::EST_TOKENS).map_or(*tokens, |n| n.max(0) as u64);
            let tokens = &(*tokens).min(own / KV_BLOCK_TOKENS * KV_BLOCK_TOKENS);
            set_attribute(prefill, attr::PREFIX, a.str(name));
            set_attribute(prefill, attr::PREFIX_TOKENS, a.int(*tokens as i64));
        }
        Ok(declared > 0)
    }
}

/// Names of functions that are map bodies (their first argument varies per element).
fn map_bodies(module: &Module) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(ops) = all_func_ops(module) {
        for op in ops {
            if op_name(&op) == exec::MAP
                && let Some(s) = op
                    .attribute(attr::BODY)
                    .ok()
                    .and_then(|a| FlatSymbolRefAttribute::try_from(a).ok())
            {
                out.push(s.value().to_string());
            }
        }
    }
    out
}

/// Estimated tokens of an op's result (what a prompt pays for including it).
fn result_tokens(op: &OperationRef) -> u64 {
    match op_name(op).as_str() {
        "exec.input" => int_attr(op, attr::MAX_LEN)
            .ok()
            .filter(|&n| n > 0)
            .map_or(DEFAULT_INPUT_TOKENS, |n| n as u64),
        "exec.detokenize" => op
            .operand(0)
            .ok()
            .and_then(defining)
            .and_then(|decode| int_attr(&decode, attr::EST_TOKENS).ok())
            .map_or(DEFAULT_INPUT_TOKENS, |n| n.max(0) as u64),
        "exec.knn" => int_attr(op, attr::K).map_or(DEFAULT_INPUT_TOKENS, |k| {
            k as u64 * super::lower_agent_to_exec::DOC_TOKENS
        }),
        _ => int_attr(op, attr::EST_TOKENS).map_or(DEFAULT_INPUT_TOKENS, |n| n as u64),
    }
}

/// The prompt behind a prefill: its tokenize's render, as atoms. `invariant_args` are the values
/// that stay the same across a map's elements.
fn prompt_of<'c, 'a>(
    prefill: OperationRef<'c, 'a>,
    invariant_args: &HashSet<usize>,
    generated_by: &HashMap<usize, usize>,
) -> Result<Option<Prompt<'c, 'a>>> {
    let Some(render) = defining(prefill.operand(0)?).and_then(|tok| defining(tok.operand(0).ok()?))
    else {
        return Ok(None);
    };
    if op_name(&render) != exec::RENDER {
        return Ok(None);
    }
    let operands: Vec<usize> = render.operands().map(value_key).collect();
    let mut atoms = Vec::new();
    let template = str_attr(&render, attr::TEMPLATE)?;
    let messages = array_attr(&render, attr::MESSAGES)?;
    if messages.is_empty() {
        push_template(&template, &operands, &mut atoms);
    } else {
        for i in 0..messages.len() {
            let dict = DictionaryAttribute::try_from(messages.element(i)?).ok();
            let field = |k: &str| {
                dict.and_then(|d| d.element_by_name(k))
                    .and_then(|a| StringAttribute::try_from(a).ok())
                    .map(|s| string_value(&s))
                    .unwrap_or_default()
            };
            // The chat template frames each message with its role; model-specific markers do not
            // change which prompts share a prefix.
            atoms.extend(
                format!("<|{}|>\n", field(attr::message::ROLE))
                    .chars()
                    .map(Atom::Char),
            );
            push_template(&field(attr::message::CONTENT), &operands, &mut atoms);
            atoms.extend("<|end|>\n".chars().map(Atom::Char));
        }
    }
    for atom in &mut atoms {
        if let Atom::Val(v) = atom
            && let Some(&p) = generated_by.get(v)
        {
            *atom = Atom::Gen(p);
        }
    }
    let invariant = atoms
        .iter()
        .position(|a| {
            matches!(a, Atom::Val(v) if !invariant_args.contains(v)) || matches!(a, Atom::Gen(_))
        })
        .unwrap_or(atoms.len());
    // The call's own output follows its prompt in its KV cache.
    atoms.push(Atom::Gen(op_key(&prefill)));
    Ok(Some(Prompt {
        prefill,
        node: str_attr(&prefill, attr::NODE)?,
        model: str_attr(&prefill, attr::MODEL)?,
        atoms,
        invariant,
    }))
}

fn op_key(op: &OperationRef) -> usize {
    op.to_raw().ptr as usize
}

/// For each detokenize result, the prefill whose continuation it is (detokenize <- decode <-
/// prefill), and the tokens that continuation is expected to have.
fn generations(module: &Module) -> Result<(HashMap<usize, usize>, HashMap<usize, u64>)> {
    let mut by_value = HashMap::new();
    let mut tokens = HashMap::new();
    for op in all_func_ops(module)? {
        if op_name(&op) != exec::DETOKENIZE {
            continue;
        }
        let Some(decode) = op.operand(0).ok().and_then(defining) else {
            continue;
        };
        let Some(prefill) = decode.operand(0).ok().and_then(defining) else {
            continue;
        };
        if op_name(&prefill) != exec::PREFILL {
            continue;
        }
        by_value.insert(value_key(op.result(0)?.into()), op_key(&prefill));
        tokens.insert(
            op_key(&prefill),
            int_attr(&decode, attr::EST_TOKENS).map_or(0, |n| n.max(0) as u64),
        );
    }
    Ok((by_value, tokens))
}

fn push_template(template: &str, operands: &[usize], atoms: &mut Vec<Atom>) {
    for piece in template_pieces(template) {
        match piece {
            Piece::Text(t) => atoms.extend(t.chars().map(Atom::Char)),
            Piece::Operand { index, path } => match operands.get(index) {
                // A field of a value is its own value for sharing purposes.
                Some(&v) if path.is_empty() => atoms.push(Atom::Val(v)),
                Some(&v) => atoms.push(Atom::Val(v ^ hash_str(path))),
                None => {}
            },
        }
    }
}

fn hash_str(s: &str) -> usize {
    s.bytes().fold(0xcbf2_9ce4_8422_2325usize, |h, b| {
        (h ^ b as usize).wrapping_mul(0x1000_0000_01b3)
    })
}

/// Groups of prompts (within `range`) sharing a prefix: each prompt joins the group of the
/// longest prefix it has in common with any other prompt of the same model. One trie over the
/// prompts' atoms makes this linear in their total length.
fn common_prefixes(prompts: &[Prompt], range: std::ops::Range<usize>) -> Vec<Group> {
    let mut roots: HashMap<&str, usize> = HashMap::new();
    let mut children: HashMap<(usize, &Atom), usize> = HashMap::new();
    let mut passes: Vec<usize> = Vec::new();
    let new_node = |passes: &mut Vec<usize>| {
        passes.push(0);
        passes.len() - 1
    };
    for i in range.clone() {
        let p = &prompts[i];
        let mut node = *roots
            .entry(p.model.as_str())
            .or_insert_with(|| new_node(&mut passes));
        for atom in &p.atoms {
            node = *children
                .entry((node, atom))
                .or_insert_with(|| new_node(&mut passes));
            passes[node] += 1;
        }
    }
    // For each prompt, the deepest trie node another prompt also passes through.
    let mut groups: HashMap<usize, (usize, Vec<usize>)> = HashMap::new();
    for i in range {
        let p = &prompts[i];
        let Some(&root) = roots.get(p.model.as_str()) else {
            continue;
        };
        let mut node = root;
        let mut best: Option<(usize, usize)> = None;
        for (depth, atom) in p.atoms.iter().enumerate() {
            let Some(&next) = children.get(&(node, atom)) else {
                break;
            };
            if passes[next] < 2 {
                break;
            }
            node = next;
            best = Some((node, depth + 1));
        }
        if let Some((node, depth)) = best {
            groups.entry(node).or_insert((depth, Vec::new())).1.push(i);
        }
    }
    let mut out: Vec<Group> = groups
        .into_values()
        .map(|(depth, consumers)| Group {
            model: prompts[consumers[0]].model.clone(),
            atoms: prompts[consumers[0]].atoms[..depth].to_vec(),
            consumers,
            per_element: false,
        })
        .collect();
    // Deterministic order: by first consumer.
    out.sort_by_key(|g| g.consumers[0]);
    out
}

fn atom_tokens(
    cx: &PassContext,
    model: &str,
    atoms: &[Atom],
    value_tokens: &HashMap<usize, u64>,
    generated_tokens: &HashMap<usize, u64>,
) -> u64 {
    let mut text = String::new();
    let mut n = 0;
    for a in atoms {
        match a {
            Atom::Char(c) => text.push(*c),
            Atom::Val(v) => n += value_tokens.get(v).copied().unwrap_or(DEFAULT_INPUT_TOKENS),
            Atom::Gen(p) => n += generated_tokens.get(p).copied().unwrap_or(0),
        }
    }
    n + cx.tokens.count(model, &text) as u64
}

fn atoms_text(atoms: &[Atom], names: &HashMap<usize, String>) -> String {
    let mut s = String::new();
    for a in atoms {
        match a {
            Atom::Char(c) => s.push(*c),
            Atom::Val(v) | Atom::Gen(v) => s.push_str(&format!(
                "${{{}}}",
                names.get(v).map_or("value", String::as_str)
            )),
        }
    }
    s
}
