//! `place`: chooses a device for every operator by total cost of ownership under the SLA.
//!
//! Expects: an `exec` module after `share-prefixes` and `form-batches`, and a cluster in the
//! pass context. Guarantees: every op carries `device` (a cluster device name), `predicted_ms`
//! and `usd`; an `exec.transfer` moves each value whose producer and consumer sit on different
//! devices; the workflow function carries `exec.placement` (feasible, predicted latency, $ per
//! run, method, optimality gap, critical path) and `exec.homogeneous` (the best single device
//! type). When nothing is feasible, `exec.placement` says why and ops stay unplaced.
//!
//! The operator graph handed to the solver models how the runtime executes the plan: each
//! `form-batches` group is one operator (one pass over the weights per step for the whole batch),
//! a map body counts once per element (batched), a loop body once per iteration (in series), a
//! branch by its costliest arm, and a shared prefix is computed by its first consumer only.

use agentc_plan::attr;
use std::collections::{BTreeSet, HashMap};

use agentc_placement::{
    CostModel, CostSettings, DeviceProfile, Error as PlaceError, OpGraph, OpKind, PlacementSolver,
    SolverSettings, Work,
};
use agentc_plan::exec;
use melior::ir::attribute::FlatSymbolRefAttribute;
use melior::ir::block::BlockLike;
use melior::ir::operation::{OperationLike, OperationRef};
use melior::ir::{Attribute, Module};

use super::ir::*;
use super::ir_mut::set_attribute;
use super::lower_agent_to_exec::DEFAULT_LIST_ITEMS;
use super::{Pass, PassContext};
use crate::emit::attrs::Attrs;
use crate::model_facts::ModelFacts;
use crate::observed::{ObservedNode, ObservedShape};
use crate::{Error, Result};

mod transfers;

use transfers::insert_transfers;

/// Bytes of text per token, for host ops and transfers of text.
const BYTES_PER_TOKEN: f64 = 4.0;
/// Latency assumed for one tool call (outside any device).
const TOOL_LATENCY_S: f64 = 0.1;
/// Bytes a tool call returns.
const TOOL_OUTPUT_BYTES: f64 = 1024.0;

/// What placement needs besides the IR.
pub struct PlaceInput<'a> {
    pub cluster: &'a agentc_placement::Cluster,
    pub settings: CostSettings,
    pub profile: Option<DeviceProfile>,
    pub facts: &'a ModelFacts,
    /// Runs as measured (calls and tokens per LLM node) instead of the compile-time worst case;
    /// for checking the simulator against those runs.
    pub observed: Option<&'a ObservedShape>,
}

pub struct Place;

/// How often a function's ops run per request.
#[derive(Clone, Copy)]
struct Repeat {
    /// Copies run together (map elements, batched).
    parallel: u64,
    /// Copies run one after another (loop iterations).
    serial: u64,
}

/// One operator of the solver's graph: one exec op, or a batch of them.
struct Unit<'c, 'a> {
    name: String,
    kind: OpKind,
    work: Work,
    members: Vec<OperationRef<'c, 'a>>,
    deps: BTreeSet<usize>,
    prefix: Option<(String, f64)>,
}

struct GraphBuilder<'c, 'a, 'f> {
    facts: &'f ModelFacts,
    observed: Option<&'f ObservedShape>,
    funcs: HashMap<String, OperationRef<'c, 'a>>,
    units: Vec<Unit<'c, 'a>>,
    /// Value -> units producing it (a compound result is produced by its body's ops).
    producers: HashMap<usize, Vec<usize>>,
    batches: HashMap<(String, String), usize>,
    prefix_leaders: BTreeSet<String>,
    /// Prefix name -> (tokens) from the module's kv_prefix ops.
    prefixes: HashMap<String, u64>,
    /// Compound op -> units whose results it returns (for its own placement).
    compound_units: Vec<(OperationRef<'c, 'a>, Vec<usize>)>,
}

fn kind_of(name: &str) -> Option<OpKind> {
    Some(match name {
        exec::RENDER => OpKind::Render,
        exec::TOKENIZE => OpKind::Tokenize,
        exec::PREFILL => OpKind::Prefill,
        exec::DECODE => OpKind::Decode,
        exec::DETOKENIZE => OpKind::Detokenize,
        exec::EMBED => OpKind::Embed,
        exec::KNN => OpKind::Knn,
        exec::TOOL => OpKind::Tool,
        exec::JSON => OpKind::Json,
        _ => return None,
    })
}

/// Merges `b` into `a` as members of one batch: one pass over the weights per step serves all,
/// so weight reads and steps are the larger of the two while the rest adds up.
fn merge_batched(a: &mut Work, b: &Work) {
    a.flops.fp32 += b.flops.fp32;
    a.flops.fp16 += b.flops.fp16;
    a.flops.int8 += b.flops.int8;
    a.bytes_read += b.bytes_read;
    a.weight_reads = a.weight_reads.max(b.weight_reads);
    a.kv_bytes_read += b.kv_bytes_read;
    a.kv_bytes_written += b.kv_bytes_written;
    a.kv_bytes_held += b.kv_bytes_held;
    a.tokens += b.tokens;
    a.steps = a.steps.max(b.steps);
    a.sequences = a.sequences.max(1) + b.sequences.max(1);
    a.sampled |= b.sampled;
    a.external_latency_s = a.external_latency_s.max(b.external_latency_s);
    a.output_bytes += b.output_bytes;
    if a.weights.is_none() {
        a.weights = b.weights.clone();
    }
}

/// `work` repeated as `repeat` says: parallel copies batch, serial copies add up.
fn repeated(work: &Work, repeat: Repeat) -> Work {
    let mut w = work.clone();
    for _ in 1..repeat.parallel.min(MAX_MODELLED_COPIES) {
        merge_batched(&mut w, work);
    }
    let n = repeat.serial as f64;
    w.flops.fp32 *= n;
    w.flops.fp16 *= n;
    w.flops.int8 *= n;
    w.bytes_read *= n;
    w.weight_reads *= n;
    w.kv_bytes_read *= n;
    w.kv_bytes_written *= n;
    w.tokens *= repeat.serial;
    w.steps = w
        .steps
        .saturating_mul(repeat.serial.min(u64::from(u32::MAX)) as u32);
    w.external_latency_s *= n;
    w
}

/// Copies of one op merged one by one; element counts are small constants, so this stays cheap.
const MAX_MODELLED_COPIES: u64 = 1024;

impl<'c, 'a, 'f> GraphBuilder<'c, 'a, 'f> {
    fn deps_of(
        &self,
        op: &OperationRef<'c, 'a>,
        args: &HashMap<usize, Vec<usize>>,
    ) -> BTreeSet<usize> {
        self.operand_producers(op, args)
            .into_iter()
            .flatten()
            .collect()
    }

    /// For each operand of `op`, the units producing it (a body's arguments map to `args`).
    fn operand_producers(
        &self,
        op: &OperationRef<'c, 'a>,
        args: &HashMap<usize, Vec<usize>>,
    ) -> Vec<Vec<usize>> {
        op.operands()
            .map(|v| {
                let k = value_key(v);
                self.producers
                    .get(&k)
                    .or_else(|| args.get(&k))
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    }

    fn est(op: &OperationRef) -> u64 {
        int_attr(op, attr::EST_TOKENS).map_or(64, |n| n.max(1) as u64)
    }

    /// The observed figures of `op`'s node, when compiling for observed runs.
    fn observed_node(&self, op: &OperationRef) -> Option<ObservedNode> {
        let observed = self.observed?;
        let node = str_attr(op, attr::NODE).ok()?;
        Some(observed.node(&node).copied().unwrap_or(ObservedNode {
            // Observed runs never called this node: one token stands for it.
            calls_per_run: 0.0,
            prompt_tokens: 1.0,
            cached_tokens: 0.0,
            completion_tokens: 1.0,
        }))
    }

    /// Per-element repeat count of a compound body as observed: its LLM nodes' calls per run
    /// over the copies of the body's parent; `None` without observations for the body.
    fn observed_repeats(&self, body: &str, parent: Repeat) -> Option<u64> {
        let observed = self.observed?;
        let block = func_block(*self.funcs.get(body)?).ok()?;
        let calls = block_ops(block)
            .iter()
            .filter(|op| op_name(*op) == exec::PREFILL)
            .filter_map(|op| str_attr(op, attr::NODE).ok())
            .filter_map(|node| observed.node(&node).map(|n| n.calls_per_run))
            .fold(None, |m: Option<f64>, c| Some(m.map_or(c, |m| m.max(c))))?;
        let copies = (parent.parallel * parent.serial).max(1) as f64;
        Some(((calls / copies).round() as u64).max(1))
    }

    /// The work of one exec op, once.
    fn work(
        &mut self,
        op: &OperationRef<'c, 'a>,
        name: &str,
    ) -> Result<(Work, Option<(String, f64)>)> {
        let est = Self::est(op);
        let observed = match name {
            exec::PREFILL | exec::DECODE => self.observed_node(op),
            _ => None,
        };
        if let Some(seen) = observed {
            let model = str_attr(op, attr::MODEL)?;
            let shape = self
                .facts
                .llms
                .get(&model)
                .ok_or_else(|| Error::Internal(format!("no facts for model `{model}`")))?;
            let prompt = (seen.prompt_tokens.round() as u64).max(1);
            // Cached tokens as observed stand for all prefix reuse, within and across runs, so
            // no prefix group is modelled on top of them.
            let cached = (seen.cached_tokens.round() as u64).min(prompt - 1);
            let generated = (seen.completion_tokens.round() as u64).max(1);
            return Ok(if name == exec::PREFILL {
                (Work::prefill(shape, prompt - cached, cached), None)
            } else {
                (
                    Work::decode(shape, prompt, generated)
                        .with_output_bytes(generated as f64 * BYTES_PER_TOKEN),
                    None,
                )
            });
        }
        let text = est as f64 * BYTES_PER_TOKEN;
        Ok(match name {
            exec::PREFILL => {
                let model = str_attr(op, attr::MODEL)?;
                let shape = self
                    .facts
                    .llms
                    .get(&model)
                    .ok_or_else(|| Error::Internal(format!("no facts for model `{model}`")))?;
                let prefix = str_attr(op, attr::PREFIX)?;
                let prefix_tokens = int_attr(op, attr::PREFIX_TOKENS)?.max(0) as u64;
                // The first consumer computes the shared prefix; the others start after it.
                let cached = if prefix.is_empty() || self.prefix_leaders.insert(prefix.clone()) {
                    0
                } else {
                    prefix_tokens.min(est)
                };
                let group = (!prefix.is_empty()).then(|| {
                    let tokens = self.prefixes.get(&prefix).copied().unwrap_or(prefix_tokens);
                    (prefix.clone(), tokens as f64 * shape.kv_bytes_per_token)
                });
                (Work::prefill(shape, est - cached, cached), group)
            }
            exec::DECODE => {
                let model = str_attr(op, attr::MODEL)?;
                let shape = self
                    .facts
                    .llms
                    .get(&model)
                    .ok_or_else(|| Error::Internal(format!("no facts for model `{model}`")))?;
                let context = op
                    .operand(0)
                    .ok()
                    .and_then(defining)
                    .map_or(0, |p| Self::est(&p));
                (
                    Work::decode(shape, context, est).with_output_bytes(text),
                    None,
                )
            }
            exec::EMBED => {
                let model = str_attr(op, attr::MODEL)?;
                match self.facts.embedders.get(&model) {
                    Some((shape, dim)) => (Work::embed(shape, est, *dim), None),
                    None => {
                        return Err(Error::Internal(format!(
                            "no facts for embedding model `{model}`"
                        )));
                    }
                }
            }
            exec::KNN => {
                let index = str_attr(op, attr::INDEX)?;
                let (vectors, dim) = self
                    .facts
                    .indexes
                    .get(&index)
                    .copied()
                    .unwrap_or((crate::model_facts::DEFAULT_INDEX_VECTORS, 384));
                (Work::knn(&index, vectors, dim, 4.0, 1), None)
            }
            exec::TOOL => (Work::tool(TOOL_LATENCY_S, TOOL_OUTPUT_BYTES), None),
            _ => (Work::host(text, text), None),
        })
    }

    /// Adds the ops of function `fname`, whose arguments are produced by `args`, run `repeat`
    /// times per request. Returns the units producing each returned value.
    fn add_func(
        &mut self,
        fname: &str,
        args: Vec<Vec<usize>>,
        repeat: Repeat,
    ) -> Result<Vec<Vec<usize>>> {
        let f = *self
            .funcs
            .get(fname)
            .ok_or_else(|| Error::Internal(format!("no function @{fname}")))?;
        let block = func_block(f)?;
        let mut arg_map: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, p) in args.into_iter().enumerate() {
            if let Ok(a) = block.argument(i) {
                arg_map.insert(value_key(a.into()), p);
            }
        }
        let mut returned = Vec::new();
        for op in block_ops(block) {
            let name = op_name(&op);
            let deps = self.deps_of(&op, &arg_map);
            if name == "func.return" {
                returned = self.operand_producers(&op, &arg_map);
                continue;
            }
            if name == exec::MAP || name == exec::BRANCH || name == exec::LOOP {
                let produced = self.add_compound(op, &name, &arg_map, repeat)?;
                self.compound_units.push((op, produced.clone()));
                for r in op.results() {
                    self.producers.insert(value_key(r.into()), produced.clone());
                }
                continue;
            }
            let Some(kind) = kind_of(&name) else { continue };
            let (mut work, prefix) = self.work(&op, &name)?;
            if name == exec::DECODE {
                work.sampled = float_attr(&op, attr::TEMPERATURE).is_ok_and(|t| t > 0.0);
            }
            let work = repeated(&work, repeat);
            let batch_id = str_attr(&op, attr::BATCH).unwrap_or_default();
            let unit = match batch_id
                .starts_with('b')
                .then(|| (fname.to_string(), batch_id.clone()))
            {
                Some(key) if self.batches.contains_key(&key) => {
                    let u = self.batches[&key];
                    merge_batched(&mut self.units[u].work, &work);
                    self.units[u].members.push(op);
                    self.units[u].deps.extend(deps);
                    u
                }
                key => {
                    let node = str_attr(&op, attr::NODE).unwrap_or_default();
                    let label = name.trim_start_matches("exec.");
                    self.units.push(Unit {
                        name: if batch_id.is_empty() {
                            format!("{node}.{label}")
                        } else {
                            format!("{batch_id}.{label}")
                        },
                        kind,
                        work,
                        members: vec![op],
                        deps,
                        prefix,
                    });
                    let u = self.units.len() - 1;
                    if let Some(key) = key {
                        self.batches.insert(key, u);
                    }
                    u
                }
            };
            for r in op.results() {
                self.producers.insert(value_key(r.into()), vec![unit]);
            }
        }
        Ok(returned)
    }

    fn add_compound(
        &mut self,
        op: OperationRef<'c, 'a>,
        name: &str,
        args: &HashMap<usize, Vec<usize>>,
        repeat: Repeat,
    ) -> Result<Vec<usize>> {
        let operand_producers = self.operand_producers(&op, args);
        let sym = |key: &str| -> Result<String> {
            FlatSymbolRefAttribute::try_from(attr(&op, key)?)
                .map(|s| s.value().to_string())
                .map_err(|_| Error::Internal(format!("{key} is not a symbol")))
        };
        match name {
            exec::MAP => {
                // Argument 0 is the element (from `over`), then every operand but `over`.
                let mut body_args = vec![operand_producers.first().cloned().unwrap_or_default()];
                body_args.extend(operand_producers.iter().skip(1).cloned());
                let body = sym("body")?;
                let items = self
                    .observed_repeats(&body, repeat)
                    .unwrap_or(DEFAULT_LIST_ITEMS);
                let each = Repeat {
                    parallel: repeat.parallel * items,
                    serial: repeat.serial,
                };
                let out = self.add_func(&body, body_args, each)?;
                Ok(out.into_iter().flatten().collect())
            }
            exec::LOOP => {
                let iters = match self.observed_repeats(&sym("body")?, repeat) {
                    Some(n) => n,
                    None => int_attr(&op, attr::MAX_ITERS)?.max(1) as u64,
                };
                let carried = array_attr(&op, attr::CARRY)?.len();
                let mut body_args: Vec<Vec<usize>> = vec![Vec::new(); carried];
                body_args.extend(operand_producers.iter().cloned());
                let each = Repeat {
                    parallel: repeat.parallel,
                    serial: repeat.serial * iters,
                };
                let out = self.add_func(&sym("body")?, body_args, each)?;
                Ok(out.into_iter().take(carried + 1).flatten().collect())
            }
            _ => {
                // The costliest arm (most ops) stands for the branch.
                let cases = array_attr(&op, attr::CASES)?;
                let mut arms: Vec<String> = (0..cases.len())
                    .filter_map(|i| cases.element(i).ok())
                    .filter_map(|a| FlatSymbolRefAttribute::try_from(a).ok())
                    .map(|s| s.value().to_string())
                    .collect();
                arms.push(sym("default")?);
                // Observed runs: the arm whose LLM nodes ran most (ties by size).
                let size = |n: &String| {
                    let ops = self
                        .funcs
                        .get(n)
                        .and_then(|f| func_block(*f).ok())
                        .map(block_ops)
                        .unwrap_or_default();
                    let calls: f64 = ops
                        .iter()
                        .filter(|op| op_name(*op) == exec::PREFILL)
                        .filter_map(|op| str_attr(op, attr::NODE).ok())
                        .filter_map(|node| self.observed?.node(&node).map(|n| n.calls_per_run))
                        .sum();
                    ((calls * 1e3).round() as u64, ops.len())
                };
                let arm = arms
                    .iter()
                    .max_by_key(|a| size(a))
                    .cloned()
                    .unwrap_or_default();
                let out = self.add_func(&arm, operand_producers, repeat)?;
                Ok(out.into_iter().flatten().collect())
            }
        }
    }
}

fn sla_seconds(func: &OperationRef) -> Result<f64> {
    let declarations = agentc_plan::program::workflow_declarations(func)
        .map_err(|e| Error::Internal(format!("the workflow function: {e}")))?;
    Ok(declarations.sla.p95_ms / 1e3)
}

impl Pass for Place {
    fn name(&self) -> &'static str {
        "place"
    }

    fn run<'c>(&self, cx: &PassContext<'c, '_>, module: &mut Module<'c>) -> Result<bool> {
        let Some(input) = cx.place else {
            return Ok(false);
        };
        let a = Attrs {
            context: cx.context,
        };
        let mut funcs = HashMap::new();
        let mut public = None;
        let mut prefixes = HashMap::new();
        let mut prefix_ops = Vec::new();
        for op in module_ops(module) {
            match op_name(&op).as_str() {
                "func.func" => {
                    let name = str_attr(&op, attr::func::SYM_NAME)?;
                    if !op.has_attribute(attr::func::SYM_VISIBILITY) {
                        public = Some(op);
                    }
                    funcs.insert(name, op);
                }
                exec::KV_PREFIX => {
                    prefixes.insert(
                        str_attr(&op, attr::NAME)?,
                        int_attr(&op, attr::TOKENS)?.max(0) as u64,
                    );
                    prefix_ops.push(op);
                }
                _ => {}
            }
        }
        let public =
            public.ok_or_else(|| Error::Internal("no workflow function to place".into()))?;
        let mut gb = GraphBuilder {
            facts: input.facts,
            observed: input.observed,
            funcs,
            units: Vec::new(),
            producers: HashMap::new(),
            batches: HashMap::new(),
            prefix_leaders: BTreeSet::new(),
            prefixes,
            compound_units: Vec::new(),
        };
        gb.add_func(
            &str_attr(&public, attr::func::SYM_NAME)?,
            Vec::new(),
            Repeat {
                parallel: 1,
                serial: 1,
            },
        )?;
        let mut builder = OpGraph::builder();
        let mut ids = Vec::new();
        for u in &gb.units {
            ids.push(builder.op(u.name.clone(), u.kind, u.work.clone()));
        }
        let mut groups = HashMap::new();
        for (i, u) in gb.units.iter().enumerate() {
            for &d in &u.deps {
                builder.dep(ids[d], ids[i]);
            }
            if let Some((name, kv_bytes)) = &u.prefix {
                let g = *groups
                    .entry(name.clone())
                    .or_insert_with(|| builder.prefix_group(name.clone(), *kv_bytes));
                builder.join_prefix(ids[i], g);
            }
        }
        let graph = builder
            .build()
            .map_err(|e| Error::Internal(format!("operator graph: {e}")))?;
        let mut model = CostModel::new(input.cluster, input.settings).map_err(place_error)?;
        if let Some(profile) = &input.profile {
            model = model.with_profile(profile.clone()).map_err(place_error)?;
        }
        let priced = model.price(&graph);
        let sla_s = sla_seconds(&public)?;
        let solver =
            PlacementSolver::new(&priced, SolverSettings::new(sla_s)).map_err(place_error)?;
        let homogeneous = homogeneous_attr(&a, &solver, &priced);
        let placement = match solver.solve() {
            Ok(p) => p,
            Err(PlaceError::Infeasible(why)) => {
                set_attribute(
                    public,
                    attr::workflow::PLACEMENT,
                    a.dict(&[
                        ("feasible", a.bool(false)),
                        ("reason", a.str(&why.to_string())),
                        ("sla_ms", a.float(sla_s * 1e3)),
                    ]),
                );
                set_attribute(public, attr::workflow::HOMOGENEOUS, homogeneous);
                return Ok(true);
            }
            Err(e) => return Err(place_error(e)),
        };
        // Set once per module: `place` runs once per pipeline.
        let _ = cx.placed.set(agentc_placement::sim::PlacedGraph {
            graph: graph.clone(),
            assignment: placement.assignment.clone(),
            sla_s,
        });
        let device_name = |d: agentc_placement::DeviceId| {
            input
                .cluster
                .device(d)
                .map_or_else(String::new, |x| x.name.clone())
        };
        for (i, u) in gb.units.iter().enumerate() {
            let p = &placement.ops[i];
            let share = u.members.len().max(1) as f64;
            for m in &u.members {
                set_attribute(*m, "device", a.str(&device_name(p.device)));
                set_attribute(*m, "predicted_ms", a.float(p.busy_s * 1e3));
                set_attribute(*m, "usd", a.float(p.usd / share));
            }
        }
        for (op, produced) in &gb.compound_units {
            if let Some(&last) = produced.last() {
                set_attribute(
                    *op,
                    "device",
                    a.str(&device_name(placement.ops[last].device)),
                );
            }
        }
        for op in &prefix_ops {
            let name = str_attr(op, attr::NAME)?;
            if let Some(i) = gb
                .units
                .iter()
                .position(|u| u.prefix.as_ref().is_some_and(|(n, _)| *n == name))
            {
                set_attribute(*op, "device", a.str(&device_name(placement.ops[i].device)));
            }
        }
        // Inputs arrive at the host, as do ops with nothing of their own to run (a compound whose
        // body only passes values through): give them the device of the first host-side op.
        let host = gb
            .units
            .iter()
            .position(|u| u.kind.host_only())
            .map(|i| device_name(placement.ops[i].device))
            .or_else(|| {
                input
                    .cluster
                    .device(agentc_placement::DeviceId(0))
                    .map(|d| d.name.clone())
            })
            .unwrap_or_default();
        for op in all_func_ops(module)?
            .into_iter()
            .chain(prefix_ops.iter().copied())
        {
            if str_attr(&op, attr::DEVICE).is_ok_and(|d| d.is_empty()) {
                set_attribute(op, attr::DEVICE, a.str(&host));
            }
        }
        let critical: Vec<Attribute> = placement
            .critical_path
            .iter()
            .map(|o| a.str(&gb.units[o.0].name))
            .collect();
        set_attribute(
            public,
            attr::workflow::PLACEMENT,
            a.dict(&[
                ("feasible", a.bool(true)),
                ("cluster", a.str(&input.cluster.name)),
                ("sla_ms", a.float(sla_s * 1e3)),
                ("predicted_ms", a.float(placement.latency_s * 1e3)),
                ("usd_per_run", a.float(placement.cost_usd)),
                ("lower_bound_usd", a.float(placement.lower_bound_usd)),
                ("gap", a.float(placement.gap)),
                ("proven_optimal", a.bool(placement.proven_optimal)),
                ("method", a.str(&format!("{:?}", placement.method))),
                ("critical_path", a.array(&critical)),
            ]),
        );
        set_attribute(public, attr::workflow::HOMOGENEOUS, homogeneous);
        insert_transfers(cx, module)?;
        Ok(true)
    }
}

fn place_error(e: PlaceError) -> Error {
    Error::Placement(e.to_string())
}

/// `exec.homogeneous`: for each device type able to run everything, its cost and latency.
fn homogeneous_attr<'c>(
    a: &Attrs<'c>,
    solver: &PlacementSolver,
    priced: &agentc_placement::PricedGraph,
) -> Attribute<'c> {
    let _ = priced;
    let options = solver.homogeneous_alternatives().unwrap_or_default();
    let items: Vec<Attribute> = options
        .iter()
        .map(|o| match &o.outcome {
            Ok(p) => a.dict(&[
                ("device", a.str(&o.device_type)),
                ("feasible", a.bool(true)),
                ("usd_per_run", a.float(p.cost_usd)),
                ("predicted_ms", a.float(p.latency_s * 1e3)),
            ]),
            Err(why) => a.dict(&[
                ("device", a.str(&o.device_type)),
                ("feasible", a.bool(false)),
                ("reason", a.str(&why.to_string())),
            ]),
        })
        .collect();
    a.array(&items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(flops: f64, reads: f64, steps: u32) -> Work {
        Work {
            flops: agentc_placement::graph::Flops::of(agentc_placement::Dtype::Int8, flops),
            weight_reads: reads,
            steps,
            tokens: 10,
            kv_bytes_held: 100.0,
            ..Work::default()
        }
    }

    #[test]
    fn batching_reads_weights_once_per_step() {
        let mut a = work(1.0, 5.0, 5);
        merge_batched(&mut a, &work(2.0, 3.0, 3));
        assert_eq!(
            (
                a.flops.int8,
                a.weight_reads,
                a.steps,
                a.tokens,
                a.kv_bytes_held
            ),
            (3.0, 5.0, 5, 20, 200.0)
        );
    }

    #[test]
    fn repeats_batch_in_parallel_and_add_up_in_series() {
        let w = work(1.0, 4.0, 4);
        let p = repeated(
            &w,
            Repeat {
                parallel: 8,
                serial: 1,
            },
        );
        assert_eq!(
            (p.flops.int8, p.weight_reads, p.steps, p.tokens),
            (8.0, 4.0, 4, 80)
        );
        let s = repeated(
            &w,
            Repeat {
                parallel: 1,
                serial: 3,
            },
        );
        assert_eq!(
            (s.flops.int8, s.weight_reads, s.steps, s.tokens),
            (3.0, 12.0, 12, 30)
        );
    }
}
