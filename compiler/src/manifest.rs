//! `manifest.json`, written beside `plan.mlir`: what the runtime must have to run the plan
//! (models, indexes, tools), the SLA, and what the compiler predicted.

use serde::Serialize;

use crate::frontend::ast::{Metric, ModelKind, OutputFormat, ToolKind};
use crate::graph::WorkflowGraph;
use crate::passes::PassReport;
use crate::report::PlanReport;

#[derive(Serialize)]
pub struct Manifest<'a> {
    pub format: u32,
    pub workflow: &'a str,
    pub source: String,
    pub sla_p95_ms: f64,
    pub usd_per_1k_budget: Option<f64>,
    pub cluster: &'a str,
    pub batch: usize,
    pub models: Vec<ManifestModel<'a>>,
    pub indexes: Vec<ManifestIndex<'a>>,
    pub tools: Vec<ManifestTool<'a>>,
    pub inputs: Vec<&'a str>,
    pub outputs: Vec<&'a str>,
    pub predicted: &'a PlanReport,
    pub passes: &'a [PassReport],
}

#[derive(Serialize)]
pub struct ManifestModel<'a> {
    pub name: &'a str,
    pub kind: &'static str,
    /// As written in the workflow, relative to `source`'s directory.
    pub path: &'a str,
}

#[derive(Serialize)]
pub struct ManifestIndex<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub model: &'a str,
    /// `cosine`, `dot` or `l2`.
    pub metric: &'static str,
}

#[derive(Serialize)]
pub struct ManifestTool<'a> {
    pub name: &'a str,
    pub kind: &'static str,
    /// `subprocess`: program and arguments; relative paths are relative to `source`'s directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<&'a [String]>,
    /// `http`: the URL and method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// `json` or `text`.
    pub output: &'static str,
    pub timeout_ms: u64,
    pub max_output_bytes: u64,
    pub cost: f64,
    pub fallbacks: &'a [String],
    /// Written only when set: a subprocess tool that may use the network.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
}

/// Format version of the manifest; bumped on incompatible changes.
pub const MANIFEST_FORMAT: u32 = 1;

pub fn manifest<'a>(
    graph: &'a WorkflowGraph,
    source: &str,
    batch: usize,
    report: &'a PlanReport,
    passes: &'a [PassReport],
) -> Manifest<'a> {
    Manifest {
        format: MANIFEST_FORMAT,
        workflow: &graph.name,
        source: source.to_string(),
        sla_p95_ms: graph.sla.p95_ms,
        usd_per_1k_budget: graph.sla.usd_per_1k,
        cluster: &report.cluster,
        batch,
        models: graph
            .models
            .iter()
            .map(|m| ManifestModel {
                name: &m.name,
                kind: if m.kind == ModelKind::Llm {
                    "llm"
                } else {
                    "embedding"
                },
                path: &m.path,
            })
            .collect(),
        indexes: graph
            .indexes
            .iter()
            .map(|i| ManifestIndex {
                name: &i.name,
                path: &i.path,
                model: &i.model,
                metric: match i.metric {
                    Metric::Cosine => "cosine",
                    Metric::Dot => "dot",
                    Metric::L2 => "l2",
                },
            })
            .collect(),
        tools: graph
            .tools
            .iter()
            .map(|t| ManifestTool {
                name: &t.name,
                kind: if t.kind == ToolKind::Http {
                    "http"
                } else {
                    "subprocess"
                },
                command: t.command.as_deref(),
                url: t.url.as_deref(),
                method: t.method.as_deref(),
                output: match t.output {
                    OutputFormat::Json => "json",
                    OutputFormat::Text => "text",
                },
                timeout_ms: t.timeout_ms,
                max_output_bytes: t.max_output_bytes,
                cost: t.cost,
                fallbacks: &t.fallbacks,
                network: t.network,
            })
            .collect(),
        inputs: graph.inputs.iter().map(|i| i.name.as_str()).collect(),
        outputs: graph.outputs.iter().map(|o| o.name.as_str()).collect(),
        predicted: report,
        passes,
    }
}
