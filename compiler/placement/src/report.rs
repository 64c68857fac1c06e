//! A named, serialisable view of a placement for the plan manifest and `agentc build`'s
//! summary: op and device names instead of indices, and a fixed-width text rendering.

use std::fmt;

use serde::Serialize;

use crate::cost::PricedGraph;
use crate::solver::{Placement, SolveMethod};

const MS_PER_S: f64 = 1e3;
const BYTES_PER_GB: f64 = 1e9;
const PERCENT: f64 = 100.0;
/// $ per request are tiny; report them per million requests.
const REQUESTS_PER_MILLION: f64 = 1e6;

/// One op's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpLine {
    pub op: String,
    pub kind: &'static str,
    pub device: String,
    pub ready_ms: f64,
    pub wait_ms: f64,
    pub finish_ms: f64,
    pub usd_per_million: f64,
    pub on_critical_path: bool,
}

/// One device's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceLine {
    pub device: String,
    pub ops: usize,
    pub memory_gb: f64,
    pub capacity_gb: f64,
    pub utilization_percent: f64,
}

/// Everything a person or the manifest needs about a placement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementReport {
    pub method: SolveMethod,
    pub proven_optimal: bool,
    pub latency_ms: f64,
    pub sla_ms: f64,
    pub usd_per_million: f64,
    pub lower_bound_usd_per_million: f64,
    pub gap_percent: f64,
    pub critical_path: Vec<String>,
    pub ops: Vec<OpLine>,
    pub devices: Vec<DeviceLine>,
}

impl PlacementReport {
    /// Names the ops and devices of `placement`, which `priced` produced.
    pub fn new(placement: &Placement, priced: &PricedGraph<'_>) -> Self {
        let graph = priced.graph();
        let devices = priced.devices();
        let mut on_path = vec![false; graph.len()];
        for v in &placement.critical_path {
            on_path[v.0] = true;
        }
        let ops = placement
            .ops
            .iter()
            .map(|o| {
                let op = graph.op(o.op);
                OpLine {
                    op: op.name.clone(),
                    kind: op.kind.as_str(),
                    device: devices[o.device.0].name.clone(),
                    ready_ms: o.ready_s * MS_PER_S,
                    wait_ms: o.wait_s * MS_PER_S,
                    finish_ms: o.finish_s * MS_PER_S,
                    usd_per_million: o.usd * REQUESTS_PER_MILLION,
                    on_critical_path: on_path[o.op.0],
                }
            })
            .collect();
        let devices = placement
            .devices
            .iter()
            .map(|d| DeviceLine {
                device: devices[d.device.0].name.clone(),
                ops: placement
                    .assignment
                    .iter()
                    .filter(|&&a| a == d.device)
                    .count(),
                memory_gb: d.memory_bytes / BYTES_PER_GB,
                capacity_gb: d.capacity_bytes / BYTES_PER_GB,
                utilization_percent: d.utilization * PERCENT,
            })
            .collect();
        Self {
            method: placement.method,
            proven_optimal: placement.proven_optimal,
            latency_ms: placement.latency_s * MS_PER_S,
            sla_ms: placement.sla_s * MS_PER_S,
            usd_per_million: placement.cost_usd * REQUESTS_PER_MILLION,
            lower_bound_usd_per_million: placement.lower_bound_usd * REQUESTS_PER_MILLION,
            gap_percent: placement.gap * PERCENT,
            critical_path: placement
                .critical_path
                .iter()
                .map(|v| graph.op(*v).name.clone())
                .collect(),
            ops,
            devices,
        }
    }
}

impl fmt::Display for PlacementReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let method = match (self.method, self.proven_optimal) {
            (SolveMethod::Exact, true) => "exact, proven optimal",
            (SolveMethod::Exact, false) => "exact search stopped at its node limit",
            (SolveMethod::Heuristic, _) => "heuristic",
        };
        writeln!(
            f,
            "latency {:.1} ms (SLA {:.1} ms), ${:.2} per million requests (lower bound ${:.2}, gap {:.2}%; {method})",
            self.latency_ms,
            self.sla_ms,
            self.usd_per_million,
            self.lower_bound_usd_per_million,
            self.gap_percent
        )?;
        writeln!(f, "critical path: {}", self.critical_path.join(" -> "))?;
        writeln!(
            f,
            "{:<24} {:<10} {:<22} {:>10} {:>10} {:>10} {:>12}",
            "op", "kind", "device", "ready ms", "wait ms", "finish ms", "$/M req"
        )?;
        for o in &self.ops {
            writeln!(
                f,
                "{:<24} {:<10} {:<22} {:>10.2} {:>10.2} {:>10.2} {:>12.4}{}",
                o.op,
                o.kind,
                o.device,
                o.ready_ms,
                o.wait_ms,
                o.finish_ms,
                o.usd_per_million,
                if o.on_critical_path { " *" } else { "" }
            )?;
        }
        writeln!(
            f,
            "{:<22} {:>5} {:>12} {:>12} {:>8}",
            "device", "ops", "memory GB", "usable GB", "util %"
        )?;
        for d in &self.devices {
            writeln!(
                f,
                "{:<22} {:>5} {:>12.2} {:>12.2} {:>8.2}",
                d.device, d.ops, d.memory_gb, d.capacity_gb, d.utilization_percent
            )?;
        }
        Ok(())
    }
}
