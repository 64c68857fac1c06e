//! Heuristic for large graphs: a deadline-aware list scheduler searched over one parameter,
//! then slack-preserving local search.
//!
//! 1. Greedy in topological order with a deadline `beta x SLA`: each op takes the cheapest
//!    device on which `finish + tail <= deadline` (tail = the chain of minimum services after
//!    it), else the device where it finishes first. `beta = 0` is earliest-finish-time
//!    scheduling (fastest), `beta = 1` is cheapest-that-still-looks-on-time. Bisection on
//!    beta finds the cheapest greedy placement the exact evaluator accepts.
//! 2. Downgrade passes in reverse topological order: an op moves to a cheaper device when its
//!    new finish, plus transfers, still meets the latest start of every dependent (which the
//!    pass keeps up to date), with memory and utilisation checked. Queueing waits are held
//!    fixed within a pass, so every pass is re-checked by the exact evaluator and undone if it
//!    broke the SLA.
//!
//! Each greedy pass and each downgrade pass is O((ops + edges) x devices).

use crate::cost::PricedGraph;

use super::evaluate::{Evaluation, LATENCY_EPS, evaluate};
use super::explain::Prepared;
use super::loads::Loads;

/// Bisection steps on the deadline factor (resolution 2^-12 of the SLA).
const BETA_STEPS: u32 = 12;
/// Downgrade passes at most; each must lower the cost to continue.
const MAX_DOWNGRADE_PASSES: u32 = 8;
/// Retries of a pass that broke the SLA through queueing, each with the SLA tightened by the
/// overshoot.
const DOWNGRADE_RETRIES: u32 = 3;

/// Best feasible placement found, if any, and the best latency seen (for explanations).
pub(crate) struct HeuristicOutcome {
    pub best: Option<(Vec<usize>, Evaluation)>,
    pub best_latency_s: Option<f64>,
}

pub(crate) fn solve(p: &PricedGraph<'_>, prep: &Prepared, sla: f64) -> HeuristicOutcome {
    let mut best: Option<(Vec<usize>, Evaluation)> = None;
    let mut best_latency: Option<f64> = None;
    let mut consider = |assign: Vec<usize>, best: &mut Option<(Vec<usize>, Evaluation)>| -> bool {
        let eval = evaluate(p, &assign);
        if eval.runnable && eval.memory_ok && eval.utilization_ok {
            best_latency =
                Some(best_latency.map_or(eval.latency_s, |b: f64| b.min(eval.latency_s)));
        }
        let ok = eval.feasible(sla);
        if ok
            && best
                .as_ref()
                .is_none_or(|(_, b)| eval.cost_usd < b.cost_usd)
        {
            *best = Some((assign, eval));
        }
        ok
    };
    // The loosest deadline first: when it already meets the SLA it is the cheapest greedy.
    let loose_ok = greedy(p, prep, sla).is_some_and(|a| consider(a, &mut best));
    if !loose_ok {
        let fast_ok = greedy(p, prep, 0.0).is_some_and(|a| consider(a, &mut best));
        if fast_ok {
            let (mut lo, mut hi) = (0.0, 1.0);
            for _ in 0..BETA_STEPS {
                let mid = 0.5 * (lo + hi);
                if greedy(p, prep, mid * sla).is_some_and(|a| consider(a, &mut best)) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
        }
    }
    if let Some((assign, eval)) = best.take() {
        best = Some(downgrade(p, prep, sla, assign, eval));
    }
    HeuristicOutcome {
        best,
        best_latency_s: best_latency,
    }
}

/// One greedy pass with deadline `deadline`; `None` if some op fits on no device.
fn greedy(p: &PricedGraph<'_>, prep: &Prepared, deadline: f64) -> Option<Vec<usize>> {
    let graph = p.graph();
    let rps = p.settings().rps;
    let max_util = p.settings().max_utilization;
    let mut loads = Loads::new(p);
    let mut assign = vec![usize::MAX; graph.len()];
    let mut finish = vec![0.0; graph.len()];
    for &v in graph.topo_order() {
        // (usd, finish, device) of the cheapest on-time and of the fastest choice.
        let mut on_time: Option<(f64, f64, usize)> = None;
        let mut fastest: Option<(f64, f64, usize)> = None;
        for &d in &prep.candidates[v.0] {
            let Some(c) = p.cost(v, d) else { continue };
            if loads.memory[d] + loads.memory_delta(p, v, d) > p.devices()[d].capacity
                || loads.utilization_with(d, c.busy_s, rps) > max_util
            {
                continue;
            }
            let mut ready = 0.0f64;
            let mut usd = c.usd;
            for dep in &graph.op(v).deps {
                let a = assign[dep.from.0];
                ready = ready.max(finish[dep.from.0] + p.transfer_s(a, d, dep.bytes));
                usd += p.transfer_usd(a, d, dep.bytes);
            }
            let fin = ready + loads.wait_with(d, c.busy_s, rps) + c.service_s;
            if fin + prep.tail[v.0] <= deadline
                && on_time.is_none_or(|(u, f, _)| usd < u || (usd == u && fin < f))
            {
                on_time = Some((usd, fin, d));
            }
            if fastest.is_none_or(|(u, f, _)| fin < f || (fin == f && usd < u)) {
                fastest = Some((usd, fin, d));
            }
        }
        let (_, fin, d) = on_time.or(fastest)?;
        let busy = p.cost(v, d).map_or(0.0, |c| c.busy_s);
        loads.add(p, v, d, busy);
        assign[v.0] = d;
        finish[v.0] = fin;
    }
    Some(assign)
}

/// Repeated downgrade passes; returns the cheapest feasible placement seen.
fn downgrade(
    p: &PricedGraph<'_>,
    prep: &Prepared,
    sla: f64,
    mut assign: Vec<usize>,
    mut eval: Evaluation,
) -> (Vec<usize>, Evaluation) {
    for _ in 0..MAX_DOWNGRADE_PASSES {
        let mut target = sla;
        let mut improved = false;
        for _ in 0..=DOWNGRADE_RETRIES {
            let Some(candidate) = downgrade_pass(p, prep, target, &assign, &eval) else {
                break;
            };
            let next = evaluate(p, &candidate);
            if next.feasible(sla) {
                if next.cost_usd < eval.cost_usd * (1.0 - 1e-12) {
                    assign = candidate;
                    eval = next;
                    improved = true;
                }
                break;
            }
            // Queueing grew on the devices ops moved to; leave that much more slack.
            target -= (next.latency_s - sla).max(sla * LATENCY_EPS);
            if target <= 0.0 {
                break;
            }
        }
        if !improved {
            break;
        }
    }
    (assign, eval)
}

/// One reverse-topological pass; `None` if nothing moved.
fn downgrade_pass(
    p: &PricedGraph<'_>,
    prep: &Prepared,
    target: f64,
    assign: &[usize],
    eval: &Evaluation,
) -> Option<Vec<usize>> {
    let graph = p.graph();
    let rps = p.settings().rps;
    let max_util = p.settings().max_utilization;
    let mut assign = assign.to_vec();
    let mut loads = eval.loads.clone();
    // Latest time each op may become ready (before its wait) without breaking the target.
    let mut latest_ready = vec![f64::INFINITY; graph.len()];
    let mut moved = false;
    for &v in graph.topo_order().iter().rev() {
        let cur = assign[v.0];
        let Some(cur_cost) = p.cost(v, cur).copied() else {
            continue;
        };
        let latest_finish_on = |d: usize| -> f64 {
            graph
                .successors(v)
                .iter()
                .map(|&(s, bytes)| latest_ready[s.0] - p.transfer_s(d, assign[s.0], bytes))
                .fold(target, f64::min)
        };
        let ready_on = |d: usize| -> f64 {
            graph
                .op(v)
                .deps
                .iter()
                .map(|dep| eval.finish[dep.from.0] + p.transfer_s(assign[dep.from.0], d, dep.bytes))
                .fold(0.0, f64::max)
        };
        let edge_usd = |d: usize| -> f64 {
            let inbound: f64 = graph
                .op(v)
                .deps
                .iter()
                .map(|dep| p.transfer_usd(assign[dep.from.0], d, dep.bytes))
                .sum();
            let outbound: f64 = graph
                .successors(v)
                .iter()
                .map(|&(s, bytes)| p.transfer_usd(d, assign[s.0], bytes))
                .sum();
            inbound + outbound
        };
        let current_total = cur_cost.usd + edge_usd(cur);
        let mut choice = cur;
        let mut choice_total = current_total;
        loads.remove(p, v, cur, cur_cost.busy_s);
        for &d in &prep.candidates[v.0] {
            let Some(c) = p.cost(v, d) else { continue };
            let total = c.usd + edge_usd(d);
            if total >= choice_total * (1.0 - 1e-12) || d == cur {
                continue;
            }
            if loads.memory[d] + loads.memory_delta(p, v, d) > p.devices()[d].capacity
                || loads.utilization_with(d, c.busy_s, rps) > max_util
            {
                continue;
            }
            let fin = ready_on(d)
                + eval.device_wait[d].max(loads.wait_with(d, c.busy_s, rps))
                + c.service_s;
            if fin <= latest_finish_on(d) {
                choice = d;
                choice_total = total;
            }
        }
        let c = p.cost(v, choice).copied().unwrap_or(cur_cost);
        let latest_finish = latest_finish_on(choice);
        loads.add(p, v, choice, c.busy_s);
        let wait = eval.device_wait[choice].max(loads.wait_with(choice, 0.0, rps));
        latest_ready[v.0] = latest_finish - c.service_s - wait;
        if choice != cur {
            assign[v.0] = choice;
            moved = true;
        }
    }
    moved.then_some(assign)
}
