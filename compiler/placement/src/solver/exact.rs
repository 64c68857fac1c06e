//! Exact branch-and-bound over ops in topological order.
//!
//! Bounds: $ so far + the cheapest device of every unplaced op (transfers and queueing only
//! add); an op's finish time with the waits known so far (waits only grow as ops are added)
//! plus the longest chain of minimum services after it, against the SLA; memory and
//! utilisation per device (both only grow). Devices of one type on one node are
//! interchangeable, so among empty ones only the first is tried. Every leaf is checked by the
//! exact evaluator, so pruning never admits an infeasible placement.
//!
//! The $ bound is also taken from the Lagrangian relaxation of the SLA along the fastest
//! critical path P (see `explain::lagrange_bound`): with its multiplier lambda fixed, the
//! placed ops count their $ and lambda x their service if on P, the unplaced ops their best
//! `usd + lambda service` (or `usd` off P), minus lambda x SLA. That bound is what proves
//! optimality when the SLA forces a few ops onto dearer, faster devices.

use crate::cost::PricedGraph;
use crate::graph::OpId;

use super::evaluate::{LATENCY_EPS, evaluate};
use super::explain::{LagrangeBound, Prepared};
use super::loads::Loads;

/// Relative tolerance below which a cheaper leaf does not count as an improvement.
const COST_EPS: f64 = 1e-12;

/// Result of the search: the best assignment found and whether the search space was exhausted.
pub(crate) struct ExactOutcome {
    pub best: Option<(Vec<usize>, f64)>,
    pub complete: bool,
    pub nodes: u64,
}

struct Search<'a, 'g> {
    p: &'a PricedGraph<'g>,
    prep: &'a Prepared,
    sla: f64,
    order: Vec<OpId>,
    /// Sum of `min_usd` over ops at positions >= k of `order`.
    suffix_min: Vec<f64>,
    /// Sum of the Lagrangian per-op shares over ops at positions >= k.
    suffix_lagrange: Vec<f64>,
    lagrange: LagrangeBound,
    /// Devices with the same type on the same node share a class.
    class: Vec<usize>,
    assign: Vec<usize>,
    finish_lb: Vec<f64>,
    loads: Loads,
    best: Option<(Vec<usize>, f64)>,
    nodes: u64,
    node_limit: u64,
    aborted: bool,
}

pub(crate) fn solve(
    p: &PricedGraph<'_>,
    prep: &Prepared,
    sla: f64,
    incumbent: Option<(Vec<usize>, f64)>,
    node_limit: u64,
    lagrange: LagrangeBound,
) -> ExactOutcome {
    let order: Vec<OpId> = p.graph().topo_order().to_vec();
    let shares = lagrange.per_op(p, prep);
    let mut suffix_min = vec![0.0; order.len() + 1];
    let mut suffix_lagrange = vec![0.0; order.len() + 1];
    for k in (0..order.len()).rev() {
        suffix_min[k] = suffix_min[k + 1] + prep.min_usd[order[k].0];
        suffix_lagrange[k] = suffix_lagrange[k + 1] + shares[order[k].0];
    }
    let devices = p.devices();
    let class: Vec<usize> = (0..devices.len())
        .map(|d| {
            (0..=d)
                .find(|&e| {
                    devices[e].type_index == devices[d].type_index
                        && devices[e].node == devices[d].node
                })
                .unwrap_or(d)
        })
        .collect();
    let n = p.graph().len();
    let mut search = Search {
        p,
        prep,
        sla,
        order,
        suffix_min,
        suffix_lagrange,
        lagrange,
        class,
        assign: vec![usize::MAX; n],
        finish_lb: vec![0.0; n],
        loads: Loads::new(p),
        best: incumbent,
        nodes: 0,
        node_limit,
        aborted: false,
    };
    search.branch(0, 0.0, 0.0);
    ExactOutcome {
        best: search.best,
        complete: !search.aborted,
        nodes: search.nodes,
    }
}

impl Search<'_, '_> {
    fn bound(&self) -> f64 {
        self.best.as_ref().map_or(f64::INFINITY, |(_, c)| *c)
    }

    /// `path_s`: service time of the placed ops on the relaxed path.
    fn branch(&mut self, k: usize, cost: f64, path_s: f64) {
        if self.aborted {
            return;
        }
        self.nodes += 1;
        if self.nodes > self.node_limit {
            self.aborted = true;
            return;
        }
        if k == self.order.len() {
            let eval = evaluate(self.p, &self.assign);
            if eval.feasible(self.sla) && eval.cost_usd < self.bound() * (1.0 - COST_EPS) {
                self.best = Some((self.assign.clone(), eval.cost_usd));
            }
            return;
        }
        let v = self.order[k];
        let p = self.p;
        let rps = p.settings().rps;
        let prep = self.prep;
        for &d in &prep.candidates[v.0] {
            // Symmetry: an empty device is tried only if no earlier device of its class is empty.
            if self.loads.ops[d] == 0
                && (0..d).any(|e| self.class[e] == self.class[d] && self.loads.ops[e] == 0)
            {
                continue;
            }
            let Some(c) = p.cost(v, d) else { continue };
            let mut xfer_usd = 0.0;
            let mut ready = 0.0f64;
            for dep in &p.graph().op(v).deps {
                let a = self.assign[dep.from.0];
                xfer_usd += p.transfer_usd(a, d, dep.bytes);
                ready = ready.max(self.finish_lb[dep.from.0] + p.transfer_s(a, d, dep.bytes));
            }
            let new_cost = cost + c.usd + xfer_usd;
            if new_cost + self.suffix_min[k + 1] >= self.bound() * (1.0 - COST_EPS) {
                continue;
            }
            let new_path_s = if self.lagrange.on_path[v.0] {
                path_s + c.service_s
            } else {
                path_s
            };
            let lambda = self.lagrange.lambda;
            let relaxed = new_cost + self.suffix_lagrange[k + 1] + lambda * (new_path_s - self.sla);
            if relaxed >= self.bound() * (1.0 - COST_EPS) {
                continue;
            }
            if self.loads.memory[d] + self.loads.memory_delta(p, v, d) > p.devices()[d].capacity {
                continue;
            }
            if self.loads.utilization_with(d, c.busy_s, rps) > p.settings().max_utilization {
                continue;
            }
            let finish = ready + self.loads.wait_with(d, c.busy_s, rps) + c.service_s;
            if finish + self.prep.tail[v.0] > self.sla * (1.0 + LATENCY_EPS) + LATENCY_EPS {
                continue;
            }
            self.assign[v.0] = d;
            self.finish_lb[v.0] = finish;
            self.loads.add(p, v, d, c.busy_s);
            self.branch(k + 1, new_cost, new_path_s);
            self.loads.remove(p, v, d, c.busy_s);
            self.assign[v.0] = usize::MAX;
            if self.aborted {
                return;
            }
        }
    }
}
