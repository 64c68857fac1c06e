//! The workflow frontend: bytes of a YAML file to a validated, typed [`WorkflowGraph`], or every
//! problem found, each with `file:line:col`, what is wrong and a hint.

pub mod ast;
pub mod condition;
pub(crate) mod decode;
mod output_schema;
mod resolve;
mod source_map;
pub mod template;
#[cfg(test)]
mod tests;
mod typecheck;
pub mod yaml;

pub use decode::nodes as node_keys;
pub use decode::{
    INDEX_KEYS, INPUT_KEYS, MODEL_KEYS, SLA_KEYS, TOOL_ARG_KEYS, TOOL_KEYS, WORKFLOW_KEYS,
};
pub(crate) use resolve::uses;

use crate::diagnostics::Diagnostics;
use crate::graph::WorkflowGraph;

/// Parses and validates a workflow. `file` names it in diagnostics.
pub fn parse(file: &str, bytes: &[u8]) -> Result<WorkflowGraph, Diagnostics> {
    let text = match yaml::check_bytes(bytes) {
        Ok(text) => text,
        Err(d) => {
            let shown = String::from_utf8_lossy(bytes);
            return Err(Diagnostics::new(file, &shown, vec![d]));
        }
    };
    let fail = |items| Err(Diagnostics::new(file, text, items));
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(d) => return fail(vec![d]),
    };
    let src = source_map::SourceMap::new(text);
    let mut d = decode::Decoder {
        diags: Vec::new(),
        src: &src,
        broken_ids: Default::default(),
        base_dir: std::path::Path::new(file)
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    };
    let Some(workflow) = decode::workflow(&mut d, &root) else {
        return fail(d.diags);
    };
    let mut graph = resolve::build(&mut d, workflow);
    let edges = resolve::resolve_refs(&mut d, &graph);
    let ordered = resolve::order_scopes(&mut d, &mut graph, &edges);
    if ordered {
        typecheck::check(&mut d, &mut graph);
        if d.diags.is_empty() {
            output_schema::infer_and_check(&mut d, &mut graph);
        }
    }
    if d.diags.is_empty() {
        Ok(graph)
    } else {
        fail(d.diags)
    }
}
