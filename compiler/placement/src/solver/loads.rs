//! Per-device load bookkeeping shared by the evaluator and both searches: busy time (for
//! queueing), resident memory with weights shared per model and prefix KV shared per group.

use std::collections::{BTreeMap, HashMap};

use crate::cost::PricedGraph;
use crate::graph::OpId;

/// Loads of every device under a (partial) assignment.
#[derive(Debug, Clone)]
pub(crate) struct Loads {
    pub busy: Vec<f64>,
    pub busy_sq: Vec<f64>,
    /// Resident bytes: shared weights, prefix copies and the largest transient KV x in-flight.
    pub memory: Vec<f64>,
    pub ops: Vec<u32>,
    /// Per device, a multiset of its ops' transient KV (as order-preserving bits of
    /// non-negative f64), so the maximum survives removals.
    transient: Vec<BTreeMap<u64, u32>>,
    in_flight: f64,
    model_refs: HashMap<(usize, usize), u32>,
    group_refs: HashMap<(usize, usize), u32>,
    leader_device: Vec<Option<usize>>,
    /// Leader op of each prefix group.
    leaders: Vec<Option<OpId>>,
}

impl Loads {
    pub fn new(p: &PricedGraph<'_>) -> Self {
        let n = p.device_count();
        let groups = p.graph().prefix_groups();
        Self {
            busy: vec![0.0; n],
            busy_sq: vec![0.0; n],
            memory: vec![0.0; n],
            ops: vec![0; n],
            transient: vec![BTreeMap::new(); n],
            in_flight: p.settings().requests_in_flight,
            model_refs: HashMap::new(),
            group_refs: HashMap::new(),
            leader_device: vec![None; groups.len()],
            leaders: groups.iter().map(|g| g.members.first().copied()).collect(),
        }
    }

    /// Memory device `d` would hold after adding `op`, minus what it holds now.
    pub fn memory_delta(&self, p: &PricedGraph<'_>, op: OpId, d: usize) -> f64 {
        let o = p.graph().op(op);
        let current = self.peak_transient(d);
        let mut delta = (o.work.transient_bytes().max(current) - current) * self.in_flight;
        if let Some(m) = o.model
            && self.model_refs.get(&(d, m.0)).copied().unwrap_or(0) == 0
        {
            delta += p.graph().models()[m.0].weight_bytes;
        }
        if let Some(g) = o.prefix_group {
            let kv = p.graph().prefix_groups()[g.0].kv_bytes;
            let members_here = self.group_refs.get(&(d, g.0)).copied().unwrap_or(0);
            if self.leaders[g.0] == Some(op) {
                if members_here > 0 {
                    delta -= kv;
                }
            } else if members_here == 0 && self.leader_device[g.0] != Some(d) {
                delta += kv;
            }
        }
        delta
    }

    pub fn add(&mut self, p: &PricedGraph<'_>, op: OpId, d: usize, busy: f64) {
        let delta = self.memory_delta(p, op, d);
        self.memory[d] += delta;
        self.busy[d] += busy;
        self.busy_sq[d] += busy * busy;
        self.ops[d] += 1;
        let o = p.graph().op(op);
        *self.transient[d]
            .entry(o.work.transient_bytes().to_bits())
            .or_insert(0) += 1;
        if let Some(m) = o.model {
            *self.model_refs.entry((d, m.0)).or_insert(0) += 1;
        }
        if let Some(g) = o.prefix_group {
            if self.leaders[g.0] == Some(op) {
                self.leader_device[g.0] = Some(d);
            } else {
                *self.group_refs.entry((d, g.0)).or_insert(0) += 1;
            }
        }
    }

    pub fn remove(&mut self, p: &PricedGraph<'_>, op: OpId, d: usize, busy: f64) {
        let o = p.graph().op(op);
        self.busy[d] -= busy;
        self.busy_sq[d] -= busy * busy;
        self.ops[d] -= 1;
        let before = self.peak_transient(d);
        let key = o.work.transient_bytes().to_bits();
        if let Some(count) = self.transient[d].get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                self.transient[d].remove(&key);
            }
        }
        self.memory[d] -= (before - self.peak_transient(d)) * self.in_flight;
        if let Some(m) = o.model
            && let Some(r) = self.model_refs.get_mut(&(d, m.0))
        {
            *r -= 1;
            if *r == 0 {
                self.memory[d] -= p.graph().models()[m.0].weight_bytes;
                self.model_refs.remove(&(d, m.0));
            }
        }
        if let Some(g) = o.prefix_group {
            let kv = p.graph().prefix_groups()[g.0].kv_bytes;
            let members_here = self.group_refs.get(&(d, g.0)).copied().unwrap_or(0);
            if self.leaders[g.0] == Some(op) {
                self.leader_device[g.0] = None;
                if members_here > 0 {
                    self.memory[d] += kv;
                }
            } else if let Some(r) = self.group_refs.get_mut(&(d, g.0)) {
                *r -= 1;
                if *r == 0 {
                    self.group_refs.remove(&(d, g.0));
                    if self.leader_device[g.0] != Some(d) {
                        self.memory[d] -= kv;
                    }
                }
            }
        }
        if self.ops[d] == 0 {
            // Clear rounding residue so an empty device reads exactly empty.
            self.busy[d] = 0.0;
            self.busy_sq[d] = 0.0;
            self.memory[d] = 0.0;
        }
    }

    /// Whether device `d` already holds the weights `op` needs (or `op` needs none).
    pub fn holds_model_of(&self, p: &PricedGraph<'_>, op: OpId, d: usize) -> bool {
        p.graph()
            .op(op)
            .model
            .is_none_or(|m| self.model_refs.get(&(d, m.0)).is_some_and(|&r| r > 0))
    }

    /// Largest transient KV of the ops on device `d`.
    fn peak_transient(&self, d: usize) -> f64 {
        self.transient[d]
            .last_key_value()
            .map_or(0.0, |(bits, _)| f64::from_bits(*bits))
    }

    /// Pollaczek-Khinchine mean wait of an M/G/1 queue: requests arrive at `rps`, each brings
    /// the ops placed on the device, so the device sees jobs with E[S^2] summed over its ops.
    /// `extra` is the busy time of an op about to be added.
    pub fn wait_with(&self, d: usize, extra: f64, rps: f64) -> f64 {
        if rps <= 0.0 {
            return 0.0;
        }
        let rho = rps * (self.busy[d] + extra);
        if rho >= 1.0 {
            return f64::INFINITY;
        }
        rps * (self.busy_sq[d] + extra * extra) / (2.0 * (1.0 - rho))
    }

    /// Utilisation of device `d` if an op with busy time `extra` were added.
    pub fn utilization_with(&self, d: usize, extra: f64, rps: f64) -> f64 {
        rps * (self.busy[d] + extra)
    }
}
