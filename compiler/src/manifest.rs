//! The workflow's declarations as the plan contract's types, written into both the plan's
//! workflow attributes and `manifest.json`, and the manifest itself.

use std::path::PathBuf;

use agentc_plan::decl::{self, Declarations};
use agentc_plan::manifest::{MANIFEST_FORMAT, Manifest};

use crate::frontend::ast::ToolDecl;
use crate::graph::WorkflowGraph;
use crate::passes::PassReport;
use crate::report::PlanReport;
use crate::{Error, Result};

/// The SLA, models, tools and indexes of `graph`.
pub fn declarations(graph: &WorkflowGraph) -> Declarations {
    Declarations {
        sla: decl::Sla {
            p95_ms: graph.sla.p95_ms,
            usd_per_1k: graph.sla.usd_per_1k,
        },
        models: graph
            .models
            .iter()
            .map(|m| decl::ModelSpec {
                name: m.name.clone(),
                kind: m.kind,
                path: m.path.clone(),
            })
            .collect(),
        tools: graph.tools.iter().map(tool).collect(),
        indexes: graph
            .indexes
            .iter()
            .map(|i| decl::IndexSpec {
                name: i.name.clone(),
                path: i.path.clone(),
                model: i.model.clone(),
                metric: i.metric,
            })
            .collect(),
        description: graph.description.clone(),
    }
}

fn tool(t: &ToolDecl) -> decl::ToolSpec {
    decl::ToolSpec {
        name: t.name.clone(),
        kind: t.kind,
        command: t.command.clone().unwrap_or_default(),
        url: t.url.clone(),
        method: t.method.clone(),
        args: t
            .args
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    decl::ToolArg {
                        ty: a.ty,
                        required: a.required,
                        description: a.description.clone(),
                    },
                )
            })
            .collect(),
        output: t.output,
        timeout_ms: t.timeout_ms,
        max_output_bytes: t.max_output_bytes,
        cost: t.cost,
        fallbacks: t.fallbacks.clone(),
        network: t.network,
        reads: t.reads.clone(),
        writes: t.writes.clone(),
        confine: t.confine,
    }
}

/// The manifest of a placed plan compiled from `source` (the workflow file, absolute so that
/// the runtime finds the models wherever it runs from).
pub fn manifest(
    graph: &WorkflowGraph,
    source: PathBuf,
    batch: usize,
    report: &PlanReport,
    passes: &[PassReport],
) -> Result<Manifest> {
    let json = |what: &str, v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| Error::Internal(format!("cannot write the {what} as JSON: {e}")))
    };
    Ok(Manifest {
        format: MANIFEST_FORMAT,
        workflow: graph.name.clone(),
        source,
        cluster: report.cluster.clone(),
        batch,
        declarations: declarations(graph),
        inputs: graph.inputs.iter().map(|i| i.name.clone()).collect(),
        outputs: graph.outputs.iter().map(|o| o.name.clone()).collect(),
        predicted: json("placement report", serde_json::to_value(report))?,
        passes: json("pass reports", serde_json::to_value(passes))?,
    })
}
