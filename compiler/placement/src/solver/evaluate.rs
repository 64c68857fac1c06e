//! Exact evaluation of a complete assignment: $ per request, latency (critical path with
//! transfers and queueing), memory and utilisation per device.

use crate::cost::PricedGraph;
use crate::graph::OpId;

use super::loads::Loads;

/// Tolerance for comparing predicted latency with the SLA (floating-point sums).
pub(crate) const LATENCY_EPS: f64 = 1e-9;

/// Everything the solver and the report need about one complete assignment.
#[derive(Debug, Clone)]
pub(crate) struct Evaluation {
    pub cost_usd: f64,
    pub latency_s: f64,
    /// Every op runs on a device that accepts it and every edge has a link.
    pub runnable: bool,
    pub memory_ok: bool,
    pub utilization_ok: bool,
    pub start: Vec<f64>,
    pub wait: Vec<f64>,
    pub finish: Vec<f64>,
    pub critical_path: Vec<OpId>,
    pub loads: Loads,
    pub device_wait: Vec<f64>,
}

impl Evaluation {
    pub fn feasible(&self, sla_s: f64) -> bool {
        self.runnable
            && self.memory_ok
            && self.utilization_ok
            && self.latency_s <= sla_s * (1.0 + LATENCY_EPS) + LATENCY_EPS
    }
}

pub(crate) fn evaluate(p: &PricedGraph<'_>, assign: &[usize]) -> Evaluation {
    let graph = p.graph();
    let n = graph.len();
    let rps = p.settings().rps;
    let mut loads = Loads::new(p);
    let mut runnable = true;
    let mut cost = 0.0;
    for (i, &d) in assign.iter().enumerate() {
        match p.cost(OpId(i), d) {
            Some(c) => {
                cost += c.usd;
                loads.add(p, OpId(i), d, c.busy_s);
            }
            None => runnable = false,
        }
    }
    let devices = p.devices();
    let memory_ok = (0..p.device_count()).all(|d| loads.memory[d] <= devices[d].capacity);
    let utilization_ok = (0..p.device_count())
        .all(|d| loads.utilization_with(d, 0.0, rps) <= p.settings().max_utilization);
    let device_wait: Vec<f64> = (0..p.device_count())
        .map(|d| loads.wait_with(d, 0.0, rps))
        .collect();
    let mut start = vec![0.0; n];
    let mut wait = vec![0.0; n];
    let mut finish = vec![0.0; n];
    let mut critical_pred: Vec<Option<usize>> = vec![None; n];
    for &v in graph.topo_order() {
        let d = assign[v.0];
        let mut ready = 0.0f64;
        for dep in &graph.op(v).deps {
            let u = dep.from.0;
            let arrive = finish[u] + p.transfer_s(assign[u], d, dep.bytes);
            cost += p.transfer_usd(assign[u], d, dep.bytes);
            if critical_pred[v.0].is_none() || arrive > ready {
                ready = arrive;
                critical_pred[v.0] = Some(u);
            }
        }
        let service = p.cost(v, d).map_or(f64::INFINITY, |c| c.service_s);
        start[v.0] = ready;
        wait[v.0] = device_wait[d];
        finish[v.0] = ready + device_wait[d] + service;
    }
    if !cost.is_finite() {
        runnable = false;
    }
    let last = (0..n).max_by(|&a, &b| finish[a].total_cmp(&finish[b]));
    let latency_s = last.map_or(0.0, |l| finish[l]);
    if !latency_s.is_finite() {
        runnable = false;
    }
    let mut critical_path = Vec::new();
    let mut at = last;
    while let Some(v) = at {
        critical_path.push(OpId(v));
        at = critical_pred[v];
    }
    critical_path.reverse();
    Evaluation {
        cost_usd: cost,
        latency_s,
        runnable,
        memory_ok,
        utilization_ok,
        start,
        wait,
        finish,
        critical_path,
        loads,
        device_wait,
    }
}
