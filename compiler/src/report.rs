//! The placement report: read back from a placed `exec` module, printed as a table or JSON.

use agentc_plan::attr;
use std::fmt::Write;

use melior::ir::Module;
use melior::ir::attribute::{
    ArrayAttribute, BoolAttribute, DictionaryAttribute, FloatAttribute, StringAttribute,
};
use melior::ir::operation::OperationLike;
use serde::Serialize;

use crate::passes::ir::*;

#[derive(Clone, Debug, Serialize)]
pub struct OpLine {
    pub id: String,
    pub kind: String,
    pub device: String,
    pub predicted_ms: f64,
    pub usd: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Homogeneous {
    pub device: String,
    pub usd_per_1k: f64,
    pub predicted_p95_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanReport {
    pub workflow: String,
    pub cluster: String,
    pub feasible: bool,
    /// Why no placement meets the SLA, when none does.
    pub reason: Option<String>,
    pub sla_p95_ms: f64,
    /// The cost model's latency of the critical path at the declared load.
    pub predicted_p95_ms: Option<f64>,
    pub usd_per_1k: Option<f64>,
    pub method: Option<String>,
    pub proven_optimal: Option<bool>,
    /// Relative gap to the solver's lower bound on cost.
    pub optimality_gap: Option<f64>,
    pub critical_path: Vec<String>,
    /// The cheapest single device type that can run the whole workflow within the SLA.
    pub homogeneous_best: Option<Homogeneous>,
    pub homogeneous: Vec<Homogeneous>,
    /// Prompt tokens not recomputed thanks to shared prefixes, per run.
    pub shared_prefix_tokens: u64,
    pub ops: Vec<OpLine>,
    /// Figures assumed rather than read (missing model files, unbuilt indexes).
    pub notes: Vec<String>,
}

fn dict_f64(d: &DictionaryAttribute, k: &str) -> Option<f64> {
    d.element_by_name(k)
        .and_then(|a| FloatAttribute::try_from(a).ok())
        .map(|f| f.value())
}

fn dict_bool(d: &DictionaryAttribute, k: &str) -> Option<bool> {
    d.element_by_name(k)
        .and_then(|a| BoolAttribute::try_from(a).ok())
        .map(|b| b.value())
}

fn dict_str(d: &DictionaryAttribute, k: &str) -> Option<String> {
    d.element_by_name(k)
        .and_then(|a| StringAttribute::try_from(a).ok())
        .map(|s| string_value(&s))
}

/// Builds the report of a module the `place` pass has run on.
pub fn plan_report(module: &Module, notes: Vec<String>) -> crate::Result<PlanReport> {
    let mut report = PlanReport {
        workflow: String::new(),
        cluster: String::new(),
        feasible: false,
        reason: None,
        sla_p95_ms: 0.0,
        predicted_p95_ms: None,
        usd_per_1k: None,
        method: None,
        proven_optimal: None,
        optimality_gap: None,
        critical_path: Vec::new(),
        homogeneous_best: None,
        homogeneous: Vec::new(),
        shared_prefix_tokens: 0,
        ops: Vec::new(),
        notes,
    };
    for op in module_ops(module) {
        match op_name(&op).as_str() {
            "exec.kv_prefix" => {
                let tokens = int_attr(&op, attr::TOKENS)?.max(0) as u64;
                let uses = int_attr(&op, attr::USES)?.max(1) as u64;
                report.shared_prefix_tokens += tokens * (uses - 1);
            }
            "func.func" => {
                if !op.has_attribute(attr::func::SYM_VISIBILITY) {
                    report.workflow = str_attr(&op, attr::func::SYM_NAME)?;
                    read_placement(&op, &mut report);
                }
                for inner in block_ops(func_block(op)?) {
                    let name = op_name(&inner);
                    if matches!(name.as_str(), "exec.input" | "exec.output" | "func.return") {
                        continue;
                    }
                    report.ops.push(OpLine {
                        id: str_attr(&inner, attr::NODE).unwrap_or_default(),
                        kind: name.trim_start_matches("exec.").to_string(),
                        device: str_attr(&inner, attr::DEVICE).unwrap_or_default(),
                        predicted_ms: float_attr(&inner, attr::PREDICTED_MS).unwrap_or(0.0),
                        usd: float_attr(&inner, attr::USD).unwrap_or(0.0),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(report)
}

fn read_placement(func: &melior::ir::operation::OperationRef, report: &mut PlanReport) {
    if let Some(p) = func
        .attribute(attr::workflow::PLACEMENT)
        .ok()
        .and_then(|a| DictionaryAttribute::try_from(a).ok())
    {
        report.feasible = dict_bool(&p, "feasible").unwrap_or(false);
        report.reason = dict_str(&p, "reason");
        report.cluster = dict_str(&p, "cluster").unwrap_or_default();
        report.sla_p95_ms = dict_f64(&p, "sla_ms").unwrap_or(0.0);
        report.predicted_p95_ms = dict_f64(&p, "predicted_ms");
        report.usd_per_1k = dict_f64(&p, "usd_per_run").map(|u| u * 1e3);
        report.method = dict_str(&p, "method");
        report.proven_optimal = dict_bool(&p, "proven_optimal");
        report.optimality_gap = dict_f64(&p, "gap");
        if let Some(path) = p
            .element_by_name("critical_path")
            .and_then(|a| ArrayAttribute::try_from(a).ok())
        {
            report.critical_path = (0..path.len())
                .filter_map(|i| path.element(i).ok())
                .filter_map(|a| StringAttribute::try_from(a).ok())
                .map(|s| string_value(&s))
                .collect();
        }
    }
    if let Some(h) = func
        .attribute(attr::workflow::HOMOGENEOUS)
        .ok()
        .and_then(|a| ArrayAttribute::try_from(a).ok())
    {
        for i in 0..h.len() {
            let Some(d) = h
                .element(i)
                .ok()
                .and_then(|a| DictionaryAttribute::try_from(a).ok())
            else {
                continue;
            };
            if dict_bool(&d, "feasible") != Some(true) {
                continue;
            }
            report.homogeneous.push(Homogeneous {
                device: dict_str(&d, attr::DEVICE).unwrap_or_default(),
                usd_per_1k: dict_f64(&d, "usd_per_run").unwrap_or(f64::INFINITY) * 1e3,
                predicted_p95_ms: dict_f64(&d, "predicted_ms").unwrap_or(f64::INFINITY),
            });
        }
        report.homogeneous_best = report
            .homogeneous
            .iter()
            .min_by(|a, b| a.usd_per_1k.total_cmp(&b.usd_per_1k))
            .cloned();
    }
}

/// The report as a readable table.
pub fn render_text(r: &PlanReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "workflow {} on cluster {}", r.workflow, r.cluster);
    if !r.feasible {
        let _ = writeln!(
            s,
            "INFEASIBLE: {}",
            r.reason.as_deref().unwrap_or("no placement meets the SLA")
        );
    }
    let _ = writeln!(
        s,
        "{:<28} {:<11} {:<28} {:>12} {:>14}",
        "op", "kind", "device", "predicted ms", "$ per run"
    );
    for o in &r.ops {
        let _ = writeln!(
            s,
            "{:<28} {:<11} {:<28} {:>12.3} {:>14.3e}",
            o.id, o.kind, o.device, o.predicted_ms, o.usd
        );
    }
    if r.feasible {
        let _ = writeln!(s, "critical path: {}", r.critical_path.join(" -> "));
        let _ = writeln!(
            s,
            "predicted p95 {:.1} ms vs SLA {:.1} ms; ${:.6} per 1k runs ({}, gap {:.2}%)",
            r.predicted_p95_ms.unwrap_or(0.0),
            r.sla_p95_ms,
            r.usd_per_1k.unwrap_or(0.0),
            r.method.as_deref().unwrap_or("?"),
            r.optimality_gap.unwrap_or(0.0) * 100.0
        );
    }
    match &r.homogeneous_best {
        Some(h) => {
            let _ = writeln!(
                s,
                "best single device type: {} at ${:.6} per 1k runs, {:.1} ms",
                h.device, h.usd_per_1k, h.predicted_p95_ms
            );
        }
        None => {
            let _ = writeln!(s, "no single device type meets the SLA alone");
        }
    }
    let _ = writeln!(
        s,
        "shared prefix tokens per run: {}",
        r.shared_prefix_tokens
    );
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
