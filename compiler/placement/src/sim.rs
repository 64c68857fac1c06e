//! A discrete-event simulation of the runtime executing a placed plan on a cluster, driven by
//! the cost model: runs arrive (Poisson or from a trace), each instantiates the op graph, ops
//! become ready when their dependencies finish and their inputs have crossed the links, and each
//! device serves ready ops in earliest-deadline-first (or FIFO) order. Prefill and decode ops are
//! batched continuously per device with a token budget per step ([`CostModel::step_s`] prices a
//! step); a prefix computed by one run stays in the device's KV cache for later runs (LRU
//! eviction under the KV capacity left after the weights).
//!
//! What it models and what it does not:
//! - A device serves one thing at a time: a non-LLM op (busy for the cost model's `busy_s`) or
//!   one batch step of one model. A tool's external latency does not hold its device.
//! - A batch step runs, in priority order, one token of every running decode, chunks of running
//!   prefills, then admits waiting sequences while the token budget, the batch size and the KV
//!   capacity allow. Each member contributes its per-token share of its op's FLOPs and KV reads;
//!   the model's weights are streamed once per step.
//! - Prefix cache across runs: the first prefill of a prefix group (the leader) looks the prefix
//!   up on its device; a hit skips the prefix's tokens. Later members of the group reuse the
//!   leader's KV within a run, as the compiler priced them, and are not counted as lookups.
//!   Entries in use by a running sequence are pinned; eviction is least recently used.
//! - Links are pure delays (latency + bytes / bandwidth), without contention.
//! - With [`Dispatch::Pool`] an op may run on any device of the type the placement chose for it
//!   (join the shortest queue, preferring the device that holds its input or its prefix), which is
//!   how one placed graph spreads over a cluster of hundreds of devices.

use serde::Serialize;

use crate::cluster::DeviceId;
use crate::cost::{CostModel, PricedGraph};
use crate::error::{Error, Result};
use crate::graph::{Flops, OpId, OpKind};

mod arrivals;
mod engine;
mod kv;
mod queue;
mod stats;

pub use arrivals::{Arrivals, exponential};

/// Tokens one batch step may process, by default (vLLM's `max_num_batched_tokens` order).
pub const DEFAULT_TOKEN_BUDGET: u64 = 8192;
/// Sequences one batch step may hold, by default (vLLM's `max_num_seqs`).
pub const DEFAULT_MAX_BATCH: usize = 256;
/// A device holding an op's input or prefix is preferred unless it has this many more
/// outstanding ops than the least loaded device of the pool.
pub const AFFINITY_SLACK_OPS: u32 = 2;

/// A kind of run in a mix of workflows: the ops (a contiguous range of op ids, as
/// [`crate::OpGraph::union`] lays them out) one run of it instantiates, and its SLA.
#[derive(Debug, Clone, PartialEq)]
pub struct RunClass {
    pub name: String,
    pub ops: std::ops::Range<usize>,
    pub sla_s: f64,
}

/// How runs start: at given times (open loop), or `concurrency` at a time, each new run
/// starting when one finishes (closed loop, as `agentc run --batch --concurrency N` runs them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Start<'t> {
    Open(&'t Arrivals),
    Closed { concurrency: usize, runs: usize },
}

/// What the simulator needs from a placement: the solver's operator graph, the device it chose
/// for each op, and the workflow's SLA.
#[derive(Debug, Clone)]
pub struct PlacedGraph {
    pub graph: crate::graph::OpGraph,
    /// Device of each op, indexed by [`OpId`].
    pub assignment: Vec<DeviceId>,
    pub sla_s: f64,
}

/// Order in which a device serves ready work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueuePolicy {
    /// Earliest deadline first: a run's deadline is arrival + SLA; an op's is the run's minus
    /// the longest path after it (its slack on the critical path).
    Edf,
    /// First come, first served by run arrival.
    Fifo,
}

/// Which devices may run an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// Exactly the device the placement chose.
    Pinned,
    /// Any device of the type the placement chose (replicas of the plan).
    Pool,
}

/// How the simulation runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimSettings {
    pub policy: QueuePolicy,
    pub dispatch: Dispatch,
    pub token_budget: u64,
    pub max_batch: usize,
    /// Keep one [`OpRecord`] per op executed (for tests and traces; memory grows with runs).
    pub record_ops: bool,
    /// Simulate runs of identical decode steps (same members, nothing else could join) as one
    /// event, cut short at the next step boundary when new work arrives. Same results, far
    /// fewer events; off only to check exactly that.
    pub fuse_steps: bool,
    /// Stop as soon as more runs than this have finished past their SLA (the rest count as
    /// missed): enough to know a load fails an attainment target, without simulating it all.
    pub stop_after_misses: Option<usize>,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            policy: QueuePolicy::Edf,
            dispatch: Dispatch::Pool,
            token_budget: DEFAULT_TOKEN_BUDGET,
            max_batch: DEFAULT_MAX_BATCH,
            record_ops: false,
            fuse_steps: true,
            stop_after_misses: None,
        }
    }
}

/// When and where one op of one run executed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OpRecord {
    pub run: usize,
    pub op: OpId,
    pub device: DeviceId,
    /// When it first got the device (its first batch step, for batched ops).
    pub start_s: f64,
    pub finish_s: f64,
}

/// One device's figures over the simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceStats {
    pub device: String,
    pub device_type: String,
    pub busy_s: f64,
    /// Busy time over the simulated duration.
    pub utilization: f64,
    pub ops: u64,
    pub batch_steps: u64,
}

/// What the simulation measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimReport {
    pub runs: usize,
    pub completed: usize,
    pub sla_s: f64,
    pub policy: QueuePolicy,
    pub dispatch: Dispatch,
    /// From the first arrival to the last completion.
    pub duration_s: f64,
    /// Completed runs per second.
    pub throughput_rps: f64,
    /// Runs completed within the SLA per second.
    pub goodput_rps: f64,
    /// Fraction of runs completed within the SLA.
    pub sla_attainment: f64,
    pub latency_mean_s: f64,
    pub latency_p50_s: f64,
    pub latency_p95_s: f64,
    pub latency_p99_s: f64,
    pub latency_max_s: f64,
    /// TCO by use: busy device-seconds x $/s (plus link charges) per 1,000 completed runs.
    pub usd_per_1k_runs_busy: f64,
    /// TCO by provisioning: every device of the cluster for the whole duration ($/hour of the
    /// cluster / throughput) per 1,000 completed runs.
    pub usd_per_1k_runs_provisioned: f64,
    /// Runs completed over runs arrived in the second half of the arrival window (from the
    /// midpoint between the first and last arrival to the last): about 1 when the cluster keeps
    /// up, the capacity over the load when it does not, whatever the SLA (1 with no window).
    pub late_completion_ratio: f64,
    /// Prefix-cache hits over lookups (leaders of prefix groups); 0 when nothing looked up.
    pub cache_hit_rate: f64,
    pub cache_lookups: u64,
    pub cache_hits: u64,
    pub cache_evictions: u64,
    pub batch_steps: u64,
    /// Mean tokens per batch step.
    pub mean_batch_tokens: f64,
    pub devices: Vec<DeviceStats>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub op_log: Vec<OpRecord>,
}

/// A shared prompt prefix a prefill uses.
#[derive(Debug, Clone, Copy)]
struct PrefixUse {
    group: usize,
    tokens: u64,
    bytes: f64,
    leader: bool,
}

/// What continuous batching needs about a prefill or decode op.
#[derive(Debug, Clone)]
struct BatchInfo {
    model: usize,
    tokens: u64,
    flops_per_token: Flops,
    bytes_per_token: f64,
    /// Mean earlier positions one of its tokens attends to (for measured step timings).
    pairs_per_token: f64,
    /// Sequences the op stands for (a batch the compiler formed): a decode step advances each.
    width: u64,
    /// Its decode tokens are sampled (see `Work::sampled`).
    sampled: bool,
    kv_held: f64,
    prefix: Option<PrefixUse>,
}

/// Static facts of one op for the simulation.
#[derive(Debug, Clone)]
struct OpInfo {
    batch: Option<BatchInfo>,
    external_s: f64,
    /// Index into [`Simulation::pools`].
    pool: usize,
    /// Longest path from the op's end to the end of the run, on the placed devices.
    tail_s: f64,
}

/// A placed graph ready to simulate on its cluster.
#[derive(Debug)]
pub struct Simulation<'a> {
    cost: &'a CostModel<'a>,
    priced: &'a PricedGraph<'a>,
    sla_s: f64,
    settings: SimSettings,
    ops: Vec<OpInfo>,
    pools: Vec<Vec<usize>>,
    /// Per device: bytes left for KV after the weights of every model it may serve.
    kv_capacity: Vec<f64>,
    /// Weight bytes per model of the graph.
    weights: Vec<f64>,
    /// The kinds of run; one covering the whole graph unless [`Simulation::with_classes`].
    classes: Vec<RunClass>,
}

impl<'a> Simulation<'a> {
    /// Checks the inputs and precomputes pools, deadlines' slack and KV capacities.
    /// `assignment[i]` is the device the placement chose for op `i`.
    pub fn new(
        cost: &'a CostModel<'a>,
        priced: &'a PricedGraph<'a>,
        assignment: &[DeviceId],
        sla_s: f64,
        settings: SimSettings,
    ) -> Result<Self> {
        let graph = priced.graph();
        let n_dev = priced.device_count();
        if n_dev == 0 {
            return Err(Error::Simulation("the cluster has no devices".into()));
        }
        if graph.is_empty() {
            return Err(Error::Simulation("the operator graph is empty".into()));
        }
        if !(sla_s.is_finite() && sla_s > 0.0) {
            return Err(Error::Simulation(format!(
                "the SLA must be a positive number of seconds, got {sla_s}"
            )));
        }
        if settings.token_budget == 0 || settings.max_batch == 0 {
            return Err(Error::Simulation(
                "the token budget and the batch size must be at least 1".into(),
            ));
        }
        if assignment.len() != graph.len() {
            return Err(Error::Simulation(format!(
                "the placement has {} devices for {} ops",
                assignment.len(),
                graph.len()
            )));
        }
        let devices = priced.devices();
        let mut pools: Vec<Vec<usize>> = Vec::new();
        let mut pool_of_type: Vec<Option<usize>> = vec![None; priced.type_names().len()];
        let mut ops = Vec::with_capacity(graph.len());
        for (i, &dev) in assignment.iter().enumerate() {
            let op = graph.op(OpId(i));
            let Some(facts) = devices.get(dev.0) else {
                return Err(Error::Simulation(format!(
                    "op `{}` is placed on device {} which the cluster does not have",
                    op.name, dev.0
                )));
            };
            if priced.cost(OpId(i), dev.0).is_none() {
                return Err(Error::Simulation(format!(
                    "op `{}` cannot run on its device `{}`",
                    op.name, facts.name
                )));
            }
            let pool = match settings.dispatch {
                Dispatch::Pinned => {
                    pools.push(vec![dev.0]);
                    pools.len() - 1
                }
                Dispatch::Pool => *pool_of_type[facts.type_index].get_or_insert_with(|| {
                    pools.push(
                        (0..n_dev)
                            .filter(|&d| devices[d].type_index == facts.type_index)
                            .collect(),
                    );
                    pools.len() - 1
                }),
            };
            ops.push(OpInfo {
                batch: batch_info(graph, OpId(i)),
                external_s: op.work.external_latency_s,
                pool,
                tail_s: 0.0,
            });
        }
        // Slack: the longest path after each op, on the placed devices.
        for &v in graph.topo_order().iter().rev() {
            let mut tail = 0.0f64;
            for &(s, bytes) in graph.successors(v) {
                let service = priced
                    .cost(s, assignment[s.0].0)
                    .map_or(0.0, |c| c.service_s);
                let hop = priced.transfer_s(assignment[v.0].0, assignment[s.0].0, bytes);
                tail = tail.max(hop + service + ops[s.0].tail_s);
            }
            ops[v.0].tail_s = tail;
        }
        let weights: Vec<f64> = graph.models().iter().map(|m| m.weight_bytes).collect();
        let mut kv_capacity: Vec<f64> = devices.iter().map(|d| d.capacity).collect();
        let mut resident = vec![Vec::<usize>::new(); n_dev];
        for (i, info) in ops.iter().enumerate() {
            if let Some(m) = graph.op(OpId(i)).model {
                for &d in &pools[info.pool] {
                    if !resident[d].contains(&m.0) {
                        resident[d].push(m.0);
                        kv_capacity[d] -= weights[m.0];
                    }
                }
            }
        }
        for (i, info) in ops.iter().enumerate() {
            let need = info.batch.as_ref().map_or(0.0, |b| b.kv_held);
            for &d in &pools[info.pool] {
                if kv_capacity[d] < need {
                    return Err(Error::Simulation(format!(
                        "op `{}` needs {need} bytes of KV but device `{}` has {} bytes left \
                         after the weights",
                        graph.op(OpId(i)).name,
                        devices[d].name,
                        kv_capacity[d].max(0.0)
                    )));
                }
            }
        }
        Ok(Self {
            cost,
            priced,
            sla_s,
            settings,
            ops,
            pools,
            kv_capacity,
            weights,
            classes: vec![RunClass {
                name: String::new(),
                ops: 0..graph.len(),
                sla_s,
            }],
        })
    }

    /// Makes runs instances of one of `classes` (a mix of workflows on one union graph) instead
    /// of the whole graph. Each class's ops must depend only on ops of the same class.
    pub fn with_classes(mut self, classes: Vec<RunClass>) -> Result<Self> {
        let graph = self.priced.graph();
        if classes.is_empty() {
            return Err(Error::Simulation(
                "a mix needs at least one class of run".into(),
            ));
        }
        for c in &classes {
            if c.ops.is_empty() || c.ops.end > graph.len() {
                return Err(Error::Simulation(format!(
                    "class `{}` has ops {:?}, not a non-empty range of the graph's {} ops",
                    c.name,
                    c.ops,
                    graph.len()
                )));
            }
            if !(c.sla_s.is_finite() && c.sla_s > 0.0) {
                return Err(Error::Simulation(format!(
                    "class `{}`: the SLA must be a positive number of seconds, got {}",
                    c.name, c.sla_s
                )));
            }
            for i in c.ops.clone() {
                let op = graph.op(OpId(i));
                if let Some(d) = op.deps.iter().find(|d| !c.ops.contains(&d.from.0)) {
                    return Err(Error::Simulation(format!(
                        "op `{}` of class `{}` depends on op `{}` of another class",
                        op.name,
                        c.name,
                        graph.op(d.from).name
                    )));
                }
            }
        }
        self.classes = classes;
        Ok(self)
    }

    /// The kinds of run simulated.
    pub fn classes(&self) -> &[RunClass] {
        &self.classes
    }

    /// Simulates every run of `arrivals` to completion (every run of the first class).
    pub fn run(&self, arrivals: &Arrivals) -> Result<SimReport> {
        self.run_mix(Start::Open(arrivals), &[])
    }

    /// Simulates runs started by `start`; run `r` is of class `class_of[r % class_of.len()]`
    /// (class 0 when `class_of` is empty).
    pub fn run_mix(&self, start: Start<'_>, class_of: &[usize]) -> Result<SimReport> {
        if let Some(&c) = class_of.iter().find(|&&c| c >= self.classes.len()) {
            return Err(Error::Simulation(format!(
                "run class {c} does not exist ({} classes)",
                self.classes.len()
            )));
        }
        engine::run(self, start, class_of)
    }
}

/// Mean earlier positions each token of a prefill or decode attends to: a decode of m tokens after
/// c reads c + i at step i (its KV reads say how many in all); a prefill of n tokens after c
/// cached ones attends to c + i at token i, so c + n / 2 on average. A batch of k sequences
/// sums its members' tokens and reads, so each member has n / k tokens after c / k.
fn pairs_per_token(kind: OpKind, w: &crate::graph::Work, kv_per_token: f64) -> f64 {
    if kv_per_token <= 0.0 || w.tokens == 0 {
        return 0.0;
    }
    let read = w.kv_bytes_read / kv_per_token;
    let n = w.tokens as f64;
    let k = f64::from(w.sequences.max(1));
    match kind {
        OpKind::Decode => read / n,
        _ => (read + n / 2.0) / k,
    }
}

/// Batching facts of a prefill or decode op with a model; `None` for every other op.
fn batch_info(graph: &crate::graph::OpGraph, id: OpId) -> Option<BatchInfo> {
    let op = graph.op(id);
    let model = op.model?;
    if !matches!(op.kind, OpKind::Prefill | OpKind::Decode) {
        return None;
    }
    let w = &op.work;
    let tokens = w.tokens.max(1);
    let per = 1.0 / tokens as f64;
    let kv_per_token = if w.tokens > 0 {
        w.kv_bytes_written / w.tokens as f64
    } else {
        0.0
    };
    let prefix = op.prefix_group.and_then(|g| {
        let group = &graph.prefix_groups()[g.0];
        let prefix_tokens = if kv_per_token > 0.0 {
            (group.kv_bytes / kv_per_token).round() as u64
        } else {
            0
        };
        (op.kind == OpKind::Prefill).then_some(PrefixUse {
            group: g.0,
            tokens: prefix_tokens,
            bytes: group.kv_bytes,
            leader: group.members.first() == Some(&id),
        })
    });
    Some(BatchInfo {
        model: model.0,
        tokens,
        flops_per_token: Flops {
            fp32: w.flops.fp32 * per,
            fp16: w.flops.fp16 * per,
            int8: w.flops.int8 * per,
        },
        bytes_per_token: w.bytes_read * per,
        pairs_per_token: pairs_per_token(op.kind, w, kv_per_token),
        sampled: w.sampled,
        width: match op.kind {
            // Members may stop at different lengths: as many per step as the tokens need.
            OpKind::Decode => tokens.div_ceil(u64::from(w.steps.max(1))).max(1),
            _ => u64::from(w.sequences.max(1)),
        },
        kv_held: w.kv_bytes_held,
        prefix,
    })
}
