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
//! 3. Group moves, each checked by the exact evaluator: all ops of one model on one device move
//!    to another device (consolidating weights is what memory-bound instances need), then
//!    single ops, within a budget of evaluations that shrinks with graph size.
//!
//! Starts that put everything a device can run on that one device are considered too.
//! The greedy runs in two modes: cheapest device first, and "consolidating" (a device that
//! already holds the op's model first), since one-op-at-a-time cheapest choices scatter a
//! model's weights over devices and run out of memory.
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
/// Work budget of the group-move phase, in op+edge visits of the evaluator (tens of ms on the
/// 2-core dev machine).
const GROUP_MOVE_WORK: usize = 300_000;
/// Evaluations of the group-move phase at most, on small graphs.
const GROUP_MOVE_MAX_EVALS: usize = 400;

/// Relative $ improvement below which a move does not count (floating-point noise).
const COST_EPS: f64 = 1e-12;

/// How the greedy ranks devices on which an op would be on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GreedyMode {
    Cheapest,
    /// Prefer a device that already holds the op's model, then the cheapest.
    Consolidate,
}

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
    // Otherwise bisect on beta for the cheapest greedy the evaluator accepts.
    let mut beta = 1.0;
    let loose_ok =
        greedy(p, prep, sla, GreedyMode::Cheapest).is_some_and(|a| consider(a, &mut best));
    if !loose_ok {
        beta = 0.0;
        let fast_ok =
            greedy(p, prep, 0.0, GreedyMode::Cheapest).is_some_and(|a| consider(a, &mut best));
        if fast_ok {
            let (mut lo, mut hi) = (0.0, 1.0);
            for _ in 0..BETA_STEPS {
                let mid = 0.5 * (lo + hi);
                let ok = greedy(p, prep, mid * sla, GreedyMode::Cheapest)
                    .is_some_and(|a| consider(a, &mut best));
                if ok {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            beta = lo;
        }
    }
    // The consolidating mode at the loose deadline and at the beta found above.
    for b in [1.0, beta] {
        if let Some(a) = greedy(p, prep, b * sla, GreedyMode::Consolidate) {
            consider(a, &mut best);
        }
    }
    // Single-device starts: everything that can run on device d goes there, the rest to its
    // cheapest device. They catch optima the op-at-a-time greedy cannot reach when link charges
    // or shared weights make every partial move dearer.
    for d in 0..p.device_count() {
        let assign: Vec<usize> = (0..p.graph().len())
            .map(|i| {
                if prep.candidates[i].contains(&d) {
                    d
                } else {
                    prep.candidates[i].first().copied().unwrap_or(d)
                }
            })
            .collect();
        consider(assign, &mut best);
    }
    if let Some((assign, eval)) = best.take() {
        let (assign, eval) = downgrade(p, prep, sla, assign, eval);
        let before = eval.cost_usd;
        let (assign, eval) = group_moves(p, sla, assign, eval);
        best = Some(if eval.cost_usd < before {
            downgrade(p, prep, sla, assign, eval)
        } else {
            (assign, eval)
        });
    }
    HeuristicOutcome {
        best,
        best_latency_s: best_latency,
    }
}

/// One greedy pass with deadline `deadline`; `None` if some op fits on no device.
fn greedy(
    p: &PricedGraph<'_>,
    prep: &Prepared,
    deadline: f64,
    mode: GreedyMode,
) -> Option<Vec<usize>> {
    let graph = p.graph();
    let rps = p.settings().rps;
    let max_util = p.settings().max_utilization;
    let mut loads = Loads::new(p);
    let mut assign = vec![usize::MAX; graph.len()];
    let mut finish = vec![0.0; graph.len()];
    for &v in graph.topo_order() {
        // (rank, usd, finish, device) of the best on-time choice; rank 0 sorts first.
        let mut on_time: Option<(u8, f64, f64, usize)> = None;
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
            let rank = match mode {
                GreedyMode::Cheapest => 0,
                GreedyMode::Consolidate => u8::from(!loads.holds_model_of(p, v, d)),
            };
            if fin + prep.tail[v.0] <= deadline
                && on_time.is_none_or(|(r, u, f, _)| {
                    (rank, usd, fin).partial_cmp(&(r, u, f)) == Some(std::cmp::Ordering::Less)
                })
            {
                on_time = Some((rank, usd, fin, d));
            }
            if fastest.is_none_or(|(u, f, _)| fin < f || (fin == f && usd < u)) {
                fastest = Some((usd, fin, d));
            }
        }
        let (_, fin, d) = on_time.map(|(_, u, f, d)| (u, f, d)).or(fastest)?;
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
                if next.cost_usd < eval.cost_usd * (1.0 - COST_EPS) {
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
            if total >= choice_total * (1.0 - COST_EPS) || d == cur {
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

/// Moves every op of one model from one device to another, then single ops, keeping each move
/// the exact evaluator accepts as feasible and cheaper; stops when a round finds none or the
/// budget is spent.
fn group_moves(
    p: &PricedGraph<'_>,
    sla: f64,
    mut assign: Vec<usize>,
    mut eval: Evaluation,
) -> (Vec<usize>, Evaluation) {
    let graph = p.graph();
    let models = graph.models().len();
    let n_dev = p.device_count();
    if models == 0 || n_dev < 2 {
        return (assign, eval);
    }
    let size = graph.len() + graph.edge_count() + 1;
    let mut budget = (GROUP_MOVE_WORK / size).min(GROUP_MOVE_MAX_EVALS);
    loop {
        // Groups: everything on one device, all ops of one model, the ops of one model on one
        // device, then single ops. Big groups matter when link charges or memory make every
        // partial move dearer than staying.
        let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
        for from in 0..n_dev {
            let members: Vec<usize> = (0..graph.len()).filter(|&i| assign[i] == from).collect();
            if !members.is_empty() {
                groups.push((Some(from), members));
            }
        }
        for m in 0..models {
            let members: Vec<usize> = (0..graph.len())
                .filter(|&i| graph.ops()[i].model.is_some_and(|x| x.0 == m))
                .collect();
            groups.push((None, members));
        }
        for m in 0..models {
            for from in 0..n_dev {
                let members: Vec<usize> = (0..graph.len())
                    .filter(|&i| {
                        assign[i] == from && graph.ops()[i].model.is_some_and(|x| x.0 == m)
                    })
                    .collect();
                if !members.is_empty() {
                    groups.push((Some(from), members));
                }
            }
        }
        groups.extend((0..graph.len()).map(|i| (Some(assign[i]), vec![i])));
        let mut improved = false;
        for (from, members) in groups {
            if let Some(from) = from
                && members.iter().any(|&i| assign[i] != from)
            {
                continue; // an earlier move in this round took some of them
            }
            for to in 0..n_dev {
                if members.iter().all(|&i| assign[i] == to)
                    || members
                        .iter()
                        .any(|&i| p.cost(crate::graph::OpId(i), to).is_none())
                {
                    continue;
                }
                if budget == 0 {
                    return (assign, eval);
                }
                budget -= 1;
                let mut candidate = assign.clone();
                for &i in &members {
                    candidate[i] = to;
                }
                let next = evaluate(p, &candidate);
                if next.feasible(sla) && next.cost_usd < eval.cost_usd * (1.0 - COST_EPS) {
                    assign = candidate;
                    eval = next;
                    improved = true;
                    break;
                }
            }
        }
        if !improved {
            return (assign, eval);
        }
    }
}
