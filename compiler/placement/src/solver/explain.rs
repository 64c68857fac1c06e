//! Why a placement is impossible, and the bounds that prove it: checks that run before any
//! search (an op fits nowhere, the load exceeds the cluster, the SLA is below the fastest
//! critical path) and the lower bounds the solvers report their gap against.

use crate::catalog::DeviceClass;
use crate::cost::PricedGraph;
use crate::graph::OpId;

const MS_PER_S: f64 = 1e3;
const BYTES_PER_GB: f64 = 1e9;
const PERCENT: f64 = 100.0;

fn ms(s: f64) -> String {
    format!("{:.1} ms", s * MS_PER_S)
}

fn gb(bytes: f64) -> String {
    format!("{:.1} GB", bytes / BYTES_PER_GB)
}

fn best_latency(best: &Option<f64>) -> String {
    best.map_or("none".to_string(), ms)
}

/// The binding constraint when no placement exists.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Infeasibility {
    #[error(
        "op {op} ({kind}) runs on a CPU only and the cluster has no CPU; add a CPU device to a node"
    )]
    NoCpuForHostOp { op: String, kind: &'static str },
    #[error("op {op} ({kind}) cannot run on any device of the cluster")]
    NoDeviceForOp { op: String, kind: &'static str },
    #[error(
        "op {op} needs {} (weights + KV), largest device ({device_type}) has {} usable; add a device with more memory or shrink the model",
        gb(*needs_bytes), gb(*largest_bytes)
    )]
    OpTooLarge {
        op: String,
        needs_bytes: f64,
        device_type: String,
        largest_bytes: f64,
    },
    #[error(
        "at {rps} requests/s op {op} keeps even its fastest device {:.0}% busy (limit {:.0}%); lower the load or add faster devices",
        utilization * PERCENT, max_utilization * PERCENT
    )]
    OpOverloaded {
        op: String,
        rps: f64,
        utilization: f64,
        max_utilization: f64,
    },
    #[error(
        "at {rps} requests/s the graph needs {needed:.2} device-seconds per second on the cheapest devices, more than the {available:.2} the cluster's {devices} devices give at {:.0}% utilisation; lower the load or add devices",
        max_utilization * PERCENT
    )]
    ClusterOverloaded {
        rps: f64,
        needed: f64,
        available: f64,
        devices: usize,
        max_utilization: f64,
    },
    #[error(
        "critical path on fastest devices is {} > SLA {} ({}); loosen SLA to >= {} or add faster devices",
        ms(*lower_bound_s), ms(*sla_s), path.join(" -> "), ms(*lower_bound_s)
    )]
    SlaBelowCriticalPath {
        lower_bound_s: f64,
        sla_s: f64,
        path: Vec<String>,
    },
    #[error(
        "no placement meets SLA {} within memory and load limits ({}; best latency found {}, lower bound {}); loosen the SLA, lower the load or add devices",
        ms(*sla_s),
        if *proven { "proven by exhaustive search" } else { "heuristic search" },
        best_latency(best_latency_s),
        ms(*latency_lower_bound_s)
    )]
    NoPlacementFound {
        sla_s: f64,
        best_latency_s: Option<f64>,
        latency_lower_bound_s: f64,
        proven: bool,
    },
}

/// Per-op facts the checks and both searches share.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Devices each op may use (accepted and fits on its own), cheapest first.
    pub candidates: Vec<Vec<usize>>,
    pub min_usd: Vec<f64>,
    /// Longest path of minimum services from the end of each op to a sink.
    pub tail: Vec<f64>,
    /// Lower bound on latency: the longest path of minimum services.
    pub latency_lb: f64,
    pub latency_lb_path: Vec<OpId>,
}

/// Runs the checks that need no search and computes the per-op bounds.
pub(crate) fn prepare(p: &PricedGraph<'_>, sla_s: f64) -> Result<Prepared, Infeasibility> {
    let graph = p.graph();
    let n = graph.len();
    let devices = p.devices();
    let settings = p.settings();
    let mut candidates = Vec::with_capacity(n);
    let mut min_usd = vec![0.0; n];
    let mut min_service = vec![0.0; n];
    let mut min_busy_total = 0.0;
    for (i, op) in graph.ops().iter().enumerate() {
        let id = OpId(i);
        let accepted: Vec<usize> = (0..p.device_count())
            .filter(|&d| p.cost(id, d).is_some())
            .collect();
        if accepted.is_empty() {
            let has_cpu = devices.iter().any(|d| d.class == DeviceClass::Cpu);
            return Err(if op.kind.host_only() && !has_cpu {
                Infeasibility::NoCpuForHostOp {
                    op: op.name.clone(),
                    kind: op.kind.as_str(),
                }
            } else {
                Infeasibility::NoDeviceForOp {
                    op: op.name.clone(),
                    kind: op.kind.as_str(),
                }
            });
        }
        let needs = p.standalone_bytes(id);
        let mut fits: Vec<usize> = accepted
            .iter()
            .copied()
            .filter(|&d| needs <= devices[d].capacity)
            .collect();
        if fits.is_empty() {
            let largest = accepted
                .iter()
                .copied()
                .max_by(|&a, &b| devices[a].capacity.total_cmp(&devices[b].capacity))
                .unwrap_or(0);
            return Err(Infeasibility::OpTooLarge {
                op: op.name.clone(),
                needs_bytes: needs,
                device_type: p.type_names()[devices[largest].type_index].clone(),
                largest_bytes: devices[largest].capacity,
            });
        }
        let cost = |d: usize| p.cost(id, d).map_or(f64::INFINITY, |c| c.usd);
        let service = |d: usize| p.cost(id, d).map_or(f64::INFINITY, |c| c.service_s);
        let busy = |d: usize| p.cost(id, d).map_or(f64::INFINITY, |c| c.busy_s);
        let min_busy = fits.iter().map(|&d| busy(d)).fold(f64::INFINITY, f64::min);
        if settings.rps * min_busy > settings.max_utilization {
            return Err(Infeasibility::OpOverloaded {
                op: op.name.clone(),
                rps: settings.rps,
                utilization: settings.rps * min_busy,
                max_utilization: settings.max_utilization,
            });
        }
        fits.retain(|&d| settings.rps * busy(d) <= settings.max_utilization);
        fits.sort_by(|&a, &b| {
            cost(a)
                .total_cmp(&cost(b))
                .then(service(a).total_cmp(&service(b)))
        });
        min_usd[i] = fits.iter().map(|&d| cost(d)).fold(f64::INFINITY, f64::min);
        min_service[i] = fits
            .iter()
            .map(|&d| service(d))
            .fold(f64::INFINITY, f64::min);
        min_busy_total += min_busy;
        candidates.push(fits);
    }
    let available = settings.max_utilization * p.device_count() as f64;
    if settings.rps * min_busy_total > available {
        return Err(Infeasibility::ClusterOverloaded {
            rps: settings.rps,
            needed: settings.rps * min_busy_total,
            available,
            devices: p.device_count(),
            max_utilization: settings.max_utilization,
        });
    }
    // Longest paths of minimum services: forward for the bound, backward for the tails.
    let mut head = vec![0.0; n];
    let mut pred: Vec<Option<usize>> = vec![None; n];
    for &v in graph.topo_order() {
        let mut ready = 0.0;
        for dep in &graph.op(v).deps {
            if pred[v.0].is_none() || head[dep.from.0] > ready {
                ready = head[dep.from.0];
                pred[v.0] = Some(dep.from.0);
            }
        }
        head[v.0] = ready + min_service[v.0];
    }
    let mut tail = vec![0.0; n];
    for &v in graph.topo_order().iter().rev() {
        tail[v.0] = graph
            .successors(v)
            .iter()
            .map(|(s, _)| min_service[s.0] + tail[s.0])
            .fold(0.0, f64::max);
    }
    let last = (0..n).max_by(|&a, &b| head[a].total_cmp(&head[b]));
    let latency_lb = last.map_or(0.0, |l| head[l]);
    let mut latency_lb_path = Vec::new();
    let mut at = last;
    while let Some(v) = at {
        latency_lb_path.push(OpId(v));
        at = pred[v];
    }
    latency_lb_path.reverse();
    if latency_lb > sla_s * (1.0 + super::evaluate::LATENCY_EPS) + super::evaluate::LATENCY_EPS {
        return Err(Infeasibility::SlaBelowCriticalPath {
            lower_bound_s: latency_lb,
            sla_s,
            path: latency_lb_path
                .iter()
                .map(|&v| graph.op(v).name.clone())
                .collect(),
        });
    }
    Ok(Prepared {
        candidates,
        min_usd,
        tail,
        latency_lb,
        latency_lb_path,
    })
}

/// Bisection steps for the Lagrange multiplier; the subgradient halves its interval each step.
const LAGRANGE_STEPS: u32 = 100;
/// Doublings of the multiplier's upper end before giving up on finding a negative subgradient.
const LAGRANGE_GROWTH_LIMIT: u32 = 200;

/// The Lagrangian relaxation of the SLA along one path, at its best multiplier.
#[derive(Debug, Clone)]
pub(crate) struct LagrangeBound {
    /// Lower bound on $ per request.
    pub value: f64,
    /// The multiplier, in $ per second of path latency.
    pub lambda: f64,
    /// Ops on the relaxed path.
    pub on_path: Vec<bool>,
}

impl LagrangeBound {
    /// `min_d [usd(v,d) + lambda service(v,d)]` for path ops, `min_d usd(v,d)` for the rest:
    /// each op's share of the bound.
    pub fn per_op(&self, p: &PricedGraph<'_>, prep: &Prepared) -> Vec<f64> {
        (0..p.graph().len())
            .map(|i| {
                if self.on_path[i] {
                    prep.candidates[i]
                        .iter()
                        .filter_map(|&d| p.cost(OpId(i), d))
                        .map(|c| c.usd + self.lambda * c.service_s)
                        .fold(f64::INFINITY, f64::min)
                } else {
                    prep.min_usd[i]
                }
            })
            .collect()
    }
}

/// Lower bound on $ per request. Any placement meeting the SLA has, along the fastest critical
/// path P, sum_{v in P} service(v) <= latency <= SLA. Relaxing that one constraint with a
/// multiplier lambda >= 0 gives, for every lambda,
/// `L(lambda) = sum_{v not in P} min_d usd(v,d) + sum_{v in P} min_d [usd(v,d) + lambda service(v,d)] - lambda SLA`,
/// a valid bound (weak duality); L is concave, so we bisect on its subgradient.
pub(crate) fn lagrange_bound(p: &PricedGraph<'_>, prep: &Prepared, sla_s: f64) -> LagrangeBound {
    let mut on_path = vec![false; p.graph().len()];
    for v in &prep.latency_lb_path {
        on_path[v.0] = true;
    }
    let off_path: f64 = (0..p.graph().len())
        .filter(|&i| !on_path[i])
        .map(|i| prep.min_usd[i])
        .sum();
    // Value and subgradient of L at lambda.
    let eval = |lambda: f64| -> (f64, f64) {
        let mut value = off_path - lambda * sla_s;
        let mut slope = -sla_s;
        for &v in &prep.latency_lb_path {
            let mut best = (f64::INFINITY, 0.0);
            for &d in &prep.candidates[v.0] {
                if let Some(c) = p.cost(v, d) {
                    let score = c.usd + lambda * c.service_s;
                    if score < best.0 {
                        best = (score, c.service_s);
                    }
                }
            }
            value += best.0;
            slope += best.1;
        }
        (value, slope)
    };
    let (at_zero, slope0) = eval(0.0);
    let mut best = (at_zero, 0.0);
    if slope0 > 0.0 {
        let mut hi = 1.0;
        let mut grow = 0;
        while eval(hi).1 > 0.0 && grow < LAGRANGE_GROWTH_LIMIT {
            hi *= 2.0;
            grow += 1;
        }
        let mut lo = 0.0;
        for _ in 0..LAGRANGE_STEPS {
            let mid = 0.5 * (lo + hi);
            let (value, slope) = eval(mid);
            if value > best.0 {
                best = (value, mid);
            }
            if slope > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        for lambda in [lo, hi] {
            let (value, _) = eval(lambda);
            if value > best.0 {
                best = (value, lambda);
            }
        }
    }
    LagrangeBound {
        value: best.0,
        lambda: best.1,
        on_path,
    }
}
